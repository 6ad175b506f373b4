//! Test databases: a fresh SQLite file or a fresh PostgreSQL database per test.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use jobs_core::testkit::TestStore;
use mediajobs_persistence::{ConnectOptions, Database};

/// The PostgreSQL server used by the tests (`MEDIAJOBS_TEST_PG`, default the local one).
pub fn pg_admin_url() -> String {
    std::env::var("MEDIAJOBS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_db(admin: &str, db: &str) -> String {
    match admin.rfind('/') {
        Some(i) => format!("{}/{db}", &admin[..i]),
        None => format!("{admin}/{db}"),
    }
}

/// A fresh PostgreSQL database; returns (url, name).
pub async fn create_pg_db() -> (String, String) {
    let admin = pg_admin_url();
    let name = format!("mj_test_{}", uuid::Uuid::new_v4().simple());
    let mut c = AsyncPgConnection::establish(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {admin} for the tests: {e}"));
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    (with_db(&admin, &name), name)
}

/// Drops a test database, terminating leftover connections.
pub async fn drop_pg_db(name: &str) {
    let admin = pg_admin_url();
    if let Ok(mut c) = AsyncPgConnection::establish(&admin).await {
        let _ = c
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// A connected PostgreSQL [`Database`] on a fresh database, with its name.
pub async fn pg_database() -> (Database, String) {
    let (url, name) = create_pg_db().await;
    let db = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    (db, name)
}

/// A connected SQLite [`Database`] on a fresh temp file (the dir lives as long as the guard).
pub async fn sqlite_database() -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let db = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    (db, dir)
}

pub async fn sqlite_store() -> TestStore {
    let (db, dir) = sqlite_database().await;
    TestStore::with_cleanup(Arc::new(db), move || async move { drop(dir) })
}

pub async fn pg_store() -> TestStore {
    let (db, name) = pg_database().await;
    let db = Arc::new(db);
    TestStore::with_cleanup(db, move || async move { drop_pg_db(&name).await })
}
