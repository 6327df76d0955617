//! A guest's hold on one pooled connection: grant checks, transactions, cursors, and giving the
//! connection back clean however the run ends.
//!
//! A session takes its connection on first use and keeps it until [`Session::finish`], so a
//! flow's statements on one `connection` share a session. Starting one sets what the run's
//! limits and grant need on the server (statement timeout, read-only mode: PostgreSQL's
//! `default_transaction_read_only`, SQLite's `query_only`), so every statement outside an
//! explicit transaction is a transaction of its own and one failure never changes the next
//! statement's outcome. Finishing one rolls back, resets every piece of session state a flow
//! could have changed and checks the reset took; a connection that fails the check, or whose
//! statement was interrupted, is ended on the server and closed instead of pooled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::{
    Backend, Conn, Database, DbError, RowSet, ServerSession, Statement, ValueRef, bind_order,
};
use crate::bindings::types::{Params, Value};
use crate::manifest::Access;
use crate::sql::TransactionKind;

/// A session shared between a guest `connection`, its `transaction` and its open `cursor`.
pub type SharedSession = Arc<Mutex<Session>>;

// The streaming read lives in a file of its own; as a child module it reaches the session's
// private steps (route check, prepare, function check) that every statement takes.
#[path = "session_cursor.rs"]
mod cursor;
pub use cursor::CursorStream;
// Batches too: their framing (transaction or savepoint, bulk path, row-by-row retry) is the
// session's.
#[path = "session_batch.rs"]
mod batch;

/// What one run's sessions may consume, from the manifest's `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Most rows one `query` returns.
    pub max_rows: u64,
    /// Most bytes of values one `query`, or one cursor fetch, returns.
    pub max_result_bytes: u64,
    /// Most bytes of values one parameter set binds.
    pub max_param_bytes: u64,
    /// Per-statement limit the server enforces; `None`: the time left until `deadline`.
    pub statement_timeout: Option<Duration>,
    /// When the run's time is up; no statement may run on the server past it.
    pub deadline: Instant,
}

impl SessionLimits {
    /// Generous limits for host-side callers and tests: no deadline to speak of.
    pub fn unlimited() -> SessionLimits {
        SessionLimits {
            max_rows: u64::MAX,
            max_result_bytes: u64::MAX,
            max_param_bytes: u64::MAX,
            statement_timeout: None,
            deadline: Instant::now() + Duration::from_secs(365 * 24 * 3600),
        }
    }
}

#[derive(Debug)]
pub struct Session {
    db: Arc<Database>,
    access: Access,
    limits: SessionLimits,
    conn: Option<Conn>,
    /// What the server said about this session when it started (PostgreSQL).
    server: Option<ServerSession>,
    /// The id of the open guest transaction, if any; ids never repeat within a session, so a
    /// finished transaction's handle cannot reach a newer one.
    tx: Option<u64>,
    next_tx: u64,
    /// An operation was under way; if it never finished (the run was cancelled mid-call) the
    /// connection's state is unknown and it is closed rather than pooled.
    busy: bool,
    /// The guest transaction was lost with a connection ended mid-statement; the next call
    /// through it hears why.
    lost_tx: bool,
    /// The last read-only statement ran user-defined code (see [`Session::check_functions`]).
    reassert_read_only: bool,
    /// A connection being set up ahead of the first statement (see [`Session::prestart`]).
    warm: Option<SessionStart>,
    /// The savepoint of the last batch in the open transaction, still to be released. It is
    /// released before the transaction's next statement, and never when a commit or rollback
    /// comes next, which ends it anyway: a batch followed by a commit, the usual shape,
    /// costs one round trip less.
    unreleased: Option<String>,
    /// The open guest transaction's `BEGIN`, not yet sent: it goes with the transaction's
    /// first statement, and a batch that comes first needs no savepoint of its own (undoing
    /// it is undoing the transaction, which holds nothing else yet). A transaction that ends
    /// without a statement costs no round trip at all. PostgreSQL takes a transaction's
    /// snapshot at its first statement anyway.
    unbegun: Option<&'static str>,
}

