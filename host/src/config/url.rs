//! Connection strings: SQLAlchemy URLs, sqlx URLs, JDBC and ADO.NET strings, all parsed into one
//! [`DatabaseTarget`].
//!
//! Errors say which part is wrong and never echo the string: a password with an unencoded `/`
//! or `@` can shift every part, so even a "port" may be a piece of the password.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::mssql;
use super::secret::Secret;

pub use crate::Backend;

/// Where a database is and how to log in. `Display` is safe for logs (no user, password or
/// options); `Debug` hides the password and option values that look like credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A PostgreSQL server.
    Postgres {
        /// Host name, IP address (IPv6 without brackets) or a Unix socket directory
        /// (starts with `/`).
        host: String,
        /// Default 5432.
        port: u16,
        /// From the URL path; when absent, the user name (libpq's rule).
        database: String,
        /// Login user.
        user: Option<String>,
        /// Login password.
        password: Option<Secret>,
        /// Remaining query parameters as written (`sslmode`, `application_name`, ...).
        options: Vec<(String, String)>,
    },
    /// A SQLite file or in-memory database.
    Sqlite {
        /// The file, resolved against the base directory; `:memory:` when `in_memory`.
        path: PathBuf,
        /// An in-memory database.
        in_memory: bool,
        /// Create the file if it does not exist (SQLAlchemy's behaviour; `?mode=rw` or
        /// `?mode=ro` turn it off).
        create_if_missing: bool,
    },
    /// A SQL Server instance.
    SqlServer {
        /// Host name or IP address.
        host: String,
        /// Default 1433.
        port: u16,
        /// Named instance (`host\SQLEXPRESS`).
        instance: Option<String>,
        /// Initial database; the login's default when absent.
        database: Option<String>,
        /// SQL login user; absent for integrated security.
        user: Option<String>,
        /// SQL login password.
        password: Option<Secret>,
        /// Other settings with keys normalised to snake_case: `encrypt`,
        /// `trust_server_certificate`, `application_name`, `connect_timeout`,
        /// `integrated_security`, `driver`, ... Values as written (`yes`, `true`, ...).
        options: Vec<(String, String)>,
    },
}

/// What is wrong with a connection string. Messages never contain the string or its parts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// The string is empty.
    #[error("the connection string is empty")]
    Empty,
    /// Neither a URL nor a `Key=Value;` string.
    #[error(
        "not a connection URL (expected scheme://..., e.g. postgresql://, sqlite:///, \
         mssql+pyodbc://) nor a SQL Server 'Server=...;Database=...' string"
    )]
    NoScheme,
    /// The scheme names no supported backend.
    #[error(
        "unknown scheme '{scheme}' (expected postgresql, postgres, sqlite, mssql or sqlserver, \
         optionally with a +driver)"
    )]
    UnknownScheme {
        /// The scheme, only shown when it looks like one.
        scheme: String,
    },
    /// `postgresql:` not followed by `//`.
    #[error("expected '//' after '{scheme}:'")]
    MissingSlashes {
        /// The scheme.
        scheme: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error(
        "the port is not a number from 1 to 65535 (if the password contains '/', '@', ':' or \
         '?', percent-encode it: '@' is %40, '/' is %2F)"
    )]
    InvalidPort,
    /// No host.
    #[error("the host is missing")]
    MissingHost,
    /// An IPv6 host without its `]`.
    #[error("the host has a '[' without a matching ']'")]
    UnterminatedIpv6,
    /// `host1,host2`.
    #[error("several hosts are not supported; name one")]
    MultipleHosts,
    /// No database name and no user to default it to.
    #[error("the database name is missing (put it in the path: .../dbname)")]
    MissingDatabase,
    /// A part is given twice (e.g. password in the URL and in `?password=`).
    #[error("the {part} is given twice")]
    Duplicate {
        /// Which part.
        part: &'static str,
    },
    /// Percent-encoding that does not decode to UTF-8.
    #[error("the {part} is not valid percent-encoded UTF-8")]
    InvalidPercentEncoding {
        /// Which part.
        part: &'static str,
    },
    /// A SQL Server protocol other than TCP.
    #[error("SQL Server protocol '{protocol}:' is not supported; use tcp")]
    UnsupportedProtocol {
        /// `np`, `lpc`, ...
        protocol: String,
    },
    /// A malformed `Key=Value;` string.
    #[error("malformed SQL Server connection string: {message}")]
    InvalidKeyValue {
        /// What is wrong; names keys, never values.
        message: String,
    },
    /// A libpq `host=... dbname=...` string.
    #[error("PostgreSQL keyword/value strings are not supported; write a postgresql:// URL")]
    PostgresKeyValue,
    /// An invalid SQLite `mode`.
    #[error("SQLite mode must be ro, rw, rwc or memory")]
    InvalidSqliteMode,
}

