//! A guest's hold on one pooled connection: grant checks, transactions, cursors, and giving the
//! connection back clean however the run ends.
//!
//! A session takes its connection on first use and keeps it until [`Session::finish`], so a
//! flow's statements on one `connection` share a session (and a read-only grant's statements
//! share one snapshot). Read-only grants run inside a wrapper transaction that is always rolled
//! back; guest transactions on them are savepoints inside it.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::TryStreamExt;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

use super::{Backend, Conn, Database, DbError, RowSet, Statement, bind_order};
use crate::bindings::types::{Column, Params, Value};
use crate::manifest::Access;
use crate::sql::{Placeholders, StatementKind, ValuesTemplate};

/// A session shared between a guest `connection`, its `transaction` and its open `cursor`.
pub type SharedSession = Arc<Mutex<Session>>;

/// Rows a cursor's reader sends per message; small enough that a stalled guest pins little.
const CURSOR_CHUNK: usize = 256;

#[derive(Debug)]
pub struct Session {
    db: Arc<Database>,
    access: Access,
    max_rows: u64,
    conn: Option<Conn>,
    /// The read-only wrapper transaction is open.
    wrapper_open: bool,
    /// The id of the open guest transaction, if any; ids never repeat within a session, so a
    /// finished transaction's handle cannot reach a newer one.
    tx: Option<u64>,
    next_tx: u64,
    /// An operation was under way; if it never finished (the run was cancelled mid-call) the
    /// connection's state is unknown and it is closed rather than pooled.
    busy: bool,
}

/// Which guest handle a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Connection,
    Transaction(u64),
}

