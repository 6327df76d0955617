//! The `flowhost:flow/database` imports: every guest database call enters the host here.
//!
//! Connection and transaction calls differ only in which route they take through the shared
//! session, so both resources delegate to the same four functions below.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::resources::{ConnectionResource, CursorResource, TransactionResource};
use super::state::HostState;
use crate::bindings::database::{self, Access as WitAccess};
use crate::bindings::types::{self, Column, DbError, Params, Row, RowSet};
use crate::db::{self, CursorStream, Database, Route, Session, SharedSession};
use crate::manifest::Access;

type Call<T> = wasmtime::Result<Result<T, DbError>>;

/// Locks a session for one call. Only an open cursor's reader can hold it meanwhile (the guest
/// is single-threaded), so a held lock means exactly that.
fn lock(session: &SharedSession) -> Result<tokio::sync::MutexGuard<'_, Session>, DbError> {
    session.try_lock().map_err(|_| busy())
}

fn busy() -> DbError {
    DbError::InvalidRequest(
        "the connection is busy with an open cursor; read it to the end or drop it first".into(),
    )
}

async fn query(
    session: &SharedSession,
    route: Route,
    sql: &str,
    params: &Params,
) -> Result<RowSet, DbError> {
    let mut s = lock(session)?;
    s.query(route, sql, params).await.map_err(|e| e.to_wit())
}

async fn execute(
    session: &SharedSession,
    route: Route,
    sql: &str,
    params: &Params,
) -> Result<u64, DbError> {
    let mut s = lock(session)?;
    s.execute(route, sql, params).await.map_err(|e| e.to_wit())
}

async fn execute_batch(
    session: &SharedSession,
    route: Route,
    sql: &str,
    sets: &[Params],
) -> Result<u64, DbError> {
    let mut s = lock(session)?;
    s.execute_batch(route, sql, sets)
        .await
        .map_err(|e| e.to_wit())
}

async fn execute_batch_packed(
    session: &SharedSession,
    route: Route,
    sql: &str,
    names: &[String],
    rows: &[u8],
) -> Result<u64, DbError> {
    let batch = super::packed::PackedBatch::index(rows, names.len()).map_err(|e| {
        DbError::InvalidRequest(format!(
            "the packed parameter rows are malformed ({e}); rebuild the flow against this \
             host's flowhost-sdk"
        ))
    })?;
    let mut s = lock(session)?;
    s.execute_batch_packed(route, sql, names, batch)
        .await
        .map_err(|e| e.to_wit())
}

async fn cursor(
    state: &mut HostState,
    session: &SharedSession,
    route: Route,
    sql: &str,
    params: &Params,
) -> Call<Resource<CursorResource>> {
    if let Err(e) = state.check_handle_room() {
        return Ok(Err(e));
    }
    match CursorStream::open(session, route, sql, params).await {
        Ok(stream) => {
            let cursor = state.table.push(CursorResource {
                stream,
                session: session.clone(),
            })?;
            state.open_handles += 1;
            Ok(Ok(cursor))
        }
        Err(e) => answer(Err(e.to_wit())),
    }
}

/// A database call's answer to the flow, unless the process received SIGINT or SIGTERM
/// meanwhile. Then the call traps instead and the run ends as cancelled: an SQLite statement
/// stepped on this thread is stopped by the signal itself (before tokio can cancel the run),
/// and the flow must not carry on as if it had merely failed.
fn answer<T>(result: Result<T, DbError>) -> Call<T> {
    if result.is_err()
        && let Some(signal) = crate::shutdown::received()
    {
        return Err(wasmtime::Error::new(crate::shutdown::Stopped(signal)));
    }
    Ok(result)
}

impl types::Host for HostState {}

impl database::Host for HostState {
    async fn open(&mut self, name: String) -> Call<Resource<ConnectionResource>> {
        let Some(grant) = self.grants.get(&name) else {
            tracing::warn!(flow = %self.flow, run = %self.run_id, database = %name, "flow tried to open a database it was not granted");
            return Ok(Err(db::DbError::NotGranted(name).to_wit()));
        };
        if let Err(e) = self.check_handle_room() {
            return Ok(Err(e));
        }
        let (database, access) = (grant.database.clone(), grant.access);
        if !self.keep_connections {
            self.finish_parked(&database).await;
        }
        let backend = database.backend().as_str();
        let session = match self.prestarted.remove(&name) {
            Some(session) => session,
            None => {
                let session = Session::new(database, access, self.session_limits());
                self.sessions.push(session.clone());
                session
            }
        };
        let connection = self.table.push(ConnectionResource {
            name,
            access,
            backend,
            session,
        })?;
        self.open_handles += 1;
        Ok(Ok(connection))
    }
}

