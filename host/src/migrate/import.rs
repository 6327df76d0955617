//! Taking over a database another tool migrated: reading Pyway's and Flyway's history tables
//! and copying them into flowhost's, so the migrations they applied are not applied again and
//! are still verified, with the other tool's checksum algorithm.
//!
//! The layouts, from the tools' sources:
//!
//! - **Flyway** (`flyway_schema_history`; `schema_version` before Flyway 5): `installed_rank`
//!   INT, `version` VARCHAR(50) (NULL for repeatable and marker rows), `description`, `type`
//!   (`SQL`, `BASELINE`, `UNDO_SQL`, `SCHEMA`, `DELETE`, ...), `script`, `checksum` INTEGER (a
//!   signed CRC-32, NULL for marker rows), `installed_by`, `installed_on` TIMESTAMP (SQLite:
//!   TEXT `YYYY-MM-DD HH:MM:SS.SSS`), `execution_time` INTEGER (ms), `success` BOOLEAN.
//! - **Pyway** (the table its `database_table` setting names; `schema_version` here, or `pyway`
//!   as in its README): `installed_rank serial PRIMARY KEY`, `version varchar(20)` (zero-padded
//!   parts, `01.01`), `extension varchar(20)` (`SQL`), `name varchar(125)` (the file name),
//!   `checksum varchar(25)` (unpadded uppercase hex CRC-32 of the raw file), `apply_timestamp
//!   timestamp` (defaulted by the server). Pyway records nothing else: no description, no user,
//!   no duration, only successful migrations. On SQLite `serial PRIMARY KEY` is not a rowid
//!   alias, so Pyway's `installed_rank` is NULL there and insertion order is the row order.
//!
//! A table is recognised by its columns, not only its name, so an unrelated table that happens
//! to be called `schema_version` (or flowhost's own history under such a name) is left alone.

use chrono::NaiveDateTime;

use super::checksum::{Checksum, ChecksumAlgorithm};
use super::error::MigrateError;
use super::history::{AppliedMigration, HistoryTable, TYPE_SQL};
use super::version::Version;
use crate::bindings::types::Value;
use crate::db::{Backend, Conn, Database, DbError};
use crate::sql::TransactionKind;

/// The tool that wrote a history table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForeignTool {
    Pyway,
    Flyway,
}

impl ForeignTool {
    pub fn as_str(self) -> &'static str {
        match self {
            ForeignTool::Pyway => "pyway",
            ForeignTool::Flyway => "flyway",
        }
    }

    /// The algorithm the tool's checksums were made with.
    pub fn checksum_algorithm(self) -> ChecksumAlgorithm {
        match self {
            ForeignTool::Pyway => ChecksumAlgorithm::PywayCrc32,
            ForeignTool::Flyway => ChecksumAlgorithm::FlywayCrc32,
        }
    }
}

impl std::fmt::Display for ForeignTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Another tool's history, read into flowhost's rows.
#[derive(Debug, Clone)]
pub struct ForeignHistory {
    pub tool: ForeignTool,
    /// The table it was read from.
    pub table: String,
    /// In the table's installed-rank order. Checksums carry the tool's algorithm;
    /// `installed_on` is the tool's timestamp as stored (local time of the server or the
    /// client, not necessarily UTC).
    pub rows: Vec<AppliedMigration>,
    /// Other history tables found but not read (`tool:table`), when more than one exists.
    pub passed_over: Vec<String>,
}

/// The tables looked for, in order of preference. Flyway's current name comes first: when it
/// exists Flyway itself ignores a leftover `schema_version`, and a database that moved from
/// Pyway to Flyway has the newer history there.
const CANDIDATES: [&str; 3] = ["flyway_schema_history", "schema_version", "pyway"];

const FLYWAY_COLUMNS: [&str; 10] = [
    "installed_rank",
    "version",
    "description",
    "type",
    "script",
    "checksum",
    "installed_by",
    "installed_on",
    "execution_time",
    "success",
];

const PYWAY_COLUMNS: [&str; 5] = [
    "version",
    "extension",
    "name",
    "checksum",
    "apply_timestamp",
];

