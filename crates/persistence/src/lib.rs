//! # persistence
//!
//! Storage for mediajobs through diesel + diesel-async, on two backends behind one API:
//!
//! - **SQLite** (`sqlite://PATH`), the embedded default: one file, WAL, `busy_timeout`, one
//!   connection (SQLite has a single writer).
//! - **PostgreSQL** (`postgres://…`), for production and several nodes: pooled connections,
//!   `FOR UPDATE SKIP LOCKED` claims, `LISTEN/NOTIFY` for wake-ups and cancel signals across
//!   nodes, optional TLS (`sslmode=require`).
//!
//! [`Database`] implements [`jobs_core::JobStore`] (the same conformance suite as the in-memory
//! store runs against both backends) and holds the profile, file and transcript repositories.
//! Migrations (`migrations/postgres`, `migrations/sqlite`, same versions) are embedded and run
//! on connect.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use jobs_core::{ManagerConfig, QueueManager};
//! use mediajobs_persistence::{ConnectOptions, Database};
//!
//! let db = Database::connect("postgres://postgres@127.0.0.1/mediajobs", ConnectOptions::default()).await?;
//! let manager = QueueManager::new(Arc::new(db.clone()), ManagerConfig::default().node_id("node-a"));
//! manager.start().await?;
//! # Ok(()) }
//! ```

mod cached;
mod db;
mod dialect;
mod error;
mod models;
mod notify;
mod repos;
pub mod schema;
mod store;
mod tls;
pub mod types;

pub use db::{Backend, ConnectOptions, Database};
pub use error::DbError;
pub use models::{FileKind, FileOrigin, FileRecord, TranscriptRecord};
pub use repos::{FileDeletion, FileFilter, JobCount, Page};
pub use types::valid_profile_id;
