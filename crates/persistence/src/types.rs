//! Portable SQL types: one `table!` schema for PostgreSQL and SQLite.
//!
//! | SQL type | PostgreSQL | SQLite | Rust |
//! |---|---|---|---|
//! | [`DbUuid`] | `uuid` | `TEXT` (hyphenated) | [`Id`] |
//! | [`DbJson`] | `jsonb` | `TEXT` | [`Json`] |
//! | [`DbTime`] | `timestamptz` | `INTEGER` (unix microseconds) | [`Ts`] |

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};
use uuid::Uuid;

/// UUID: `uuid` on PostgreSQL, hyphenated `TEXT` on SQLite.
#[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Debug, Clone, Copy)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct DbUuid;

/// JSON: `jsonb` on PostgreSQL, `TEXT` on SQLite.
#[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Debug, Clone, Copy)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct DbJson;

/// Timestamp: `timestamptz` on PostgreSQL, `INTEGER` unix microseconds on SQLite (exact and
/// ordered; no text formats to compare).
#[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Debug, Clone, Copy)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Long"))]
pub struct DbTime;

// Both representations order like time, so MIN/MAX are meaningful.
impl diesel::sql_types::SqlOrd for DbTime {}

/// A [`Uuid`] column value.
#[derive(AsExpression, FromSqlRow, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[diesel(sql_type = DbUuid)]
pub struct Id(pub Uuid);

/// A JSON column value.
#[derive(AsExpression, FromSqlRow, Debug, Clone, PartialEq)]
#[diesel(sql_type = DbJson)]
pub struct Json(pub serde_json::Value);

/// A timestamp column value (microsecond precision on both backends).
#[derive(AsExpression, FromSqlRow, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[diesel(sql_type = DbTime)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    /// Truncates to whole microseconds, the precision both backends store.
    pub fn micros(t: DateTime<Utc>) -> Self {
        Ts(DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t))
    }
}

impl ToSql<DbUuid, Pg> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<DbUuid, Pg> for Id {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(bytes).map(Id)
    }
}

impl ToSql<DbUuid, Sqlite> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<DbUuid, Sqlite> for Id {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let s = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Id(Uuid::parse_str(&s)?))
    }
}

impl ToSql<DbJson, Pg> for Json {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<diesel::sql_types::Jsonb, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<DbJson, Pg> for Json {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<diesel::sql_types::Jsonb, Pg>>::from_sql(bytes).map(Json)
    }
}

impl ToSql<DbJson, Sqlite> for Json {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<DbJson, Sqlite> for Json {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let s = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Json(serde_json::from_str(&s)?))
    }
}

impl ToSql<DbTime, Pg> for Ts {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<DbTime, Pg> for Ts {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(bytes).map(Ts)
    }
}

impl ToSql<DbTime, Sqlite> for Ts {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.timestamp_micros());
        Ok(IsNull::No)
    }
}

impl FromSql<DbTime, Sqlite> for Ts {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let micros = <i64 as FromSql<diesel::sql_types::BigInt, Sqlite>>::from_sql(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(Ts)
            .ok_or_else(|| format!("timestamp out of range: {micros}").into())
    }
}

/// `true` for 1–64 characters of `[A-Za-z0-9_-]` (the `X-Profile-ID` rule).
///
/// ```
/// assert!(mediajobs_persistence::valid_profile_id("alice_01"));
/// assert!(!mediajobs_persistence::valid_profile_id("../etc"));
/// assert!(!mediajobs_persistence::valid_profile_id(""));
/// ```
pub fn valid_profile_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
