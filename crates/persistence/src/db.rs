//! [`Database`]: the connection pools of one backend, migrations, signals and the clock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;
use jobs_core::StoreSignal;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::DbError;

/// The SQLite connection type (diesel's sync connection run on blocking threads).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The PostgreSQL channel carrying [`StoreSignal`]s between nodes.
pub(crate) const NOTIFY_CHANNEL: &str = "mediajobs_signals";

/// Which backend a [`Database`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (production, several nodes).
    Postgres,
    /// SQLite (embedded default, one process).
    Sqlite,
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// PostgreSQL pool size (default 16). SQLite always uses one connection: it has a single
    /// writer, and one connection was measured as fast as many (shared/notes/persistence.md).
    pub pg_pool_size: usize,
    /// A PEM file of extra CA certificates trusted for `sslmode=require` PostgreSQL URLs
    /// (added to the system CA store).
    pub pg_ca_file: Option<PathBuf>,
    /// Run pending migrations on connect (default true).
    pub migrate: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            pg_pool_size: 16,
            pg_ca_file: None,
            migrate: true,
        }
    }
}

pub(crate) enum Pools {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

pub(crate) struct Inner {
    pub(crate) pools: Pools,
    pub(crate) signals: broadcast::Sender<StoreSignal>,
    /// Identifies this process's connections in NOTIFY payloads.
    pub(crate) instance: String,
    clock_offset_us: AtomicI64,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut l) = self.listener.lock()
            && let Some(h) = l.take()
        {
            h.abort();
        }
    }
}

/// A database: PostgreSQL or SQLite, chosen by the URL. Cheap to clone.
///
/// It implements [`jobs_core::JobStore`] and holds the profile, file and transcript
/// repositories.
///
/// ```no_run
/// # async fn demo() -> Result<(), mediajobs_persistence::DbError> {
/// use mediajobs_persistence::{ConnectOptions, Database};
/// let db = Database::connect("sqlite://data/mediajobs.db", ConnectOptions::default()).await?;
/// db.ensure_profile("alice").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$c` bound to a pooled connection of the right concrete type. The body is
/// written once and type-checked for both backends.
macro_rules! on_conn {
    ($db:expr, $c:ident => $body:expr) => {
        match &$db.inner.pools {
            $crate::db::Pools::Pg(pool) => {
                let mut guard = pool
                    .get()
                    .await
                    .map_err(|e| $crate::error::DbError::Connection(e.to_string()))?;
                let $c: &mut diesel_async::AsyncPgConnection = &mut *guard;
                $body
            }
            $crate::db::Pools::Sqlite(pool) => {
                let mut guard = pool
                    .get()
                    .await
                    .map_err(|e| $crate::error::DbError::Connection(e.to_string()))?;
                let $c: &mut $crate::db::SqliteConn = &mut *guard;
                $body
            }
        }
    };
}
pub(crate) use on_conn;

/// Parses `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`.
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    if rest.is_empty() {
        return None;
    }
    Some(rest.to_owned())
}

