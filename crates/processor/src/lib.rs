//! processor (work in progress).