/// Looks for a Flyway or Pyway history table on this connection (PostgreSQL: in the
/// `search_path`; SQLite: the main database) and reads it.
///
/// The tables tried are `flyway_schema_history`, `schema_version` (Pyway's, or Flyway's before
/// version 5, told apart by their columns) and `pyway`; each is used only when it has the
/// tool's columns. When several are there the first in that order is read — so Flyway's wins
/// over Pyway's — and the others are named in [`ForeignHistory::passed_over`] and logged as a
/// warning. `None` when there is none.
///
/// Rows are refused with [`MigrateError::History`], naming the row, when a version does not
/// parse or a value is missing that flowhost needs (an installed time).
pub async fn find_foreign(
    conn: &mut Conn,
    db: &Database,
) -> Result<Option<ForeignHistory>, MigrateError> {
    let mut found: Vec<(ForeignTool, &str)> = Vec::new();
    for table in CANDIDATES {
        let columns = columns(conn, db, table).await?;
        let has = |wanted: &[&str]| wanted.iter().all(|w| columns.iter().any(|c| c == w));
        if has(&FLYWAY_COLUMNS) {
            found.push((ForeignTool::Flyway, table));
        } else if has(&PYWAY_COLUMNS) {
            found.push((ForeignTool::Pyway, table));
        } else if !columns.is_empty() {
            tracing::debug!(
                database = db.name(),
                table,
                "a table with this name exists but is not a Flyway or Pyway history table"
            );
        }
    }
    let Some(&(tool, table)) = found.first() else {
        return Ok(None);
    };
    let passed_over: Vec<String> = found[1..]
        .iter()
        .map(|(tool, table)| format!("{tool}:{table}"))
        .collect();
    if !passed_over.is_empty() {
        tracing::warn!(
            database = db.name(),
            "several history tables found; reading {tool}:{table}, not {}",
            passed_over.join(", ")
        );
    }
    let rows = match tool {
        ForeignTool::Flyway => read_flyway(conn, db, table).await?,
        ForeignTool::Pyway => read_pyway(conn, db, table).await?,
    };
    Ok(Some(ForeignHistory {
        tool,
        table: table.to_owned(),
        rows,
        passed_over,
    }))
}

/// Copies `foreign`'s rows into flowhost's history table `table` (created if missing), in one
/// transaction, and returns how many were copied.
///
/// Rows keep their order and kinds, their versions as written (`01.01` stays `01.01`; it still
/// equals a file's `1.1`), and their checksums with the foreign algorithm, so later runs verify
/// the files as the other tool would. Flyway's installed ranks are kept; Pyway's rows are
/// numbered 1, 2, ... in table order. Refuses (changing nothing) when flowhost's table already
/// holds rows: adopting is for the switch-over, before flowhost has migrated anything.
///
/// Run it on the connection of a [`MigrationConn`](super::MigrationConn) to keep concurrent
/// migrators out on PostgreSQL; on SQLite the transaction is `BEGIN IMMEDIATE`.
pub async fn adopt(
    conn: &mut Conn,
    db: &Database,
    table: &HistoryTable,
    foreign: &ForeignHistory,
) -> Result<usize, MigrateError> {
    if !table.exists(conn, db).await? {
        table.create(conn, db).await.map_err(|e| {
            MigrateError::database(format!("create the history table {}", table.name()), e)
        })?;
    }
    let begin = db.backend().begin_sql(TransactionKind::ReadWrite);
    conn.run_raw(db, begin)
        .await
        .map_err(|e| MigrateError::database("begin the history import", e))?;
    let result = copy_rows(conn, db, table, foreign).await;
    let end = match result {
        Ok(_) => db.backend().commit_sql(),
        Err(_) => db.backend().rollback_sql(),
    };
    let ended = conn.run_raw(db, end).await;
    let copied = result?;
    ended.map_err(|e| MigrateError::database("commit the history import", e))?;
    tracing::info!(
        database = db.name(),
        "copied {copied} rows of {}:{} into {}",
        foreign.tool,
        foreign.table,
        table.name()
    );
    Ok(copied)
}

async fn copy_rows(
    conn: &mut Conn,
    db: &Database,
    table: &HistoryTable,
    foreign: &ForeignHistory,
) -> Result<usize, MigrateError> {
    let existing = table.read(conn, db).await?.len();
    if existing > 0 {
        return Err(MigrateError::History {
            database: db.name().to_owned(),
            table: table.name().to_owned(),
            message: format!(
                "already holds {existing} row{}, so the {} history in {} was not copied into \
                 it; adopting another tool's history is for a database flowhost has not \
                 migrated yet",
                if existing == 1 { "" } else { "s" },
                foreign.tool,
                foreign.table
            ),
        });
    }
    for row in &foreign.rows {
        table.insert(conn, db, row).await.map_err(|e| {
            MigrateError::database(
                format!(
                    "copy {} (installed_rank {}) into the history table {}",
                    row.script,
                    row.installed_rank,
                    table.name()
                ),
                e,
            )
        })?;
    }
    Ok(foreign.rows.len())
}

