//! What the two sqlx-driven backends (PostgreSQL, SQLite) share: error conversion, and the
//! driver-trait methods whose code does not depend on the database.

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;

use super::{Conn, Database, DbError, DriverConn};

impl Database {
    /// Converts a sqlx error from this database into a [`DbError`] with secrets scrubbed.
    pub(super) fn error(&self, err: sqlx::Error) -> DbError {
        DbError::from_sqlx(err, self.name(), self.target(), self.redactor())
    }
}

/// Takes a connection from a sqlx pool and lends it as `wrap` makes it.
pub(super) fn acquire<'a, DB, C>(
    pool: &'a sqlx::Pool<DB>,
    db: &'a Database,
    wrap: fn(PoolConnection<DB>) -> C,
) -> BoxFuture<'a, Result<Conn, DbError>>
where
    DB: sqlx::Database,
    C: DriverConn + 'static,
{
    Box::pin(async move {
        let conn = pool.acquire().await.map_err(|e| db.error(e))?;
        Ok(Conn::new(wrap(conn)))
    })
}

/// (open, idle) connections of a sqlx pool.
pub(super) fn occupancy<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> (u32, u32) {
    (pool.size(), pool.num_idle() as u32)
}

/// Runs parameterless SQL through the simple protocol (several statements allowed).
pub(super) fn run_raw<'a, DB>(
    conn: &'a mut PoolConnection<DB>,
    db: &'a Database,
    sql: &'a str,
) -> BoxFuture<'a, Result<(), DbError>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    Box::pin(async move {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        sqlx::raw_sql(sql)
            .execute(&mut **conn)
            .await
            .map(|_| ())
            .map_err(|e| db.error(e))
    })
}

/// Returns a pooled connection to its pool now, rather than on the task its drop would spawn.
///
/// `return_to_pool` is public but hidden in sqlx's docs; it is what the drop runs, awaited
/// here instead of spawned (the version is pinned by Cargo.lock).
pub(super) fn release<DB: sqlx::Database>(mut conn: PoolConnection<DB>) -> BoxFuture<'static, ()> {
    let back = conn.return_to_pool();
    drop(conn);
    Box::pin(back)
}

/// Closes a pooled connection instead of returning it.
pub(super) fn discard<DB: sqlx::Database>(conn: PoolConnection<DB>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let _ = conn.close().await;
    })
}
