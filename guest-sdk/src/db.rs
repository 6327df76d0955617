//! Connections and transactions. Both run statements through the same code: the private
//! [`Statements`] trait abstracts over the two resource types and `statement_methods!` stamps
//! the documented public methods onto each.

use crate::bindings::flowhost::flow::database::{self, Access, Connection, Transaction};
use crate::bindings::flowhost::flow::types::{DbError as RawDbError, Params as RawParams, RowSet};
use crate::cursor::Cursor;
use crate::decode::decode_row;
use crate::error::{DbError, Error};
use crate::pack::PackedRows;
use crate::params::{IntoParams, Named};
use crate::rows::Rows;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;

/// The connection resource and what we know about it. Shared (`Rc`) by the [`Db`] handles, its
/// transactions and its cursors, so the connection outlives everything that runs on it.
pub(crate) struct Conn {
    raw: Connection,
    name: String,
    backend: OnceCell<String>,
}

impl Conn {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn error(&self, raw: RawDbError) -> Error {
        Error::Database(DbError::from_raw(&self.name, raw))
    }
}

/// The raw calls that differ between a connection and a transaction.
trait Statements {
    fn conn(&self) -> &Rc<Conn>;
    fn raw_query(&self, sql: &str, params: &RawParams) -> Result<RowSet, RawDbError>;
    fn raw_execute(&self, sql: &str, params: &RawParams) -> Result<u64, RawDbError>;
    fn raw_execute_batch(&self, sql: &str, sets: &[RawParams]) -> Result<u64, RawDbError>;
    fn raw_execute_batch_packed(
        &self,
        sql: &str,
        names: &[String],
        rows: &[u8],
    ) -> Result<u64, RawDbError>;
    fn raw_cursor(&self, sql: &str, params: &RawParams) -> Result<database::Cursor, RawDbError>;
}

fn query(s: &impl Statements, sql: &str, params: impl IntoParams) -> Result<Rows, Error> {
    let params = params.into_params()?.into_raw();
    let set = s.raw_query(sql, &params).map_err(|e| s.conn().error(e))?;
    Ok(Rows::new(set.columns, set.rows))
}

fn query_as<T: DeserializeOwned>(
    s: &impl Statements,
    sql: &str,
    params: impl IntoParams,
) -> Result<Vec<T>, Error> {
    query(s, sql, params)?.deserialize()
}

fn query_opt_as<T: DeserializeOwned>(
    s: &impl Statements,
    sql: &str,
    params: impl IntoParams,
) -> Result<Option<T>, Error> {
    let rows = query(s, sql, params)?;
    match rows.len() {
        0 => Ok(None),
        1 => decode_row(rows.columns(), rows.row(0).unwrap_or_default()).map(Some),
        n => Err(Error::decode(
            None,
            format!("expected at most one row, got {n}"),
        )),
    }
}

fn query_one_as<T: DeserializeOwned>(
    s: &impl Statements,
    sql: &str,
    params: impl IntoParams,
) -> Result<T, Error> {
    query_opt_as(s, sql, params)?
        .ok_or_else(|| Error::decode(None, "expected exactly one row, got 0"))
}

fn execute(s: &impl Statements, sql: &str, params: impl IntoParams) -> Result<u64, Error> {
    let params = params.into_params()?.into_raw();
    s.raw_execute(sql, &params).map_err(|e| s.conn().error(e))
}

fn execute_batch_params<P: IntoParams>(
    s: &impl Statements,
    sql: &str,
    sets: impl IntoIterator<Item = P>,
) -> Result<u64, Error> {
    let sets = sets
        .into_iter()
        .map(|p| p.into_params().map(|p| p.into_raw()))
        .collect::<Result<Vec<_>, _>>()?;
    s.raw_execute_batch(sql, &sets)
        .map_err(|e| s.conn().error(e))
}

fn execute_batch<T: Serialize>(s: &impl Statements, sql: &str, items: &[T]) -> Result<u64, Error> {
    if items.is_empty() {
        return Ok(0);
    }
    match PackedRows::pack(items) {
        Some(rows) => s
            .raw_execute_batch_packed(sql, &rows.names, &rows.buf)
            .map_err(|e| s.conn().error(e)),
        None => execute_batch_params(s, sql, items.iter().map(Named)),
    }
}

fn cursor(s: &impl Statements, sql: &str, params: impl IntoParams) -> Result<Cursor, Error> {
    let params = params.into_params()?.into_raw();
    let raw = s.raw_cursor(sql, &params).map_err(|e| s.conn().error(e))?;
    Ok(Cursor::new(raw, Rc::clone(s.conn())))
}

