//! [`DbError`].

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use jobs_core::StoreError;
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
    /// No such row (in the caller's profile).
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The input violates a constraint (unknown reference, duplicate id).
    #[error("{0}")]
    Invalid(String),
    /// A store rule refused the change.
    #[error(transparent)]
    Store(StoreError),
}

impl DbError {
    /// The stable error code of the HTTP contract.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::NotFound(_) => "NotFound",
            DbError::Conflict(_) => "Conflict",
            DbError::Invalid(_) => "ValidationError",
            DbError::Store(e) => e.code(),
            _ => "Database",
        }
    }

    pub(crate) fn job_not_found(id: Uuid) -> Self {
        DbError::Store(StoreError::NotFound(id))
    }

    /// Maps constraint violations to [`DbError::Invalid`] with `what` as context.
    pub(crate) fn constraint(e: DieselError, what: &str) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                DbError::Invalid(format!(
                    "{what}: a referenced row does not exist ({})",
                    info.message()
                ))
            }
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                DbError::Invalid(format!("{what}: already exists"))
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                DbError::Invalid(format!("{what}: invalid value ({})", info.message()))
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
            DbError::Conflict(m) => StoreError::Conflict(m),
            DbError::Invalid(m) => StoreError::Invalid(m),
            other => StoreError::backend(other),
        }
    }
}
