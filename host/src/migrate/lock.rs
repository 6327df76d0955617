//! The connection migrations run on, and the lock that keeps two migrators apart.
//!
//! The lock is a [`MigrationLock`], one per backend: PostgreSQL's session advisory lock keyed on
//! (server database, schema, history table), taken by polling `pg_try_advisory_lock` (a waiter
//! holds no lock queue entry and no snapshot) and bounded by a timeout that names the holder;
//! SQL Server's session-owned `sp_getapplock` ([`AppLock`]); and SQLite's own write lock (each
//! migration runs under `BEGIN IMMEDIATE` and re-reads the history inside it, see `apply`).
//!
//! On PostgreSQL the connection is a dedicated one, outside the shared pool (see
//! [`Database::dedicated`]), named `flowhost-migrate` in `pg_stat_activity`; it is closed when
//! migrating ends, which releases the lock even if the unlock failed. SQLite uses a pooled
//! connection.
//!
//! The connection lives in a [`MigrationConn`] guard. Dropped without release — an error path
//! that forgot, a panic, a cancelled future — it is closed rather than pooled, and closing the
//! session releases the lock.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::error::MigrateError;
use futures_util::future::BoxFuture;

use super::history::HistoryTable;
use super::sqlserver::AppLock;
use crate::bindings::types::Value;
use crate::db::{Backend, Conn, Database, DbError, Pool};

/// How migration connections name themselves to PostgreSQL (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "flowhost-migrate";

/// How often a waiting migrator asks for the lock again.
const POLL: Duration = Duration::from_millis(100);

/// A connection held for migrating, with the migration lock when the backend has one.
#[derive(Debug)]
pub struct MigrationConn {
    conn: Option<Conn>,
    /// The private pool of a dedicated connection (PostgreSQL), closed at release.
    private: Option<Pool>,
    /// The backend's migration lock, held on this connection from acquire to release.
    lock: Box<dyn MigrationLock>,
    /// Migration SQL ran on this connection: its session state is unknown.
    dirty: bool,
    /// A rollback failed: a transaction may still be open.
    broken: bool,
}

impl MigrationConn {
    /// Takes a connection and the backend's migration lock, waiting at most `timeout`.
    pub async fn acquire(
        db: &Database,
        table: &HistoryTable,
        timeout: Duration,
    ) -> Result<MigrationConn, MigrateError> {
        let (conn, private) = db.dedicated(APPLICATION_NAME).await?;
        let mut this = MigrationConn {
            conn: Some(conn),
            private,
            lock: lock_for(db.backend()),
            dirty: false,
            broken: false,
        };
        let conn = this.conn.as_mut().expect("just set");
        this.lock.take(conn, db, table, timeout).await?;
        Ok(this)
    }

    pub fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("the connection is held until release")
    }

    /// Marks the connection as having run migration SQL.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Rolls back the open transaction. A failed rollback is logged and the connection is
    /// closed at release (closing rolls back too), so callers can go on reporting the error
    /// that led here.
    pub async fn rollback(&mut self, db: &Database) {
        if let Err(e) = self.conn().run_raw(db, db.backend().rollback_sql()).await {
            // SQLite ends the transaction itself on some errors (disk full, I/O); then there is
            // nothing to roll back and the connection is fine.
            if e.to_string().contains("no transaction is active") {
                return;
            }
            tracing::warn!(database = %db.name(), error = %e, "rollback after a failed migration step failed; the connection will be closed");
            self.broken = true;
        }
    }

    /// Unlocks and hands the connection back: to the pool when its session can be trusted,
    /// otherwise closed.
    ///
    /// A PostgreSQL session that ran migration scripts is closed (a script may have changed
    /// `search_path`, the role or other settings). A SQLite connection goes back unless a
    /// rollback failed: closing the only connection of an in-memory database would drop the
    /// database, and SQLite scripts run inside a transaction, where the settings that matter
    /// (`PRAGMA foreign_keys`) cannot change.
    pub async fn release(mut self, db: &Database) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let mut clean = match db.backend() {
            Backend::Sqlite => !self.broken,
            _ => !self.dirty && !self.broken,
        };
        if !self.lock.release(&mut conn, db).await {
            clean = false;
        }
        if !clean || self.private.is_some() {
            conn.discard().await;
        }
        if let Some(private) = self.private.take() {
            private.close().await;
        }
    }
}

impl Drop for MigrationConn {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Not released: the lock may be held or a transaction open. Never pool it (for an
            // in-memory SQLite database this loses the database, but only on a panic or a
            // cancelled migration, where a half-known state is worse).
            conn.close_on_drop();
        }
    }
}