impl Database {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), runs migrations unless disabled,
    /// and (PostgreSQL) starts the `LISTEN` task. A wrong URL fails with a message naming
    /// `DATABASE_URL`.
    pub async fn connect(url: &str, opts: ConnectOptions) -> Result<Self, DbError> {
        let (signals, _) = broadcast::channel(4096);
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let db = if let Some(path) = sqlite_path(url) {
            Self::connect_sqlite(&path, signals, instance).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_pg(url, &opts, signals, instance).await?
        } else {
            return Err(DbError::Config(format!(
                "DATABASE_URL: unsupported URL '{}'; use sqlite://PATH or postgres://USER@HOST/DB",
                redact(url)
            )));
        };
        if opts.migrate {
            db.migrate().await?;
        }
        if let Pools::Pg(_) = db.inner.pools {
            db.measure_clock().await?;
            let handle = tokio::spawn(crate::notify::listen(
                Arc::downgrade(&db.inner),
                url.to_owned(),
                opts.pg_ca_file.clone(),
            ));
            if let Ok(mut l) = db.inner.listener.lock() {
                *l = Some(handle);
            }
        }
        Ok(db)
    }

    async fn connect_sqlite(
        path: &str,
        signals: broadcast::Sender<StoreSignal>,
        instance: String,
    ) -> Result<Self, DbError> {
        if path != ":memory:"
            && let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                DbError::Config(format!(
                    "DATABASE_URL: cannot create the directory {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let mut cfg = ManagerConfig::<SqliteConn>::default();
        // No test query on every checkout (the default costs a round trip per statement);
        // a connection left in a broken transaction is still dropped on return.
        cfg.recycling_method = RecyclingMethod::Fast;
        cfg.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            async move {
                let mut conn = SqliteConn::establish(&url).await?;
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
        let mgr = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, cfg);
        let pool = Pool::builder(mgr)
            .max_size(1)
            .build()
            .map_err(|e| DbError::Config(format!("DATABASE_URL: {e}")))?;
        drop(pool.get().await.map_err(|e| {
            DbError::Config(format!(
                "DATABASE_URL: cannot open SQLite file '{path}': {e}"
            ))
        })?);
        Ok(Database {
            inner: Arc::new(Inner {
                pools: Pools::Sqlite(pool),
                signals,
                instance,
                clock_offset_us: AtomicI64::new(0),
                listener: Mutex::new(None),
            }),
        })
    }

    async fn connect_pg(
        url: &str,
        opts: &ConnectOptions,
        signals: broadcast::Sender<StoreSignal>,
        instance: String,
    ) -> Result<Self, DbError> {
        let tls = crate::tls::wants_tls(url)?;
        let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
        // `Fast`: no `SELECT 1` round trip on every checkout (the default, which cost one per
        // store call). A closed connection or a broken transaction is still detected on return
        // (`is_broken`: `Client::is_closed`) and replaced; a connection killed a moment before its
        // checkout fails one statement, which the engine's fenced writes and `wait_for` retry.
        cfg.recycling_method = RecyclingMethod::Fast;
        if tls {
            let ca = opts.pg_ca_file.clone();
            cfg.custom_setup = Box::new(move |url| {
                let url = url.to_owned();
                let ca = ca.clone();
                async move { crate::tls::establish_tls(&url, ca.as_deref()).await }.boxed()
            });
        }
        let mgr = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, cfg);
        let pool = Pool::builder(mgr)
            .max_size(opts.pg_pool_size.max(2))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Config(format!("DATABASE_URL: {e}")))?;
        drop(pool.get().await.map_err(|e| {
            DbError::Config(format!(
                "DATABASE_URL: cannot connect to PostgreSQL at '{}': {e}",
                redact(url)
            ))
        })?);
        Ok(Database {
            inner: Arc::new(Inner {
                pools: Pools::Pg(pool),
                signals,
                instance,
                clock_offset_us: AtomicI64::new(0),
                listener: Mutex::new(None),
            }),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self.inner.pools {
            Pools::Pg(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs pending migrations (embedded in the binary) and returns the versions applied.
    /// On PostgreSQL an advisory lock makes concurrent starts of several nodes safe.
    /// Needs tokio's multi-thread runtime.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        let applied = match &self.inner.pools {
            Pools::Pg(pool) => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                diesel::sql_query("SELECT pg_advisory_lock(7244320861)")
                    .execute(&mut *conn)
                    .await?;
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                let res = harness
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                    .map_err(|e| DbError::Migration(e.to_string()));
                let mut conn = harness.into_inner();
                diesel::sql_query("SELECT pg_advisory_unlock(7244320861)")
                    .execute(&mut *conn)
                    .await?;
                res?
            }
            Pools::Sqlite(pool) => {
                let conn = pool
                    .get()
                    .await
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                    .map_err(|e| DbError::Migration(e.to_string()))?
            }
        };
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
        Ok(applied)
    }

    /// The embedded migrations not applied to the database yet (empty when the schema is
    /// current). Also proves the database answers.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        use diesel_migrations::MigrationHarness as _;
        let pending = match &self.inner.pools {
            Pools::Pg(pool) => {
                let conn = pool
                    .get()
                    .await
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.name().to_string()).collect::<Vec<_>>())
                    .map_err(|e| DbError::Migration(e.to_string()))?
            }
            Pools::Sqlite(pool) => {
                let conn = pool
                    .get()
                    .await
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.name().to_string()).collect::<Vec<_>>())
                    .map_err(|e| DbError::Migration(e.to_string()))?
            }
        };
        Ok(pending)
    }

    /// The store's clock: this host's clock corrected by the offset to the PostgreSQL server's
    /// clock (measured at connect and at every listener reconnect), so leases compare across
    /// hosts whose clocks disagree.
    pub fn now(&self) -> DateTime<Utc> {
        let off = AtomicI64::load(&self.inner.clock_offset_us, Ordering::Relaxed);
        Utc::now() + chrono::TimeDelta::microseconds(off)
    }

    pub(crate) async fn measure_clock(&self) -> Result<(), DbError> {
        measure_clock(&self.inner).await
    }

    /// `true` when a pooled PostgreSQL connection is encrypted (`pg_stat_ssl`); `false` on SQLite.
    pub async fn connection_uses_tls(&self) -> Result<bool, DbError> {
        #[derive(diesel::QueryableByName)]
        struct Ssl {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            ssl: bool,
        }
        let Pools::Pg(pool) = &self.inner.pools else {
            return Ok(false);
        };
        let mut conn = pool
            .get()
            .await
            .map_err(|e| DbError::Connection(e.to_string()))?;
        let row: Ssl =
            diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .get_result(&mut *conn)
                .await?;
        Ok(row.ssl)
    }

    /// Drops every table and re-runs the migrations (tests only).
    #[doc(hidden)]
    pub async fn reset_for_tests(&self) -> Result<(), DbError> {
        on_conn!(self, c => {
            c.batch_execute("DROP TABLE IF EXISTS jobs; DROP TABLE IF EXISTS transcripts; \
                             DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS profiles; \
                             DROP TABLE IF EXISTS __diesel_schema_migrations;").await?;
        });
        self.migrate().await?;
        Ok(())
    }
}

