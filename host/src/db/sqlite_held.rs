//! A pooled SQLite connection held away from sqlx's worker thread for as long as flowhost has
//! it, so that every statement is prepared, bound and stepped on the calling thread.
//!
//! Why: sqlx runs each SQLite connection on a thread of its own and hands every statement and
//! every row across threads. A flow's query loop paid a thread round trip per query, and a
//! 10,000-row read spent a third of its time switching threads (the worker wakes the reader
//! once per row) and more building each row twice. Holding the connection's lock (sqlx's
//! `lock_handle`) costs one hand-over per lend; each row is then decoded straight from SQLite's
//! column accessors into the flow's values.
//!
//! While a connection is held nothing may be sent to sqlx for it: the worker waits for the lock
//! and would never answer. So every operation on a lent connection goes through here, and the
//! lock is let go (by dropping [`Held`]) before the connection goes back to its pool.
//!
//! Waiting happens on the calling thread too. SQLite's busy handler is replaced by one that
//! sleeps in steps and gives up when the session's [`Watchdog`] says so (deadline, a dropped
//! run, SIGINT/SIGTERM) or the database's busy limit passes; on a multi-thread runtime
//! (`serve`) it sleeps off the runtime's worker, so runs waiting for SQLite's write lock never
//! stop the run that holds it.

use std::collections::HashMap;
use std::ffi::{CString, c_int, c_void};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;
use sqlx::sqlite::LockedSqliteHandle;

use super::sqlite::Declared;
use super::sqlite_session::{PROGRESS_OPS, Watchdog};
use super::sqlite_step::{RawStatement, last_error};
use super::{Database, DbError, RowStream, Statement};
use crate::bindings::types::{Column, Value};
use crate::sql::StatementKind;

/// Most statements one lend keeps prepared; a flow that builds its SQL text per row would
/// otherwise grow the map without bound.
const KEPT_STATEMENTS: usize = 64;

/// A connection's SQLite handle, locked away from sqlx's worker, and what flowhost installed
/// on it. Dropping it finalizes the statements, puts back SQLite's own busy timeout, removes
/// the progress handler and lets go of the lock, in that order.
pub(super) struct Held {
    /// Statements kept prepared for this lend, by SQL text. One in use is taken out.
    statements: HashMap<Arc<str>, RawStatement>,
    /// What the busy handler reads; boxed so its address stays put while SQLite has it.
    busy: Box<BusyWait>,
    /// The session's watchdog while its progress handler is installed.
    watchdog: Option<Arc<Watchdog>>,
    raw: NonNull<ffi::sqlite3>,
    /// Kept for its lock; last, so it is dropped last.
    _lock: LockedSqliteHandle<'static>,
}

// SAFETY: the handle and its statements are used through `&mut Held` only, by one thread at a
// time, with sqlx's worker locked out; SQLite lets a connection move between threads that way
// (sqlx itself hands it between its worker and `lock_handle` callers).
unsafe impl Send for Held {}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

/// How long a statement waits for a lock another connection holds.
struct BusyWait {
    limit: Duration,
    watchdog: Option<Arc<Watchdog>>,
}

impl Held {
    /// Takes `conn`'s handle from sqlx's worker until the returned `Held` is dropped.
    pub(super) async fn lock(conn: &mut SqliteConnection, db: &Database) -> Result<Held, DbError> {
        // sqlx's `lock_handle` queues a command for the worker and then waits for the lock,
        // both at once. The worker's command queue is bounded and a handle taken before the
        // worker read that command leaves it queued; a ping first empties the queue, so the
        // command always fits and the wait can never hold the lock the worker needs.
        sqlx::Connection::ping(&mut *conn)
            .await
            .map_err(|e| db.error(e))?;
        let mut handle = conn.lock_handle().await.map_err(|e| db.error(e))?;
        let raw = handle.as_raw_handle();
        // SAFETY: the guard inside points into the worker's shared state, an `Arc` the worker
        // thread itself keeps alive, not into `conn`; and `SqliteConn` drops its `Held` before
        // its connection, so the lock is always let go while the connection exists.
        let handle: LockedSqliteHandle<'static> = unsafe { std::mem::transmute(handle) };
        let limit = db.statement_timeout().unwrap_or(Duration::from_secs(30));
        let mut held = Held {
            statements: HashMap::new(),
            busy: Box::new(BusyWait {
                limit,
                watchdog: None,
            }),
            watchdog: None,
            raw,
            _lock: handle,
        };
        let arg = &*held.busy as *const BusyWait as *mut c_void;
        // SAFETY: the handle is held; `busy` lives (boxed) until `Drop` puts back the timeout.
        unsafe {
            ffi::sqlite3_busy_handler(held.raw(), Some(wait_busy), arg);
        }
        held.statements.reserve(8);
        Ok(held)
    }

    fn raw(&self) -> *mut ffi::sqlite3 {
        self.raw.as_ptr()
    }

