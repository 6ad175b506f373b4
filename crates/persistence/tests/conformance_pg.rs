//! The jobs-core conformance suite against PostgreSQL (one fresh database per case).
mod common;

jobs_core::conformance_tests!(common::pg_store);
