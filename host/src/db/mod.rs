//! Database access: one pool per named database per process, and the statement path every
//! backend shares (classify → rewrite placeholders → bind → run → decode).
//!
//! Backend modules ([`postgres`], [`sqlite`]) only do what differs: connecting, encoding
//! parameters, decoding values, and their transaction dialect.

mod driver;
mod error;
mod host_sql;
pub mod numeric;
mod packed_rows;
pub mod postgres;
mod postgres_arrays;
mod postgres_packed;
mod postgres_session;
mod reach;
mod session;
pub mod sqlite;
mod sqlite_held;
mod sqlite_session;
mod sqlite_step;
pub mod sqlserver;
mod sqlserver_bulk;
mod sqlserver_config;
mod sqlserver_session;
pub mod sqlserver_types;
mod sqlx_common;
mod statement;
pub mod temporal;
mod value_ref;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::OnceCell;

pub use driver::{DriverConn, DriverPool};
pub use error::{DbError, Redactor};
pub use host_sql::{FromValue, HostRow, text_value, timestamp_value};
pub use packed_rows::{PackedRows, PackedStream};
pub use session::{
    CursorStream, Route, Session, SessionLimits, SessionStart, SharedSession, start_session,
};
pub use statement::{Statement, bind_order};
pub use value_ref::{BatchRows, ValueRef};

use crate::bindings::types::{Column, Value};
use crate::config::{Config, DatabaseConfig, DatabaseTarget};
use crate::manifest::Access;

pub use crate::Backend;

/// A backend's pool. Cloning is cheap (the pools are reference counted).
#[derive(Debug, Clone)]
pub struct Pool(Arc<dyn DriverPool>);

impl Pool {
    fn new(driver: impl DriverPool + 'static) -> Pool {
        Pool(Arc::new(driver))
    }

    /// Closes every connection and refuses new ones.
    pub async fn close(&self) {
        self.0.close().await
    }
}

/// A connection taken from a [`Pool`]; dropping it returns it to the pool as it is, so callers
/// that changed its state use [`Session`] (which cleans up) instead.
#[derive(Debug)]
pub struct Conn(Box<dyn DriverConn>);

impl Conn {
    fn new(driver: impl DriverConn + 'static) -> Conn {
        Conn(Box::new(driver))
    }

    /// Gives the connection back to its pool and waits until it is there, so that an
    /// `acquire` right after finds it instead of dialling another.
    pub async fn release(self) {
        self.0.release().await
    }
}

/// One named database: its pool and what the host may say about it.
#[derive(Debug)]
pub struct Database {
    name: String,
    backend: Backend,
    pool: Pool,
    /// Safe description of the target (`postgresql at host:5432/db`), never the URL.
    target: String,
    redactor: Redactor,
    max_connections: u32,
    connect_timeout: Duration,
    /// Where a network database listens, to tell "nothing there" at once (see [`reach`]).
    endpoint: Option<reach::Endpoint>,
    /// The setting its connection string came from, for errors that say where to fix a login.
    source: Option<String>,
    /// The configured DATABASE_TIMEOUT / statement timeout, if any.
    statement_timeout: Option<Duration>,
    /// Guest statements already checked, by grant and text: flows repeat the same few
    /// statements, and parsing is the costly part of a check.
    statements: StatementCache,
    /// What this database's `pg_proc` says about function names read-only statements call.
    functions: postgres_session::FunctionVerdicts,
    /// REFUSE_PRIVILEGED_ROLE: a privileged login role is an error, not a warning.
    refuse_privileged: bool,
    /// The privileged-role warning was given (once per pool, not once per run).
    warned_privileged: std::sync::atomic::AtomicBool,
    /// This pool's metric handles (waits, timeouts, statement times).
    metrics: crate::metrics::PoolMetrics,
    /// Connections of sessions ended in a process about to exit, closed with the pool (see
    /// [`Database::close_later`]).
    closing: std::sync::Mutex<Vec<Conn>>,
}