impl database::HostConnection for HostState {
    async fn name(&mut self, this: Resource<ConnectionResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.name.clone())
    }

    async fn access(&mut self, this: Resource<ConnectionResource>) -> wasmtime::Result<WitAccess> {
        Ok(match self.table.get(&this)?.access {
            Access::ReadOnly => WitAccess::ReadOnly,
            Access::ReadWrite => WitAccess::ReadWrite,
        })
    }

    async fn backend(&mut self, this: Resource<ConnectionResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.backend.to_owned())
    }

    async fn query(
        &mut self,
        this: Resource<ConnectionResource>,
        sql: String,
        params: Params,
    ) -> Call<RowSet> {
        let session = self.table.get(&this)?.session.clone();
        answer(query(&session, Route::Connection, &sql, &params).await)
    }

    async fn execute(
        &mut self,
        this: Resource<ConnectionResource>,
        sql: String,
        params: Params,
    ) -> Call<u64> {
        let session = self.table.get(&this)?.session.clone();
        answer(execute(&session, Route::Connection, &sql, &params).await)
    }

    async fn execute_batch(
        &mut self,
        this: Resource<ConnectionResource>,
        sql: String,
        param_sets: Vec<Params>,
    ) -> Call<u64> {
        let session = self.table.get(&this)?.session.clone();
        answer(execute_batch(&session, Route::Connection, &sql, &param_sets).await)
    }

    async fn execute_batch_packed(
        &mut self,
        this: Resource<ConnectionResource>,
        sql: String,
        names: Vec<String>,
        rows: Vec<u8>,
    ) -> Call<u64> {
        let session = self.table.get(&this)?.session.clone();
        answer(execute_batch_packed(&session, Route::Connection, &sql, &names, &rows).await)
    }

    async fn cursor(
        &mut self,
        this: Resource<ConnectionResource>,
        sql: String,
        params: Params,
    ) -> Call<Resource<CursorResource>> {
        let session = self.table.get(&this)?.session.clone();
        cursor(self, &session, Route::Connection, &sql, &params).await
    }

    async fn begin(
        &mut self,
        this: Resource<ConnectionResource>,
    ) -> Call<Resource<TransactionResource>> {
        let session = self.table.get(&this)?.session.clone();
        if let Err(e) = self.check_handle_room() {
            return Ok(Err(e));
        }
        let id = match lock(&session) {
            Ok(mut s) => match s.begin().await {
                Ok(id) => id,
                Err(e) => return Ok(Err(e.to_wit())),
            },
            Err(e) => return Ok(Err(e)),
        };
        let transaction = self.table.push(TransactionResource { session, id })?;
        self.open_handles += 1;
        Ok(Ok(transaction))
    }

    async fn drop(&mut self, this: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        let conn = self.table.delete(this)?;
        self.open_handles = self.open_handles.saturating_sub(1);
        // With a cursor still reading, the end-of-run cleanup finishes this session instead.
        if let Ok(mut s) = conn.session.try_lock() {
            // A process that runs once parks an idle session: the run's end closes its
            // connection without a reset's round trip, and should the flow open this database
            // again, `open` finishes it first so that its connection is reused. A session
            // with a transaction open is finished now, so that no lock outlives the handle.
            if self.keep_connections || !s.is_idle() {
                s.finish().await;
            } else {
                drop(s);
                self.parked.push(conn.session.clone());
            }
        }
        Ok(())
    }
}

impl HostState {
    /// Finishes the sessions parked on `database` (see `drop`), so that their connections
    /// are back in the pool for the session about to start.
    async fn finish_parked(&mut self, database: &Arc<Database>) {
        let mut kept = Vec::new();
        for session in std::mem::take(&mut self.parked) {
            let finished = match session.try_lock() {
                Ok(mut s) if Arc::ptr_eq(s.database(), database) => {
                    s.finish().await;
                    true
                }
                _ => false,
            };
            if !finished {
                kept.push(session);
            }
        }
        self.parked = kept;
    }
}

