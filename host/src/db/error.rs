//! Database errors, shaped like the WIT `db-error` so a flow sees what went wrong.

use std::borrow::Cow;

use crate::bindings::types as wit;

/// Why a database operation failed. Messages never carry connection strings or passwords: every
/// message built from a driver error passes through [`Redactor::scrub`] first.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The manifest does not grant this database to the flow.
    #[error("database '{0}' is not granted to this flow; add it under [databases] in the manifest")]
    NotGranted(String),
    /// The grant is read-only and the statement is not a read.
    #[error("read-only grant on '{database}': {reason}")]
    ReadOnly { database: String, reason: String },
    /// No connection could be had, or it broke.
    #[error("cannot reach database '{database}' ({target}): {message}")]
    Connection {
        database: String,
        target: String,
        message: String,
    },
    /// A wait for a connection or a statement ran out of time.
    #[error("database '{database}': {message}")]
    Timeout { database: String, message: String },
    /// The database rejected the statement.
    #[error("database '{database}' rejected the statement{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Query {
        database: String,
        code: Option<String>,
        message: String,
        constraint: Option<String>,
        detail: Option<String>,
    },
    /// A value could not be converted between the database and the WIT `value`.
    #[error("database '{database}': {message}")]
    Conversion { database: String, message: String },
    /// The request itself was wrong (several statements, a missing parameter, a busy connection).
    #[error("database '{database}': {message}")]
    InvalidRequest { database: String, message: String },
}