/// The column names of `table` (lowercase), empty when it does not exist.
async fn columns(conn: &mut Conn, db: &Database, table: &str) -> Result<Vec<String>, MigrateError> {
    let sql = match db.backend() {
        // to_regclass follows search_path, as the flowhost history table's checks do.
        Backend::Postgres => {
            "SELECT a.attname::text FROM pg_attribute a \
             WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 \
             AND NOT a.attisdropped"
        }
        Backend::Sqlite => "SELECT name FROM pragma_table_info(?1)",
        Backend::SqlServer => {
            "SELECT LOWER(name) FROM sys.columns WHERE object_id = OBJECT_ID(@P1)"
        }
    };
    let context = |e| MigrateError::database(format!("look for a table {table}"), e);
    let rows = conn
        .host_query(db, sql, &[Value::Text(table.to_owned())])
        .await
        .map_err(context)?;
    rows.iter()
        .map(|r| r.at::<String>(0).map(|n| n.to_ascii_lowercase()))
        .collect::<Result<_, _>>()
        .map_err(|e| context(DbError::conversion(db.name(), e)))
}

fn history_error(db: &Database, table: &str, message: String) -> MigrateError {
    MigrateError::History {
        database: db.name().to_owned(),
        table: table.to_owned(),
        message,
    }
}

fn parse_version(text: Option<&str>, row: &str) -> Result<Option<Version>, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Version::parse(text)
            .map(Some)
            .map_err(|e| format!("{row}: {e}")),
    }
}

/// A Flyway row as stored.
struct FlywayRow {
    installed_rank: i32,
    version: Option<String>,
    description: String,
    kind: String,
    script: String,
    checksum: Option<i32>,
    installed_by: String,
    installed_on: Option<NaiveDateTime>,
    execution_time: i32,
    success: bool,
}

impl FlywayRow {
    fn interpret(self) -> Result<AppliedMigration, String> {
        let row = format!(
            "row with installed_rank {} ({})",
            self.installed_rank, self.script
        );
        let version = parse_version(self.version.as_deref(), &row)?;
        let installed_on = self
            .installed_on
            .ok_or_else(|| format!("{row}: installed_on is empty or not a timestamp"))?;
        Ok(AppliedMigration {
            installed_rank: self.installed_rank,
            version,
            description: self.description,
            kind: self.kind,
            script: self.script,
            checksum: self.checksum.map(|value| Checksum {
                algorithm: ChecksumAlgorithm::FlywayCrc32,
                value: value.to_string(),
            }),
            installed_by: self.installed_by,
            installed_on,
            execution_time_ms: self.execution_time,
            success: self.success,
            statements_done: None,
        })
    }
}

