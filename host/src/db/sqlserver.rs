//! SQL Server over TDS: tiberius connections in a deadpool managed pool.
//!
//! The pool honours every setting the sqlx pools do: size + overflow (`max_size`), POOL_TIMEOUT
//! (`wait`), CONNECT_TIMEOUT (`create`), POOL_RECYCLE and POOL_IDLE_TIMEOUT (checked when a
//! connection is handed out, and idle ones trimmed in the background), POOL_PRE_PING (`SELECT 1`
//! on checkout). A connection whose state is unknown is marked broken and never handed out
//! again. Statements run through `sp_executesql`, whose scope ends `#temp` tables and `SET`
//! options a statement created.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use tiberius::{QueryItem, SqlBrowser};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::sqlserver_types::{decode, param, type_name};
use super::{
    Conn, Database, DbError, DriverConn, DriverPool, Pool, Redactor, RowStream, ServerSession,
    Statement, sqlserver_session,
};
use crate::bindings::types::{Column, Value};
use crate::config::{DatabaseTarget, PoolSettings};
use crate::sql::StatementKind;

pub use super::sqlserver_config::connect_config;

pub(super) type Client = tiberius::Client<Compat<TcpStream>>;

/// One TDS connection and what the pool must know about it.
#[derive(Debug)]
pub struct TdsConnection {
    pub(super) client: Client,
    /// The connection's state is unknown (a statement interrupted mid-response, an I/O error):
    /// it is closed instead of handed out again.
    pub(super) broken: bool,
}

/// Opens and checks TDS connections for the pool. Holds what it needs to describe its errors
/// without a [`Database`]: the pool creates connections on its own.
#[derive(Debug)]
pub struct TdsManager {
    config: tiberius::Config,
    settings: PoolSettings,
    name: String,
    target: String,
    redactor: Redactor,
}

impl TdsManager {
    fn error(&self, e: tiberius::error::Error) -> DbError {
        DbError::from_tds(e, &self.name, &self.target, &self.redactor)
    }

    /// Connects with `config`, following one Azure-style routing redirect.
    async fn connect(&self, mut config: tiberius::Config) -> Result<TdsConnection, DbError> {
        let attempt = async {
            for _ in 0..2 {
                let tcp = TcpStream::connect_named(&config).await?;
                tcp.set_nodelay(true)?;
                match Client::connect(config.clone(), tcp.compat_write()).await {
                    Err(tiberius::error::Error::Routing { host, port }) => {
                        config.host(host);
                        config.port(port);
                    }
                    other => return other,
                }
            }
            Err(tiberius::error::Error::Protocol(
                "the server redirected the connection more than once".into(),
            ))
        };
        let client = tokio::time::timeout(self.settings.connect_timeout, attempt)
            .await
            .map_err(|_| DbError::Connection {
                database: self.name.clone(),
                target: self.target.clone(),
                message: format!(
                    "no connection within {:?} (CONNECT_TIMEOUT); is the server running and \
                     reachable?",
                    self.settings.connect_timeout
                ),
            })?
            .map_err(|e| self.error(e))?;
        Ok(TdsConnection {
            client,
            broken: false,
        })
    }
}

impl managed::Manager for TdsManager {
    type Type = TdsConnection;
    type Error = DbError;

    async fn create(&self) -> Result<TdsConnection, DbError> {
        self.connect(self.config.clone()).await
    }

    async fn recycle(&self, conn: &mut TdsConnection, metrics: &Metrics) -> RecycleResult<DbError> {
        if conn.broken {
            return Err(RecycleError::message("its state is unknown"));
        }
        if let Some(max) = self.settings.max_lifetime
            && metrics.age() >= max
        {
            return Err(RecycleError::message("older than POOL_RECYCLE"));
        }
        if let Some(idle) = self.settings.idle_timeout
            && metrics.last_used() >= idle
        {
            return Err(RecycleError::message("idle longer than POOL_IDLE_TIMEOUT"));
        }
        if self.settings.test_before_acquire {
            let ping = async {
                conn.client
                    .simple_query("SELECT 1")
                    .await?
                    .into_results()
                    .await
            };
            match tokio::time::timeout(self.settings.connect_timeout, ping).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(RecycleError::Backend(self.error(e))),
                Err(_) => return Err(RecycleError::message("the pre-ping timed out")),
            }
        }
        Ok(())
    }
}