pub(crate) async fn measure_clock(inner: &Inner) -> Result<(), DbError> {
    #[derive(diesel::QueryableByName)]
    struct Now {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        now: DateTime<Utc>,
    }
    let Pools::Pg(pool) = &inner.pools else {
        return Ok(());
    };
    let mut conn = pool
        .get()
        .await
        .map_err(|e| DbError::Connection(e.to_string()))?;
    let before = Utc::now();
    let row: Now = diesel::sql_query("SELECT now() AS now")
        .get_result(&mut *conn)
        .await?;
    let after = Utc::now();
    let local_mid = before + (after - before) / 2;
    let offset = (row.now - local_mid).num_microseconds().unwrap_or(0);
    inner.clock_offset_us.store(offset, Ordering::Relaxed);
    Ok(())
}

/// Hides the password of a URL for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn parses_sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/x.db").as_deref(),
            Some("data/x.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///abs/x.db").as_deref(),
            Some("/abs/x.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:").as_deref(), Some(":memory:"));
        assert_eq!(sqlite_path("sqlite://"), None);
        assert_eq!(sqlite_path("mysql://x"), None);
    }

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        use diesel::migration::MigrationSource;
        let pg: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&PG_MIGRATIONS)
            .unwrap()
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
        let lite: Vec<String> =
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .unwrap()
                .iter()
                .map(|m| m.name().version().to_string())
                .collect();
        assert!(!pg.is_empty());
        assert_eq!(pg, lite);
    }
}
