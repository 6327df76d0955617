//! A streaming read: a reader task owns the session while the cursor lives, so a result of any
//! size needs only a chunk of rows in memory on either side.

use std::collections::VecDeque;

use futures_util::TryStreamExt;
use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use super::{DbError, Route, Session, SharedSession, row_bytes, too_large};
use crate::bindings::types::{Column, Params, Value};

/// Rows a cursor's reader sends per message; small enough that a stalled guest pins little.
const CURSOR_CHUNK: usize = 256;

/// A streaming read. A reader task owns the session while the cursor lives, decoding rows and
/// handing them over in chunks through a small bounded channel, so memory stays bounded however
/// large the result; dropping the cursor stops the reader and frees the session.
#[derive(Debug)]
pub struct CursorStream {
    columns: Vec<Column>,
    rows: mpsc::Receiver<Result<Vec<Vec<Value>>, DbError>>,
    pending: VecDeque<Vec<Value>>,
    finished: bool,
    /// Most bytes of values one `next` hands over.
    max_bytes: u64,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// Most bytes of values a reader batches per message: with [`CURSOR_CHUNK`] rows this bounds
/// what a cursor holds in the host while the guest is busy, however wide its rows are.
const CURSOR_CHUNK_BYTES: u64 = 1 << 20;

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
        let (stmt, values) = guard.prepare(sql, params)?;
        let values: Vec<Value> = values.into_iter().cloned().collect();
        guard.check_functions(&stmt).await?;
        guard.conn().await?;
        let max_bytes = guard.limits.max_result_bytes;
        let (columns_tx, columns_rx) = oneshot::channel();
        let (rows_tx, rows_rx) = mpsc::channel(2);
        let reader = tokio::spawn(async move {
            let session = &mut *guard;
            let db = session.db.clone();
            session.start_statement();
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
            let mut chunk_bytes = 0;
            loop {
                match stream.try_next().await {
                    Ok(Some(row)) => {
                        let bytes = row_bytes(&row);
                        if bytes > max_bytes {
                            let _ = rows_tx
                                .send(Err(too_large(db.name(), max_bytes, "one row")))
                                .await;
                            // The rest of the result is still coming: leave `busy` set so the
                            // connection is ended rather than reused mid-result.
                            return;
                        }
                        chunk.push(row);
                        chunk_bytes += bytes;
                        if (chunk.len() == CURSOR_CHUNK || chunk_bytes >= CURSOR_CHUNK_BYTES)
                            && rows_tx.send(Ok(std::mem::take(&mut chunk))).await.is_err()
                        {
                            // The guest dropped the cursor mid-result; `busy` stays set so the
                            // half-read connection is ended, not reused.
                            return;
                        }
                        if chunk.is_empty() {
                            chunk_bytes = 0;
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
            max_bytes,
            reader: Some(reader),
        })
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Up to `max` further rows, and never more than the result-size limit in bytes (at least
    /// one row, which the reader has already checked against it); empty once the result is
    /// exhausted.
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
        let mut out = Vec::with_capacity(max.min(self.pending.len()));
        let mut bytes = 0;
        while out.len() < max {
            let Some(row) = self.pending.front() else {
                break;
            };
            bytes += row_bytes(row);
            if bytes > self.max_bytes && !out.is_empty() {
                break;
            }
            out.extend(self.pending.pop_front());
        }
        Ok(out)
    }

    /// Stops the reader and waits until it has let go of the session, so the connection's
    /// next call finds it free (and, if the result was not read to its end, ends it).
    pub async fn close(mut self) {
        self.rows.close();
        if let Some(reader) = self.reader.take() {
            if !self.finished {
                reader.abort();
            }
            let _ = reader.await;
        }
    }
}

impl Drop for CursorStream {
    fn drop(&mut self) {
        // Closing the channel makes the reader stop at its next send; aborting covers a reader
        // still waiting on the server.
        self.rows.close();
        if let Some(reader) = &self.reader
            && !self.finished
        {
            reader.abort();
        }
    }
}