/// What the host holds of a guest session on its database: how to stop a statement it gave
/// up on, and what the reset must restore.
#[derive(Debug)]
pub enum ServerSession {
    Postgres(PgSession),
    /// SQLite's statements run on sqlx's worker thread; this stops them there.
    Sqlite(Arc<sqlite_session::Watchdog>),
    /// SQL Server enforces no statement timeout of its own; the connection waits no longer
    /// than this session's watchdog says.
    SqlServer(sqlserver_session::MsSession),
}

impl ServerSession {
    /// The per-statement deadline the session arms, for backends the host times itself.
    fn watchdog(&self) -> Option<&sqlite_session::Watchdog> {
        match self {
            ServerSession::Postgres(_) => None,
            ServerSession::Sqlite(watchdog) => Some(watchdog),
            ServerSession::SqlServer(ms) => Some(&ms.watchdog),
        }
    }
}

/// A guest session's backend on PostgreSQL.
#[derive(Debug)]
pub struct PgSession {
    /// The backend's process id, to end it from another connection when it is stuck.
    pub pid: i32,
    /// The role the connection logged in as: the reset must leave both `session_user` and
    /// `current_user` at it.
    pub login_user: String,
}

/// Checked guest statements keyed by (read-only?, text). Bounded: when full it starts over,
/// which costs one parse per statement and keeps a hostile flow from growing it forever.
#[derive(Debug, Default)]
struct StatementCache {
    entries: std::sync::Mutex<HashMap<StatementKey, Arc<Statement>>>,
}

/// (read-only grant?, SQL text as the flow sent it).
type StatementKey = (bool, Arc<str>);

const STATEMENT_CACHE_ENTRIES: usize = 512;

/// Pool occupancy, as health checks and metrics report it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections lent out.
    pub in_use: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

/// Decoded rows as they arrive from the server.
pub type RowStream<'c> = futures_util::stream::BoxStream<'c, Result<Vec<Value>, DbError>>;

/// A result held fully in memory, in the WIT shape.
pub type RowSet = crate::bindings::types::RowSet;

impl Database {
    /// Creates the pool. Connections are opened on first use, so this does not fail when the
    /// server is down; [`Database::ping`] is how to find out.
    pub async fn open(cfg: &DatabaseConfig) -> Result<Database, DbError> {
        let target = cfg.target.to_string();
        let redactor = Redactor::new(secrets_of(&cfg.target));
        let (backend, pool) = match &cfg.target {
            DatabaseTarget::Postgres { .. } => (
                Backend::Postgres,
                Pool::new(postgres::pool(&cfg.name, &cfg.target, &cfg.pool)?),
            ),
            DatabaseTarget::Sqlite { .. } => (
                Backend::Sqlite,
                Pool::new(sqlite::pool(&cfg.name, &cfg.target, &cfg.pool)?),
            ),
            DatabaseTarget::SqlServer { .. } => (
                Backend::SqlServer,
                Pool::new(sqlserver::pool(&cfg.name, &cfg.target, &cfg.pool)?),
            ),
        };
        Ok(Database {
            name: cfg.name.clone(),
            backend,
            pool,
            target,
            redactor,
            max_connections: cfg.pool.max_connections,
            connect_timeout: cfg.pool.connect_timeout,
            endpoint: reach::Endpoint::of(&cfg.target),
            source: cfg.source.clone(),
            statement_timeout: cfg.pool.statement_timeout,
            statements: StatementCache::default(),
            functions: postgres_session::FunctionVerdicts::default(),
            refuse_privileged: cfg.pool.refuse_privileged,
            warned_privileged: std::sync::atomic::AtomicBool::new(false),
            closing: std::sync::Mutex::new(Vec::new()),
            metrics: crate::metrics::metrics().pool(&cfg.name),
        })
    }