impl database::HostTransaction for HostState {
    async fn query(
        &mut self,
        this: Resource<TransactionResource>,
        sql: String,
        params: Params,
    ) -> Call<RowSet> {
        let tx = self.table.get(&this)?;
        let (session, route) = (tx.session.clone(), Route::Transaction(tx.id));
        answer(query(&session, route, &sql, &params).await)
    }

    async fn execute(
        &mut self,
        this: Resource<TransactionResource>,
        sql: String,
        params: Params,
    ) -> Call<u64> {
        let tx = self.table.get(&this)?;
        let (session, route) = (tx.session.clone(), Route::Transaction(tx.id));
        answer(execute(&session, route, &sql, &params).await)
    }

    async fn execute_batch(
        &mut self,
        this: Resource<TransactionResource>,
        sql: String,
        param_sets: Vec<Params>,
    ) -> Call<u64> {
        let tx = self.table.get(&this)?;
        let (session, route) = (tx.session.clone(), Route::Transaction(tx.id));
        answer(execute_batch(&session, route, &sql, &param_sets).await)
    }

    async fn execute_batch_packed(
        &mut self,
        this: Resource<TransactionResource>,
        sql: String,
        names: Vec<String>,
        rows: Vec<u8>,
    ) -> Call<u64> {
        let tx = self.table.get(&this)?;
        let (session, route) = (tx.session.clone(), Route::Transaction(tx.id));
        answer(execute_batch_packed(&session, route, &sql, &names, &rows).await)
    }

    async fn cursor(
        &mut self,
        this: Resource<TransactionResource>,
        sql: String,
        params: Params,
    ) -> Call<Resource<CursorResource>> {
        let tx = self.table.get(&this)?;
        let (session, route) = (tx.session.clone(), Route::Transaction(tx.id));
        cursor(self, &session, route, &sql, &params).await
    }

    async fn commit(&mut self, this: Resource<TransactionResource>) -> Call<()> {
        let tx = self.table.get(&this)?;
        let (session, id) = (tx.session.clone(), tx.id);
        let mut s = match lock(&session) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(s.end(id, true).await.map_err(|e| e.to_wit()))
    }

    async fn rollback(&mut self, this: Resource<TransactionResource>) -> Call<()> {
        let tx = self.table.get(&this)?;
        let (session, id) = (tx.session.clone(), tx.id);
        let mut s = match lock(&session) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(s.end(id, false).await.map_err(|e| e.to_wit()))
    }

    async fn drop(&mut self, this: Resource<TransactionResource>) -> wasmtime::Result<()> {
        let tx = self.table.delete(this)?;
        self.open_handles = self.open_handles.saturating_sub(1);
        // Dropped unfinished: roll back now. If a cursor holds the session, the end-of-run
        // cleanup rolls back instead; either way the work is discarded.
        if let Ok(mut s) = tx.session.try_lock()
            && s.in_transaction(tx.id)
            && let Err(e) = s.end(tx.id, false).await
        {
            tracing::warn!(error = %e, "rolling back a dropped transaction failed");
        }
        Ok(())
    }
}

impl database::HostCursor for HostState {
    async fn columns(&mut self, this: Resource<CursorResource>) -> wasmtime::Result<Vec<Column>> {
        Ok(self.table.get(&this)?.stream.columns().to_vec())
    }

    async fn next(&mut self, this: Resource<CursorResource>, max_rows: u32) -> Call<Vec<Row>> {
        let cursor = self.table.get_mut(&this)?;
        answer(cursor.stream.next(max_rows).await.map_err(|e| e.to_wit()))
    }

    async fn next_packed(
        &mut self,
        this: Resource<CursorResource>,
        max_rows: u32,
    ) -> Call<Vec<u8>> {
        let cursor = self.table.get_mut(&this)?;
        answer(
            cursor
                .stream
                .next_packed(max_rows)
                .await
                .map_err(|e| e.to_wit()),
        )
    }

    async fn drop(&mut self, this: Resource<CursorResource>) -> wasmtime::Result<()> {
        let cursor = self.table.delete(this)?;
        self.open_handles = self.open_handles.saturating_sub(1);
        // Wait for the reader to let go of the session, so the connection's next call finds it
        // free; a result not read to its end has its statement ended on the server now.
        cursor.stream.close().await;
        if let Ok(mut session) = cursor.session.try_lock() {
            session.settle().await;
        }
        Ok(())
    }
}