impl DatabaseTarget {
    /// Parses a connection string. `kind` is the declared `TYPE`, if any: with `sqlite`, a bare
    /// path is accepted. Relative SQLite paths are joined to `base_dir`.
    pub fn parse(s: &str, kind: Option<Backend>, base_dir: &Path) -> Result<Self, UrlError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(UrlError::Empty);
        }
        let s = strip_prefix_ignore_case(s, "jdbc:").unwrap_or(s);
        if let Some((scheme, rest)) = split_scheme(s) {
            let dialect = scheme.split('+').next().unwrap_or("").to_ascii_lowercase();
            match dialect.as_str() {
                "postgresql" | "postgres" => return parse_postgres(scheme, rest),
                "sqlite" => return parse_sqlite(rest, base_dir),
                "mssql" | "sqlserver" => return parse_mssql(scheme, rest),
                _ if kind != Some(Backend::Sqlite) => {
                    return Err(UrlError::UnknownScheme {
                        scheme: scheme.to_string(),
                    });
                }
                // `C:\data\x.db` with TYPE=sqlite: a drive letter, not a scheme.
                _ => {}
            }
        }
        if kind == Some(Backend::Sqlite) {
            return Ok(sqlite_target(s, base_dir, true));
        }
        if mssql::looks_like_key_value(s) {
            // libpq's `host=h dbname=d` would otherwise be misread as a SQL Server string.
            if kind == Some(Backend::Postgres) || (!s.contains(';') && s.contains("dbname=")) {
                return Err(UrlError::PostgresKeyValue);
            }
            return mssql::parse_key_value(s);
        }
        Err(UrlError::NoScheme)
    }

    /// Which backend this is.
    pub fn kind(&self) -> Backend {
        match self {
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
            DatabaseTarget::Sqlite { .. } => Backend::Sqlite,
            DatabaseTarget::SqlServer { .. } => Backend::SqlServer,
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `scheme:rest` when the text before the first `:` is a valid URL scheme.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    valid.then_some((scheme, rest))
}

pub(crate) fn decode(s: &str, part: &'static str) -> Result<String, UrlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| UrlError::InvalidPercentEncoding { part })
}

/// The pieces of `//user:pass@host:port/path?query`.
struct UrlParts {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    query: Vec<(String, String)>,
}

fn url_parts(scheme: &str, rest: &str) -> Result<UrlParts, UrlError> {
    let body = rest
        .strip_prefix("//")
        .ok_or_else(|| UrlError::MissingSlashes {
            scheme: scheme.to_string(),
        })?;
    let (userinfo, rest) = match userinfo_end(body) {
        None => (None, body),
        Some(at) => (Some(&body[..at]), &body[at + 1..]),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let user = Some(decode(u, "user name")?).filter(|u| !u.is_empty());
            let password = match p {
                Some(p) => Some(decode(p, "password")?).filter(|p| !p.is_empty()),
                None => None,
            };
            (user, password)
        }
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, q),
        None => (rest, ""),
    };
    let (hostport, path) = match before_query.split_once('/') {
        Some((h, p)) => (h, p),
        None => (before_query, ""),
    };
    let (host, port_text) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner.split_once(']').ok_or(UrlError::UnterminatedIpv6)?;
        match after {
            "" => (h, None),
            _ => (
                h,
                Some(after.strip_prefix(':').ok_or(UrlError::InvalidPort)?),
            ),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    Ok(UrlParts {
        user,
        password,
        host: decode(host, "host")?,
        port: port_text.map(parse_port).transpose()?.flatten(),
        path: decode(path, "database name")?,
        query: parse_query(query)?,
    })
}

/// Index of the '@' ending the userinfo, if there is one.
///
/// It is the last '@' before the path, so an unencoded '@' in a password still works; the path
/// is searched for only after the first '@', so an unencoded '/' or '?' in a password works too
/// (as with SQLAlchemy) - unless what precedes that '/' or '?' is clearly a host, in which case
/// the '@' belongs to the path or query (`h:5432/db?application_name=me@x`).
fn userinfo_end(body: &str) -> Option<usize> {
    let first_at = body.find('@')?;
    if let Some(d) = body.find(['/', '?'])
        && d < first_at
    {
        let head = &body[..d];
        let looks_like_host = head.starts_with('[')
            || match head.split_once(':') {
                None => true,
                Some((_, port)) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
            };
        if looks_like_host {
            return None;
        }
    }
    let end = body[first_at..]
        .find(['/', '?'])
        .map_or(body.len(), |i| first_at + i);
    body[..end].rfind('@')
}