async fn read_flyway(
    conn: &mut Conn,
    db: &Database,
    table: &str,
) -> Result<Vec<AppliedMigration>, MigrateError> {
    let sql = format!(
        "SELECT installed_rank, version, description, type, script, checksum, installed_by, \
         installed_on, execution_time, success FROM \"{table}\" ORDER BY installed_rank"
    );
    let rows = conn
        .host_query(db, &sql, &[])
        .await
        .map_err(|e| MigrateError::database(format!("read the Flyway history table {table}"), e))?;
    let raw = rows
        .iter()
        .map(|r| {
            Ok(FlywayRow {
                installed_rank: r.at(0)?,
                version: r.at(1)?,
                description: r.at(2)?,
                kind: r.at(3)?,
                script: r.at(4)?,
                checksum: r.at(5)?,
                installed_by: r.at(6)?,
                installed_on: r.at(7)?,
                execution_time: r.at(8)?,
                success: r.at(9)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|m| history_error(db, table, m))?;
    raw.into_iter()
        .map(FlywayRow::interpret)
        .collect::<Result<_, _>>()
        .map_err(|m| history_error(db, table, m))
}

/// A Pyway row as stored.
struct PywayRow {
    installed_rank: Option<i32>,
    version: Option<String>,
    name: String,
    checksum: Option<String>,
    apply_timestamp: Option<NaiveDateTime>,
}

impl PywayRow {
    /// `position` is the row's 1-based place in table order, which becomes its rank.
    fn interpret(self, position: usize) -> Result<AppliedMigration, String> {
        let row = match self.installed_rank {
            Some(rank) => format!("row with installed_rank {rank} ({})", self.name),
            None => format!("row {position} ({})", self.name),
        };
        let version = parse_version(self.version.as_deref(), &row)?
            .ok_or_else(|| format!("{row}: the version is empty"))?;
        let installed_on = self
            .apply_timestamp
            .ok_or_else(|| format!("{row}: apply_timestamp is empty or not a timestamp"))?;
        let installed_rank = i32::try_from(position)
            .map_err(|_| format!("{row}: more rows than an installed_rank can number"))?;
        Ok(AppliedMigration {
            installed_rank,
            version: Some(version),
            description: pyway_description(&self.name),
            kind: TYPE_SQL.to_owned(),
            checksum: self
                .checksum
                .filter(|c| !c.trim().is_empty())
                .map(|value| Checksum {
                    algorithm: ChecksumAlgorithm::PywayCrc32,
                    value: value.trim().to_owned(),
                }),
            script: self.name,
            // Pyway records neither who nor how long; it records only successes.
            installed_by: String::new(),
            installed_on,
            execution_time_ms: 0,
            success: true,
            statements_done: None,
        })
    }
}

/// The description flowhost would give Pyway's file name: the part after `__`, without the
/// extension, `_` written as spaces (`V01_02__add_users.sql` → `add users`).
fn pyway_description(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let described = stem.split_once("__").map_or(stem, |(_, d)| d);
    described.replace('_', " ")
}

async fn read_pyway(
    conn: &mut Conn,
    db: &Database,
    table: &str,
) -> Result<Vec<AppliedMigration>, MigrateError> {
    // On SQLite Pyway's installed_rank is NULL (see the module docs): insertion order is rowid.
    let order = match db.backend() {
        Backend::Sqlite => "installed_rank, rowid",
        _ => "installed_rank",
    };
    let sql = format!(
        "SELECT installed_rank, version, name, checksum, apply_timestamp FROM \"{table}\" \
         ORDER BY {order}"
    );
    let rows = conn
        .host_query(db, &sql, &[])
        .await
        .map_err(|e| MigrateError::database(format!("read the Pyway history table {table}"), e))?;
    let raw = rows
        .iter()
        .map(|r| {
            Ok(PywayRow {
                installed_rank: r.at(0)?,
                version: r.at(1)?,
                name: r.at(2)?,
                checksum: r.at(3)?,
                apply_timestamp: r.at(4)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|m| history_error(db, table, m))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| r.interpret(i + 1))
        .collect::<Result<_, _>>()
        .map_err(|m| history_error(db, table, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> NaiveDateTime {
        chrono::DateTime::UNIX_EPOCH.naive_utc()
    }

    #[test]
    fn pyway_rows_become_sql_rows_numbered_in_order() {
        let row = PywayRow {
            installed_rank: None,
            version: Some("01.02".into()),
            name: "V01_02__add_users.sql".into(),
            checksum: Some("3A4779".into()),
            apply_timestamp: Some(at()),
        }
        .interpret(2)
        .unwrap();
        assert_eq!(row.installed_rank, 2);
        assert_eq!(row.version.as_ref().unwrap().as_str(), "01.02");
        assert_eq!(row.version, Some(Version::parse("1.2").unwrap()));
        assert_eq!(row.description, "add users");
        assert_eq!(row.kind, "SQL");
        assert_eq!(row.script, "V01_02__add_users.sql");
        let checksum = row.checksum.unwrap();
        assert_eq!(checksum.algorithm, ChecksumAlgorithm::PywayCrc32);
        assert_eq!(checksum.value, "3A4779");
        assert!(row.success);
    }

    #[test]
    fn unreadable_rows_are_named() {
        let e = PywayRow {
            installed_rank: Some(7),
            version: Some("1.x".into()),
            name: "V1_x__bad.sql".into(),
            checksum: Some("0".into()),
            apply_timestamp: Some(at()),
        }
        .interpret(1)
        .unwrap_err();
        assert!(e.contains("installed_rank 7 (V1_x__bad.sql)"), "{e}");
        assert!(e.contains("not a version"), "{e}");
        let e = PywayRow {
            installed_rank: None,
            version: Some("1.1".into()),
            name: "V1_1__t.sql".into(),
            checksum: None,
            apply_timestamp: None,
        }
        .interpret(3)
        .unwrap_err();
        assert!(
            e.contains("row 3 (V1_1__t.sql)") && e.contains("apply_timestamp"),
            "{e}"
        );

        let flyway = |version: Option<&str>| FlywayRow {
            installed_rank: 4,
            version: version.map(str::to_owned),
            description: "d".into(),
            kind: "SQL".into(),
            script: "V4__d.sql".into(),
            checksum: Some(-5),
            installed_by: "me".into(),
            installed_on: Some(at()),
            execution_time: 12,
            success: false,
        };
        let e = flyway(Some("4.a")).interpret().unwrap_err();
        assert!(e.contains("installed_rank 4 (V4__d.sql)"), "{e}");
        let row = flyway(None).interpret().unwrap();
        assert_eq!(row.version, None);
        assert_eq!(row.checksum.unwrap().value, "-5");
        assert_eq!((row.execution_time_ms, row.success), (12, false));
    }

    #[test]
    fn descriptions_from_pyway_names() {
        assert_eq!(
            pyway_description("V01_01__create_table.sql"),
            "create table"
        );
        assert_eq!(pyway_description("V1__x.SQL"), "x");
        assert_eq!(pyway_description("odd"), "odd");
    }
}
