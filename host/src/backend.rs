//! Which kind of database server a database is: the one enum that configuration, SQL handling,
//! the drivers and migrations share, so a backend is named the same way everywhere.

use std::fmt;

use serde::Serialize;

/// The three backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Backend {
    /// PostgreSQL.
    #[serde(rename = "postgresql")]
    Postgres,
    /// SQLite.
    #[serde(rename = "sqlite")]
    Sqlite,
    /// Microsoft SQL Server (T-SQL).
    #[serde(rename = "sqlserver")]
    SqlServer,
}

impl Backend {
    /// Parses a `TYPE` value: `postgresql`/`postgres`, `sqlite`, `mssql`/`sqlserver`
    /// (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Some(Backend::Postgres),
            "sqlite" => Some(Backend::Sqlite),
            "mssql" | "sqlserver" => Some(Backend::SqlServer),
            _ => None,
        }
    }

    /// The canonical name, as used in messages, health output and `TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
            Backend::SqlServer => "sqlserver",
        }
    }
}

impl Backend {
    /// A query whose one text column names the server's version, for health output.
    pub fn server_version_sql(self) -> &'static str {
        match self {
            Backend::Postgres => "SELECT 'PostgreSQL ' || current_setting('server_version')",
            Backend::Sqlite => "SELECT 'SQLite ' || sqlite_version()",
            // @@VERSION's first line: product, version and build (Babelfish names itself).
            Backend::SqlServer => {
                "SELECT CAST(LEFT(@@VERSION, CHARINDEX(CHAR(10), @@VERSION + CHAR(10)) - 1) \
                 AS NVARCHAR(400))"
            }
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_spelling_and_serialises_as_its_name() {
        for (text, backend) in [
            ("PostgreSQL", Backend::Postgres),
            ("postgres", Backend::Postgres),
            (" SQLite ", Backend::Sqlite),
            ("MSSQL", Backend::SqlServer),
            ("sqlserver", Backend::SqlServer),
        ] {
            assert_eq!(Backend::parse(text), Some(backend), "{text}");
            assert_eq!(
                serde_json::to_value(backend).unwrap(),
                serde_json::json!(backend.as_str())
            );
            assert_eq!(Backend::parse(backend.as_str()), Some(backend));
        }
        assert_eq!(Backend::parse("oracle"), None);
    }
}
