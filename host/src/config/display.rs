//! How a [`DatabaseTarget`] prints: `Display` for logs and health output (no user, password or
//! options), `Debug` for developers (credentials as `***`).

use std::fmt;

use super::url::DatabaseTarget;

fn host_port(f: &mut fmt::Formatter<'_>, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

impl fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseTarget::Postgres {
                host,
                port,
                database,
                ..
            } => {
                f.write_str("postgresql at ")?;
                host_port(f, host, *port)?;
                write!(f, "/{database}")
            }
            DatabaseTarget::Sqlite {
                in_memory: true, ..
            } => f.write_str("sqlite in memory"),
            DatabaseTarget::Sqlite { path, .. } => write!(f, "sqlite file {}", path.display()),
            DatabaseTarget::SqlServer {
                host,
                port,
                instance,
                database,
                ..
            } => {
                f.write_str("sqlserver at ")?;
                match instance {
                    Some(i) => write!(f, "{host}\\{i}:{port}")?,
                    None => host_port(f, host, *port)?,
                }
                match database {
                    Some(d) => write!(f, "/{d}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Options whose key suggests a credential print as `***`.
struct RedactedOptions<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sensitive = |k: &str| {
            let k = k.to_ascii_lowercase();
            ["pass", "pwd", "secret", "token", "key", "auth"]
                .iter()
                .any(|s| k.contains(s))
        };
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k.as_str(), if sensitive(k) { "***" } else { v.as_str() })),
            )
            .finish()
    }
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseTarget::Postgres {
                host,
                port,
                database,
                user,
                password,
                options,
            } => f
                .debug_struct("Postgres")
                .field("host", host)
                .field("port", port)
                .field("database", database)
                .field("user", user)
                .field("password", password)
                .field("options", &RedactedOptions(options))
                .finish(),
            DatabaseTarget::Sqlite {
                path,
                in_memory,
                create_if_missing,
            } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("in_memory", in_memory)
                .field("create_if_missing", create_if_missing)
                .finish(),
            DatabaseTarget::SqlServer {
                host,
                port,
                instance,
                database,
                user,
                password,
                options,
            } => f
                .debug_struct("SqlServer")
                .field("host", host)
                .field("port", port)
                .field("instance", instance)
                .field("database", database)
                .field("user", user)
                .field("password", password)
                .field("options", &RedactedOptions(options))
                .finish(),
        }
    }
}
