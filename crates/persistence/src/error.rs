//! [`DbError`].

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use jobs_core::{ErrorCode, StoreError};
use uuid::Uuid;

/// Errors of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` (or another setting) is wrong; the message names it.
    #[error("{0}")]
    Config(String),
    /// No connection could be had.
    #[error("database connection failed: {0}")]
    Connection(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A row holds a value the code does not know.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A refusal: no such row in the caller's profile (`NotFound`), a change the state does
    /// not allow (`Conflict`), input that violates a constraint (`Invalid`: unknown
    /// reference, duplicate id). The one vocabulary of refusals is the store's.
    #[error(transparent)]
    Store(StoreError),
    /// A fenced write found that its job no longer runs under that fence (the lease went to
    /// another node, or the job ended): nothing was written.
    #[error("job {0} no longer holds its lease; nothing was written")]
    FenceLost(Uuid),
}

impl DbError {
    /// The stable error code of the HTTP contract.
    pub fn code(&self) -> ErrorCode {
        match self {
            DbError::Store(e) => e.code(),
            DbError::FenceLost(_) => ErrorCode::Conflict,
            _ => ErrorCode::Database,
        }
    }

    /// `true` for an error that says nothing about the request itself and may pass when the
    /// request is repeated: no connection could be had, the connection dropped mid-query, the
    /// server is shutting down or starting up (a restart, a failover), a serialization
    /// conflict. Callers that must not fail on a short outage retry these with backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Connection(_) => true,
            DbError::Query(e) => diesel_transient(e),
            // A store call (`JobStore`) carries the database's error inside.
            DbError::Store(StoreError::Backend(b)) => b
                .downcast_ref::<DbError>()
                .is_some_and(DbError::is_transient),
            _ => false,
        }
    }

    pub(crate) fn job_not_found(id: Uuid) -> Self {
        DbError::Store(StoreError::job_not_found(id))
    }

    /// `NotFound` (`what` is "file <id>", "transcript <id>").
    pub fn not_found(what: impl Into<String>) -> Self {
        DbError::Store(StoreError::NotFound(what.into()))
    }

    /// `Conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        DbError::Store(StoreError::Conflict(message.into()))
    }

    /// `Invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        DbError::Store(StoreError::Invalid(message.into()))
    }

    /// Maps constraint violations to [`StoreError::Invalid`] with `what` as context.
    pub(crate) fn constraint(e: DieselError, what: &str) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                DbError::invalid(format!(
                    "{what}: a referenced row does not exist ({})",
                    info.message()
                ))
            }
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                DbError::invalid(format!("{what}: already exists"))
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                DbError::invalid(format!("{what}: invalid value ({})", info.message()))
            }
            _ => DbError::Query(e),
        }
    }
}

/// Whether a diesel error is one of a connection or a server going away (see
/// [`DbError::is_transient`]). PostgreSQL reports a restart as `57P01` ("terminating
/// connection due to administrator command"), `57P03` ("the database system is starting up")
/// or a closed socket; diesel maps only the last to a kind of its own.
fn diesel_transient(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message().to_ascii_lowercase();
            [
                "terminating connection",
                "shutting down",
                "starting up",
                "in recovery mode",
                "connection reset",
                "connection refused",
                "broken pipe",
                "connection closed",
                "server closed the connection",
                "database is locked",
            ]
            .iter()
            .any(|w| m.contains(w))
        }
        _ => false,
    }
}

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError::Store(e)
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(s) => s,
            DbError::FenceLost(_) => StoreError::Conflict(e.to_string()),
            other => StoreError::backend(other),
        }
    }
}