/// A guest session's connection being set up on a task of its own: what
/// [`Session::prestart`] waits for at the flow's first statement.
pub type SessionStart = tokio::task::JoinHandle<Result<(Conn, ServerSession), DbError>>;

/// Sets up a guest session (see [`Conn::start_session`]) on `conn`, or on a connection taken
/// from the pool, on a task of its own. A read-only PostgreSQL session also learns what the
/// common operators are (see [`Database::learn_common_operators`]), so that a flow's first
/// `WHERE a = $1` does not wait for that catalog read.
pub fn start_session(
    db: Arc<Database>,
    conn: Option<Conn>,
    read_only: bool,
    statement_timeout: Duration,
) -> SessionStart {
    tokio::spawn(async move {
        let mut conn = match conn {
            Some(conn) => conn,
            None => db.acquire().await?,
        };
        match conn.start_session(&db, read_only, statement_timeout).await {
            Ok(server) => {
                if read_only {
                    db.learn_common_operators(&mut conn).await;
                }
                Ok((conn, server))
            }
            Err(e) => {
                conn.discard().await;
                Err(e)
            }
        }
    })
}

/// Which guest handle a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Connection,
    Transaction(u64),
}

impl Session {
    pub fn new(db: Arc<Database>, access: Access, limits: SessionLimits) -> SharedSession {
        Arc::new(Mutex::new(Session {
            db,
            access,
            limits,
            conn: None,
            server: None,
            tx: None,
            next_tx: 1,
            busy: false,
            lost_tx: false,
            reassert_read_only: false,
            warm: None,
            unreleased: None,
            unbegun: None,
        }))
    }

    /// Starts taking and setting up this session's connection on a task of its own, so the
    /// first statement finds it ready, or adopts `started`, a set-up already under way.
    /// `flowhost run` does this for every grant as its run starts, with the set-up
    /// `Host::prepare` began on the connection it checked the database with: the session's
    /// round trip then overlaps the other database's checks, instantiation and the flow's
    /// work elsewhere. A failed start is retried, and reported, by the first statement.
    pub fn prestart(&mut self, started: Option<SessionStart>) {
        if self.conn.is_some() || self.warm.is_some() {
            return;
        }
        self.warm = Some(started.unwrap_or_else(|| {
            start_session(
                self.db.clone(),
                None,
                self.access == Access::ReadOnly,
                self.server_statement_timeout(),
            )
        }));
    }

