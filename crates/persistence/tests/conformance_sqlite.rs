//! The jobs-core conformance suite against SQLite files.
mod common;

jobs_core::conformance_tests!(common::sqlite_store);
