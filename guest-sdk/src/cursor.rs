//! Streaming reads.

use crate::bindings::flowhost::flow::database;
use crate::bindings::flowhost::flow::types::{Column, Value};
use crate::db::Conn;
use crate::decode::decode_packed_row;
use crate::error::Error;
use crate::packed::PackedBatch;
use serde::de::DeserializeOwned;
use std::cell::OnceCell;
use std::marker::PhantomData;
use std::rc::Rc;

/// How many rows a cursor asks the host for at a time unless told otherwise.
///
/// ```
/// assert_eq!(flowhost_sdk::DEFAULT_BATCH_SIZE, 1000);
/// ```
pub const DEFAULT_BATCH_SIZE: u32 = 1000;

/// A streaming read from [`Db::cursor`](crate::Db::cursor) or [`Tx::cursor`](crate::Tx::cursor).
/// Rows arrive in batches of [`batch_size`](Cursor::batch_size); only one batch is held at a
/// time. Read it batch by batch with [`next_batch`](Cursor::next_batch), or row by row with
/// [`rows`](Cursor::rows) and [`rows_as`](Cursor::rows_as).
///
/// ```no_run
/// # use flowhost_sdk::*;
/// # fn main() -> Result<(), Error> {
/// let hub = Db::open("SurveyHub")?;
/// let mut cursor = hub.cursor("SELECT response_id FROM survey_responses", ())?.batch_size(200);
/// while let Some(batch) = cursor.next_batch()? {
///     info!("got {} rows", batch.len());
/// }
/// # Ok(()) }
/// ```
pub struct Cursor {
    // Field order matters: the cursor resource must drop before the connection.
    raw: database::Cursor,
    conn: Rc<Conn>,
    columns: OnceCell<Vec<Column>>,
    batch_size: u32,
    done: bool,
}

impl Cursor {
    pub(crate) fn new(raw: database::Cursor, conn: Rc<Conn>) -> Self {
        Cursor {
            raw,
            conn,
            columns: OnceCell::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            done: false,
        }
    }

    /// Sets how many rows each host call fetches (at least 1).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("SurveyHub")?;
    /// let cursor = db.cursor("SELECT * FROM survey_responses", ())?.batch_size(10_000);
    /// # Ok(()) }
    /// ```
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.set_batch_size(rows);
        self
    }

    /// Sets the batch size in place. See [`batch_size`](Cursor::batch_size).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("SurveyHub")?;
    /// let mut cursor = db.cursor("SELECT * FROM survey_responses", ())?;
    /// cursor.set_batch_size(50);
    /// # Ok(()) }
    /// ```
    pub fn set_batch_size(&mut self, rows: u32) {
        // Asking the host for 0 rows returns an empty batch, which means "exhausted".
        self.batch_size = rows.max(1);
    }

    /// The result's columns (asked once, then remembered).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("SurveyHub")?;
    /// let cursor = db.cursor("SELECT response_id FROM survey_responses", ())?;
    /// assert_eq!(cursor.columns()[0].name, "response_id");
    /// # Ok(()) }
    /// ```
    pub fn columns(&self) -> &[Column] {
        self.columns.get_or_init(|| self.raw.columns())
    }

    /// The next batch of rows, or `None` once the result is exhausted (after which the host is
    /// not asked again).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("SurveyHub")?;
    /// let mut cursor = db.cursor("SELECT response_id FROM survey_responses", ())?;
    /// let mut total = 0;
    /// while let Some(batch) = cursor.next_batch()? {
    ///     total += batch.len();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn next_batch(&mut self) -> Result<Option<Vec<Vec<Value>>>, Error> {
        if self.done {
            return Ok(None);
        }
        let batch = self
            .raw
            .next(self.batch_size)
            .map_err(|e| self.conn.error(e))?;
        if batch.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(batch))
    }

    /// The next batch packed (`next-packed`), or `None` once the result is exhausted.
    fn next_packed(&mut self) -> Result<Option<PackedBatch>, Error> {
        if self.done {
            return Ok(None);
        }
        let buf = self
            .raw
            .next_packed(self.batch_size)
            .map_err(|e| self.conn.error(e))?;
        let batch = PackedBatch::new(buf)?;
        self.done = batch.is_none();
        Ok(batch)
    }

    /// Iterates over the rows' values. After an error the iterator ends.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("SurveyHub")?;
    /// for row in db.cursor("SELECT response_id FROM survey_responses", ())?.rows() {
    ///     let id = row?[0].as_i64();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn rows(self) -> RowIter {
        RowIter(Stream::new(self))
    }

    /// Iterates over the rows decoded into `T` (see [`Db::query_as`](crate::Db::query_as) for
    /// how values map). After a database error the iterator ends; a row that does not decode
    /// yields its error and the iterator goes on with the next row.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Response { response_id: i64, response_data: String }
    /// let db = flowhost_sdk::Db::open("SurveyHub")?;
    /// let cursor = db.cursor("SELECT response_id, response_data FROM survey_responses", ())?;
    /// for response in cursor.rows_as::<Response>() {
    ///     let response = response?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn rows_as<T: DeserializeOwned>(self) -> RowsAs<T> {
        // Fetch the columns up front: every row's decoding needs them.
        self.columns();
        RowsAs {
            cursor: self,
            batch: None,
            failed: false,
            _item: PhantomData,
        }
    }
}