/// The SQL Server pool.
#[derive(Debug)]
pub struct TdsPool {
    pool: managed::Pool<TdsManager>,
}

/// Makes ring the process's rustls provider, the one sqlx's PostgreSQL connections use.
///
/// tiberius takes the process's provider and otherwise builds aws-lc-rs, whose start-up gathers
/// CPU-jitter entropy: about 100 ms of every process that opens a TLS connection. If the
/// embedding program installed a provider first, that one stays.
fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the pool; connections open on first acquire.
pub fn pool(
    name: &str,
    target: &DatabaseTarget,
    settings: &PoolSettings,
) -> Result<TdsPool, DbError> {
    use_ring_for_tls();
    let config =
        super::sqlserver_config::connect_config(target).map_err(|message| DbError::Connection {
            database: name.to_owned(),
            target: target.to_string(),
            message,
        })?;
    let manager = TdsManager {
        config,
        settings: *settings,
        name: name.to_owned(),
        target: target.to_string(),
        redactor: Redactor::new(super::secrets_of(target)),
    };
    let pool = managed::Pool::builder(manager)
        .max_size(settings.max_connections as usize)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Connection {
            database: name.to_owned(),
            target: target.to_string(),
            message: format!("cannot build the connection pool: {e}"),
        })?;
    if let Some(idle) = settings.idle_timeout {
        trim_idle(&pool, idle);
    }
    Ok(TdsPool { pool })
}

/// Closes connections idle longer than `idle` in the background, as sqlx's pools do, so an idle
/// process does not hold server sessions. Stops when the pool is closed.
fn trim_idle(pool: &managed::Pool<TdsManager>, idle: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = pool.weak();
    runtime.spawn(async move {
        let period = (idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            tokio::time::sleep(period).await;
            let Some(pool) = weak.upgrade() else { return };
            if pool.is_closed() {
                return;
            }
            pool.retain(|_, metrics| metrics.last_used() < idle);
        }
    });
}

impl TdsPool {
    fn pool_error(&self, db: &Database, e: managed::PoolError<DbError>) -> DbError {
        use managed::{PoolError, TimeoutType};
        match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(TimeoutType::Wait) => DbError::Timeout {
                database: db.name().to_owned(),
                message: "timed out waiting for a pooled connection; raise the pool size or \
                          POOL_TIMEOUT, or look for runs holding connections"
                    .into(),
            },
            PoolError::Timeout(_) => DbError::Connection {
                database: db.name().to_owned(),
                target: db.target().to_owned(),
                message: format!(
                    "no connection within {:?} (CONNECT_TIMEOUT); is the server running and \
                     reachable?",
                    db.connect_timeout()
                ),
            },
            other => DbError::Connection {
                database: db.name().to_owned(),
                target: db.target().to_owned(),
                message: other.to_string(),
            },
        }
    }
}

impl DriverPool for TdsPool {
    fn acquire<'a>(&'a self, db: &'a Database) -> BoxFuture<'a, Result<Conn, DbError>> {
        Box::pin(async move {
            let obj = self.pool.get().await.map_err(|e| self.pool_error(db, e))?;
            Ok(Conn::new(TdsConn::pooled(obj)))
        })
    }