/// An empty port means the default.
pub(crate) fn parse_port(s: &str) -> Result<Option<u16>, UrlError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::InvalidPort),
        Ok(p) => Ok(Some(p)),
    }
}

/// Query strings are form-encoded in SQLAlchemy URLs: `+` is a space
/// (`driver=ODBC+Driver+18+for+SQL+Server`).
fn parse_query(q: &str) -> Result<Vec<(String, String)>, UrlError> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(&k.replace('+', " "), "query string")?;
        let v = decode(&v.replace('+', " "), "query string")?;
        out.push((k, v));
    }
    Ok(out)
}

fn set_once<T>(slot: &mut Option<T>, value: T, part: &'static str) -> Result<(), UrlError> {
    if slot.is_some() {
        return Err(UrlError::Duplicate { part });
    }
    *slot = Some(value);
    Ok(())
}

fn parse_postgres(scheme: &str, rest: &str) -> Result<DatabaseTarget, UrlError> {
    let mut p = url_parts(scheme, rest)?;
    let mut host = Some(p.host).filter(|h| !h.is_empty());
    let mut database = Some(p.path).filter(|d| !d.is_empty());
    let mut options = Vec::new();
    // libpq accepts these as query parameters too; they must not stay in `options`, which are
    // printed by `Debug`.
    for (k, v) in p.query {
        match k.as_str() {
            "user" => set_once(&mut p.user, v, "user name")?,
            "password" => set_once(&mut p.password, v, "password")?,
            "dbname" => set_once(&mut database, v, "database name")?,
            "host" => set_once(&mut host, v, "host")?,
            "port" => set_once(
                &mut p.port,
                parse_port(&v)?.ok_or(UrlError::InvalidPort)?,
                "port",
            )?,
            _ => options.push((k, v)),
        }
    }
    let host = host.unwrap_or_else(|| "localhost".to_string());
    if host.contains(',') {
        return Err(UrlError::MultipleHosts);
    }
    let database = database
        .or_else(|| p.user.clone())
        .ok_or(UrlError::MissingDatabase)?;
    Ok(DatabaseTarget::Postgres {
        host,
        port: p.port.unwrap_or(5432),
        database,
        user: p.user,
        password: p.password.map(Secret::new),
        options,
    })
}

fn parse_mssql(scheme: &str, rest: &str) -> Result<DatabaseTarget, UrlError> {
    // JDBC: sqlserver://host\instance:port;databaseName=...;user=...
    if let Some(body) = rest.strip_prefix("//")
        && body.contains(';')
    {
        return mssql::parse_jdbc(body);
    }
    let p = url_parts(scheme, rest)?;
    let mut b = mssql::Builder {
        user: p.user,
        password: p.password,
        port: p.port,
        database: Some(p.path).filter(|d| !d.is_empty()),
        ..Default::default()
    };
    if !p.host.is_empty() {
        // pyodbc passes the host to ODBC's SERVER=, so `host\SQLEXPRESS` and `host,1433` work.
        b.set("server", p.host)?;
    }
    for (k, v) in p.query {
        if k.eq_ignore_ascii_case("odbc_connect") {
            // SQLAlchemy: a complete ODBC string replaces everything else.
            return mssql::parse_key_value(&v);
        }
        b.set(&k, v)?;
    }
    b.finish()
}

fn parse_sqlite(rest: &str, base_dir: &Path) -> Result<DatabaseTarget, UrlError> {
    let (path_part, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = match path_part.strip_prefix("//") {
        // SQLAlchemy: `sqlite:///rel.db` is relative, `sqlite:////abs.db` absolute.
        Some(after) => after.strip_prefix('/').unwrap_or(after),
        // sqlx: `sqlite:rel.db`, `sqlite::memory:`
        None => path_part,
    };
    let path = decode(path, "SQLite path")?;
    let mut target = sqlite_target(&path, base_dir, true);
    for (k, v) in parse_query(query)? {
        if k != "mode" {
            continue;
        }
        match v.as_str() {
            "ro" | "rw" => {
                if let DatabaseTarget::Sqlite {
                    create_if_missing, ..
                } = &mut target
                {
                    *create_if_missing = false;
                }
            }
            "rwc" => {}
            "memory" => target = sqlite_target("", base_dir, true),
            _ => return Err(UrlError::InvalidSqliteMode),
        }
    }
    Ok(target)
}

fn sqlite_target(path: &str, base_dir: &Path, create_if_missing: bool) -> DatabaseTarget {
    if path.is_empty() || path == ":memory:" {
        return DatabaseTarget::Sqlite {
            path: PathBuf::from(":memory:"),
            in_memory: true,
            create_if_missing: false,
        };
    }
    let path = Path::new(path);
    DatabaseTarget::Sqlite {
        path: if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        },
        in_memory: false,
        create_if_missing,
    }
}

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