/// A lock that keeps two migrators of one history table apart. Taken on the migration
/// connection before the history is read, held until [`MigrationConn::release`]; a session lock,
/// so closing the connection releases it too.
pub trait MigrationLock: std::fmt::Debug + Send + Sync {
    /// Takes the lock, waiting at most `timeout`; the error names who holds it when it can.
    fn take<'a>(
        &'a mut self,
        conn: &'a mut Conn,
        db: &'a Database,
        table: &'a HistoryTable,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), MigrateError>>;

    /// Releases the lock if it is held. `false`: it had been released already, or releasing
    /// failed; the connection is then closed rather than pooled (which releases it).
    fn release<'a>(&'a mut self, conn: &'a mut Conn, db: &'a Database) -> BoxFuture<'a, bool>;
}

/// The lock for `backend`.
fn lock_for(backend: Backend) -> Box<dyn MigrationLock> {
    match backend {
        Backend::Postgres => Box::new(AdvisoryLock::default()),
        Backend::SqlServer => Box::new(AppLock::default()),
        Backend::Sqlite => Box::new(WriteLock),
    }
}

/// SQLite: no lock of its own. Each migration runs under `BEGIN IMMEDIATE`, SQLite's write
/// lock, and re-reads the history inside it (see `apply`), so a second migrator waits for the
/// first's transaction and then sees its work.
#[derive(Debug)]
struct WriteLock;

impl MigrationLock for WriteLock {
    fn take<'a>(
        &'a mut self,
        _: &'a mut Conn,
        _: &'a Database,
        _: &'a HistoryTable,
        _: Duration,
    ) -> BoxFuture<'a, Result<(), MigrateError>> {
        Box::pin(async { Ok(()) })
    }

    fn release<'a>(&'a mut self, _: &'a mut Conn, _: &'a Database) -> BoxFuture<'a, bool> {
        Box::pin(async { true })
    }
}

/// PostgreSQL: a session advisory lock keyed on (server database, schema, history table),
/// polled with `pg_try_advisory_lock` so a waiter holds no lock queue entry and no snapshot.
#[derive(Debug, Default)]
struct AdvisoryLock {
    /// The key held, once taken.
    key: Option<i64>,
}

impl MigrationLock for AdvisoryLock {
    fn take<'a>(
        &'a mut self,
        conn: &'a mut Conn,
        db: &'a Database,
        table: &'a HistoryTable,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), MigrateError>> {
        Box::pin(self.take_now(conn, db, table, timeout))
    }

    fn release<'a>(&'a mut self, conn: &'a mut Conn, db: &'a Database) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(key) = self.key.take() else {
                return true;
            };
            let unlocked: Result<bool, _> = conn
                .host_scalar(db, "SELECT pg_advisory_unlock($1)", &[Value::Int(key)])
                .await;
            match unlocked {
                Ok(true) => true,
                Ok(false) => {
                    tracing::warn!(database = %db.name(), "the migration lock was already released (did a migration call pg_advisory_unlock_all?)");
                    false
                }
                Err(e) => {
                    tracing::warn!(database = %db.name(), error = %e, "could not release the migration lock; closing the connection, which releases it");
                    false
                }
            }
        })
    }
}

impl AdvisoryLock {
    async fn take_now(
        &mut self,
        conn: &mut Conn,
        db: &Database,
        table: &HistoryTable,
        timeout: Duration,
    ) -> Result<(), MigrateError> {
        let context = |action: &str, source| {
            MigrateError::database(format!("{action} for database {}", db.name()), source)
        };
        let rows = conn
            .host_query(
                db,
                "SELECT current_database()::text, COALESCE(current_schema(), '')::text",
                &[],
            )
            .await
            .map_err(|e| context("find the migration lock's key", e))?;
        let (database, schema): (String, String) = rows
            .first()
            .ok_or_else(|| "no row".to_owned())
            .and_then(|r| Ok((r.at(0)?, r.at(1)?)))
            .map_err(|e| {
                context(
                    "find the migration lock's key",
                    DbError::conversion(db.name(), e),
                )
            })?;
        let key = lock_key(&database, &schema, table.name());
        let started = Instant::now();
        loop {
            let got: bool = conn
                .host_scalar(db, "SELECT pg_try_advisory_lock($1)", &[Value::Int(key)])
                .await
                .map_err(|e| context("take the migration lock", e))?;
            if got {
                if started.elapsed() >= POLL {
                    tracing::info!(database = %db.name(), waited_ms = started.elapsed().as_millis() as u64, "took the migration lock after waiting for another migrator");
                }
                self.key = Some(key);
                return Ok(());
            }
            if started.elapsed() >= timeout {
                let holder = lock_holder(conn, db, key).await;
                return Err(MigrateError::LockTimeout {
                    database: db.name().to_owned(),
                    waited: started.elapsed(),
                    holder,
                });
            }
            if started.elapsed() < POLL {
                tracing::info!(database = %db.name(), "another migrator holds the migration lock; waiting");
            }
            let left = timeout.saturating_sub(started.elapsed());
            tokio::time::sleep(POLL.min(left).max(Duration::from_millis(1))).await;
        }
    }
}

