//! A guest session on SQLite: read-only mode, and stopping a statement the host gave up on.
//!
//! SQLite has no server to send a cancel to, and sqlx runs each connection's statements on a
//! worker thread that keeps going when the run's future is dropped. So every session installs a
//! progress handler: SQLite calls it every [`PROGRESS_OPS`] virtual-machine steps, and when it
//! says stop the statement ends with `SQLITE_INTERRUPT` and its transaction rolls back. The
//! handler reads a [`Watchdog`] the session arms with each statement's deadline and trips at
//! once when it abandons the connection (a dropped cursor, a trap, the run's deadline).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite, SqliteConnection};

use super::{
    Conn, Database, DbError, DriverConn, DriverPool, Pool, RowStream, ServerSession, Statement,
    sqlx_common,
};
use crate::bindings::types::{Column, Value};
use crate::sql::StatementKind;

/// Most statements whose result columns one connection remembers; a flow that builds its SQL
/// text per row would otherwise grow the map without bound.
const REMEMBERED_STATEMENTS: usize = 256;

/// A pooled SQLite connection lent to one session, and the result columns of the statements
/// it has run.
///
/// Reading a statement's columns (names and declared types) takes SQLite's handle away from
/// sqlx's worker thread, a round trip between threads that cost more than a small query
/// itself, and a flow runs the same few statements over and over. The columns are remembered
/// only while the session holds the connection, and forgotten at once when this connection
/// runs anything that might change the schema.
#[derive(Debug)]
pub struct SqliteConn {
    conn: PoolConnection<Sqlite>,
    columns: HashMap<Arc<str>, Vec<Column>>,
}

impl SqliteConn {
    fn new(conn: PoolConnection<Sqlite>) -> SqliteConn {
        SqliteConn {
            conn,
            columns: HashMap::new(),
        }
    }

    /// `stmt`'s result columns: remembered, or read from SQLite (and remembered when the
    /// statement only reads). Anything else may change the schema, so the map is emptied.
    async fn columns_of(
        &mut self,
        db: &Database,
        stmt: &Statement,
    ) -> Result<Vec<Column>, DbError> {
        if stmt.kind != StatementKind::Read {
            self.columns.clear();
            return super::sqlite::columns_of(&mut self.conn, db, &stmt.sql).await;
        }
        if let Some(columns) = self.columns.get(&*stmt.sql) {
            return Ok(columns.clone());
        }
        let columns = super::sqlite::columns_of(&mut self.conn, db, &stmt.sql).await?;
        if self.columns.len() >= REMEMBERED_STATEMENTS {
            self.columns.clear();
        }
        self.columns.insert(stmt.sql.clone(), columns.clone());
        Ok(columns)
    }

    /// Forgets every statement's columns unless `kind` only reads or writes rows.
    fn forget_columns_unless_rows_only(&mut self, kind: StatementKind) {
        if !matches!(kind, StatementKind::Read | StatementKind::Write) {
            self.columns.clear();
        }
    }
}

/// Virtual-machine steps between two looks at the watchdog: a few microseconds of work, so an
/// expired statement stops at once and a look (one clock read) costs well under 1%.
const PROGRESS_OPS: i32 = 1000;

/// When the statement running on one SQLite connection must stop. Shared between the session
/// (which arms and trips it) and SQLite's progress handler on the worker thread.
#[derive(Debug)]
pub struct Watchdog {
    base: Instant,
    /// Nanoseconds after `base` at which the statement must stop; 0 stops it now.
    until: AtomicU64,
}

impl Watchdog {
    pub(super) fn new() -> Arc<Watchdog> {
        Arc::new(Watchdog {
            base: Instant::now(),
            until: AtomicU64::new(u64::MAX),
        })
    }

    /// The next statement may run until `until`.
    pub fn arm(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.base).as_nanos();
        self.until.store(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
            Ordering::Release,
        );
    }

    /// When the running statement must stop; `None` while disarmed.
    pub fn deadline(&self) -> Option<Instant> {
        match self.until.load(Ordering::Acquire) {
            u64::MAX => None,
            nanos => Some(self.base + std::time::Duration::from_nanos(nanos)),
        }
    }

    /// No deadline: the host's own statements (the end-of-run rollback and reset) must finish.
    pub fn disarm(&self) {
        self.until.store(u64::MAX, Ordering::Release);
    }

    /// Stops whatever runs now, and anything started after.
    pub fn trip(&self) {
        self.until.store(0, Ordering::Release);
    }

    fn expired(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now >= self.until.load(Ordering::Acquire)
    }
}

/// Starts a guest session. A read-only grant turns on `query_only`, SQLite's own refusal to
/// change the database file, under the host's statement check: each statement then runs in
/// autocommit, so one failure never leaves a wrapper transaction for the next to trip on.
pub async fn start_session(
    conn: &mut SqliteConnection,
    db: &Database,
    read_only: bool,
) -> Result<Arc<Watchdog>, DbError> {
    let watchdog = Watchdog::new();
    let seen = watchdog.clone();
    conn.lock_handle()
        .await
        .map_err(|e| db.error(e))?
        .set_progress_handler(PROGRESS_OPS, move || !seen.expired());
    // Reading the schema table also makes the connection notice a schema changed by another
    // connection since its last statement, so what is prepared next sees the tables as they
    // are (see `sqlite::stream_rows`).
    let pragma = if read_only {
        "PRAGMA query_only = ON; SELECT 1 FROM sqlite_master LIMIT 1"
    } else {
        "PRAGMA query_only = OFF; SELECT 1 FROM sqlite_master LIMIT 1"
    };
    sqlx::raw_sql(pragma)
        .execute(&mut *conn)
        .await
        .map_err(|e| db.error(e))?;
    // What sqlx kept prepared from an earlier session may predate a schema change made since
    // (by a migration, another connection, another run): forget it, so the session's reads can
    // be kept prepared for the session (see `sqlite::stream_rows`).
    sqlx::Connection::clear_cached_statements(&mut *conn)
        .await
        .map_err(|e| db.error(e))?;
    Ok(watchdog)
}