    /// A connection of its own, never pooled: the migration lock (`sp_getapplock` owned by the
    /// session) goes when it closes.
    fn dedicated<'a>(
        &'a self,
        _db: &'a Database,
        application_name: &'a str,
    ) -> BoxFuture<'a, Result<(Conn, Option<Pool>), DbError>> {
        Box::pin(async move {
            let manager = self.pool.manager();
            let mut config = manager.config.clone();
            config.application_name(application_name);
            let conn = manager.connect(config).await?;
            Ok((Conn::new(TdsConn::own(conn)), None))
        })
    }

    fn occupancy(&self) -> (u32, u32) {
        let status = self.pool.status();
        (status.size as u32, status.available as u32)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.pool.close();
        Box::pin(async {})
    }

    /// `KILL` from a connection of its own: the session's statement stops, its transaction
    /// rolls back and its locks go.
    fn end_session<'a>(
        &'a self,
        db: &'a Database,
        session: &'a ServerSession,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ServerSession::SqlServer(ms) = session else {
                return;
            };
            ms.watchdog.trip();
            let manager = self.pool.manager();
            let kill = async {
                let mut conn = manager.connect(manager.config.clone()).await?;
                let sql = format!("KILL {}", ms.spid);
                let result = async { conn.client.simple_query(sql).await?.into_results().await }
                    .await
                    .map(|_| ());
                let _ = conn.client.close().await;
                result.map_err(|e| manager.error(e))
            };
            if let Err(e) = kill.await {
                tracing::warn!(database = %db.name(), spid = ms.spid, error = %e, "could not end a stuck session on the server");
            }
        })
    }
}

/// A TDS connection lent to the host: from the pool, or a dedicated one.
#[derive(Debug)]
pub struct TdsConn {
    inner: Lent,
    /// The guest session on it, while one is running.
    pub(super) session: Option<sqlserver_session::GuestState>,
}

#[derive(Debug)]
enum Lent {
    Pooled(Object<TdsManager>),
    Own(TdsConnection),
}

impl TdsConn {
    fn pooled(obj: Object<TdsManager>) -> TdsConn {
        TdsConn {
            inner: Lent::Pooled(obj),
            session: None,
        }
    }

    fn own(conn: TdsConnection) -> TdsConn {
        TdsConn {
            inner: Lent::Own(conn),
            session: None,
        }
    }

    pub(super) fn connection(&mut self) -> &mut TdsConnection {
        match &mut self.inner {
            Lent::Pooled(obj) => obj,
            Lent::Own(conn) => conn,
        }
    }

    /// Until when the running statement may run: the session's watchdog (armed per statement
    /// by the session), or no limit for the host's own statements.
    fn deadline(&self) -> Option<Instant> {
        self.session.as_ref().and_then(|s| s.watchdog.deadline())
    }

    /// A guest statement of a kind that may leave session state the reset cannot see
    /// (procedures, DDL): the connection is not pooled again after this session.
    fn note_kind(&mut self, kind: StatementKind) {
        if let Some(session) = &mut self.session
            && matches!(kind, StatementKind::Ddl | StatementKind::Other)
        {
            session.opaque = true;
        }
    }

    /// Runs `work` against the connection under the statement deadline; a deadline passed or an
    /// I/O failure leaves the connection broken.
    pub(super) async fn guarded<T>(
        &mut self,
        db: &Database,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, tiberius::error::Error>,
    ) -> Result<T, DbError> {
        let deadline = self.deadline();
        let conn = self.connection();
        if conn.broken {
            return Err(broken(db));
        }
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at.into(), work(&mut conn.client)).await {
                Ok(r) => r,
                Err(_) => {
                    conn.broken = true;
                    return Err(timed_out(db));
                }
            },
            None => work(&mut conn.client).await,
        };
        result.map_err(|e| {
            let e = db.tds_error(e);
            if matches!(e, DbError::Connection { .. }) {
                conn.broken = true;
            }
            e
        })
    }
}

impl TdsConn {
    /// Runs trusted host SQL with no parameters, outside the guest's deadline and wrapper.
    pub(super) async fn host_batch(&mut self, db: &Database, sql: &str) -> Result<(), DbError> {
        self.host_rows(db, sql).await.map(|_| ())
    }

    /// Runs trusted host SQL and returns its first result's rows.
    pub(super) async fn host_rows(
        &mut self,
        db: &Database,
        sql: &str,
    ) -> Result<Vec<tiberius::Row>, DbError> {
        let conn = self.connection();
        if conn.broken {
            return Err(broken(db));
        }
        let result = async {
            conn.client
                .simple_query(sql)
                .await?
                .into_first_result()
                .await
        }
        .await;
        result.map_err(|e| {
            let e = db.tds_error(e);
            conn.broken |= matches!(e, DbError::Connection { .. });
            e
        })
    }
}