/// The advisory lock key for one history table in one server database and schema.
pub fn lock_key(database: &str, schema: &str, table: &str) -> i64 {
    let digest = Sha256::digest(format!("flowhost-migrate\0{database}\0{schema}\0{table}"));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The oldest migration lock held in this database now: how long its holder has held it (its
/// transaction, else its session) and who it is. PostgreSQL only: SQL Server's application
/// lock and SQLite's write lock are not visible this way, so they report `None`.
pub async fn oldest_lock(conn: &mut Conn, db: &Database) -> Result<Option<(f64, String)>, DbError> {
    if db.backend() != Backend::Postgres {
        return Ok(None);
    }
    let sql = "SELECT EXTRACT(EPOCH FROM now() - COALESCE(a.xact_start, a.backend_start))::float8, \
               a.pid \
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
               WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               ORDER BY 1 DESC LIMIT 1";
    let rows = conn
        .host_query(db, sql, &[Value::Text(APPLICATION_NAME.into())])
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let seconds: f64 = row.at(0).map_err(|e| DbError::conversion(db.name(), e))?;
    let pid: i32 = row.at(1).map_err(|e| DbError::conversion(db.name(), e))?;
    Ok(Some((
        seconds,
        format!("pid {pid} (application '{APPLICATION_NAME}')"),
    )))
}

/// Who holds advisory lock `key` in this database, as well as the server will say.
async fn lock_holder(conn: &mut Conn, db: &Database, key: i64) -> Option<String> {
    // A bigint advisory key is stored as classid = high 32 bits, objid = low 32 bits, objsubid 1.
    let high = (key >> 32) & 0xFFFF_FFFF;
    let low = key & 0xFFFF_FFFF;
    let sql = "SELECT l.pid, COALESCE(a.application_name, ''), COALESCE(a.usename::text, ''), \
               COALESCE(a.client_addr::text, 'local'), \
               COALESCE(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '') \
               FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let rows = conn
        .host_query(db, sql, &[Value::Int(high), Value::Int(low)])
        .await
        .ok()?;
    let rows: Vec<(i32, String, String, String, String)> = rows
        .iter()
        .map(|r| Ok((r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?, r.at(4)?)))
        .collect::<Result<_, String>>()
        .ok()?;
    let holders: Vec<String> = rows
        .into_iter()
        .map(|(pid, app, user, addr, since)| {
            let app = if app.is_empty() {
                "unnamed".to_owned()
            } else {
                format!("'{app}'")
            };
            let mut who = format!("pid {pid} (application {app}");
            if !user.is_empty() {
                who.push_str(&format!(", user {user}"));
            }
            who.push_str(&format!(", from {addr}"));
            if !since.is_empty() {
                who.push_str(&format!(", connected since {since}"));
            }
            who.push(')');
            who
        })
        .collect();
    (!holders.is_empty()).then(|| holders.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_gets_its_own_lock() {
        for (backend, lock) in [
            (Backend::Postgres, "AdvisoryLock"),
            (Backend::SqlServer, "AppLock"),
            (Backend::Sqlite, "WriteLock"),
        ] {
            assert!(
                format!("{:?}", lock_for(backend)).starts_with(lock),
                "{backend}"
            );
        }
    }

    #[test]
    fn lock_keys_differ_by_database_schema_and_table() {
        let base = lock_key("rpa", "public", "flowhost_schema_history");
        assert_eq!(base, lock_key("rpa", "public", "flowhost_schema_history"));
        assert_ne!(base, lock_key("rpa2", "public", "flowhost_schema_history"));
        assert_ne!(base, lock_key("rpa", "etl", "flowhost_schema_history"));
        assert_ne!(base, lock_key("rpa", "public", "other_history"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(lock_key("ab", "c", "t"), lock_key("a", "bc", "t"));
    }
}