/// PostgreSQL SQLSTATEs after which the session is gone: admin shutdown, crash shutdown,
/// cannot connect now, and the 08 class (connection exceptions).
fn ends_the_session(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

impl DbError {
    pub fn invalid(database: &str, message: impl Into<String>) -> Self {
        DbError::InvalidRequest {
            database: database.to_owned(),
            message: message.into(),
        }
    }

    pub fn conversion(database: &str, message: impl Into<String>) -> Self {
        DbError::Conversion {
            database: database.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the connection the error came from can no longer be trusted.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, DbError::Connection { .. } | DbError::Timeout { .. })
    }

    /// What kind of pool or connection failure this is, as metrics and `/health` count them:
    /// `pool-exhausted` (no connection free within POOL_TIMEOUT), `connection-refused`
    /// (nothing listening, or the host not found), `authentication-failed` (the server refused
    /// the login), `network-timeout` (no answer within CONNECT_TIMEOUT), `connection-lost`
    /// (any other broken connection), or `statement` (the connection is fine; the statement
    /// was refused or failed).
    pub fn pool_error_kind(&self) -> &'static str {
        match self {
            DbError::Timeout { message, .. } if message.contains("pooled connection") => {
                "pool-exhausted"
            }
            DbError::Timeout { .. } => "statement",
            DbError::Connection { message, .. } => {
                if message.contains("refused the login") {
                    "authentication-failed"
                } else if message.contains("connection refused")
                    || message.contains("no server socket")
                    || message.contains("host not found")
                {
                    "connection-refused"
                } else if message.contains("CONNECT_TIMEOUT") || message.contains("timed out") {
                    "network-timeout"
                } else {
                    "connection-lost"
                }
            }
            _ => "statement",
        }
    }

    /// Converts a driver error, naming the database and scrubbing secrets from every message.
    pub fn from_sqlx(err: sqlx::Error, database: &str, target: &str, redactor: &Redactor) -> Self {
        let scrub = |s: &str| redactor.scrub(s).into_owned();
        match err {
            sqlx::Error::Database(e)
                if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
            {
                // sqlx's SQLite errors always carry the extended result code.
                let code = e.code().and_then(|c| c.parse().ok()).unwrap_or(1);
                DbError::from_sqlite(code, e.message(), database, redactor)
            }
            // The server ended the session (shutdown, restart, pg_terminate_backend, 08xxx
            // connection exceptions): a broken connection, not a refused statement.
            sqlx::Error::Database(e)
                if e.code().as_deref().is_some_and(ends_the_session)
                    && e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .is_some() =>
            {
                DbError::Connection {
                    database: database.to_owned(),
                    target: target.to_owned(),
                    message: format!(
                        "the server ended the connection ({}): {}",
                        e.code().unwrap_or_default(),
                        scrub(e.message())
                    ),
                }
            }
            sqlx::Error::Database(e) => {
                let detail = e
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|pg| pg.detail())
                    .map(scrub);
                DbError::Query {
                    database: database.to_owned(),
                    code: e.code().map(|c| c.into_owned()),
                    message: scrub(e.message()),
                    constraint: e.constraint().map(str::to_owned),
                    detail,
                }
            }
            sqlx::Error::PoolTimedOut => DbError::Timeout {
                database: database.to_owned(),
                message: "timed out waiting for a pooled connection; raise the pool size or \
                          POOL_TIMEOUT, or look for runs holding connections"
                    .into(),
            },
            sqlx::Error::Encode(e) | sqlx::Error::Decode(e) => {
                DbError::conversion(database, scrub(&e.to_string()))
            }
            sqlx::Error::ColumnDecode { index, source } => DbError::conversion(
                database,
                format!("column {index}: {}", scrub(&source.to_string())),
            ),
            other => DbError::Connection {
                database: database.to_owned(),
                target: target.to_owned(),
                message: scrub(&other.to_string()),
            },
        }
    }

    /// Converts an SQLite error: its extended result code and message, from sqlx or from the
    /// host's own stepping (`sqlite_step.rs`), which must read the same to a flow.
    pub fn from_sqlite(code: i32, message: &str, database: &str, redactor: &Redactor) -> Self {
        // SQLITE_INTERRUPT: only the session's watchdog interrupts: the process is stopping,
        // or the time was up.
        if code == 9
            && let Some(signal) = crate::shutdown::received()
        {
            return DbError::Timeout {
                database: database.to_owned(),
                message: format!(
                    "the statement was stopped because flowhost received {} and is stopping",
                    signal.name()
                ),
            };
        }
        if code == 9 {
            return DbError::Timeout {
                database: database.to_owned(),
                message: "the statement ran past its time limit and was stopped (the \
                          manifest's statement-timeout-seconds or timeout-seconds, or the \
                          database's DATABASE_TIMEOUT)"
                    .into(),
            };
        }
        DbError::Query {
            database: database.to_owned(),
            code: Some(code.to_string()),
            message: redactor.scrub(message).into_owned(),
            constraint: None,
            detail: None,
        }
    }

    /// Converts a tiberius (SQL Server) error. A server error keeps its number as the code and
    /// its state, severity, procedure and line as the detail; severity 20 and up ends the
    /// connection, so it is a connection error.
    pub fn from_tds(
        err: tiberius::error::Error,
        database: &str,
        target: &str,
        redactor: &Redactor,
    ) -> Self {
        use tiberius::error::Error as Tds;
        let scrub = |s: &str| redactor.scrub(s).into_owned();
        match err {
            Tds::Server(e) if e.class() < 20 => {
                let mut detail = format!("state {}, severity {}", e.state(), e.class());
                if !e.procedure().is_empty() {
                    detail.push_str(&format!(", procedure {}", e.procedure()));
                }
                detail.push_str(&format!(", line {}", e.line()));
                DbError::Query {
                    database: database.to_owned(),
                    code: Some(e.code().to_string()),
                    message: scrub(e.message()),
                    constraint: None,
                    detail: Some(detail),
                }
            }
            Tds::Server(e) => DbError::Connection {
                database: database.to_owned(),
                target: target.to_owned(),
                message: format!(
                    "the server ended the session (error {}, severity {}): {}",
                    e.code(),
                    e.class(),
                    scrub(e.message())
                ),
            },
            Tds::Conversion(m) | Tds::Encoding(m) | Tds::BulkInput(m) => {
                DbError::conversion(database, scrub(&m))
            }
            Tds::Utf8 | Tds::Utf16 | Tds::ParseInt(_) => {
                DbError::conversion(database, scrub(&err.to_string()))
            }
            other => DbError::Connection {
                database: database.to_owned(),
                target: target.to_owned(),
                message: scrub(&other.to_string()),
            },
        }
    }

    /// Whether trying the same work again may succeed: a lost connection, a timeout, or a
    /// server that chose this work as a deadlock victim or ran out of lock wait (PostgreSQL
    /// 40001/40P01/55P03, SQL Server 1205/1222).
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Connection { .. } | DbError::Timeout { .. } => true,
            DbError::Query { code: Some(c), .. } => {
                matches!(c.as_str(), "40001" | "40P01" | "55P03" | "1205" | "1222")
            }
            _ => false,
        }
    }

    /// The WIT form handed to the guest.
    pub fn to_wit(&self) -> wit::DbError {
        match self {
            DbError::NotGranted(_) => wit::DbError::NotGranted(self.to_string()),
            DbError::ReadOnly { .. } => wit::DbError::ReadOnlyViolation(self.to_string()),
            DbError::Connection { .. } => wit::DbError::Connection(self.to_string()),
            DbError::Timeout { .. } => wit::DbError::Timeout(self.to_string()),
            DbError::Query {
                code,
                message,
                constraint,
                detail,
                ..
            } => wit::DbError::Query(wit::QueryError {
                code: code.clone(),
                message: message.clone(),
                constraint: constraint.clone(),
                detail: detail.clone(),
            }),
            DbError::Conversion { .. } => wit::DbError::Conversion(self.to_string()),
            DbError::InvalidRequest { .. } => wit::DbError::InvalidRequest(self.to_string()),
        }
    }
}

