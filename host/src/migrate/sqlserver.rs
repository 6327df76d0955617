//! The SQL Server migration lock: an exclusive, session-owned application lock
//! (`sp_getapplock`) on a resource named after the history table, the counterpart of the
//! PostgreSQL advisory lock in [`lock`](super::lock).
//!
//! The T-SQL, the meaning of its results, and [`AppLock`], which runs them through the
//! connection's host SQL. A session-owned lock outlives transactions, so migrations can commit one by one
//! under it, and it is released by [`release_applock_sql`] or when the session ends. It is
//! reentrant: a session that takes it twice must release it twice.
//!
//! Reference: `sp_getapplock`, `sp_releaseapplock` and `sys.dm_tran_locks` in the SQL Server
//! documentation (parameters `@Resource`, `@LockMode`, `@LockOwner`, `@LockTimeout`; return
//! codes 0, 1, -1, -2, -3, -999; APPLICATION resources described as
//! `<DbPrincipalId>:[<first 32 characters>]:(<hash>)`).

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::error::MigrateError;
use super::history::HistoryTable;
use super::lock::MigrationLock;
use crate::db::{Conn, Database, DbError};

/// Length of [`applock_resource`]'s names: `sys.dm_tran_locks` shows only the first 32
/// characters of an application lock's resource, so a name this short can be found there.
const RESOURCE_LEN: usize = 32;
const RESOURCE_PREFIX: &str = "flowhost-migrate-";

/// The applock resource for one history table in one database+schema (<= 255 chars, stable,
/// distinct per input).
///
/// `flowhost-migrate-` and 15 hex digits (60 bits) of a SHA-256 over the three names, 32
/// characters in all, so [`applock_holder_sql`] can find it in `sys.dm_tran_locks`. The names
/// are lowercased first: under the usual case-insensitive collations `App.dbo.History` and
/// `app.dbo.history` are one table and must share one lock.
pub fn applock_resource(database: &str, schema: &str, table: &str) -> String {
    let key = format!(
        "flowhost-migrate\0{}\0{}\0{}",
        database.to_lowercase(),
        schema.to_lowercase(),
        table.to_lowercase()
    );
    let digest = hex::encode(Sha256::digest(key));
    let mut out = String::with_capacity(RESOURCE_LEN);
    out.push_str(RESOURCE_PREFIX);
    out.push_str(&digest[..RESOURCE_LEN - RESOURCE_PREFIX.len()]);
    out
}

/// A T-SQL batch taking an exclusive session-owned applock, waiting at most `timeout`,
/// returning one row with sp_getapplock's result code.
///
/// The row has one `int` column, `result`, for [`interpret_applock_result`]. The timeout goes
/// in whole milliseconds, rounded up (so a non-zero timeout never becomes "do not wait") and
/// capped at `i32::MAX` (about 24.8 days); zero means "fail at once if the lock is taken".
pub fn get_applock_sql(resource: &str, timeout: Duration) -> String {
    format!(
        "DECLARE @result int;\n\
         EXEC @result = sys.sp_getapplock @Resource = {}, @LockMode = 'Exclusive', \
         @LockOwner = 'Session', @LockTimeout = {};\n\
         SELECT @result AS result;",
        nstring(resource),
        timeout_ms(timeout)
    )
}

/// A T-SQL batch releasing the session-owned applock on `resource`, returning one row with
/// sp_releaseapplock's result code (`result`: 0 released, -999 not released). Releasing a lock
/// the session does not hold also raises error 1223.
pub fn release_applock_sql(resource: &str) -> String {
    format!(
        "DECLARE @result int;\n\
         EXEC @result = sys.sp_releaseapplock @Resource = {}, @LockOwner = 'Session';\n\
         SELECT @result AS result;",
        nstring(resource)
    )
}

/// How the lock was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppLockGranted {
    /// At once (return code 0).
    Immediately,
    /// After waiting for another holder to release it (return code 1).
    AfterWaiting,
}

/// Why `sp_getapplock` did not grant the lock; each message says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppLockRefused {
    /// Return code -1: another session held the lock for the whole timeout.
    #[error(
        "another migrator held the SQL Server migration lock (sp_getapplock) for the whole lock \
         timeout; wait for it to finish and run again, or raise the lock timeout if its \
         migrations take longer"
    )]
    Timeout,
    /// Return code -2: the request was cancelled.
    #[error(
        "the request for the SQL Server migration lock was cancelled (sp_getapplock returned \
         -2); nothing was migrated, run again"
    )]
    Cancelled,
    /// Return code -3: the request was chosen as a deadlock victim.
    #[error(
        "the request for the SQL Server migration lock was chosen as a deadlock victim \
         (sp_getapplock returned -3); nothing was migrated, run again"
    )]
    Deadlock,
    /// Return code -999 (a parameter validation or other call error), or a code the
    /// documentation does not list.
    #[error(
        "SQL Server refused the migration lock: sp_getapplock returned {0} (a parameter or call \
         error); check the server's error messages and that the login may call sp_getapplock \
         in this database"
    )]
    Error(i32),
}