/// Public statement methods, documented once for both [`Db`] and [`Tx`]. `$setup` is the
/// example line that makes `$v` a receiver of the type.
macro_rules! statement_methods {
    ($v:literal, $setup:literal) => {
        /// Runs one statement and returns all its rows. Use [`cursor`](Self::cursor) when the
        /// result may be large: the host refuses results beyond the manifest's `max-rows`.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        #[doc = concat!("let rows = ", $v, ".query(\"SELECT id, email FROM users WHERE id = $1\", (7,))?;")]
        /// if let Some(email) = rows.get(0, "email").and_then(|v| v.as_str()) {
        ///     info!("user 7 is {email}");
        /// }
        /// # Ok(()) }
        /// ```
        pub fn query(&self, sql: &str, params: impl IntoParams) -> Result<Rows, Error> {
            query(self, sql, params)
        }

        /// Runs one statement and decodes every row into `T`.
        ///
        /// Structs and maps take values by column name, tuples by position, and a one-column
        /// row can decode as the value itself. Values map as: int and float → number, decimal
        /// → string (or a number, if `T` asks for one), text, uuid, date, time and timestamps →
        /// string, boolean → bool, null → null (so `Option` fields work), json → the parsed
        /// document, bytes → a sequence of u8. Errors name the column at fault.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        /// #[derive(serde::Deserialize)]
        /// struct User { id: i64, email: Option<String> }
        #[doc = concat!("let users: Vec<User> = ", $v, ".query_as(\"SELECT id, email FROM users\", ())?;")]
        #[doc = concat!("let ids: Vec<(i64,)> = ", $v, ".query_as(\"SELECT id FROM users\", ())?;")]
        /// # Ok(()) }
        /// ```
        pub fn query_as<T: DeserializeOwned>(
            &self,
            sql: &str,
            params: impl IntoParams,
        ) -> Result<Vec<T>, Error> {
            query_as(self, sql, params)
        }

        /// Like [`query_as`](Self::query_as) for a statement that must return exactly one
        /// row; no row or several rows are an [`Error::Decode`].
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        #[doc = concat!("let n: i64 = ", $v, ".query_one_as(\"SELECT COUNT(*) FROM users\", ())?;")]
        /// # Ok(()) }
        /// ```
        pub fn query_one_as<T: DeserializeOwned>(
            &self,
            sql: &str,
            params: impl IntoParams,
        ) -> Result<T, Error> {
            query_one_as(self, sql, params)
        }

        /// Like [`query_as`](Self::query_as) for a statement that returns at most one row.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        #[doc = concat!("let email: Option<Option<String>> = ", $v, ".query_opt_as(")]
        ///     "SELECT email FROM users WHERE id = :id",
        ///     params! { "id" => 7 },
        /// )?;
        /// # Ok(()) }
        /// ```
        pub fn query_opt_as<T: DeserializeOwned>(
            &self,
            sql: &str,
            params: impl IntoParams,
        ) -> Result<Option<T>, Error> {
            query_opt_as(self, sql, params)
        }

        /// Runs one statement and returns the number of rows it affected.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        #[doc = concat!("let n = ", $v, ".execute(\"DELETE FROM users WHERE id = $1\", (7,))?;")]
        /// # Ok(()) }
        /// ```
        pub fn execute(&self, sql: &str, params: impl IntoParams) -> Result<u64, Error> {
            execute(self, sql, params)
        }

        /// Runs one statement once per item, in one host call and atomically (all or none).
        /// Each item's fields become the named parameters of its run (see [`Named`]). Returns
        /// the total rows affected; an empty slice returns 0 without calling the host.
        ///
        /// The items cross to the host packed: the field names once, every row's values in
        /// one buffer (`execute-batch-packed`), bound exactly as named parameter sets would be.
        /// Items that do not share one set of field names (maps with different keys) go as
        /// named sets instead.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        /// #[derive(serde::Serialize)]
        /// struct User { id: i64, email: Option<String> }
        /// let users = vec![User { id: 1, email: None }, User { id: 2, email: None }];
        #[doc = concat!("let n = ", $v, ".execute_batch(")]
        ///     "INSERT INTO users (id, email) VALUES (:id, :email)",
        ///     &users,
        /// )?;
        /// # Ok(()) }
        /// ```
        pub fn execute_batch<T: Serialize>(&self, sql: &str, items: &[T]) -> Result<u64, Error> {
            execute_batch(self, sql, items)
        }

        /// Runs one statement once per parameter set, in one host call and atomically, with
        /// parameter sets of any [`IntoParams`] kind (positional tuples, [`Params`](crate::Params), ...). It
        /// always calls the host, even with no sets.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        #[doc = concat!("let n = ", $v, ".execute_batch_params(")]
        ///     "INSERT INTO users (id, email) VALUES ($1, $2)",
        ///     [(1, "a@example.com"), (2, "b@example.com")],
        /// )?;
        /// # Ok(()) }
        /// ```
        pub fn execute_batch_params<P: IntoParams>(
            &self,
            sql: &str,
            sets: impl IntoIterator<Item = P>,
        ) -> Result<u64, Error> {
            execute_batch_params(self, sql, sets)
        }

        /// Opens a streaming read: rows arrive in batches (1000 unless
        /// [`Cursor::batch_size`] says otherwise), so a large result never sits in memory
        /// whole. The connection is busy until the cursor is dropped or read to the end.
        ///
        /// ```no_run
        /// # use flowhost_sdk::*;
        /// # fn main() -> Result<(), Error> {
        #[doc = $setup]
        /// #[derive(serde::Deserialize)]
        /// struct User { id: i64 }
        #[doc = concat!("for user in ", $v, ".cursor(\"SELECT id FROM users ORDER BY id\", ())?")]
        ///     .batch_size(500)
        ///     .rows_as::<User>()
        /// {
        ///     let user = user?;
        /// }
        /// # Ok(()) }
        /// ```
        pub fn cursor(&self, sql: &str, params: impl IntoParams) -> Result<Cursor, Error> {
            cursor(self, sql, params)
        }
    };
}