/// Removes known secrets (passwords, whole connection strings) from text that came from a driver.
///
/// Drivers may echo what they were given; the host never lets that reach a log, an error or a
/// flow, even if a future driver version starts quoting its connection options.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        // Longest first, so a password inside a connection string does not leave the rest behind.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.secrets.iter().any(|s| text.contains(s.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_replaces_every_secret_occurrence() {
        let r = Redactor::new([
            "hunter2".to_string(),
            "postgres://u:hunter2@h/db".to_string(),
        ]);
        let text = "failed: postgres://u:hunter2@h/db (password hunter2)";
        let out = r.scrub(text);
        assert!(!out.contains("hunter2"), "{out}");
        assert_eq!(out, "failed: *** (password ***)");
    }

    #[test]
    fn pool_failures_are_told_apart_by_kind() {
        let connection = |message: &str| DbError::Connection {
            database: "d".into(),
            target: "t".into(),
            message: message.into(),
        };
        let cases = [
            (
                DbError::Timeout {
                    database: "d".into(),
                    message: "timed out waiting for a pooled connection; raise the pool size"
                        .into(),
                },
                "pool-exhausted",
            ),
            (
                connection("connection refused by 127.0.0.1:5433: is the server running"),
                "connection-refused",
            ),
            (
                connection("host not found; check the host"),
                "connection-refused",
            ),
            (
                connection("the server refused the login (28P01): password authentication failed"),
                "authentication-failed",
            ),
            (
                connection("no connection within 10s (CONNECT_TIMEOUT); is the server running"),
                "network-timeout",
            ),
            (
                connection("the server ended the connection (57P01): terminating connection"),
                "connection-lost",
            ),
            (DbError::invalid("d", "two statements"), "statement"),
        ];
        for (error, kind) in cases {
            assert_eq!(error.pool_error_kind(), kind, "{error}");
        }
        assert!(ends_the_session("57P01") && ends_the_session("08006"));
        assert!(!ends_the_session("57014") && !ends_the_session("23505"));
    }

    #[test]
    fn redactor_leaves_clean_text_borrowed() {
        let r = Redactor::new(["hunter2".to_string()]);
        assert!(matches!(r.scrub("all fine"), Cow::Borrowed(_)));
    }

    #[test]
    fn query_error_display_includes_code_and_database() {
        let e = DbError::Query {
            database: "rpa_db".into(),
            code: Some("23505".into()),
            message: "duplicate key".into(),
            constraint: Some("pk".into()),
            detail: None,
        };
        assert_eq!(
            e.to_string(),
            "database 'rpa_db' rejected the statement (23505): duplicate key"
        );
    }
}