/// The meaning of sp_getapplock's return code: Ok for 0/1 (granted, granted after waiting);
/// Err([`AppLockRefused`]) otherwise, each with a Display saying what to do.
///
/// Codes the documentation does not list count as errors even when positive: the lock is
/// only known to be held on 0 and 1.
pub fn interpret_applock_result(code: i32) -> Result<AppLockGranted, AppLockRefused> {
    match code {
        0 => Ok(AppLockGranted::Immediately),
        1 => Ok(AppLockGranted::AfterWaiting),
        -1 => Err(AppLockRefused::Timeout),
        -2 => Err(AppLockRefused::Cancelled),
        -3 => Err(AppLockRefused::Deadlock),
        other => Err(AppLockRefused::Error(other)),
    }
}

/// The SQL listing who holds the applock (sys.dm_tran_locks joined with sys.dm_exec_sessions:
/// session id, program_name, login, host), for the timeout message.
///
/// Columns: `session_id` int, `program_name`, `login_name`, `host_name`, `login_time`
/// (`yyyy-mm-dd hh:mi:ss`, server time) as nvarchar, empty when unknown. Finds the lock only
/// for resources of at most 32 characters, such as [`applock_resource`]'s. Seeing other
/// sessions needs VIEW SERVER STATE (VIEW DATABASE STATE on Azure SQL Database); without it
/// the query fails or returns nothing, which callers should report as "holder unknown".
pub fn applock_holder_sql(resource: &str) -> String {
    // `resource_description` reads `<principal id>:[<resource>]:(<hash>)`. The documentation
    // spells granted requests GRANTED, servers report GRANT; CONVERT holds a granted mode too.
    format!(
        "SELECT l.request_session_id AS session_id, \
         COALESCE(s.program_name, N'') AS program_name, \
         COALESCE(s.login_name, N'') AS login_name, \
         COALESCE(s.host_name, N'') AS host_name, \
         COALESCE(CONVERT(nvarchar(19), s.login_time, 120), N'') AS login_time \
         FROM sys.dm_tran_locks AS l \
         LEFT JOIN sys.dm_exec_sessions AS s ON s.session_id = l.request_session_id \
         WHERE l.resource_type = N'APPLICATION' \
         AND l.resource_database_id = DB_ID() \
         AND l.request_status IN (N'GRANT', N'GRANTED', N'CONVERT') \
         AND l.request_session_id <> @@SPID \
         AND CHARINDEX({}, l.resource_description) > 0 \
         ORDER BY l.request_session_id;",
        nstring(&format!(":[{resource}]:"))
    )
}

/// SQL Server's migration lock: the session-owned applock on [`applock_resource`].
#[derive(Debug, Default)]
pub struct AppLock {
    /// The resource held, once taken.
    resource: Option<String>,
}