/// One batch at a time, row by row; ends after the first database error.
struct Stream {
    cursor: Cursor,
    batch: std::vec::IntoIter<Vec<Value>>,
    failed: bool,
}

impl Stream {
    fn new(cursor: Cursor) -> Self {
        Stream {
            cursor,
            batch: Vec::new().into_iter(),
            failed: false,
        }
    }

    fn next_row(&mut self) -> Option<Result<Vec<Value>, Error>> {
        if self.failed {
            return None;
        }
        if let Some(row) = self.batch.next() {
            return Some(Ok(row));
        }
        match self.cursor.next_batch() {
            Ok(Some(batch)) => {
                self.batch = batch.into_iter();
                self.batch.next().map(Ok)
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The iterator of [`Cursor::rows`]: each row's values in column order.
///
/// ```no_run
/// # fn main() -> Result<(), flowhost_sdk::Error> {
/// let db = flowhost_sdk::Db::open("SurveyHub")?;
/// let rows = db.cursor("SELECT response_id FROM survey_responses", ())?.rows();
/// let count = rows.filter(Result::is_ok).count();
/// # Ok(()) }
/// ```
pub struct RowIter(Stream);

impl Iterator for RowIter {
    type Item = Result<Vec<Value>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_row()
    }
}

/// The iterator of [`Cursor::rows_as`]: each row decoded into `T`.
///
/// ```no_run
/// # fn main() -> Result<(), flowhost_sdk::Error> {
/// let db = flowhost_sdk::Db::open("SurveyHub")?;
/// let ids: Vec<(i64,)> = db
///     .cursor("SELECT response_id FROM survey_responses", ())?
///     .rows_as()
///     .collect::<Result<_, _>>()?;
/// # Ok(()) }
/// ```
///
/// Rows arrive packed (`next-packed`): one buffer per batch, decoded in place, so a row costs
/// only what `T` itself allocates.
pub struct RowsAs<T> {
    cursor: Cursor,
    batch: Option<PackedBatch>,
    failed: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for RowsAs<T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = &mut self.batch {
                match batch.next_row() {
                    Some(Ok(row)) => return Some(decode_packed_row(self.cursor.columns(), row)),
                    Some(Err(e)) => {
                        self.failed = true;
                        self.batch = None;
                        return Some(Err(e.into()));
                    }
                    None => self.batch = None,
                }
            }
            if self.failed {
                return None;
            }
            match self.cursor.next_packed() {
                Ok(Some(batch)) => self.batch = Some(batch),
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let buffered = self.batch.as_ref().map_or(0, |b| b.rows_left() as usize);
        (buffered, None)
    }
}
