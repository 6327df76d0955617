//! A streaming read: a reader task owns the session while the cursor lives, so a result of any
//! size needs only a chunk of rows in memory on either side. Rows travel packed
//! (`packed_rows.rs`), in `cursor.next-packed`'s format, from the driver to the flow.

use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use super::{DbError, Route, Session, SharedSession, too_large};
use crate::bindings::types::{Column, Params, Value};
use crate::db::packed_rows::next_into;

/// Rows a cursor's reader sends per message; small enough that a stalled guest pins little.
const CURSOR_CHUNK: usize = 256;

/// Most bytes of values a reader batches per message: with [`CURSOR_CHUNK`] rows this bounds
/// what a cursor holds in the host while the guest is busy, however wide its rows are.
const CURSOR_CHUNK_BYTES: u64 = 1 << 20;

/// Packed rows handed from the reader to the cursor: the rows back to back (each its length,
/// then its values) and each row's size as `row_bytes` counts it (for the result-size limit).
#[derive(Debug, Default)]
struct Chunk {
    rows: Vec<u8>,
    sizes: Vec<u64>,
}

/// A streaming read. A reader task owns the session while the cursor lives, packing rows and
/// handing them over in chunks through a small bounded channel, so memory stays bounded however
/// large the result; dropping the cursor stops the reader and frees the session.
#[derive(Debug)]
pub struct CursorStream {
    columns: Vec<Column>,
    rows: mpsc::Receiver<Result<Chunk, DbError>>,
    /// The chunk being handed over: where its next row starts, and that row's number.
    pending: Option<(Chunk, usize, usize)>,
    /// An error that arrived while a batch was being filled, for the next call.
    failed: Option<DbError>,
    finished: bool,
    /// Most bytes of values one `next` hands over.
    max_bytes: u64,
    reader: Option<tokio::task::JoinHandle<()>>,
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
            let (columns, mut stream) = match conn.open_packed(&db, &stmt, &refs).await {
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
            let mut chunk = Chunk::default();
            let mut chunk_bytes = 0;
            loop {
                match next_into(&mut stream, &mut chunk.rows).await {
                    Some(Ok(size)) => {
                        if size > max_bytes {
                            let _ = rows_tx
                                .send(Err(too_large(db.name(), max_bytes, "one row")))
                                .await;
                            // The rest of the result is still coming: leave `busy` set so the
                            // connection is ended rather than reused mid-result.
                            return;
                        }
                        chunk.sizes.push(size);
                        chunk_bytes += size;
                        if chunk.sizes.len() == CURSOR_CHUNK || chunk_bytes >= CURSOR_CHUNK_BYTES {
                            let next = Chunk {
                                rows: Vec::with_capacity(chunk.rows.len()),
                                sizes: Vec::with_capacity(CURSOR_CHUNK),
                            };
                            if rows_tx
                                .send(Ok(std::mem::replace(&mut chunk, next)))
                                .await
                                .is_err()
                            {
                                // The guest dropped the cursor mid-result; `busy` stays set so
                                // the half-read connection is ended, not reused.
                                return;
                            }
                            chunk_bytes = 0;
                        }
                    }
                    None => break,
                    Some(Err(e)) => {
                        let _ = rows_tx.send(Err(e)).await;
                        drop(stream);
                        session.busy = false;
                        return;
                    }
                }
            }
            drop(stream);
            session.busy = false;
            if !chunk.sizes.is_empty() {
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
            pending: None,
            failed: None,
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
        let packed = self.next_packed(max).await?;
        crate::runtime::packed::decode(&packed, self.columns.len()).map_err(|e| {
            DbError::invalid(
                "(cursor)",
                format!("the cursor's packed rows are malformed: {e}"),
            )
        })
    }

    /// [`CursorStream::next`]'s rows packed in `cursor.next-packed`'s format: their count,
    /// then each row as the reader packed it.
    pub async fn next_packed(&mut self, max: u32) -> Result<Vec<u8>, DbError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let max = max.max(1) as usize;
        let mut out = vec![0; 4];
        let (mut count, mut bytes) = (0, 0);
        while count < max {
            let Some((chunk, offset, index)) = &mut self.pending else {
                if self.finished {
                    break;
                }
                match self.rows.recv().await {
                    Some(Ok(chunk)) => self.pending = Some((chunk, 0, 0)),
                    Some(Err(e)) if count == 0 => {
                        self.finished = true;
                        return Err(e);
                    }
                    // The rows gathered so far go now, the error with the next call.
                    Some(Err(e)) => {
                        self.finished = true;
                        self.failed = Some(e);
                    }
                    None => self.finished = true,
                }
                continue;
            };
            let size = chunk.sizes[*index];
            if count > 0 && bytes + size > self.max_bytes {
                break;
            }
            let start = *offset;
            let len = u32::from_le_bytes(chunk.rows[start..start + 4].try_into().unwrap());
            let end = start + 4 + len as usize;
            out.extend_from_slice(&chunk.rows[start..end]);
            (*offset, *index) = (end, *index + 1);
            count += 1;
            bytes += size;
            if *index == chunk.sizes.len() {
                self.pending = None;
            }
        }
        out[..4].copy_from_slice(&(count as u32).to_le_bytes());
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