impl MigrationLock for AppLock {
    fn take<'a>(
        &'a mut self,
        conn: &'a mut Conn,
        db: &'a Database,
        table: &'a HistoryTable,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), MigrateError>> {
        Box::pin(async move {
            let context = |action: &str, e| {
                MigrateError::database(format!("{action} for database {}", db.name()), e)
            };
            let names = conn
                .host_query(db, "SELECT DB_NAME(), SCHEMA_NAME()", &[])
                .await
                .map_err(|e| context("find the migration lock's name", e))?;
            let (database, schema): (String, String) = names
                .first()
                .ok_or_else(|| "no row".to_owned())
                .and_then(|r| Ok((r.at(0)?, r.at(1)?)))
                .map_err(|e| {
                    context(
                        "find the migration lock's name",
                        DbError::conversion(db.name(), e),
                    )
                })?;
            let resource = applock_resource(&database, &schema, table.name());
            let started = Instant::now();
            let code: i32 = conn
                .host_scalar(db, &get_applock_sql(&resource, timeout), &[])
                .await
                .map_err(|e| context("take the migration lock", e))?;
            match interpret_applock_result(code) {
                Ok(granted) => {
                    if granted == AppLockGranted::AfterWaiting {
                        tracing::info!(database = %db.name(), waited_ms = started.elapsed().as_millis() as u64, "took the migration lock after waiting for another migrator");
                    }
                    self.resource = Some(resource);
                    Ok(())
                }
                Err(AppLockRefused::Timeout) => Err(MigrateError::LockTimeout {
                    database: db.name().to_owned(),
                    waited: started.elapsed(),
                    holder: applock_holder(conn, db, &resource).await,
                }),
                Err(refused) => Err(context(
                    "take the migration lock",
                    DbError::invalid(db.name(), refused.to_string()),
                )),
            }
        })
    }

    fn release<'a>(&'a mut self, conn: &'a mut Conn, db: &'a Database) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(resource) = self.resource.take() else {
                return true;
            };
            match conn
                .host_scalar::<i32>(db, &release_applock_sql(&resource), &[])
                .await
            {
                Ok(0) => true,
                Ok(code) => {
                    tracing::warn!(database = %db.name(), code, "sp_releaseapplock did not release the migration lock; closing the connection, which releases it");
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

/// Who holds the applock, as well as the server will say (VIEW SERVER STATE is needed to see
/// other sessions; without it the holder is unknown).
async fn applock_holder(conn: &mut Conn, db: &Database, resource: &str) -> Option<String> {
    let rows = conn
        .host_query(db, &applock_holder_sql(resource), &[])
        .await
        .ok()?;
    let holders: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let id: i64 = r.get("session_id").ok()?;
            let field = |name: &str| r.get::<String>(name).ok().filter(|v| !v.is_empty());
            let mut who = format!("session {id}");
            let details: Vec<String> = [
                field("program_name").map(|p| format!("program '{p}'")),
                field("login_name").map(|l| format!("login {l}")),
                field("host_name").map(|h| format!("from {h}")),
                field("login_time").map(|t| format!("logged in {t}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !details.is_empty() {
                who.push_str(&format!(" ({})", details.join(", ")));
            }
            Some(who)
        })
        .collect();
    (!holders.is_empty()).then(|| holders.join(", "))
}

/// `s` as a T-SQL Unicode string literal.
fn nstring(s: &str) -> String {
    format!("N'{}'", s.replace('\'', "''"))
}

/// `timeout` in milliseconds for `@LockTimeout`: rounded up, at most `i32::MAX`.
fn timeout_ms(timeout: Duration) -> i32 {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_short_stable_and_distinct() {
        let base = applock_resource("rpa", "dbo", "flowhost_schema_history");
        assert_eq!(base.len(), 32);
        assert!(base.starts_with("flowhost-migrate-"));
        assert!(base[17..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            base,
            applock_resource("rpa", "dbo", "flowhost_schema_history")
        );
        assert_eq!(
            base,
            applock_resource("RPA", "DBO", "Flowhost_Schema_History")
        );
        assert_ne!(
            base,
            applock_resource("rpa2", "dbo", "flowhost_schema_history")
        );
        assert_ne!(
            base,
            applock_resource("rpa", "etl", "flowhost_schema_history")
        );
        assert_ne!(base, applock_resource("rpa", "dbo", "other_history"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            applock_resource("ab", "c", "t"),
            applock_resource("a", "bc", "t")
        );
        // Names with quotes or non-ASCII letters still give a plain, quote-free name.
        let odd = applock_resource("o'brien", "sch]ema", "Tabelle_Ä");
        assert_eq!(odd.len(), 32);
        assert!(!odd.contains('\''));
    }

    #[test]
    fn get_applock_sql_is_exact() {
        assert_eq!(
            get_applock_sql("flowhost-migrate-0123456789abcde", Duration::from_secs(60)),
            "DECLARE @result int;\n\
             EXEC @result = sys.sp_getapplock @Resource = N'flowhost-migrate-0123456789abcde', \
             @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 60000;\n\
             SELECT @result AS result;"
        );
    }

    #[test]
    fn release_applock_sql_is_exact() {
        assert_eq!(
            release_applock_sql("flowhost-migrate-0123456789abcde"),
            "DECLARE @result int;\n\
             EXEC @result = sys.sp_releaseapplock \
             @Resource = N'flowhost-migrate-0123456789abcde', @LockOwner = 'Session';\n\
             SELECT @result AS result;"
        );
    }

    #[test]
    fn quotes_in_names_are_doubled() {
        let sql = get_applock_sql("it's '; DROP TABLE t; --", Duration::ZERO);
        assert!(
            sql.contains("@Resource = N'it''s ''; DROP TABLE t; --', @LockMode"),
            "{sql}"
        );
        let sql = release_applock_sql("a'b");
        assert!(sql.contains("@Resource = N'a''b', @LockOwner"), "{sql}");
        let sql = applock_holder_sql("a'b");
        assert!(
            sql.contains("CHARINDEX(N':[a''b]:', l.resource_description)"),
            "{sql}"
        );
        // Every literal in the generated SQL is balanced: an even number of quotes.
        for sql in [
            get_applock_sql("x'''y", Duration::ZERO),
            release_applock_sql("'"),
            applock_holder_sql("''"),
        ] {
            assert_eq!(sql.matches('\'').count() % 2, 0, "{sql}");
        }
    }

    #[test]
    fn timeouts_in_milliseconds() {
        let ms = |d: Duration| {
            let sql = get_applock_sql("r", d);
            let tail = sql.split("@LockTimeout = ").nth(1).unwrap();
            tail[..tail.find(';').unwrap()].to_owned()
        };
        assert_eq!(ms(Duration::ZERO), "0");
        assert_eq!(ms(Duration::from_millis(1500)), "1500");
        assert_eq!(ms(Duration::from_micros(1)), "1");
        assert_eq!(ms(Duration::from_micros(2500)), "3");
        assert_eq!(ms(Duration::from_secs(2_147_483)), "2147483000");
        assert_eq!(ms(Duration::from_secs(2_147_484)), i32::MAX.to_string());
        assert_eq!(ms(Duration::MAX), i32::MAX.to_string());
    }

    #[test]
    fn every_return_code() {
        assert_eq!(interpret_applock_result(0), Ok(AppLockGranted::Immediately));
        assert_eq!(
            interpret_applock_result(1),
            Ok(AppLockGranted::AfterWaiting)
        );
        assert_eq!(interpret_applock_result(-1), Err(AppLockRefused::Timeout));
        assert_eq!(interpret_applock_result(-2), Err(AppLockRefused::Cancelled));
        assert_eq!(interpret_applock_result(-3), Err(AppLockRefused::Deadlock));
        assert_eq!(
            interpret_applock_result(-999),
            Err(AppLockRefused::Error(-999))
        );
        for code in [2, 103, -4, i32::MIN, i32::MAX] {
            assert_eq!(
                interpret_applock_result(code),
                Err(AppLockRefused::Error(code))
            );
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let text = |code| interpret_applock_result(code).unwrap_err().to_string();
        assert!(text(-1).contains("raise the lock timeout"), "{}", text(-1));
        assert!(text(-2).contains("-2") && text(-2).contains("run again"));
        assert!(text(-3).contains("deadlock victim") && text(-3).contains("run again"));
        assert!(text(-999).contains("returned -999") && text(-999).contains("check"));
    }

    #[test]
    fn holder_sql_is_exact() {
        assert_eq!(
            applock_holder_sql("flowhost-migrate-0123456789abcde"),
            "SELECT l.request_session_id AS session_id, \
             COALESCE(s.program_name, N'') AS program_name, \
             COALESCE(s.login_name, N'') AS login_name, \
             COALESCE(s.host_name, N'') AS host_name, \
             COALESCE(CONVERT(nvarchar(19), s.login_time, 120), N'') AS login_time \
             FROM sys.dm_tran_locks AS l \
             LEFT JOIN sys.dm_exec_sessions AS s ON s.session_id = l.request_session_id \
             WHERE l.resource_type = N'APPLICATION' \
             AND l.resource_database_id = DB_ID() \
             AND l.request_status IN (N'GRANT', N'GRANTED', N'CONVERT') \
             AND l.request_session_id <> @@SPID \
             AND CHARINDEX(N':[flowhost-migrate-0123456789abcde]:', l.resource_description) > 0 \
             ORDER BY l.request_session_id;"
        );
    }

    #[test]
    fn generated_sql_lexes_as_tsql() {
        // The batches must survive flowhost's own T-SQL lexer and splitter intact.
        use crate::sql::{Backend, split_statements};
        let r = applock_resource("rpa", "dbo", "flowhost_schema_history");
        for sql in [
            get_applock_sql(&r, Duration::from_secs(5)),
            release_applock_sql(&r),
            applock_holder_sql(&r),
        ] {
            let spans = split_statements(&sql, Backend::SqlServer).unwrap();
            assert_eq!(spans.len(), 1);
            assert_eq!(spans[0].sql, sql);
        }
    }
}