    /// Takes the connection [`Session::prestart`] set up, once it is ready.
    async fn adopt_warm(&mut self) {
        let Some(warm) = self.warm.take() else {
            return;
        };
        if let Ok(Ok((conn, server))) = warm.await {
            self.conn = Some(conn);
            self.server = Some(server);
        }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn access(&self) -> Access {
        self.access
    }

    fn name(&self) -> &str {
        self.db.name()
    }

    /// Whether guest transaction `id` is the one open now.
    pub fn in_transaction(&self, id: u64) -> bool {
        self.tx == Some(id)
    }

    fn check_route(&mut self, route: Route) -> Result<(), DbError> {
        if std::mem::take(&mut self.lost_tx) && matches!(route, Route::Transaction(_)) {
            return Err(lost_transaction(self.name()));
        }
        match (route, self.tx) {
            (Route::Connection, None) => Ok(()),
            (Route::Connection, Some(_)) => Err(DbError::invalid(
                self.name(),
                "a transaction is open on this connection; run statements through it, or \
                 commit/roll it back first",
            )),
            (Route::Transaction(id), Some(open)) if id == open => Ok(()),
            (Route::Transaction(_), _) => Err(DbError::invalid(
                self.name(),
                "this transaction has already been committed or rolled back",
            )),
        }
    }

    /// The session's connection, taken from the pool on first use.
    ///
    /// If the previous operation never finished (a cursor dropped mid-result, a cancelled
    /// call), the connection may still be busy on the server: it is ended there and replaced.
    /// A transaction open on it is lost with it, and the caller hears so.
    async fn conn(&mut self) -> Result<&mut Conn, DbError> {
        if self.conn.as_ref().is_some_and(|c| !c.is_usable()) {
            self.busy = true;
        }
        if self.busy {
            self.busy = false;
            if let Some(conn) = self.conn.take() {
                self.end_on_server(conn).await;
                if self.tx.take().is_some() {
                    return Err(lost_transaction(self.name()));
                }
            }
        }
        if self.tx.is_none() {
            self.unreleased = None;
            self.unbegun = None;
        }
        if let (Some(begin), Some(conn)) = (self.unbegun.take(), self.conn.as_mut()) {
            conn.run_raw(&self.db, begin).await?;
        }
        if let (Some(release), Some(conn)) = (self.unreleased.take(), self.conn.as_mut()) {
            conn.run_raw(&self.db, &release).await?;
        }
        // A pooled connection the server ended while it sat idle (a restart) fails as the
        // session is set up, before the flow ran anything on it: it is thrown away and another
        // taken, as many times as the pool may hold connections, so a restarted database costs
        // no run an error.
        if self.conn.is_none() {
            self.adopt_warm().await;
        }
        let mut stale_left = self.db.pool_status().max;
        while self.conn.is_none() {
            let mut conn = self.db.acquire().await?;
            let timeout = self.server_statement_timeout();
            let read_only = self.access == Access::ReadOnly;
            match conn.start_session(&self.db, read_only, timeout).await {
                Ok(server) => {
                    self.server = Some(server);
                    self.conn = Some(conn);
                }
                Err(e) => {
                    // Half set up (a read-only default, a timeout): never pooled again.
                    conn.discard().await;
                    if !matches!(e, DbError::Connection { .. }) || stale_left == 0 {
                        return Err(e);
                    }
                    stale_left -= 1;
                    tracing::debug!(database = %self.name(), "a pooled connection was found ended by the server; taking another: {e}");
                }
            }
        }
        Ok(self.conn.as_mut().expect("connection just set"))
    }

    /// Called when a cursor is dropped: if it stopped mid-result, its statement may still be
    /// running on the server, so the connection is ended there now rather than at its next use
    /// (which may be never, or minutes away). A transaction open on it is lost, and the next
    /// call through it says so.
    pub async fn settle(&mut self) {
        if !self.busy {
            return;
        }
        self.busy = false;
        if let Some(conn) = self.conn.take() {
            self.end_on_server(conn).await;
            self.lost_tx = self.tx.take().is_some();
        }
    }

    /// Marks a statement as under way (so an interruption is noticed) and gives it its time:
    /// PostgreSQL's `statement_timeout` is set per session, SQLite's watchdog per statement.
    fn start_statement(&mut self) {
        self.busy = true;
        if let Some(watchdog) = self.server.as_ref().and_then(ServerSession::watchdog) {
            watchdog.arm(Instant::now() + self.server_statement_timeout());
        }
    }

    /// What the server enforces per statement: the manifest's and the database's statement
    /// timeouts, and never past the run's deadline.
    fn server_statement_timeout(&self) -> Duration {
        let left = self
            .limits
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        [self.limits.statement_timeout, self.db.statement_timeout()]
            .into_iter()
            .flatten()
            .fold(left, Duration::min)
    }

    /// Ends a connection whose state is unknown: its backend is terminated on the server (so
    /// no statement keeps running and no lock stays held), then it is closed.
    async fn end_on_server(&mut self, conn: Conn) {
        if let Some(server) = self.server.take() {
            self.db.end_session(&server).await;
        }
        conn.discard().await;
    }

    /// Refuses a read-only statement that calls a function with side effects. The names come
    /// from the parse tree; the database says what each one is.
    ///
    /// User-defined code may have turned the session's read-only default off (`set_config` in
    /// a STABLE function's body), so after a statement that ran some, the next one sets it
    /// again first.
    async fn check_functions(&mut self, stmt: &Statement) -> Result<(), DbError> {
        if !self.reassert_read_only && stmt.functions.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        let reassert = std::mem::take(&mut self.reassert_read_only);
        let conn = self.conn().await?;
        if reassert {
            conn.run_raw(&db, "SET default_transaction_read_only = on")
                .await?;
        }
        self.reassert_read_only = conn.check_functions(&db, &stmt.functions).await?;
        Ok(())
    }

    /// The statement for `sql` under this session's grant, and the values to bind.
    fn prepare<'p>(
        &self,
        sql: &str,
        params: &'p Params,
    ) -> Result<(Arc<Statement>, Vec<&'p Value>), DbError> {
        let stmt = self.db.guest_statement(sql, self.access)?;
        let values = bind_order(&stmt, params, self.name())?;
        self.check_param_bytes(&values)?;
        Ok((stmt, values))
    }

