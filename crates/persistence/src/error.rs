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
}

impl DbError {
    /// The stable error code of the HTTP contract.
    pub fn code(&self) -> ErrorCode {
        match self {
            DbError::Store(e) => e.code(),
            _ => ErrorCode::Database,
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

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError::Store(e)
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(s) => s,
            other => StoreError::backend(other),
        }
    }
}