impl Database {
    /// Converts a tiberius error from this database into a [`DbError`] with secrets scrubbed.
    pub(super) fn tds_error(&self, err: tiberius::error::Error) -> DbError {
        DbError::from_tds(err, self.name(), self.target(), self.redactor())
    }
}

fn broken(db: &Database) -> DbError {
    DbError::Connection {
        database: db.name().to_owned(),
        target: db.target().to_owned(),
        message: "the connection was given up after an interrupted statement; any open \
                  transaction on it was rolled back"
            .into(),
    }
}

fn timed_out(db: &Database) -> DbError {
    DbError::Timeout {
        database: db.name().to_owned(),
        message: "the statement ran past its time limit and was stopped (the manifest's \
                  statement-timeout-seconds or timeout-seconds, or the database's \
                  DATABASE_TIMEOUT)"
            .into(),
    }
}

/// `stmt` with `values` bound as typed parameters.
fn query<'a>(
    db: &Database,
    stmt: &'a Statement,
    values: &[&Value],
) -> Result<tiberius::Query<'a>, DbError> {
    let (sql, nulls_inlined) = match super::sqlserver_types::inline_nulls(&stmt.sql, values) {
        Some(sql) => (Cow::Owned(sql), true),
        None => (Cow::Borrowed(&*stmt.sql), false),
    };
    let mut query = tiberius::Query::new(sql);
    let bound = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !(nulls_inlined && matches!(v, Value::Null)));
    for (i, value) in bound {
        let data = param(value)
            .map_err(|e| DbError::conversion(db.name(), format!("parameter @P{}: {e}", i + 1)))?;
        query.bind(data);
    }
    Ok(query)
}

impl DriverConn for TdsConn {
    fn run_raw<'a>(
        &'a mut self,
        db: &'a Database,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        Box::pin(async move {
            let sql = sqlserver_session::with_read_only_wrapper(self.session.as_ref(), sql);
            self.guarded(db, async |client| {
                client.simple_query(sql).await?.into_results().await?;
                Ok(())
            })
            .await
        })
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
            self.note_kind(stmt.kind);
            let query = query(db, stmt, values)?;
            let deadline = self.deadline();
            let conn = self.connection();
            if conn.broken {
                return Err(broken(db));
            }
            let TdsConnection { client, broken } = conn;
            let opened = async {
                let mut stream = query.query(client).await?;
                let columns = stream.columns().await?.map(<[_]>::to_vec);
                Ok::<_, tiberius::error::Error>((columns.unwrap_or_default(), stream))
            };
            let opened = match deadline {
                Some(at) => tokio::time::timeout_at(at.into(), opened)
                    .await
                    .unwrap_or_else(|_| Err(tiberius::error::Error::Protocol("timeout".into()))),
                None => opened.await,
            };
            let (meta, stream) = match opened {
                Ok(opened) => opened,
                Err(tiberius::error::Error::Protocol(m)) if m == "timeout" => {
                    *broken = true;
                    return Err(timed_out(db));
                }
                Err(e) => {
                    let e = db.tds_error(e);
                    *broken |= matches!(e, DbError::Connection { .. });
                    return Err(e);
                }
            };
            let types: Vec<tiberius::ColumnType> = meta.iter().map(|c| c.column_type()).collect();
            let columns = meta
                .iter()
                .map(|c| Column {
                    name: c.name().to_owned(),
                    type_name: type_name(c.column_type()).to_owned(),
                })
                .collect();
            let names: Vec<String> = meta.iter().map(|c| c.name().to_owned()).collect();
            let rows = RowsUnderDeadline {
                stream,
                deadline,
                broken,
            };
            let decoded = rows
                .into_stream(db)
                .and_then(move |row| std::future::ready(decode_row(db, &types, &names, row)));
            Ok((columns, Box::pin(decoded) as RowStream<'c>))
        })
    }

    fn execute<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        values: &'a [&'a Value],
    ) -> BoxFuture<'a, Result<u64, DbError>> {
        Box::pin(async move {
            self.note_kind(stmt.kind);
            let query = query(db, stmt, values)?;
            self.guarded(db, async move |client| {
                Ok(query.execute(client).await?.total())
            })
            .await
        })
    }

    fn bulk_insert<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        rows: &'a [Vec<&'a Value>],
    ) -> BoxFuture<'a, Option<Result<u64, DbError>>> {
        Box::pin(self.bulk_load(db, &stmt.sql, rows))
    }

    fn start_session<'a>(
        &'a mut self,
        db: &'a Database,
        read_only: bool,
        _statement_timeout: Duration,
    ) -> BoxFuture<'a, Result<ServerSession, DbError>> {
        Box::pin(sqlserver_session::start_session(self, db, read_only))
    }

    fn reset_session<'a>(
        &'a mut self,
        db: &'a Database,
        _session: Option<&'a ServerSession>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(sqlserver_session::reset_session(self, db))
    }

    fn is_usable(&self) -> bool {
        match &self.inner {
            Lent::Pooled(obj) => !obj.broken,
            Lent::Own(conn) => !conn.broken,
        }
    }

    fn close_on_drop(&mut self) {
        self.connection().broken = true;
    }

    fn discard(self: Box<Self>) -> BoxFuture<'static, ()> {
        let conn = match self.inner {
            Lent::Pooled(obj) => Object::take(obj),
            Lent::Own(conn) => conn,
        };
        Box::pin(async move {
            let _ = conn.client.close().await;
        })
    }
}

