//! The seam between the statement path every backend shares and the drivers: a backend is a
//! [`DriverPool`] that lends [`DriverConn`]s. Everything outside the backend's own files talks
//! to these two traits (through [`Pool`](super::Pool) and [`Conn`](super::Conn)), so adding a
//! backend touches `db/` alone.
//!
//! The methods return boxed futures rather than being `async fn`s: the traits are used as
//! trait objects, one per configured database, and a boxed future per call costs nanoseconds
//! next to a round trip to the server.

use std::fmt::Debug;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::packed_rows::{PackedStream, PackedValues};
use super::{BatchRows, Conn, Database, DbError, Pool, RowStream, ServerSession, Statement};
use crate::bindings::types::{Column, Value};
use crate::sql::postgres::FunctionName;

/// One backend's pool of connections to one database.
pub trait DriverPool: Send + Sync + Debug {
    /// Takes a connection, waiting at most the pool's acquire timeout.
    fn acquire<'a>(&'a self, db: &'a Database) -> BoxFuture<'a, Result<Conn, DbError>>;

    /// A connection no other user of the pool can get, for a lock that lives as long as the
    /// connection (the migration lock). Returns the private pool to close afterwards, if the
    /// backend made one; backends whose database exists only on the shared pool's connection
    /// (an in-memory SQLite) lend a shared one.
    fn dedicated<'a>(
        &'a self,
        db: &'a Database,
        application_name: &'a str,
    ) -> BoxFuture<'a, Result<(Conn, Option<Pool>), DbError>>;

    /// (connections open, of which idle).
    fn occupancy(&self) -> (u32, u32);

    /// Closes every connection and refuses new ones.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// Stops, from outside, a guest session whose connection is in an unknown state (a
    /// deadline passed mid-statement, a cursor was dropped mid-result), so that no statement
    /// keeps running and no lock stays held after its connection is closed. Best effort.
    fn end_session<'a>(&'a self, db: &'a Database, session: &'a ServerSession)
    -> BoxFuture<'a, ()>;
}

/// One connection lent by a [`DriverPool`].
pub trait DriverConn: Send + Debug {
    /// Runs trusted SQL that takes no parameters and returns nothing (transaction control,
    /// cleanup, migration scripts). It may hold several statements.
    fn run_raw<'a>(
        &'a mut self,
        db: &'a Database,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<(), DbError>>;

    /// Starts one statement; its rows arrive through the stream, decoded. The stream borrows
    /// the connection; the statement and values are needed only until it starts.
    fn open_stream<'c, 'v>(
        &'c mut self,
        db: &'c Database,
        stmt: &'v Statement,
        values: &'v [&'v Value],
    ) -> BoxFuture<'v, Result<(Vec<Column>, RowStream<'c>), DbError>>
    where
        'c: 'v;

    /// Starts one statement whose rows are packed as they are read (for cursors). By default
    /// they are decoded to values and packed from those; a backend that can pack straight
    /// from the driver's bytes does so.
    fn open_packed<'c, 'v>(
        &'c mut self,
        db: &'c Database,
        stmt: &'v Statement,
        values: &'v [&'v Value],
    ) -> BoxFuture<'v, Result<(Vec<Column>, PackedStream<'c>), DbError>>
    where
        'c: 'v,
    {
        Box::pin(async move {
            let (columns, rows) = self.open_stream(db, stmt, values).await?;
            let rows: PackedStream<'c> = Box::pin(PackedValues(rows));
            Ok((columns, rows))
        })
    }

    /// Runs one statement and returns the rows it affected.
    fn execute<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        values: &'a [&'a Value],
    ) -> BoxFuture<'a, Result<u64, DbError>>;

    /// Writes `rows` of `stmt`, a one-row `INSERT ... VALUES`, through the backend's bulk path
    /// when it has one with INSERT's semantics and the statement and values suit it. `None`:
    /// nothing was written, send multi-row INSERTs. Runs inside the batch's transaction.
    fn bulk_insert<'a>(
        &'a mut self,
        _db: &'a Database,
        _stmt: &'a Statement,
        _rows: &'a [Vec<&'a Value>],
    ) -> BoxFuture<'a, Option<Result<u64, DbError>>> {
        Box::pin(async { None })
    }

    /// [`bulk_insert`](Self::bulk_insert) for rows read where they are (a packed batch), without
    /// making a `Value` of each. `None`: this backend has no such path, or the statement or
    /// values do not suit it; nothing was written.
    fn bulk_insert_in_place<'a>(
        &'a mut self,
        _db: &'a Database,
        _stmt: &'a Statement,
        _rows: &'a dyn BatchRows,
    ) -> BoxFuture<'a, Option<Result<u64, DbError>>> {
        Box::pin(async { None })
    }

    /// Prepares a guest session: the statement timeout (never past the run's deadline) and, for
    /// a read-only grant, the database's own read-only mode where it has one.
    fn start_session<'a>(
        &'a mut self,
        db: &'a Database,
        read_only: bool,
        statement_timeout: Duration,
    ) -> BoxFuture<'a, Result<ServerSession, DbError>>;

    /// Undoes every piece of session state a flow could have left (the transaction is already
    /// rolled back) and checks that it took. `Err` says why the connection must not be pooled
    /// again.
    fn reset_session<'a>(
        &'a mut self,
        db: &'a Database,
        session: Option<&'a ServerSession>,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Refuses a read-only statement calling any of `functions` that may have side effects.
    /// `Ok(true)`: it runs user-defined code, which may change session settings. Backends that
    /// cannot tell (or whose functions cannot write) accept.
    fn check_functions<'a>(
        &'a mut self,
        _db: &'a Database,
        _functions: &'a [FunctionName],
    ) -> BoxFuture<'a, Result<bool, DbError>> {
        Box::pin(async { Ok(false) })
    }

    /// Whether the connection can take another statement. A backend that gives a connection up
    /// mid-response (a client-side deadline) says so here, and the session replaces it.
    fn is_usable(&self) -> bool {
        true
    }

    /// When dropped, the connection is closed instead of returned to the pool: for a drop path
    /// that cannot wait (a `Drop` impl), where its state is unknown.
    fn close_on_drop(&mut self);

    /// Closes the connection instead of returning it to the pool.
    fn discard(self: Box<Self>) -> BoxFuture<'static, ()>;

    /// Returns the connection to its pool; once the future is done, the next `acquire` finds
    /// it idle. Dropping it returns it too, but later, on a task of its own.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        drop(self);
        Box::pin(std::future::ready(()))
    }
}
