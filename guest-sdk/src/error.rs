//! The one error type a flow deals with.

use crate::bindings::flowhost::flow::types::DbError as RawDbError;
use std::fmt;

/// Everything that can go wrong in a flow: a database call, decoding a result, JSON, or the
/// flow's own logic.
///
/// ```
/// use flowhost_sdk::Error;
///
/// fn check(n: i64) -> Result<(), Error> {
///     if n < 0 {
///         return Err(Error::msg(format!("negative count {n}")));
///     }
///     Ok(())
/// }
/// assert_eq!(check(-1).unwrap_err().to_string(), "negative count -1");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The host or the database refused or failed a call.
    Database(DbError),
    /// A result could not be turned into the requested type. `column` names the culprit when
    /// one column is to blame (it is `None` for a wrong row count, for example).
    Decode {
        /// The column whose value did not fit.
        column: Option<String>,
        /// What did not fit.
        message: String,
    },
    /// Serialising or parsing JSON failed.
    Json(serde_json::Error),
    /// The flow's own error (see [`Error::msg`]).
    Flow(String),
}

impl Error {
    /// A flow's own error with the given message.
    ///
    /// ```
    /// let err = flowhost_sdk::Error::msg("no surveys configured");
    /// assert_eq!(err.to_string(), "no surveys configured");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Flow(message.to_string())
    }

    /// The database error, if this is one.
    ///
    /// ```
    /// use flowhost_sdk::{DbError, DbErrorKind, Error};
    /// let err = Error::from(DbError::new("rpa_db", DbErrorKind::Timeout, "too slow"));
    /// assert_eq!(err.db_error().unwrap().kind(), DbErrorKind::Timeout);
    /// assert!(Error::msg("x").db_error().is_none());
    /// ```
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Database(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is a database error of kind [`DbErrorKind::NotGranted`].
    ///
    /// ```
    /// use flowhost_sdk::{DbError, DbErrorKind, Error};
    /// let err = Error::from(DbError::new("x", DbErrorKind::NotGranted, "no"));
    /// assert!(err.is_not_granted());
    /// ```
    pub fn is_not_granted(&self) -> bool {
        self.db_error().is_some_and(DbError::is_not_granted)
    }

    /// Whether this is a database error of kind [`DbErrorKind::ReadOnlyViolation`].
    ///
    /// ```
    /// use flowhost_sdk::{DbError, DbErrorKind, Error};
    /// let err = Error::from(DbError::new("x", DbErrorKind::ReadOnlyViolation, "no"));
    /// assert!(err.is_read_only_violation());
    /// ```
    pub fn is_read_only_violation(&self) -> bool {
        self.db_error().is_some_and(DbError::is_read_only_violation)
    }

    /// Whether this is a unique or primary-key violation (see [`DbError::is_unique_violation`]).
    ///
    /// ```
    /// use flowhost_sdk::{DbError, DbErrorKind, Error};
    /// let err = Error::from(DbError::new("x", DbErrorKind::Query, "dup").with_code("23505"));
    /// assert!(err.is_unique_violation());
    /// ```
    pub fn is_unique_violation(&self) -> bool {
        self.db_error().is_some_and(DbError::is_unique_violation)
    }

    pub(crate) fn decode(column: Option<&str>, message: impl fmt::Display) -> Self {
        Error::Decode {
            column: column.map(str::to_owned),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(e) => e.fmt(f),
            Error::Decode {
                column: Some(c),
                message,
            } => write!(f, "cannot decode column `{c}`: {message}"),
            Error::Decode {
                column: None,
                message,
            } => write!(f, "cannot decode result: {message}"),
            Error::Json(e) => write!(f, "JSON: {e}"),
            Error::Flow(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Database(e) => Some(e),
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        Error::Database(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

/// The case of the contract's `db-error`.
///
/// ```
/// use flowhost_sdk::DbErrorKind;
/// assert_eq!(DbErrorKind::ReadOnlyViolation.as_str(), "read-only-violation");
/// assert_eq!(DbErrorKind::ReadOnlyViolation.to_string(), "read-only violation");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DbErrorKind {
    /// The database is not granted to this flow by its manifest.
    NotGranted,
    /// The grant is read-only and the statement would write or change session state.
    ReadOnlyViolation,
    /// No connection could be had or it broke.
    Connection,
    /// The statement or the wait for a connection exceeded its time limit.
    Timeout,
    /// The database rejected the statement; see [`DbError::code`].
    Query,
    /// A value could not be converted between the database and a [`Value`](crate::Value).
    Conversion,
    /// The call itself was wrong (several statements, transaction control, missing parameter,
    /// busy connection, row limit hit).
    InvalidRequest,
}

impl DbErrorKind {
    /// The case's name in the WIT contract (kebab-case).
    ///
    /// ```
    /// assert_eq!(flowhost_sdk::DbErrorKind::NotGranted.as_str(), "not-granted");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            DbErrorKind::NotGranted => "not-granted",
            DbErrorKind::ReadOnlyViolation => "read-only-violation",
            DbErrorKind::Connection => "connection",
            DbErrorKind::Timeout => "timeout",
            DbErrorKind::Query => "query",
            DbErrorKind::Conversion => "conversion",
            DbErrorKind::InvalidRequest => "invalid-request",
        }
    }
}

impl fmt::Display for DbErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbErrorKind::NotGranted => "not granted",
            DbErrorKind::ReadOnlyViolation => "read-only violation",
            DbErrorKind::Connection => "connection error",
            DbErrorKind::Timeout => "timeout",
            DbErrorKind::Query => "query failed",
            DbErrorKind::Conversion => "conversion error",
            DbErrorKind::InvalidRequest => "invalid request",
        })
    }
}