    /// Stops this connection's statements when `watchdog` says so, from SQLite's own loop
    /// (every [`PROGRESS_OPS`] virtual-machine steps) and its waits for locks.
    pub(super) fn watch(&mut self, watchdog: Arc<Watchdog>) {
        let arg = Arc::as_ptr(&watchdog) as *mut c_void;
        // SAFETY: the handle is held; the watchdog is kept in `self` for as long as the
        // handler may read it (`unwatch` or `Drop` removes the handler first).
        unsafe {
            ffi::sqlite3_progress_handler(self.raw(), PROGRESS_OPS, Some(stop_if_expired), arg);
        }
        self.busy.watchdog = Some(watchdog.clone());
        self.watchdog = Some(watchdog);
    }

    /// Removes the watchdog: the host's own statements must finish.
    pub(super) fn unwatch(&mut self) {
        // SAFETY: the handle is held.
        unsafe {
            ffi::sqlite3_progress_handler(self.raw(), 0, None, std::ptr::null_mut());
        }
        self.busy.watchdog = None;
        self.watchdog = None;
    }

    /// Runs trusted SQL that may hold several statements and returns nothing.
    pub(super) fn exec_raw(&mut self, db: &Database, sql: &str) -> Result<(), DbError> {
        // Anything run this way may change the schema under the statements kept.
        self.forget_statements();
        let sql = CString::new(sql)
            .map_err(|_| DbError::invalid(db.name(), "the SQL text holds a NUL character"))?;
        // SAFETY: the handle is held and `sql` is NUL-terminated; no callback, no message out.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.raw(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            // SAFETY: the handle is held; the error is the exec's.
            Err(unsafe { last_error(self.raw(), db) })
        }
    }

    /// Runs one statement to its end and returns the rows it changed.
    pub(super) fn execute(
        &mut self,
        db: &Database,
        stmt: &Statement,
        values: &[&Value],
    ) -> Result<u64, DbError> {
        let Some(statement) = self.take_statement(db, stmt)? else {
            return Ok(0);
        };
        let raw = self.raw();
        // SAFETY: the handle is held and the statement is this connection's.
        let result = unsafe {
            statement.bind(raw, db, values).and_then(|()| {
                while statement.step(raw, db)? {}
                // SQLite counts the last INSERT, UPDATE or DELETE on the connection: a
                // statement that writes nothing changed nothing (as sqlx reports it).
                Ok(if statement.is_read_only() {
                    0
                } else {
                    ffi::sqlite3_changes64(raw) as u64
                })
            })
        };
        self.give_back(&stmt.sql, keeps(stmt), statement);
        result
    }

    /// Starts one statement; its rows are stepped and decoded as the stream is read.
    pub(super) fn open<'c>(
        &'c mut self,
        db: &'c Database,
        stmt: &Statement,
        values: &[&Value],
    ) -> Result<(Vec<Column>, RowStream<'c>), DbError> {
        let Some(statement) = self.take_statement(db, stmt)? else {
            // Only whitespace or comments: no statement, no rows (as sqlx answers it).
            return Ok((Vec::new(), Box::pin(futures_util::stream::empty())));
        };
        let columns = statement.columns();
        let raw = self.raw();
        // SAFETY: the handle is held and the statement is this connection's.
        if let Err(e) = unsafe { statement.bind(raw, db, values) } {
            self.give_back(&stmt.sql, keeps(stmt), statement);
            return Err(e);
        }
        let rows = Rows {
            kinds: columns.iter().map(|c| Declared::of(&c.type_name)).collect(),
            statement: Some(statement),
            held: self,
            db,
            sql: stmt.sql.clone(),
            keep: keeps(stmt),
            done: false,
        };
        let stream = futures_util::stream::try_unfold(rows, |mut rows| async move {
            // Stepping never waits, so a long result would keep the thread from every other
            // task until its end: give way when tokio's cooperative budget says so.
            tokio::task::consume_budget().await;
            Ok(rows.next()?.map(|row| (row, rows)))
        });
        Ok((columns, Box::pin(stream)))
    }

    /// The first row of trusted SQL (the host's own checks).
    pub(super) fn first_row(&mut self, db: &Database, sql: &str) -> Result<Vec<Value>, DbError> {
        // SAFETY: the handle is held; the statement is finalized below.
        let statement = unsafe { RawStatement::prepare(self.raw(), db, sql, false)? }
            .ok_or_else(|| DbError::invalid(db.name(), "empty statement"))?;
        let kinds = vec![Declared::Plain; statement.columns().len()];
        // SAFETY: as above.
        let row = unsafe {
            match statement.step(self.raw(), db) {
                Ok(true) => statement.row(db, &kinds),
                Ok(false) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        statement.finalize();
        row
    }

    /// The statement for `stmt`: the one kept for this lend, or a new one, kept afterwards if
    /// `stmt` only reads or writes rows. Anything else may change the schema, so every kept
    /// statement is forgotten first.
    fn take_statement(
        &mut self,
        db: &Database,
        stmt: &Statement,
    ) -> Result<Option<RawStatement>, DbError> {
        if !keeps(stmt) {
            self.forget_statements();
        } else if let Some(statement) = self.statements.remove(&stmt.sql) {
            return Ok(Some(statement));
        }
        // SAFETY: the handle is held.
        unsafe { RawStatement::prepare(self.raw(), db, &stmt.sql, keeps(stmt)) }
    }

    /// Ends `statement`'s use: reset and kept for the next run of the same SQL, or finalized.
    fn give_back(&mut self, sql: &Arc<str>, keep: bool, statement: RawStatement) {
        if keep && self.statements.len() < KEPT_STATEMENTS {
            statement.reset();
            if let Some(other) = self.statements.insert(sql.clone(), statement) {
                other.finalize();
            }
        } else {
            statement.finalize();
        }
    }

    fn forget_statements(&mut self) {
        for (_, statement) in self.statements.drain() {
            statement.finalize();
        }
    }
}

fn keeps(stmt: &Statement) -> bool {
    matches!(stmt.kind, StatementKind::Read | StatementKind::Write)
}

impl Drop for Held {
    fn drop(&mut self) {
        self.forget_statements();
        // SAFETY: the handle is still held (it is dropped after this body). SQLite's own busy
        // timeout replaces the handler; the limit fits: it is a statement timeout.
        unsafe {
            let ms = c_int::try_from(self.busy.limit.as_millis()).unwrap_or(c_int::MAX);
            ffi::sqlite3_busy_timeout(self.raw(), ms);
        }
        self.unwatch();
    }
}

/// A result being read: the statement, taken out of the connection's kept ones, goes back
/// (reset, which ends its read) when the stream is dropped, read to its end or not.
struct Rows<'c> {
    held: &'c mut Held,
    db: &'c Database,
    sql: Arc<str>,
    keep: bool,
    statement: Option<RawStatement>,
    kinds: Vec<Declared>,
    /// SQLite said the result ended, or failed: stepping again would run the statement again.
    done: bool,
}