/// Ends a guest session: no transaction may be left open (`ROLLBACK` already ran when one
/// was) and no temporary object may survive; a connection that fails that is not pooled. The
/// progress handler goes first, so an expired deadline cannot stop the host's own statements.
pub async fn reset_session(conn: &mut SqliteConnection, db: &Database) -> Result<(), String> {
    conn.lock_handle()
        .await
        .map_err(|e| format!("removing the statement watchdog failed: {}", db.error(e)))?
        .remove_progress_handler();
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM temp.sqlite_master), (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp'))",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| format!("the session check failed: {}", db.error(e)))?;
    let (temp, attached): (i64, i64) = (
        row.try_get(0).map_err(|e| e.to_string())?,
        row.try_get(1).map_err(|e| e.to_string())?,
    );
    if temp != 0 {
        return Err(format!("{temp} temporary object(s) survived the run"));
    }
    if attached != 0 {
        return Err(format!("{attached} attached database(s) survived the run"));
    }
    sqlx::raw_sql("PRAGMA query_only = OFF")
        .execute(&mut *conn)
        .await
        .map_err(|e| format!("resetting query_only failed: {}", db.error(e)))?;
    Ok(())
}

impl DriverPool for sqlx::SqlitePool {
    fn acquire<'a>(&'a self, db: &'a Database) -> BoxFuture<'a, Result<Conn, DbError>> {
        sqlx_common::acquire(self, db, SqliteConn::new)
    }

    /// SQLite shares the pool: an in-memory database exists only on the pool's connection, and
    /// its write lock is per database file, not per connection.
    fn dedicated<'a>(
        &'a self,
        db: &'a Database,
        _application_name: &'a str,
    ) -> BoxFuture<'a, Result<(Conn, Option<Pool>), DbError>> {
        Box::pin(async move { Ok((db.acquire().await?, None)) })
    }

    fn occupancy(&self) -> (u32, u32) {
        sqlx_common::occupancy(self)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(sqlx::Pool::close(self))
    }

    /// Stopped within a few thousand steps; closing the connection then waits for nothing.
    fn end_session<'a>(
        &'a self,
        _db: &'a Database,
        session: &'a ServerSession,
    ) -> BoxFuture<'a, ()> {
        if let ServerSession::Sqlite(watchdog) = session {
            watchdog.trip();
        }
        Box::pin(async {})
    }
}

impl DriverConn for SqliteConn {
    fn run_raw<'a>(
        &'a mut self,
        db: &'a Database,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        self.columns.clear();
        sqlx_common::run_raw(&mut self.conn, db, sql)
    }

    fn open_stream<'c, 'v>(
        &'c mut self,
        db: &'c Database,
        stmt: &'v Statement,
        values: &'v [&'v Value],
    ) -> BoxFuture<'v, Result<(Vec<Column>, RowStream<'c>), DbError>>
    where
        'c: 'v,
    {
        Box::pin(async move {
            let columns = self.columns_of(db, stmt).await?;
            let rows = super::sqlite::stream_rows(&mut self.conn, db, stmt, values, &columns);
            Ok((columns, rows))
        })
    }

    fn execute<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        values: &'a [&'a Value],
    ) -> BoxFuture<'a, Result<u64, DbError>> {
        self.forget_columns_unless_rows_only(stmt.kind);
        Box::pin(super::sqlite::execute(&mut self.conn, db, stmt, values))
    }

    fn start_session<'a>(
        &'a mut self,
        db: &'a Database,
        read_only: bool,
        _statement_timeout: Duration,
    ) -> BoxFuture<'a, Result<ServerSession, DbError>> {
        Box::pin(async move {
            start_session(&mut self.conn, db, read_only)
                .await
                .map(ServerSession::Sqlite)
        })
    }

    fn reset_session<'a>(
        &'a mut self,
        db: &'a Database,
        _session: Option<&'a ServerSession>,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.columns.clear();
        Box::pin(reset_session(&mut self.conn, db))
    }

    fn close_on_drop(&mut self) {
        self.conn.close_on_drop()
    }

    fn discard(self: Box<Self>) -> BoxFuture<'static, ()> {
        sqlx_common::discard(self.conn)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_fresh_watchdog_never_expires_and_an_armed_one_expires_at_its_deadline() {
        let dog = Watchdog::new();
        assert!(!dog.expired());
        dog.arm(Instant::now() + Duration::from_secs(3600));
        assert!(!dog.expired());
        dog.arm(Instant::now() - Duration::from_secs(1));
        assert!(dog.expired(), "a deadline already past stops the statement");
        dog.arm(Instant::now() + Duration::from_secs(3600));
        dog.trip();
        assert!(dog.expired(), "tripping overrides the armed deadline");
    }
}