    /// Flows are about to run as `role`, which `what` (a superuser, or a member of the roles
    /// that reach the server's files and programs): where the host's checks have a gap, such a
    /// role turns it into access to the database server itself. Warn once, or refuse when
    /// REFUSE_PRIVILEGED_ROLE is set.
    pub fn privileged_role(&self, role: &str, what: &str) -> Result<(), DbError> {
        use std::sync::atomic::Ordering;
        let advice = match self.backend() {
            Backend::SqlServer => {
                "connect flows as a login outside sysadmin, with only the database rights \
                 they need (for read-only grants, a login that can only read: \
                 READONLY_CONNECTION_STRING)"
            }
            _ => {
                "connect flows as a role without superuser and without pg_read_server_files, \
                 pg_write_server_files and pg_execute_server_program (for read-only grants, a \
                 role that can only read: READONLY_CONNECTION_STRING)"
            }
        };
        if self.refuse_privileged {
            return Err(DbError::Connection {
                database: self.name.clone(),
                target: self.target.clone(),
                message: format!(
                    "flowhost connects as role '{role}', which {what}, and REFUSE_PRIVILEGED_ROLE \
                     is set; {advice}"
                ),
            });
        }
        if !self.warned_privileged.swap(true, Ordering::Relaxed) {
            tracing::warn!(database = %self.name, role, "flows connect as a role that {what}: a gap in the host's checks would reach the database server's files and programs; {advice}, or set REFUSE_PRIVILEGED_ROLE=true to refuse such roles");
        }
        Ok(())
    }

