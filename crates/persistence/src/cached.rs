//! [`Cached`]: keeps a statement's prepared form across calls.
//!
//! diesel refuses to cache the prepared statement of every `UPDATE`, of raw `sql_query`s and
//! of `IN`/`ANY` lists, because *some* of them produce a different SQL text on each call.
//! Uncached, each call parses, plans and describes the statement again — on PostgreSQL an
//! extra round trip per statement, measured as the largest cost of a claim. The queue's hot
//! statements have one fixed text each, so they are safe to cache: the cache is keyed by the
//! SQL text and the bind types, and a statement of a new shape is simply prepared once more.
//!
//! Wrap only statements whose SQL text comes from a bounded set (no data-dependent lists).

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A statement whose prepared form is cached by its SQL text (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cached<Q>(pub(crate) Q);

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // Not a static id: the cache key is the SQL text (and bind types), never a type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

/// PostgreSQL: `WITH w AS (<statement> RETURNING 1) SELECT pg_notify($chan, $payload) FROM w`
/// — a write and its notification in one statement (so one round trip and, outside a
/// transaction, one commit). The notification is sent once per row written, so use it for
/// single-row writes; PostgreSQL folds identical notifications of one transaction into one.
#[derive(Debug, Clone)]
pub(crate) struct WithNotify<Q> {
    pub(crate) write: Q,
    pub(crate) channel: &'static str,
    pub(crate) payload: String,
}

impl<Q: QueryFragment<diesel::pg::Pg>> QueryFragment<diesel::pg::Pg> for WithNotify<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("WITH w AS (");
        self.write.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING 1) SELECT pg_notify(");
        out.push_bind_param::<diesel::sql_types::Text, _>(self.channel)?;
        out.push_sql(", ");
        out.push_bind_param::<diesel::sql_types::Text, _>(&self.payload)?;
        out.push_sql(") FROM w");
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _backend: &diesel::pg::Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for WithNotify<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

// Synchronous diesel (SQLite inside `spawn_blocking`) runs only statements marked for it.
impl<Q, Conn> diesel::RunQueryDsl<Conn> for Cached<Q> {}
