//! persistence (work in progress).