    fn check_param_bytes(&self, values: &[&Value]) -> Result<(), DbError> {
        self.check_set_bytes(values.iter().map(|v| value_bytes(v)).sum())
    }

    /// Refuses a parameter set of `bytes` (as [`ValueRef::counted_bytes`] counts them) past
    /// the manifest's `max-param-mb`.
    fn check_set_bytes(&self, bytes: u64) -> Result<(), DbError> {
        if bytes > self.limits.max_param_bytes {
            return Err(DbError::invalid(
                self.name(),
                format!(
                    "the parameters hold {} MiB, more than the {} MiB allowed per parameter set \
                     (manifest [limits] max-param-mb)",
                    bytes >> 20,
                    self.limits.max_param_bytes >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Runs `sql` as one statement and returns its rows.
    pub async fn query(
        &mut self,
        route: Route,
        sql: &str,
        params: &Params,
    ) -> Result<RowSet, DbError> {
        self.check_route(route)?;
        let (stmt, values) = self.prepare(sql, params)?;
        self.check_functions(&stmt).await?;
        let (db, limits) = (self.db.clone(), self.limits);
        self.conn().await?;
        self.start_statement();
        let conn = self.conn.as_mut().expect("connected above");
        let result = conn.query(&db, &stmt, &values, &limits).await;
        self.busy = false;
        result
    }

    /// Runs `sql` as one statement and returns the rows it affected.
    pub async fn execute(
        &mut self,
        route: Route,
        sql: &str,
        params: &Params,
    ) -> Result<u64, DbError> {
        self.check_route(route)?;
        let (stmt, values) = self.prepare(sql, params)?;
        self.check_functions(&stmt).await?;
        let db = self.db.clone();
        self.conn().await?;
        self.start_statement();
        let conn = self.conn.as_mut().expect("connected above");
        let result = conn.execute(&db, &stmt, &values).await;
        self.busy = false;
        result
    }

    /// How a guest transaction starts under this grant. On PostgreSQL the session default is
    /// already read-only for a read-only grant; saying it again costs nothing and does not
    /// depend on the default surviving whatever the flow's functions did.
    fn begin_sql(&self) -> &'static str {
        let kind = match self.access {
            Access::ReadOnly => TransactionKind::ReadOnly,
            Access::ReadWrite => TransactionKind::ReadWrite,
        };
        self.db.backend().begin_sql(kind)
    }

    /// Starts a guest transaction and returns its id. The connection is taken now (so a
    /// database that cannot be reached says so here); `BEGIN` goes with the transaction's
    /// first statement (see [`Session::unbegun`]).
    pub async fn begin(&mut self) -> Result<u64, DbError> {
        self.check_route(Route::Connection)?;
        self.conn().await?;
        let id = self.next_tx;
        self.next_tx += 1;
        self.tx = Some(id);
        self.unbegun = Some(self.begin_sql());
        Ok(id)
    }

    /// Ends guest transaction `id`, keeping (`commit`) or discarding its work.
    pub async fn end(&mut self, id: u64, commit: bool) -> Result<(), DbError> {
        self.check_route(Route::Transaction(id))?;
        let backend = self.db.backend();
        let sql = if commit {
            backend.commit_sql()
        } else {
            backend.rollback_sql()
        };
        let db = self.db.clone();
        // Ending the transaction releases every savepoint in it.
        self.unreleased = None;
        if self.unbegun.take().is_some() {
            // Nothing of it reached the server.
            self.tx = None;
            return Ok(());
        }
        self.conn().await?;
        // Whatever happens below, this transaction is over: a failed COMMIT has rolled back.
        self.tx = None;
        self.start_statement();
        let conn = self.conn.as_mut().expect("connected above");
        let result = conn.run_raw(&db, sql).await;
        if result.is_err() {
            // PostgreSQL ends the transaction on a failed COMMIT; SQLite may not. Make sure.
            let _ = conn.run_raw(&db, backend.rollback_sql()).await;
        }
        self.busy = false;
        result
    }

    /// Rolls back whatever is open, resets every piece of session state and returns the
    /// connection to the pool. A connection that was interrupted mid-statement, or whose reset
    /// cannot be verified, is ended on the server and closed instead.
    pub async fn finish(&mut self) {
        self.adopt_warm().await;
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unbegun = self.unbegun.take();
        let open = self.tx.take().is_some() && unbegun.is_none();
        let interrupted = std::mem::take(&mut self.busy);
        if let Some(watchdog) = self.server.as_ref().and_then(ServerSession::watchdog) {
            watchdog.disarm();
        }
        let reset = match interrupted {
            true => Err("a statement was interrupted".to_owned()),
            false => {
                conn.reset_session(&self.db, open, self.server.as_ref())
                    .await
            }
        };
        if let Err(why) = reset {
            tracing::warn!(database = %self.db.name(), reason = %why, "ending a connection whose session state is not known to be clean instead of returning it to the pool");
            self.end_on_server(conn).await;
        }
        self.server = None;
    }
}

impl Session {
    /// No transaction open and no statement under way: the session holds no row locks.
    pub fn is_idle(&self) -> bool {
        self.tx.is_none() && !self.busy
    }

    /// Ends the session by closing its connection, for a process about to exit: closing ends
    /// the session on the server, rolling back whatever is open, so the reset's round trip
    /// that [`Session::finish`] pays to reuse the connection would buy nothing. The connection
    /// is closed with its pool, after the run is recorded (see [`Database::close_later`]).
    /// An interrupted session still goes through `finish` (its statement is ended on the
    /// server), and so does SQLite's, whose reset costs no round trip.
    pub async fn close(&mut self) {
        self.adopt_warm().await;
        if self.busy || self.db.backend() == Backend::Sqlite {
            return self.finish().await;
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        if let Some(watchdog) = self.server.as_ref().and_then(ServerSession::watchdog) {
            watchdog.disarm();
        }
        self.tx = None;
        self.server = None;
        self.db.close_later(conn);
    }
}

fn with_set_index(err: DbError, index: usize) -> DbError {
    match err {
        DbError::Query {
            database,
            code,
            message,
            constraint,
            detail,
        } => DbError::Query {
            database,
            code,
            message: format!("parameter set {index}: {message}"),
            constraint,
            detail,
        },
        DbError::InvalidRequest { database, message } => DbError::InvalidRequest {
            database,
            message: format!("parameter set {index}: {message}"),
        },
        DbError::Conversion { database, message } => DbError::Conversion {
            database,
            message: format!("parameter set {index}: {message}"),
        },
        other => other,
    }
}

fn lost_transaction(database: &str) -> DbError {
    DbError::invalid(
        database,
        "the open transaction was rolled back: a cursor was closed before its end (or a call \
         was interrupted), which ends the connection it ran on; begin a new transaction",
    )
}

/// Approximate bytes a value takes in memory: what the result-size limits count.
pub fn value_bytes(value: &Value) -> u64 {
    ValueRef::from(value).counted_bytes()
}

pub fn row_bytes(row: &[Value]) -> u64 {
    row.iter().map(value_bytes).sum()
}

pub(super) fn too_large(database: &str, max_bytes: u64, what: &str) -> DbError {
    DbError::invalid(
        database,
        format!(
            "{what} of the result holds more than {} MiB (manifest [limits] max-result-mb); \
             select fewer or narrower columns, or read with a cursor",
            max_bytes >> 20
        ),
    )
}
