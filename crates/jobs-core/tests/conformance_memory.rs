//! The conformance suite against the in-memory store.

use std::sync::Arc;

use jobs_core::MemoryStore;
use jobs_core::testkit::TestStore;

async fn memory() -> TestStore {
    TestStore::new(Arc::new(MemoryStore::new()))
}

jobs_core::conformance_tests!(memory);