    /// The configured per-statement timeout.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// `sql` checked against a grant of `access` and rewritten for this backend, from the
    /// cache when this exact text was checked before.
    pub fn guest_statement(&self, sql: &str, access: Access) -> Result<Arc<Statement>, DbError> {
        let key = (access == Access::ReadOnly, Arc::<str>::from(sql));
        if let Some(hit) = self
            .statements
            .entries
            .lock()
            .expect("statement cache")
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let stmt = Arc::new(Statement::for_guest(sql, self.backend, access, &self.name)?);
        let mut entries = self.statements.entries.lock().expect("statement cache");
        if entries.len() >= STATEMENT_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, stmt.clone());
        Ok(stmt)
    }

    /// Stops a guest session whose connection is in an unknown state from outside (its
    /// statement stops, its transaction rolls back, its locks go), where closing the socket
    /// alone would leave the statement running on the server. Best effort.
    pub async fn end_session(&self, session: &ServerSession) {
        self.pool.0.end_session(self, session).await
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// How long connecting may take (CONNECT_TIMEOUT).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// What the database said about the functions read-only statements call (PostgreSQL).
    fn function_verdicts(&self) -> &postgres_session::FunctionVerdicts {
        &self.functions
    }

    /// Learns, on a read-only session's connection, what the operators most statements use
    /// (`=`, `<`, `LIKE`, `||`, ...) are, so a statement's own check finds them known. Only a
    /// head start: a failure here is left for that check to meet and report.
    pub(crate) async fn learn_common_operators(&self, conn: &mut Conn) {
        if self.backend != Backend::Postgres {
            return;
        }
        let common = crate::sql::postgres::common_operators();
        if let Err(e) = conn.check_functions(self, &common).await {
            tracing::debug!(database = %self.name(), error = %e, "common operators not learned");
        }
    }

    /// The scrubber for text that came from this database's driver.
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Takes a connection from the pool, waiting at most the configured acquire timeout.
    ///
    /// When the pool has to dial (no idle connection, room for another), a cause the driver
    /// would hide (nothing listening, a refused login) is reported at once instead of after the
    /// timeout; while the pool holds no connection at all, the connect timeout applies too.
    pub async fn acquire(&self) -> Result<Conn, DbError> {
        let _waiting = self.metrics.waiting();
        let started = Instant::now();
        let status = self.pool_status();
        // Without an idle connection and with room to open one, the pool dials: that time is
        // counted apart from waiting for a connection to come back.
        let dialled = status.idle == 0 && status.size < status.max;
        let acquire = self.pool.0.acquire(self);
        let result = if !dialled {
            acquire.await
        } else {
            self.dial(acquire, status.size == 0).await
        };
        match &result {
            Ok(_) => self.metrics.acquired(started.elapsed(), dialled),
            Err(e) => {
                let kind = e.pool_error_kind();
                if kind == "pool-exhausted" {
                    self.metrics.timed_out();
                }
                self.metrics.error(kind);
            }
        }
        result
    }

    /// Counts a statement's time, and its failure when the connection broke under it.
    fn statement_done<T>(
        &self,
        operation: crate::metrics::Operation,
        stmt: &Statement,
        started: Instant,
        result: &Result<T, DbError>,
    ) {
        self.metrics.statement(
            operation,
            (!stmt.host).then_some(&*stmt.sql),
            started.elapsed(),
        );
        if let Err(e) = result
            && e.is_connection_lost()
        {
            self.metrics.error(e.pool_error_kind());
        }
    }

    /// Takes a connection that the pool must dial for: a server that is not there (stopped,
    /// restarting) is said at once instead of after POOL_TIMEOUT. For the pool's first
    /// connection (`first`), the connect timeout bounds the wait too.
    async fn dial(
        &self,
        acquire: impl std::future::Future<Output = Result<Conn, DbError>>,
        first: bool,
    ) -> Result<Conn, DbError> {
        let unreachable = async {
            let Some(endpoint) = &self.endpoint else {
                return std::future::pending().await;
            };
            tokio::time::sleep(reach::PROBE_GRACE).await;
            match endpoint.unreachable().await {
                Some(cause) => cause,
                None => std::future::pending().await,
            }
        };
        // Past the first connection the pool's own POOL_TIMEOUT bounds the wait.
        let limit = if first {
            self.connect_timeout
        } else {
            Duration::MAX
        };
        let connect = tokio::time::timeout(limit, acquire);
        let outcome = tokio::select! {
            outcome = connect => outcome,
            cause = unreachable => return Err(self.unreachable(cause)),
        };
        match outcome {
            Ok(result) => result.map_err(|e| self.login_error(e)),
            Err(_) => Err(self.unreachable(format!(
                "no connection within {:?} (CONNECT_TIMEOUT); is the server running and reachable?",
                self.connect_timeout
            ))),
        }
    }

    /// A driver's error from logging in, said as such (SQLite has no login to explain).
    fn login_error(&self, err: DbError) -> DbError {
        match self.backend {
            Backend::Sqlite => err,
            _ => reach::login_error(err, &self.target, self.source.as_deref()),
        }
    }

    fn unreachable(&self, message: String) -> DbError {
        DbError::Connection {
            database: self.name.clone(),
            target: self.target.clone(),
            message,
        }
    }

    /// A connection outside the shared pool, and the private pool to close when done with it
    /// (see [`DriverPool::dedicated`]). `application_name` names it on the server.
    pub async fn dedicated(&self, application_name: &str) -> Result<(Conn, Option<Pool>), DbError> {
        self.pool
            .0
            .dedicated(self, application_name)
            .await
            .map_err(|e| self.login_error(e))
    }

    /// Connects (or reuses an idle connection) and runs `SELECT 1`; returns how long it took.
    pub async fn ping(&self) -> Result<Duration, DbError> {
        let started = Instant::now();
        let mut conn = self.acquire().await?;
        conn.run_raw(self, "SELECT 1").await?;
        Ok(started.elapsed())
    }

    pub fn pool_status(&self) -> PoolStatus {
        let (size, idle) = self.pool.0.occupancy();
        PoolStatus {
            size,
            idle,
            in_use: size.saturating_sub(idle),
            max: self.max_connections,
        }
    }

    /// Closes every connection and refuses new ones.
    pub async fn close(&self) {
        let closing = std::mem::take(&mut *self.closing.lock().unwrap_or_else(|e| e.into_inner()));
        futures_util::future::join_all(closing.into_iter().map(Conn::discard)).await;
        self.pool.close().await
    }

    /// Keeps `conn`, whose session is over, until [`Database::close`] closes it, instead of
    /// closing it now: in a process about to exit, the run's record is written first, and
    /// only then do the servers start ending their sessions, which would compete with that
    /// write for the machine. Whatever the session had open is rolled back when it closes.
    pub fn close_later(&self, conn: Conn) {
        self.closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

impl Conn {
    /// Runs SQL that takes no parameters and returns nothing (transaction control, cleanup,
    /// migration statements). It may hold several statements.
    pub async fn run_raw(&mut self, db: &Database, sql: &str) -> Result<(), DbError> {
        let result = self.0.run_raw(db, sql).await;
        self.evict_if_broken(result)
    }

    /// A connection the server ended (a restart, `pg_terminate_backend`, a network cut) is
    /// closed when dropped instead of going back to the pool, so the next caller gets a fresh
    /// one rather than the same error.
    fn evict_if_broken<T>(&mut self, result: Result<T, DbError>) -> Result<T, DbError> {
        if let Err(DbError::Connection { .. }) = &result {
            self.close_on_drop();
        }
        result
    }

    /// Starts one statement; its rows arrive through the returned stream, decoded.
    pub async fn open_stream<'c>(
        &'c mut self,
        db: &'c Database,
        stmt: &Statement,
        values: &[&Value],
    ) -> Result<(Vec<Column>, RowStream<'c>), DbError> {
        self.0.open_stream(db, stmt, values).await
    }

    /// Starts one statement; its rows are packed as they are read (`packed_rows.rs`).
    pub async fn open_packed<'c>(
        &'c mut self,
        db: &'c Database,
        stmt: &Statement,
        values: &[&Value],
    ) -> Result<(Vec<Column>, PackedStream<'c>), DbError> {
        self.0.open_packed(db, stmt, values).await
    }

    /// Runs one statement and returns all rows, failing past the limits' rows or bytes.
    pub async fn query(
        &mut self,
        db: &Database,
        stmt: &Statement,
        values: &[&Value],
        limits: &SessionLimits,
    ) -> Result<RowSet, DbError> {
        let started = Instant::now();
        let result = self.query_rows(db, stmt, values, limits).await;
        db.statement_done(crate::metrics::Operation::Query, stmt, started, &result);
        self.evict_if_broken(result)
    }

    async fn query_rows(
        &mut self,
        db: &Database,
        stmt: &Statement,
        values: &[&Value],
        limits: &SessionLimits,
    ) -> Result<RowSet, DbError> {
        use futures_util::TryStreamExt;
        let max_rows = limits.max_rows;
        let (columns, mut stream) = self.open_stream(db, stmt, values).await?;
        let mut rows = Vec::new();
        let mut bytes = 0;
        while let Some(row) = stream.try_next().await? {
            bytes += session::row_bytes(&row);
            if bytes > limits.max_result_bytes {
                return Err(session::too_large(
                    db.name(),
                    limits.max_result_bytes,
                    "all",
                ));
            }
            if rows.len() as u64 >= max_rows {
                return Err(DbError::invalid(
                    db.name(),
                    format!(
                        "the query returned more than {max_rows} rows (the manifest's max-rows); \
                         read large results with a cursor or raise [limits] max-rows"
                    ),
                ));
            }
            rows.push(row);
        }
        Ok(RowSet { columns, rows })
    }

    /// Runs one statement and returns the rows it affected.
    pub async fn execute(
        &mut self,
        db: &Database,
        stmt: &Statement,
        values: &[&Value],
    ) -> Result<u64, DbError> {
        let started = Instant::now();
        let result = self.0.execute(db, stmt, values).await;
        db.statement_done(crate::metrics::Operation::Execute, stmt, started, &result);
        self.evict_if_broken(result)
    }

    /// Writes the rows of a one-row INSERT by the backend's bulk path (see
    /// [`DriverConn::bulk_insert`]); `None`: use multi-row INSERTs.
    pub async fn bulk_insert(
        &mut self,
        db: &Database,
        stmt: &Statement,
        rows: &[Vec<&Value>],
    ) -> Option<Result<u64, DbError>> {
        let started = Instant::now();
        let result = self.0.bulk_insert(db, stmt, rows).await?;
        db.statement_done(crate::metrics::Operation::Batch, stmt, started, &result);
        Some(self.evict_if_broken(result))
    }

    /// [`Conn::bulk_insert`] for rows read in place (see [`DriverConn::bulk_insert_in_place`]).
    pub async fn bulk_insert_in_place(
        &mut self,
        db: &Database,
        stmt: &Statement,
        rows: &dyn BatchRows,
    ) -> Option<Result<u64, DbError>> {
        let started = Instant::now();
        let result = self.0.bulk_insert_in_place(db, stmt, rows).await?;
        db.statement_done(crate::metrics::Operation::Batch, stmt, started, &result);
        Some(self.evict_if_broken(result))
    }

    /// Prepares a guest session on this connection: the statement timeout (never past the run's
    /// deadline) and, for a read-only grant, the database's own read-only mode.
    pub async fn start_session(
        &mut self,
        db: &Database,
        read_only: bool,
        statement_timeout: Duration,
    ) -> Result<ServerSession, DbError> {
        self.0.start_session(db, read_only, statement_timeout).await
    }

    /// Rolls back (if `open`), resets every piece of session state a flow could have changed,
    /// and checks that it took. `Err` says why the connection must not be pooled again.
    pub async fn reset_session(
        &mut self,
        db: &Database,
        open: bool,
        server: Option<&ServerSession>,
    ) -> Result<(), String> {
        if open {
            self.run_raw(db, db.backend().rollback_sql())
                .await
                .map_err(|e| format!("ROLLBACK failed: {e}"))?;
        }
        self.0.reset_session(db, server).await
    }

    /// Refuses a read-only statement calling any of `functions` that may have side effects.
    /// `Ok(true)`: it runs user-defined code, which may change session settings.
    pub async fn check_functions(
        &mut self,
        db: &Database,
        functions: &[crate::sql::postgres::FunctionName],
    ) -> Result<bool, DbError> {
        self.0.check_functions(db, functions).await
    }

    /// Whether the connection can take another statement (see [`DriverConn::is_usable`]).
    pub fn is_usable(&self) -> bool {
        self.0.is_usable()
    }

    /// When dropped, this connection is closed instead of returned to the pool: for a drop
    /// path that cannot wait (a `Drop` impl), where its state is unknown.
    pub fn close_on_drop(&mut self) {
        self.0.close_on_drop()
    }

    /// Closes the connection instead of returning it to the pool: used when its state is
    /// unknown (a cancelled statement, a failed cleanup).
    pub async fn discard(self) {
        self.0.discard().await
    }
}