impl Rows<'_> {
    fn next(&mut self) -> Result<Option<Vec<Value>>, DbError> {
        let Some(statement) = self.statement.as_ref().filter(|_| !self.done) else {
            return Ok(None);
        };
        let raw = self.held.raw();
        // SAFETY: the handle is held by `held`, which this borrows, and the statement is
        // prepared and bound.
        unsafe {
            match statement.step(raw, self.db) {
                Ok(true) => statement.row(self.db, &self.kinds).map(Some),
                Ok(false) => {
                    self.done = true;
                    Ok(None)
                }
                Err(e) => {
                    self.done = true;
                    Err(e)
                }
            }
        }
    }
}

impl Drop for Rows<'_> {
    fn drop(&mut self) {
        if let Some(statement) = self.statement.take() {
            self.held.give_back(&self.sql, self.keep, statement);
        }
    }
}

/// SQLite's progress handler: non-zero stops the statement with SQLITE_INTERRUPT.
extern "C" fn stop_if_expired(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the watchdog `Held::watch` keeps alive while this handler is installed.
    let watchdog = unsafe { &*(arg as *const Watchdog) };
    c_int::from(watchdog.expired())
}

/// SQLite's busy handler: non-zero tries the lock again, zero gives up with SQLITE_BUSY.
extern "C" fn wait_busy(arg: *mut c_void, count: c_int) -> c_int {
    // SAFETY: `arg` is the `BusyWait` boxed in `Held`, which replaces this handler before the
    // box is freed.
    let wait = unsafe { &*(arg as *const BusyWait) };
    if wait.watchdog.as_ref().is_some_and(|w| w.expired()) {
        return 0;
    }
    let (pause, waited) = busy_pause(count.max(0) as usize);
    if waited >= wait.limit {
        return 0;
    }
    let pause = pause.min(wait.limit - waited);
    // Off the runtime's worker where there are others to run meanwhile (`serve`): the run
    // holding the lock may be waiting for one. `flowhost run` has one thread and one run.
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| std::thread::sleep(pause));
    } else {
        std::thread::sleep(pause);
    }
    1
}

/// The pause before the `count`th retry of a lock, and the time waited before it: SQLite's
/// own schedule (1 ms rising to 100 ms).
fn busy_pause(count: usize) -> (Duration, Duration) {
    const PAUSES_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    let pause = |i: usize| PAUSES_MS[i.min(PAUSES_MS.len() - 1)];
    let waited: u64 = (0..count).map(pause).sum();
    (
        Duration::from_millis(pause(count)),
        Duration::from_millis(waited),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_waits_follow_sqlite_s_schedule_and_keep_count() {
        assert_eq!(busy_pause(0), (Duration::from_millis(1), Duration::ZERO));
        assert_eq!(
            busy_pause(3),
            (Duration::from_millis(10), Duration::from_millis(8))
        );
        // Past the table every pause is 100 ms, and the total keeps growing.
        assert_eq!(busy_pause(12).0, Duration::from_millis(100));
        assert_eq!(
            busy_pause(13).1,
            busy_pause(12).1 + Duration::from_millis(100)
        );
    }
}