impl Session {
    pub fn new(db: Arc<Database>, access: Access, max_rows: u64) -> SharedSession {
        Arc::new(Mutex::new(Session {
            db,
            access,
            max_rows,
            conn: None,
            wrapper_open: false,
            tx: None,
            next_tx: 1,
            busy: false,
        }))
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

    fn check_route(&self, route: Route) -> Result<(), DbError> {
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
    async fn conn(&mut self) -> Result<&mut Conn, DbError> {
        if self.conn.is_none() {
            let mut conn = self.db.acquire().await?;
            if self.access == Access::ReadOnly {
                let begin = match self.db.backend() {
                    Backend::Postgresql => "BEGIN READ ONLY",
                    _ => "BEGIN",
                };
                conn.run_raw(&self.db, begin).await?;
                self.wrapper_open = true;
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection just set"))
    }

    /// Runs `sql` as one statement and returns its rows.
    pub async fn query(
        &mut self,
        route: Route,
        sql: &str,
        params: &Params,
    ) -> Result<RowSet, DbError> {
        self.check_route(route)?;
        let stmt = Statement::for_guest(sql, self.db.backend(), self.access, self.name())?;
        let values = bind_order(&stmt, params, self.name())?;
        let (db, max_rows) = (self.db.clone(), self.max_rows);
        self.busy = true;
        let result = self
            .conn()
            .await?
            .query(&db, &stmt, &values, max_rows)
            .await;
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
        let stmt = Statement::for_guest(sql, self.db.backend(), self.access, self.name())?;
        let values = bind_order(&stmt, params, self.name())?;
        let db = self.db.clone();
        self.busy = true;
        let result = self.conn().await?.execute(&db, &stmt, &values).await;
        self.busy = false;
        result
    }

    /// Runs `sql` once per parameter set, all or nothing: in its own transaction, or in a
    /// savepoint when a transaction is already open (so a failed batch leaves that transaction
    /// usable and unchanged).
    pub async fn execute_batch(
        &mut self,
        route: Route,
        sql: &str,
        sets: &[Params],
    ) -> Result<u64, DbError> {
        self.check_route(route)?;
        let stmt = Statement::for_guest(sql, self.db.backend(), self.access, self.name())?;
        let ordered: Vec<Vec<&Value>> = sets
            .iter()
            .enumerate()
            .map(|(i, p)| bind_order(&stmt, p, self.name()).map_err(|e| with_set_index(e, i)))
            .collect::<Result<_, _>>()?;
        if ordered.is_empty() {
            return Ok(0);
        }
        let nested = self.tx.is_some() || self.wrapper_open;
        let (open, keep, undo) = if nested {
            (
                "SAVEPOINT flowhost_batch",
                "RELEASE SAVEPOINT flowhost_batch",
                "ROLLBACK TO SAVEPOINT flowhost_batch; RELEASE SAVEPOINT flowhost_batch",
            )
        } else {
            (begin_write(self.db.backend()), "COMMIT", "ROLLBACK")
        };
        let db = self.db.clone();
        let dialect = db.backend().dialect();
        self.busy = true;
        let conn = self.conn().await?;
        conn.run_raw(&db, open).await?;
        // Many rows per statement when the statement allows it; if that fails for any reason
        // (a constraint, ON CONFLICT touching a row twice), undo and go row by row, which
        // either succeeds with the per-statement semantics or names the failing set.
        let template = match ordered.len() {
            1 => None,
            _ => ValuesTemplate::parse(&stmt.sql, dialect),
        };
        let mut result = match &template {
            Some(template) => insert_many_rows(conn, &db, template, &ordered).await,
            None => execute_each(conn, &db, &stmt, &ordered).await,
        };
        if let (Some(_), Err(e)) = (&template, &result) {
            tracing::debug!(database = %db.name(), error = %e, "multi-row INSERT failed; retrying row by row");
            conn.run_raw(&db, undo).await?;
            conn.run_raw(&db, open).await?;
            result = execute_each(conn, &db, &stmt, &ordered).await;
        }
        conn.run_raw(&db, if result.is_ok() { keep } else { undo })
            .await?;
        self.busy = false;
        result
    }

    /// Starts a guest transaction and returns its id.
    pub async fn begin(&mut self) -> Result<u64, DbError> {
        self.check_route(Route::Connection)?;
        let sql = if self.access == Access::ReadOnly {
            "SAVEPOINT flowhost_tx"
        } else {
            begin_write(self.db.backend())
        };
        let db = self.db.clone();
        self.busy = true;
        self.conn().await?.run_raw(&db, sql).await?;
        self.busy = false;
        let id = self.next_tx;
        self.next_tx += 1;
        self.tx = Some(id);
        Ok(id)
    }

    /// Ends guest transaction `id`, keeping (`commit`) or discarding its work.
    pub async fn end(&mut self, id: u64, commit: bool) -> Result<(), DbError> {
        self.check_route(Route::Transaction(id))?;
        let sql = match (self.access, commit) {
            (Access::ReadOnly, true) => "RELEASE SAVEPOINT flowhost_tx",
            (Access::ReadOnly, false) => {
                "ROLLBACK TO SAVEPOINT flowhost_tx; RELEASE SAVEPOINT flowhost_tx"
            }
            (Access::ReadWrite, true) => "COMMIT",
            (Access::ReadWrite, false) => "ROLLBACK",
        };
        // Whatever happens below, this transaction is over: a failed COMMIT has rolled back.
        self.tx = None;
        let db = self.db.clone();
        self.busy = true;
        let result = self.conn().await?.run_raw(&db, sql).await;
        self.busy = false;
        if result.is_err() && self.access == Access::ReadWrite {
            // PostgreSQL ends the transaction on a failed COMMIT; SQLite may not. Make sure.
            let _ = self.conn().await?.run_raw(&db, "ROLLBACK").await;
        }
        result
    }

    /// Rolls back whatever is open, resets session state and returns the connection to the
    /// pool; a connection whose state cannot be restored is closed instead.
    pub async fn finish(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let open = self.tx.take().is_some() || std::mem::take(&mut self.wrapper_open);
        let mut clean = !std::mem::take(&mut self.busy);
        if clean && open {
            clean = conn.run_raw(&self.db, "ROLLBACK").await.is_ok();
        }
        if clean && self.access == Access::ReadWrite && self.db.backend() == Backend::Postgresql {
            // Guests cannot issue SET, LISTEN or advisory locks, but DO blocks and functions
            // can; undo anything of the kind so the next run starts from a clean session.
            // (Not DISCARD ALL: it would drop the prepared statements sqlx caches.)
            clean = conn
                .run_raw(
                    &self.db,
                    "RESET ALL; SELECT pg_advisory_unlock_all(); UNLISTEN *; DISCARD TEMP",
                )
                .await
                .is_ok();
        }
        if !clean {
            tracing::warn!(database = %self.db.name(), "closing a connection whose state is unknown instead of returning it to the pool");
            conn.discard().await;
        }
    }
}

fn begin_write(backend: Backend) -> &'static str {
    match backend {
        // Take the write lock up front: a deferred transaction that later upgrades can fail
        // with SQLITE_BUSY midway instead of waiting its turn.
        Backend::Sqlite => "BEGIN IMMEDIATE",
        _ => "BEGIN",
    }
}

/// Most rows per multi-row INSERT: large enough that round trips stop mattering, small enough
/// that one statement stays cheap to parse (SQLAlchemy uses the same).
const ROWS_PER_INSERT: usize = 1000;

/// Runs `stmt` once per parameter set.
async fn execute_each(
    conn: &mut Conn,
    db: &Database,
    stmt: &Statement,
    sets: &[Vec<&Value>],
) -> Result<u64, DbError> {
    let mut total = 0;
    for (i, values) in sets.iter().enumerate() {
        total += conn
            .execute(db, stmt, values)
            .await
            .map_err(|e| with_set_index(e, i))?;
    }
    Ok(total)
}

/// Inserts every set's row with as few multi-row INSERTs as the backend's parameter limit allows.
async fn insert_many_rows(
    conn: &mut Conn,
    db: &Database,
    template: &ValuesTemplate,
    sets: &[Vec<&Value>],
) -> Result<u64, DbError> {
    let max_params = match db.backend() {
        Backend::Postgresql => 65_535,
        Backend::Sqlite => 32_766,
        Backend::Sqlserver => 2_100,
    };
    let per_row = template.params_per_row().max(1);
    let rows_per_chunk = (max_params / per_row).clamp(1, ROWS_PER_INSERT);
    let mut total = 0;
    for chunk in sets.chunks(rows_per_chunk) {
        let stmt = Statement {
            sql: template.render(chunk.len(), db.backend().dialect()).into(),
            placeholders: Placeholders::Positional(chunk.len() * template.params_per_row()),
            kind: StatementKind::Write,
        };
        let values: Vec<&Value> = chunk.iter().flatten().copied().collect();
        total += conn.execute(db, &stmt, &values).await?;
    }
    Ok(total)
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

/// A streaming read. A reader task owns the session while the cursor lives, decoding rows and
/// handing them over in chunks through a small bounded channel, so memory stays bounded however
/// large the result; dropping the cursor stops the reader and frees the session.
#[derive(Debug)]
pub struct CursorStream {
    columns: Vec<Column>,
    rows: mpsc::Receiver<Result<Vec<Vec<Value>>, DbError>>,
    pending: VecDeque<Vec<Value>>,
    finished: bool,
    reader: tokio::task::JoinHandle<()>,
}

impl CursorStream {
    pub async fn open(
        session: &SharedSession,
        route: Route,
        sql: &str,
        params: &Params,
    ) -> Result<CursorStream, DbError> {
        let mut guard: OwnedMutexGuard<Session> = session.clone().try_lock_owned().map_err(|_| {
            DbError::invalid(
                "(busy)",
                "the connection is busy with an open cursor; read it to the end or drop it first",
            )
        })?;
        guard.check_route(route)?;
        let stmt = Statement::for_guest(sql, guard.db.backend(), guard.access, guard.name())?;
        let values: Vec<Value> = bind_order(&stmt, params, guard.name())?
            .into_iter()
            .cloned()
            .collect();
        guard.conn().await?;
        let (columns_tx, columns_rx) = oneshot::channel();
        let (rows_tx, rows_rx) = mpsc::channel(2);
        let reader = tokio::spawn(async move {
            let session = &mut *guard;
            let db = session.db.clone();
            session.busy = true;
            let conn = session
                .conn
                .as_mut()
                .expect("connection taken before spawn");
            let refs: Vec<&Value> = values.iter().collect();
            let (columns, mut stream) = match conn.open_stream(&db, &stmt, &refs).await {
                Ok(opened) => opened,
                Err(e) => {
                    let _ = columns_tx.send(Err(e));
                    session.busy = false;
                    return;
                }
            };
            if columns_tx.send(Ok(columns)).is_err() {
                return;
            }
            let mut chunk = Vec::with_capacity(CURSOR_CHUNK);
            loop {
                match stream.try_next().await {
                    Ok(Some(row)) => {
                        chunk.push(row);
                        if chunk.len() == CURSOR_CHUNK
                            && rows_tx.send(Ok(std::mem::take(&mut chunk))).await.is_err()
                        {
                            // The guest dropped the cursor mid-result; `busy` stays set so the
                            // half-read connection is closed, not pooled.
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = rows_tx.send(Err(e)).await;
                        drop(stream);
                        session.busy = false;
                        return;
                    }
                }
            }
            drop(stream);
            session.busy = false;
            if !chunk.is_empty() {
                let _ = rows_tx.send(Ok(chunk)).await;
            }
        });
        let columns = match columns_rx.await {
            Ok(Ok(columns)) => columns,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(DbError::invalid(
                    "(cursor)",
                    "the cursor's reader stopped before it started",
                ));
            }
        };
        Ok(CursorStream {
            columns,
            rows: rows_rx,
            pending: VecDeque::new(),
            finished: false,
            reader,
        })
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Up to `max` further rows; empty once the result is exhausted.
    pub async fn next(&mut self, max: u32) -> Result<Vec<Vec<Value>>, DbError> {
        let max = max.max(1) as usize;
        while self.pending.len() < max && !self.finished {
            match self.rows.recv().await {
                Some(Ok(chunk)) => self.pending.extend(chunk),
                Some(Err(e)) => {
                    self.finished = true;
                    return Err(e);
                }
                None => self.finished = true,
            }
        }
        let n = max.min(self.pending.len());
        Ok(self.pending.drain(..n).collect())
    }
}

impl Drop for CursorStream {
    fn drop(&mut self) {
        // Closing the channel makes the reader stop at its next send; aborting covers a reader
        // still waiting on the server.
        self.rows.close();
        if !self.finished {
            self.reader.abort();
        }
    }
}