/// A granted database: one pooled connection, taken on first use and held until the last
/// handle (and every [`Tx`] and [`Cursor`] made from it) is dropped. Cloning a `Db` shares the
/// connection and its session.
///
/// ```no_run
/// use flowhost_sdk::{Db, Error};
/// # fn main() -> Result<(), Error> {
/// let db = Db::open("rpa_db")?;
/// let n: i64 = db.query_one_as("SELECT COUNT(*) FROM rpa1_processed_surveys", ())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    conn: Rc<Conn>,
}

impl Db {
    /// Opens the database the manifest grants under `name` (a logical name, never a
    /// connection string). Fails with a [`not granted`](DbError::is_not_granted) error for any
    /// other name.
    ///
    /// ```no_run
    /// # use flowhost_sdk::*;
    /// # fn main() -> Result<(), Error> {
    /// let hub = Db::open("SurveyHub")?;
    /// match Db::open("payroll") {
    ///     Err(e) if e.is_not_granted() => warn!("payroll is not granted: {e}"),
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn open(name: &str) -> Result<Db, Error> {
        let raw = database::open(name).map_err(|e| DbError::from_raw(name, e))?;
        Ok(Db {
            conn: Rc::new(Conn {
                raw,
                name: name.to_owned(),
                backend: OnceCell::new(),
            }),
        })
    }

    /// The logical name this database was opened with.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// assert_eq!(flowhost_sdk::Db::open("rpa_db")?.name(), "rpa_db");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        self.conn.name()
    }

    /// The mode the manifest grants.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// use flowhost_sdk::{Access, Db};
    /// assert_eq!(Db::open("SurveyHub")?.access(), Access::ReadOnly);
    /// # Ok(()) }
    /// ```
    pub fn access(&self) -> Access {
        self.conn.raw.access()
    }

    /// The backend: `postgresql`, `sqlite` or `sqlserver` (asked once, then remembered).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("rpa_db")?;
    /// let now = if db.backend() == "sqlserver" { "SYSUTCDATETIME()" } else { "CURRENT_TIMESTAMP" };
    /// # Ok(()) }
    /// ```
    pub fn backend(&self) -> &str {
        self.conn.backend.get_or_init(|| self.conn.raw.backend())
    }

    /// Starts a transaction. Until it ends, the connection itself refuses calls: use the
    /// [`Tx`]. A `Tx` dropped without [`commit`](Tx::commit) rolls back.
    ///
    /// ```no_run
    /// # use flowhost_sdk::*;
    /// # fn main() -> Result<(), Error> {
    /// let db = Db::open("rpa_db")?;
    /// let tx = db.begin()?;
    /// tx.execute("DELETE FROM rpa1_processed_surveys WHERE status = 'failed'", ())?;
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn begin(&self) -> Result<Tx, Error> {
        let raw = self.conn.raw.begin().map_err(|e| self.conn.error(e))?;
        Ok(Tx {
            raw,
            conn: Rc::clone(&self.conn),
        })
    }

    /// Runs `f` in a transaction: commits when it returns `Ok`, rolls back when it returns
    /// `Err` (and the host rolls back if the flow panics or times out).
    ///
    /// ```no_run
    /// # use flowhost_sdk::*;
    /// # fn main() -> Result<(), Error> {
    /// let db = Db::open("rpa_db")?;
    /// let moved = db.transaction(|tx| {
    ///     let n = tx.execute("UPDATE jobs SET state = 'done' WHERE state = 'ready'", ())?;
    ///     tx.execute("INSERT INTO audit (what) VALUES ($1)", (format!("{n} jobs done"),))?;
    ///     Ok(n)
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx) -> Result<T, Error>) -> Result<T, Error> {
        let tx = self.begin()?;
        match f(&tx) {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(e) => {
                // The flow's error is the one worth reporting; a failed rollback still ends
                // the transaction when the handle drops.
                let _ = tx.rollback();
                Err(e)
            }
        }
    }

    statement_methods!("db", "let db = Db::open(\"rpa_db\")?;");
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("name", &self.conn.name).finish()
    }
}

