//! A lent SQLite connection and the guest sessions on it: read-only mode, and stopping a
//! statement the host gave up on.
//!
//! Every statement on a lent connection runs on the calling thread (`sqlite_held.rs`), so
//! nothing keeps running once a run's future is dropped; but a statement under way cannot be
//! cancelled from another task, and a long one must not outlast its time. So every session
//! installs a progress handler: SQLite calls it every [`PROGRESS_OPS`] virtual-machine steps,
//! and when it says stop the statement ends with `SQLITE_INTERRUPT` and its transaction rolls
//! back. The handler reads a [`Watchdog`] the session arms with each statement's deadline and
//! trips at once when it abandons the connection (a dropped cursor, a trap, the run's deadline).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;

use super::sqlite_held::Held;
use super::{
    Conn, Database, DbError, DriverConn, DriverPool, Pool, RowStream, ServerSession, Statement,
    sqlx_common,
};
use crate::bindings::types::{Column, Value};

/// A pooled SQLite connection lent out: held away from sqlx's worker from its first use until
/// it is dropped (`sqlite_held.rs`).
#[derive(Debug)]
pub struct SqliteConn {
    /// Declared before `conn`, so the lock is let go before the connection returns to its
    /// pool (where sqlx's worker must have it again).
    held: Option<Held>,
    conn: PoolConnection<Sqlite>,
}

impl SqliteConn {
    async fn held(&mut self, db: &Database) -> Result<&mut Held, DbError> {
        if self.held.is_none() {
            self.held = Some(Held::lock(&mut self.conn, db).await?);
        }
        Ok(self.held.as_mut().expect("held just above"))
    }
}

/// Virtual-machine steps between two looks at the watchdog: a few microseconds of work, so an
/// expired statement stops at once and a look (one clock read) costs well under 1%.
pub(super) const PROGRESS_OPS: i32 = 1000;

/// When the statement running on one SQLite connection must stop. Shared between the session
/// (which arms and trips it) and SQLite's progress and busy handlers.
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

    /// Whether a flow's statement must stop: its deadline passed, the session was given up,
    /// or the process received SIGINT/SIGTERM (whose handling may wait on this very thread).
    /// The host's own statements (disarmed) always finish.
    pub(super) fn expired(&self) -> bool {
        let until = self.until.load(Ordering::Acquire);
        if until == u64::MAX {
            return false;
        }
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now >= until || crate::shutdown::received().is_some()
    }
}

/// Starts a guest session. A read-only grant turns on `query_only`, SQLite's own refusal to
/// change the database file, under the host's statement check: each statement then runs in
/// autocommit, so one failure never leaves a wrapper transaction for the next to trip on.
fn start_session(
    held: &mut Held,
    db: &Database,
    read_only: bool,
) -> Result<Arc<Watchdog>, DbError> {
    let watchdog = Watchdog::new();
    held.watch(watchdog.clone());
    // Reading the schema table also makes the connection notice a schema changed by another
    // connection since its last statement, so what is prepared next sees the tables as they
    // are.
    let pragma = if read_only {
        "PRAGMA query_only = ON; SELECT 1 FROM sqlite_master LIMIT 1"
    } else {
        "PRAGMA query_only = OFF; SELECT 1 FROM sqlite_master LIMIT 1"
    };
    held.exec_raw(db, pragma)?;
    Ok(watchdog)
}

/// Ends a guest session: no transaction may be left open (`ROLLBACK` already ran when one
/// was) and no temporary object may survive; a connection that fails that is not pooled. The
/// watchdog goes first, so an expired deadline cannot stop the host's own statements.
fn reset_session(held: &mut Held, db: &Database) -> Result<(), String> {
    held.unwatch();
    let counts = held
        .first_row(
            db,
            "SELECT (SELECT count(*) FROM temp.sqlite_master), (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp'))",
        )
        .map_err(|e| format!("the session check failed: {e}"))?;
    match counts.as_slice() {
        [Value::Int(0), Value::Int(0)] => {}
        [Value::Int(temp), Value::Int(0)] => {
            return Err(format!("{temp} temporary object(s) survived the run"));
        }
        [_, Value::Int(attached)] => {
            return Err(format!("{attached} attached database(s) survived the run"));
        }
        other => return Err(format!("the session check answered {other:?}")),
    }
    held.exec_raw(db, "PRAGMA query_only = OFF")
        .map_err(|e| format!("resetting query_only failed: {e}"))
}

impl DriverPool for sqlx::SqlitePool {
    fn acquire<'a>(&'a self, db: &'a Database) -> BoxFuture<'a, Result<Conn, DbError>> {
        sqlx_common::acquire(self, db, |conn| SqliteConn { held: None, conn })
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
        Box::pin(async move { self.held(db).await?.exec_raw(db, sql) })
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
        Box::pin(async move { self.held(db).await?.open(db, stmt, values) })
    }

    fn execute<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        values: &'a [&'a Value],
    ) -> BoxFuture<'a, Result<u64, DbError>> {
        Box::pin(async move { self.held(db).await?.execute(db, stmt, values) })
    }

    fn start_session<'a>(
        &'a mut self,
        db: &'a Database,
        read_only: bool,
        _statement_timeout: Duration,
    ) -> BoxFuture<'a, Result<ServerSession, DbError>> {
        Box::pin(async move {
            start_session(self.held(db).await?, db, read_only).map(ServerSession::Sqlite)
        })
    }

    fn reset_session<'a>(
        &'a mut self,
        db: &'a Database,
        _session: Option<&'a ServerSession>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let held = self.held(db).await.map_err(|e| e.to_string())?;
            reset_session(held, db)
        })
    }

    fn close_on_drop(&mut self) {
        self.conn.close_on_drop()
    }

    fn discard(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        self.held = None;
        sqlx_common::discard(self.conn)
    }

    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        self.held = None;
        sqlx_common::release(self.conn)
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