/// A result's rows, each waited for no later than the statement's deadline. A later result set
/// (a procedure's second SELECT) is refused rather than mixed into the first one's columns.
struct RowsUnderDeadline<'c> {
    stream: tiberius::QueryStream<'c>,
    deadline: Option<Instant>,
    broken: &'c mut bool,
}

impl<'c> RowsUnderDeadline<'c> {
    fn into_stream(
        self,
        db: &'c Database,
    ) -> impl futures_util::Stream<Item = Result<tiberius::Row, DbError>> + Send + 'c {
        futures_util::stream::unfold(Some(self), move |state| async move {
            let mut rows = state?;
            loop {
                let next = match rows.deadline {
                    Some(at) => {
                        match tokio::time::timeout_at(at.into(), rows.stream.next()).await {
                            Ok(next) => next,
                            Err(_) => {
                                *rows.broken = true;
                                return Some((Err(timed_out(db)), None));
                            }
                        }
                    }
                    None => rows.stream.next().await,
                };
                return match next? {
                    Ok(QueryItem::Row(row)) if row.result_index() == 0 => {
                        Some((Ok(row), Some(rows)))
                    }
                    Ok(QueryItem::Metadata(m)) if m.result_index() == 0 => continue,
                    Ok(_) => {
                        // The rest of the response is still coming; the connection is not
                        // reused mid-response.
                        *rows.broken = true;
                        Some((
                            Err(DbError::invalid(
                                db.name(),
                                "the statement returned more than one result set; return one \
                                 per statement",
                            )),
                            None,
                        ))
                    }
                    Err(e) => {
                        let e = db.tds_error(e);
                        *rows.broken |= matches!(e, DbError::Connection { .. });
                        Some((Err(e), None))
                    }
                };
            }
        })
    }
}

fn decode_row(
    db: &Database,
    types: &[tiberius::ColumnType],
    names: &[String],
    row: tiberius::Row,
) -> Result<Vec<Value>, DbError> {
    row.into_iter()
        .enumerate()
        .map(|(i, data)| {
            let column = types.get(i).copied().unwrap_or(tiberius::ColumnType::Null);
            decode(column, &data).map_err(|message| {
                let name = names.get(i).map_or("?", String::as_str);
                DbError::conversion(db.name(), format!("column '{name}': {message}"))
            })
        })
        .collect()
}