/// Every secret a target holds, for the [`Redactor`].
pub(super) fn secrets_of(target: &DatabaseTarget) -> Vec<String> {
    match target {
        DatabaseTarget::Postgres { password, .. } | DatabaseTarget::SqlServer { password, .. } => {
            password.iter().map(|p| p.expose().to_owned()).collect()
        }
        DatabaseTarget::Sqlite { .. } => Vec::new(),
    }
}

/// The databases of one host process: each opened once, on first use, and shared by every run.
#[derive(Debug)]
pub struct DatabaseSet {
    config: Arc<Config>,
    /// One cell per pool, so opening one database (a TLS handshake, a server far away) never
    /// waits for another's; the map's lock is held only to find the cell.
    open: std::sync::Mutex<HashMap<String, Arc<OnceCell<Arc<Database>>>>>,
    /// Where embedded databases' demo data is looked for, first match wins: the `seeds`
    /// folders of the projects whose manifests were run (see [`DatabaseSet::seeds_for`]), then
    /// `seeds` in the working directory.
    seed_dirs: std::sync::Mutex<Vec<PathBuf>>,
    /// Manifest folders already looked at by [`DatabaseSet::seeds_for`]: a long-running host
    /// resolves each once, not on every run.
    seeded_from: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl DatabaseSet {
    pub fn new(config: Arc<Config>) -> Self {
        DatabaseSet {
            config,
            open: Default::default(),
            seed_dirs: std::sync::Mutex::new(vec![PathBuf::from("seeds")]),
            seeded_from: Default::default(),
        }
    }

    /// Looks for seeds beside the manifest at `manifest` too: `seeds/` in its folder and in
    /// that folder's parent (the project, for `flows/NAME.toml`), before the working
    /// directory's, so a flow run from anywhere finds its project's demo data.
    pub fn seeds_for(&self, manifest: &Path) {
        let dir = manifest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !self
            .seeded_from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf())
        {
            return;
        }
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let candidates = [
            Some(dir.join("seeds")),
            dir.parent().map(|p| p.join("seeds")),
        ];
        let mut dirs = self.seed_dirs.lock().unwrap_or_else(|e| e.into_inner());
        // The working directory's folder stays last.
        let fallback = dirs.pop().unwrap_or_else(|| PathBuf::from("seeds"));
        for candidate in candidates.into_iter().flatten() {
            if !dirs.contains(&candidate) {
                dirs.push(candidate);
            }
        }
        dirs.push(fallback);
    }