/// A failed database call: the contract's `db-error`, flattened, plus the logical database name
/// so that messages say where it happened.
///
/// ```
/// use flowhost_sdk::{DbError, DbErrorKind};
/// let e = DbError::new("rpa_db", DbErrorKind::Query, "duplicate key value")
///     .with_code("23505")
///     .with_constraint("rpa1_processed_surveys_pkey");
/// assert!(e.is_unique_violation());
/// assert_eq!(
///     e.to_string(),
///     "database rpa_db: query failed: duplicate key value \
///      (code 23505, constraint rpa1_processed_surveys_pkey)"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    // Boxed so that `Result<_, Error>` stays small on the happy path.
    inner: Box<Details>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Details {
    database: String,
    kind: DbErrorKind,
    message: String,
    code: Option<String>,
    constraint: Option<String>,
    detail: Option<String>,
}

impl DbError {
    /// A database error, mostly for testing a flow's error handling.
    ///
    /// ```
    /// use flowhost_sdk::{DbError, DbErrorKind};
    /// let e = DbError::new("SurveyHub", DbErrorKind::NotGranted, "not in the manifest");
    /// assert_eq!(e.to_string(), "database SurveyHub: not granted: not in the manifest");
    /// ```
    pub fn new(database: impl Into<String>, kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            inner: Box::new(Details {
                database: database.into(),
                kind,
                message: message.into(),
                code: None,
                constraint: None,
                detail: None,
            }),
        }
    }

    /// Sets the backend's error code.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// let e = DbError::new("d", DbErrorKind::Query, "m").with_code("2067");
    /// assert_eq!(e.code(), Some("2067"));
    /// ```
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Sets the violated constraint's name.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// let e = DbError::new("d", DbErrorKind::Query, "m").with_constraint("pk");
    /// assert_eq!(e.constraint(), Some("pk"));
    /// ```
    pub fn with_constraint(mut self, constraint: impl Into<String>) -> Self {
        self.inner.constraint = Some(constraint.into());
        self
    }

    /// Sets the database's extra detail.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// let e = DbError::new("d", DbErrorKind::Query, "m").with_detail("Key (id)=(1) exists.");
    /// assert_eq!(e.detail(), Some("Key (id)=(1) exists."));
    /// ```
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    pub(crate) fn from_raw(database: &str, raw: RawDbError) -> Self {
        let (kind, message) = match raw {
            RawDbError::NotGranted(m) => (DbErrorKind::NotGranted, m),
            RawDbError::ReadOnlyViolation(m) => (DbErrorKind::ReadOnlyViolation, m),
            RawDbError::Connection(m) => (DbErrorKind::Connection, m),
            RawDbError::Timeout(m) => (DbErrorKind::Timeout, m),
            RawDbError::Conversion(m) => (DbErrorKind::Conversion, m),
            RawDbError::InvalidRequest(m) => (DbErrorKind::InvalidRequest, m),
            RawDbError::Query(q) => {
                let mut e = DbError::new(database, DbErrorKind::Query, q.message);
                e.inner.code = q.code;
                e.inner.constraint = q.constraint;
                e.inner.detail = q.detail;
                return e;
            }
        };
        DbError::new(database, kind, message)
    }

    /// The logical database name the call was made on.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert_eq!(DbError::new("rpa_db", DbErrorKind::Timeout, "m").database(), "rpa_db");
    /// ```
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// Which case of the contract's `db-error` this is.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert_eq!(DbError::new("d", DbErrorKind::Timeout, "m").kind(), DbErrorKind::Timeout);
    /// ```
    pub fn kind(&self) -> DbErrorKind {
        self.inner.kind
    }

    /// The host's or the database's message.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert_eq!(DbError::new("d", DbErrorKind::Timeout, "slow").message(), "slow");
    /// ```
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// SQLSTATE (PostgreSQL), error number (SQL Server) or extended result code (SQLite); only
    /// [`DbErrorKind::Query`] errors have one.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert_eq!(DbError::new("d", DbErrorKind::Query, "m").code(), None);
    /// ```
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// The violated constraint, when the database names one.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert_eq!(DbError::new("d", DbErrorKind::Query, "m").constraint(), None);
    /// ```
    pub fn constraint(&self) -> Option<&str> {
        self.inner.constraint.as_deref()
    }

    /// Extra detail the database gave (PostgreSQL `DETAIL`).
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert_eq!(DbError::new("d", DbErrorKind::Query, "m").detail(), None);
    /// ```
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The database is not granted to this flow.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert!(DbError::new("d", DbErrorKind::NotGranted, "m").is_not_granted());
    /// ```
    pub fn is_not_granted(&self) -> bool {
        self.inner.kind == DbErrorKind::NotGranted
    }

    /// The flow tried to write through a read-only grant.
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// assert!(DbError::new("d", DbErrorKind::ReadOnlyViolation, "m").is_read_only_violation());
    /// ```
    pub fn is_read_only_violation(&self) -> bool {
        self.inner.kind == DbErrorKind::ReadOnlyViolation
    }

    /// A unique or primary-key constraint was violated: SQLSTATE `23505` (PostgreSQL),
    /// extended codes `2067`/`1555` (SQLite), error `2627`/`2601` (SQL Server).
    ///
    /// ```
    /// # use flowhost_sdk::{DbError, DbErrorKind};
    /// let sqlite = DbError::new("d", DbErrorKind::Query, "UNIQUE failed").with_code("1555");
    /// assert!(sqlite.is_unique_violation());
    /// let fk = DbError::new("d", DbErrorKind::Query, "fk").with_code("23503");
    /// assert!(!fk.is_unique_violation());
    /// ```
    pub fn is_unique_violation(&self) -> bool {
        self.inner.kind == DbErrorKind::Query
            && matches!(
                self.inner.code.as_deref(),
                Some("23505" | "2067" | "1555" | "2627" | "2601")
            )
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.inner;
        write!(f, "database {}: {}: {}", d.database, d.kind, d.message)?;
        match (&d.code, &d.constraint) {
            (Some(c), Some(k)) => write!(f, " (code {c}, constraint {k})")?,
            (Some(c), None) => write!(f, " (code {c})")?,
            (None, Some(k)) => write!(f, " (constraint {k})")?,
            (None, None) => {}
        }
        if let Some(detail) = &d.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::flowhost::flow::types::QueryError;

    #[test]
    fn raw_query_errors_keep_every_field() {
        let raw = RawDbError::Query(QueryError {
            code: Some("23505".into()),
            message: "duplicate key".into(),
            constraint: Some("pk".into()),
            detail: Some("Key (id)=(1) already exists.".into()),
        });
        let e = DbError::from_raw("rpa_db", raw);
        assert_eq!(e.kind(), DbErrorKind::Query);
        assert!(e.is_unique_violation());
        assert_eq!(
            e.to_string(),
            "database rpa_db: query failed: duplicate key (code 23505, constraint pk): \
             Key (id)=(1) already exists."
        );
    }

    #[test]
    fn raw_simple_errors_map_to_their_kind() {
        let e = DbError::from_raw("x", RawDbError::NotGranted("not in manifest".into()));
        assert!(e.is_not_granted());
        assert_eq!(e.to_string(), "database x: not granted: not in manifest");
        let e = DbError::from_raw("x", RawDbError::InvalidRequest("two statements".into()));
        assert_eq!(e.kind().as_str(), "invalid-request");
    }

    #[test]
    fn unique_codes_need_a_query_error() {
        let e = DbError::new("x", DbErrorKind::Conversion, "m").with_code("23505");
        assert!(!e.is_unique_violation());
        for code in ["23505", "2067", "1555", "2627", "2601"] {
            let e = DbError::new("x", DbErrorKind::Query, "m").with_code(code);
            assert!(e.is_unique_violation(), "{code}");
        }
    }

    #[test]
    fn decode_errors_name_the_column() {
        let e = Error::decode(Some("score"), "invalid type");
        assert_eq!(e.to_string(), "cannot decode column `score`: invalid type");
        assert_eq!(
            Error::decode(None, "no rows").to_string(),
            "cannot decode result: no rows"
        );
    }
}
