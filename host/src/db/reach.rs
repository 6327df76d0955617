//! Why a first connection could not be had, said at once.
//!
//! sqlx's pool treats a refused connection as a server still starting and retries it until the
//! connect timeout runs out, then reports only that the time was up. A user who mistyped a
//! port waits 10 s for "timed out". While a database's pool holds no connection, the host
//! therefore also dials the server's address itself (after a short grace, so a healthy server
//! never sees the extra dial) and, if nothing listens there, says so at once. A server that
//! accepted and then refused the login, or a host name that does not resolve, is explained by
//! [`login_error`] from the driver's own answer.

use std::path::PathBuf;
use std::time::Duration;

use super::DbError;
use crate::config::DatabaseTarget;

/// How long the first connection may take before the host checks whether anything listens.
/// A local server answers well within it, so a healthy start is never dialled twice.
pub(super) const PROBE_GRACE: Duration = Duration::from_millis(100);

/// Where a network database listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    Tcp {
        host: String,
        port: u16,
    },
    /// PostgreSQL's socket file in a socket directory.
    Unix(PathBuf),
}

impl Endpoint {
    /// The address to check; `None` for SQLite, and for a SQL Server named instance, whose port
    /// only the SQL Browser service knows.
    pub(super) fn of(target: &DatabaseTarget) -> Option<Endpoint> {
        match target {
            DatabaseTarget::Postgres { host, port, .. } if host.starts_with('/') => Some(
                Endpoint::Unix(PathBuf::from(host).join(format!(".s.PGSQL.{port}"))),
            ),
            DatabaseTarget::Postgres { host, port, .. } => Some(Endpoint::Tcp {
                host: host.clone(),
                port: *port,
            }),
            DatabaseTarget::SqlServer {
                host,
                port,
                instance: None,
                ..
            } => Some(Endpoint::Tcp {
                host: host.clone(),
                port: *port,
            }),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(path) => path.display().to_string(),
        }
    }

    /// Dials the endpoint once. `Some` is a cause worth reporting instead of waiting: nothing
    /// listens there, or the host name does not resolve. Anything else (it answered, or the
    /// network is silent) is for the driver's own attempt to settle.
    pub(super) async fn unreachable(&self) -> Option<String> {
        use std::io::ErrorKind;
        let result = match self {
            Endpoint::Tcp { host, port } => {
                let resolved = tokio::net::lookup_host((host.as_str(), *port)).await;
                if !resolved.is_ok_and(|mut addrs| addrs.next().is_some()) {
                    return Some(format!("host not found: {host}"));
                }
                tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map(drop)
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => tokio::net::UnixStream::connect(path).await.map(drop),
            #[cfg(not(unix))]
            Endpoint::Unix(_) => return None,
        };
        match result {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(format!(
                "connection refused by {}: is the server running, and listening on that port?",
                self.describe()
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Some(format!(
                "no server socket at {}: is the server running, and is the socket directory right?",
                self.describe()
            )),
            _ => None,
        }
    }
}

/// Rewrites an error from taking a new connection so it names the cause and where to fix it:
/// a login the server refused is not "a rejected statement" (no statement ran), and a driver's
/// raw I/O text is replaced by what the user can do. `source` names the setting the connection
/// string came from.
pub(super) fn login_error(err: DbError, target: &str, source: Option<&str>) -> DbError {
    let check = |what: &str| match source {
        Some(source) => format!("check the {what} in {source}"),
        None => format!("check the {what} in the connection string"),
    };
    match err {
        DbError::Query {
            database,
            code: Some(code),
            message,
            ..
        } if code.starts_with("28") || code == "3D000" || code == "18456" || code == "4060" => {
            let fix = match code.as_str() {
                // invalid_password; SQL Server's "Login failed for user".
                "28P01" | "18456" => check("user and password"),
                // invalid_catalog_name; SQL Server's "Cannot open database".
                "3D000" | "4060" => check("database name"),
                // invalid_authorization_specification: no such role, or pg_hba refuses it.
                _ => check("user"),
            };
            DbError::Connection {
                database,
                target: target.to_owned(),
                message: format!("the server refused the login ({code}): {message}; {fix}"),
            }
        }
        DbError::Connection {
            database,
            target,
            message,
        } if message.contains("failed to lookup address")
            || message.contains("Name or service not known") =>
        {
            DbError::Connection {
                database,
                target,
                message: format!("host not found; {}", check("host")),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_error(code: &str, message: &str) -> DbError {
        DbError::Query {
            database: "rpa_db".into(),
            code: Some(code.into()),
            message: message.into(),
            constraint: None,
            detail: None,
        }
    }

    #[test]
    fn a_refused_login_is_a_connection_error_naming_the_setting() {
        let err = login_error(
            query_error("28P01", "password authentication failed for user \"bob\""),
            "postgresql at db:5432/rpa",
            Some("DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING (.env:3)"),
        );
        let text = err.to_string();
        assert!(matches!(err, DbError::Connection { .. }), "{text}");
        assert!(
            text.contains("password authentication failed for user \"bob\""),
            "{text}"
        );
        assert!(
            text.contains("check the user and password in DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING (.env:3)"),
            "{text}"
        );
        assert!(!text.contains("rejected the statement"), "{text}");
    }

    #[test]
    fn a_missing_role_or_database_says_which_part_to_check() {
        let role = login_error(
            query_error("28000", "role \"nosuchuser\" does not exist"),
            "t",
            None,
        );
        assert!(
            role.to_string()
                .ends_with("check the user in the connection string"),
            "{role}"
        );
        let db = login_error(
            query_error("3D000", "database \"x\" does not exist"),
            "t",
            None,
        );
        assert!(db.to_string().contains("check the database name"), "{db}");
    }

    #[test]
    fn other_statement_errors_pass_through() {
        let err = login_error(query_error("23505", "duplicate key"), "t", None);
        assert!(matches!(err, DbError::Query { .. }));
    }

    #[test]
    fn endpoints_skip_sqlite_and_named_instances() {
        let pg = DatabaseTarget::Postgres {
            host: "/var/run/postgresql".into(),
            port: 5432,
            database: "d".into(),
            user: None,
            password: None,
            options: Vec::new(),
        };
        assert_eq!(
            Endpoint::of(&pg),
            Some(Endpoint::Unix("/var/run/postgresql/.s.PGSQL.5432".into()))
        );
        let named = DatabaseTarget::SqlServer {
            host: "h".into(),
            port: 1433,
            instance: Some("SQLEXPRESS".into()),
            database: None,
            user: None,
            password: None,
            options: Vec::new(),
        };
        assert_eq!(Endpoint::of(&named), None);
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_reported_as_refused() {
        // Bind, note the port, close: nothing listens there now.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let cause = endpoint.unreachable().await.expect("refused");
        assert!(
            cause.starts_with(&format!("connection refused by 127.0.0.1:{port}")),
            "{cause}"
        );
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listening = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: open.local_addr().unwrap().port(),
        };
        assert_eq!(listening.unreachable().await, None);
    }
}