    fn seed_dirs(&self) -> Vec<PathBuf> {
        self.seed_dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The pool cell of database `name` (`role`: `""` or `"read-only"`). Names that share a
    /// configuration key (`SurveyHub`, `surveyhub`) share one pool; the role's separator is
    /// not a key character, so no database name can reach another's read-only pool.
    fn cell(&self, name: &str, role: &str) -> Arc<OnceCell<Arc<Database>>> {
        let key = format!("{}\0{role}", crate::config::key_name(name));
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.entry(key).or_default().clone()
    }

    /// The database configured under `name`, opening its pool on first use. Callers racing
    /// for the same new database share one open; a failed open is tried again next time.
    pub async fn get(&self, name: &str) -> Result<Arc<Database>, crate::Error> {
        let cell = self.cell(name, "");
        let db = cell
            .get_or_try_init(|| async {
                let cfg = self.config.database(name)?;
                if cfg.embedded {
                    sqlite::prepare_embedded(&cfg, &self.seed_dirs()).await?;
                }
                Ok::<_, crate::Error>(Arc::new(Database::open(&cfg).await?))
            })
            .await?;
        Ok(db.clone())
    }

    /// The pool a grant of `access` on `name` uses: a read-only grant goes through the
    /// database's READONLY_CONNECTION_STRING when one is configured (a role that can only
    /// read, so the database enforces the grant too), otherwise through the shared pool.
    pub async fn for_grant(
        &self,
        name: &str,
        access: Access,
    ) -> Result<Arc<Database>, crate::Error> {
        if access == Access::ReadOnly {
            // An embedded database about to be created with no demo data could only ever be
            // read empty: refuse before creating it, so the next run (with the seed in place)
            // still seeds it.
            let cfg = self.config.database(name)?;
            let seed_dirs = self.seed_dirs();
            if sqlite::would_start_empty(&cfg, &seed_dirs) {
                return Err(crate::Error::Unseeded {
                    database: name.to_owned(),
                    looked_in: seed_dirs,
                    key: self.config.connection_key(name),
                });
            }
        }
        let main = self.get(name).await?;
        if access != Access::ReadOnly {
            return Ok(main);
        }
        let cfg = self.config.database(name)?;
        let Some(readonly) = cfg.readonly_target.clone() else {
            return Ok(main);
        };
        let cell = self.cell(name, "read-only");
        let db = cell
            .get_or_try_init(|| async {
                Database::open(&DatabaseConfig {
                    target: readonly,
                    readonly_target: None,
                    source: cfg.readonly_source.clone(),
                    ..cfg
                })
                .await
                .map(Arc::new)
            })
            .await?;
        Ok(db.clone())
    }

    /// Closes every pool (at process exit, so servers see clean disconnects).
    /// The databases whose pools are open now.
    pub fn open_databases(&self) -> Vec<Arc<Database>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }

    pub async fn close_all(&self) {
        let open = self.open_databases();
        // At once: each close waits for its server's goodbye, and a process exits after them.
        futures_util::future::join_all(open.iter().map(|db| db.close())).await;
    }
}