/// An open transaction, from [`Db::begin`] or [`Db::transaction`]. It has the same statement
/// methods as [`Db`]; dropping it without [`commit`](Tx::commit) rolls it back.
///
/// ```no_run
/// # use flowhost_sdk::*;
/// # fn main() -> Result<(), Error> {
/// let db = Db::open("rpa_db")?;
/// let tx = db.begin()?;
/// tx.execute("DELETE FROM staging", ())?;
/// drop(tx); // rolled back: staging keeps its rows
/// # Ok(()) }
/// ```
pub struct Tx {
    // Field order matters: the transaction resource must drop before the connection.
    raw: Transaction,
    conn: Rc<Conn>,
}

impl Tx {
    /// The logical name of the database this transaction runs on.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("rpa_db")?;
    /// assert_eq!(db.begin()?.db_name(), "rpa_db");
    /// # Ok(()) }
    /// ```
    pub fn db_name(&self) -> &str {
        self.conn.name()
    }

    /// Makes the transaction's work durable.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("rpa_db")?;
    /// let tx = db.begin()?;
    /// tx.execute("DELETE FROM staging", ())?;
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn commit(self) -> Result<(), Error> {
        self.raw.commit().map_err(|e| self.conn.error(e))
    }

    /// Discards the transaction's work.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), flowhost_sdk::Error> {
    /// let db = flowhost_sdk::Db::open("rpa_db")?;
    /// let tx = db.begin()?;
    /// tx.execute("DELETE FROM staging", ())?;
    /// tx.rollback()?;
    /// # Ok(()) }
    /// ```
    pub fn rollback(self) -> Result<(), Error> {
        self.raw.rollback().map_err(|e| self.conn.error(e))
    }

    statement_methods!(
        "tx",
        "let db = Db::open(\"rpa_db\")?;\nlet tx = db.begin()?;"
    );
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx").field("db", &self.conn.name).finish()
    }
}

impl Statements for Db {
    fn conn(&self) -> &Rc<Conn> {
        &self.conn
    }
    fn raw_query(&self, sql: &str, params: &RawParams) -> Result<RowSet, RawDbError> {
        self.conn.raw.query(sql, params)
    }
    fn raw_execute(&self, sql: &str, params: &RawParams) -> Result<u64, RawDbError> {
        self.conn.raw.execute(sql, params)
    }
    fn raw_execute_batch(&self, sql: &str, sets: &[RawParams]) -> Result<u64, RawDbError> {
        self.conn.raw.execute_batch(sql, sets)
    }
    fn raw_execute_batch_packed(
        &self,
        sql: &str,
        names: &[String],
        rows: &[u8],
    ) -> Result<u64, RawDbError> {
        self.conn.raw.execute_batch_packed(sql, names, rows)
    }
    fn raw_cursor(&self, sql: &str, params: &RawParams) -> Result<database::Cursor, RawDbError> {
        self.conn.raw.cursor(sql, params)
    }
}

impl Statements for Tx {
    fn conn(&self) -> &Rc<Conn> {
        &self.conn
    }
    fn raw_query(&self, sql: &str, params: &RawParams) -> Result<RowSet, RawDbError> {
        self.raw.query(sql, params)
    }
    fn raw_execute(&self, sql: &str, params: &RawParams) -> Result<u64, RawDbError> {
        self.raw.execute(sql, params)
    }
    fn raw_execute_batch(&self, sql: &str, sets: &[RawParams]) -> Result<u64, RawDbError> {
        self.raw.execute_batch(sql, sets)
    }
    fn raw_execute_batch_packed(
        &self,
        sql: &str,
        names: &[String],
        rows: &[u8],
    ) -> Result<u64, RawDbError> {
        self.raw.execute_batch_packed(sql, names, rows)
    }
    fn raw_cursor(&self, sql: &str, params: &RawParams) -> Result<database::Cursor, RawDbError> {
        self.raw.cursor(sql, params)
    }
}

impl fmt::Display for Access {
    /// `read-only` or `read-write`, as in the manifest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        })
    }
}
