//! The history table: one row per applied migration, Flyway's columns plus the checksum's
//! algorithm. The SQL is written once; only placeholders, quoting, column types and the
//! existence check differ by dialect.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::checksum::{Checksum, ChecksumAlgorithm};
use super::error::MigrateError;
use super::version::Version;
use crate::bindings::types::Value;
use crate::db::{Conn, Database, DbError, HostRow, text_value, timestamp_value};
use crate::sql::Backend;

/// The history table's default name.
pub const DEFAULT_HISTORY_TABLE: &str = "flowhost_schema_history";

/// The `type` of rows for versioned and repeatable SQL migrations (as Flyway writes it;
/// repeatable rows have no version).
pub const TYPE_SQL: &str = "SQL";
/// The `type` of the row `flowhost migrate baseline` writes (as Flyway).
pub const TYPE_BASELINE: &str = "BASELINE";
/// The `type` of rows recording an undo migration: the version it undid (as Flyway).
pub const TYPE_UNDO: &str = "UNDO_SQL";

/// The column a non-transactional migration records its progress in (statements completed);
/// added to history tables made before it existed.
const PROGRESS_COLUMN: &str = "statements_done";

/// One row of the history table.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedMigration {
    pub installed_rank: i32,
    /// `None` for rows without a version (repeatable migrations, issue 3).
    pub version: Option<Version>,
    pub description: String,
    /// `SQL` for versioned SQL migrations; other tools write `BASELINE`, `UNDO_SQL`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub script: String,
    pub checksum: Option<Checksum>,
    pub installed_by: String,
    /// UTC.
    #[serde(serialize_with = "serialize_utc")]
    pub installed_on: NaiveDateTime,
    pub execution_time_ms: i32,
    pub success: bool,
    /// For a migration run outside a transaction: how many of its statements completed.
    /// A failed row with progress can be resumed after the next statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_done: Option<i32>,
}

impl AppliedMigration {
    /// A versioned or repeatable SQL migration (not a baseline or an undo).
    pub fn is_sql(&self) -> bool {
        self.kind == TYPE_SQL
    }

    pub fn is_baseline(&self) -> bool {
        self.kind == TYPE_BASELINE
    }

    pub fn is_undo(&self) -> bool {
        self.kind == TYPE_UNDO
    }

    /// A repeatable migration's row: SQL without a version.
    pub fn is_repeatable(&self) -> bool {
        self.is_sql() && self.version.is_none()
    }
}

fn serialize_utc<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

/// A validated history table name and the SQL to use it, for one dialect.
#[derive(Debug, Clone)]
pub struct HistoryTable {
    name: String,
    dialect: Backend,
}

impl HistoryTable {
    /// Accepts plain identifiers only (`[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters), so the
    /// name can be quoted into SQL safely and means the same thing on every backend.
    pub fn new(name: &str, dialect: Backend) -> Result<HistoryTable, MigrateError> {
        let mut chars = name.chars();
        let plain = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 63;
        if !plain {
            return Err(MigrateError::InvalidOption(format!(
                "history table name '{name}' is not a plain identifier: use letters, digits and \
                 '_' (not starting with a digit, at most 63 characters), like \
                 {DEFAULT_HISTORY_TABLE}"
            )));
        }
        Ok(HistoryTable {
            name: name.to_owned(),
            dialect,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn quoted(&self) -> String {
        match self.dialect {
            Backend::SqlServer => format!("[{}]", self.name),
            _ => format!("\"{}\"", self.name),
        }
    }

    /// The `n`th (1-based) parameter placeholder.
    fn param(&self, n: usize) -> String {
        match self.dialect {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => format!("?{n}"),
            Backend::SqlServer => format!("@P{n}"),
        }
    }

    pub fn create_sql(&self) -> String {
        let (text, short_text, timestamp, boolean, if_missing) = match self.dialect {
            Backend::SqlServer => ("NVARCHAR(4000)", "NVARCHAR(100)", "DATETIME2", "BIT", ""),
            _ => ("TEXT", "TEXT", "TIMESTAMP", "BOOLEAN", "IF NOT EXISTS "),
        };
        format!(
            "CREATE TABLE {if_missing}{table} (\n  \
               installed_rank INTEGER NOT NULL PRIMARY KEY,\n  \
               version {short_text},\n  \
               description {text} NOT NULL,\n  \
               type {short_text} NOT NULL,\n  \
               script {text} NOT NULL,\n  \
               checksum {short_text},\n  \
               checksum_algorithm {short_text},\n  \
               installed_by {short_text} NOT NULL,\n  \
               installed_on {timestamp} NOT NULL DEFAULT CURRENT_TIMESTAMP,\n  \
               execution_time_ms INTEGER NOT NULL,\n  \
               success {boolean} NOT NULL,\n  \
               {PROGRESS_COLUMN} INTEGER\n)",
            table = self.quoted()
        )
    }

    /// One parameter (the table name); returns one row with a count, 0 or 1.
    pub fn exists_sql(&self) -> String {
        let p = self.param(1);
        match self.dialect {
            // to_regclass follows search_path, as unqualified names in the other statements do.
            Backend::Postgres => format!(
                "SELECT COUNT(*) FROM (SELECT to_regclass(quote_ident({p})) AS t) s WHERE t IS NOT NULL"
            ),
            Backend::Sqlite => format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = {p} COLLATE NOCASE"
            ),
            Backend::SqlServer => format!("SELECT COUNT(*) FROM sys.tables WHERE name = {p}"),
        }
    }

    /// `*` so that tables made before the progress column existed still read (as no progress).
    pub fn select_sql(&self) -> String {
        format!("SELECT * FROM {} ORDER BY installed_rank", self.quoted())
    }

    /// One parameter (the table name); a count, 1 when the progress column exists.
    fn progress_column_sql(&self) -> String {
        let p = self.param(1);
        match self.dialect {
            Backend::Postgres => format!(
                "SELECT COUNT(*) FROM pg_attribute WHERE attrelid = to_regclass(quote_ident({p})) \
                 AND attname = '{PROGRESS_COLUMN}' AND NOT attisdropped"
            ),
            Backend::Sqlite => format!(
                "SELECT COUNT(*) FROM pragma_table_info({p}) WHERE name = '{PROGRESS_COLUMN}'"
            ),
            Backend::SqlServer => format!(
                "SELECT COUNT(*) FROM sys.columns WHERE object_id = OBJECT_ID({p}) \
                 AND name = '{PROGRESS_COLUMN}'"
            ),
        }
    }

    fn add_progress_column_sql(&self) -> String {
        let add = match self.dialect {
            Backend::SqlServer => "ADD",
            _ => "ADD COLUMN",
        };
        format!(
            "ALTER TABLE {} {add} {PROGRESS_COLUMN} INTEGER",
            self.quoted()
        )
    }

    /// Parameters: statements done, execution time, success, checksum, algorithm, rank.
    pub fn update_progress_sql(&self) -> String {
        let p: Vec<String> = (1..=6).map(|n| self.param(n)).collect();
        format!(
            "UPDATE {} SET {PROGRESS_COLUMN} = {}, execution_time_ms = {}, success = {}, \
             checksum = {}, checksum_algorithm = {} WHERE installed_rank = {}",
            self.quoted(),
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            p[5]
        )
    }

    /// Parameters: checksum, algorithm, rank.
    pub fn realign_sql(&self) -> String {
        format!(
            "UPDATE {} SET checksum = {}, checksum_algorithm = {} WHERE installed_rank = {}",
            self.quoted(),
            self.param(1),
            self.param(2),
            self.param(3)
        )
    }

    /// Parameter: rank.
    pub fn delete_sql(&self) -> String {
        format!(
            "DELETE FROM {} WHERE installed_rank = {}",
            self.quoted(),
            self.param(1)
        )
    }

    pub fn max_rank_sql(&self) -> String {
        format!(
            "SELECT COALESCE(MAX(installed_rank), 0) FROM {}",
            self.quoted()
        )
    }

    pub fn insert_sql(&self) -> String {
        let params: Vec<String> = (1..=12).map(|n| self.param(n)).collect();
        format!(
            "INSERT INTO {} (installed_rank, version, description, type, script, checksum, \
             checksum_algorithm, installed_by, installed_on, execution_time_ms, success, \
             {PROGRESS_COLUMN}) VALUES ({})",
            self.quoted(),
            params.join(", ")
        )
    }

    /// Whether the table exists (without creating it).
    pub async fn exists(&self, conn: &mut Conn, db: &Database) -> Result<bool, DbError> {
        let name = Value::Text(self.name.clone());
        let count: i64 = conn.host_scalar(db, &self.exists_sql(), &[name]).await?;
        Ok(count > 0)
    }

    /// Creates the table when it is missing.
    pub async fn create(&self, conn: &mut Conn, db: &Database) -> Result<(), DbError> {
        conn.run_raw(db, &self.create_sql()).await
    }

    /// Makes sure the table exists with every column this version writes: creates it, or adds
    /// the progress column to a table made by an earlier flowhost. Call holding the lock.
    pub async fn ensure(&self, conn: &mut Conn, db: &Database) -> Result<(), MigrateError> {
        let context =
            |e| MigrateError::database(format!("create the history table {}", self.name), e);
        // Checked first so PostgreSQL does not log an "already exists" notice on every run;
        // the CREATE still says IF NOT EXISTS for a SQLite migrator racing this one.
        if !self.exists(conn, db).await? {
            return self.create(conn, db).await.map_err(context);
        }
        let name = Value::Text(self.name.clone());
        let count: i64 = conn
            .host_scalar(db, &self.progress_column_sql(), &[name])
            .await?;
        if count == 0 {
            tracing::info!(database = %db.name(), table = %self.name, "adding the {PROGRESS_COLUMN} column to the history table");
            conn.run_raw(db, &self.add_progress_column_sql())
                .await
                .map_err(|e| {
                    MigrateError::database(
                        format!(
                            "add column {PROGRESS_COLUMN} to the history table {}",
                            self.name
                        ),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    /// Records a non-transactional migration's progress (and, when done, its success).
    pub async fn update_progress(
        &self,
        conn: &mut Conn,
        db: &Database,
        row: &AppliedMigration,
    ) -> Result<(), DbError> {
        let (checksum, algorithm) = checksum_columns(&row.checksum);
        let params = [
            int_value(row.statements_done),
            Value::Int(row.execution_time_ms.into()),
            Value::Boolean(row.success),
            checksum,
            algorithm,
            Value::Int(row.installed_rank.into()),
        ];
        conn.host_execute(db, &self.update_progress_sql(), &params)
            .await
            .map(|_| ())
    }

    /// Sets a row's checksum (repair).
    pub async fn realign(
        &self,
        conn: &mut Conn,
        db: &Database,
        rank: i32,
        checksum: &Checksum,
    ) -> Result<(), DbError> {
        let (value, algorithm) = checksum_columns(&Some(checksum.clone()));
        let params = [value, algorithm, Value::Int(rank.into())];
        conn.host_execute(db, &self.realign_sql(), &params)
            .await
            .map(|_| ())
    }

    /// Removes a row (repair of failed entries).
    pub async fn delete(&self, conn: &mut Conn, db: &Database, rank: i32) -> Result<(), DbError> {
        conn.host_execute(db, &self.delete_sql(), &[Value::Int(rank.into())])
            .await
            .map(|_| ())
    }

    /// The highest installed rank (0 for an empty table): cheap to read inside each migration's
    /// transaction to see whether another process has migrated meanwhile.
    pub async fn max_rank(&self, conn: &mut Conn, db: &Database) -> Result<i32, DbError> {
        conn.host_scalar(db, &self.max_rank_sql(), &[]).await
    }

    /// Every row, by installed rank.
    pub async fn read(
        &self,
        conn: &mut Conn,
        db: &Database,
    ) -> Result<Vec<AppliedMigration>, MigrateError> {
        let rows = conn.host_query(db, &self.select_sql(), &[]).await;
        self.interpret(db, rows)
    }

    /// Every row, or `None` when the table does not exist. On PostgreSQL this is one round
    /// trip, which every `flowhost run` of a flow with migrations pays before its flow starts:
    /// the read is tried, and "undefined table" (42P01) means there is none. Elsewhere the
    /// presence check comes first.
    pub async fn read_if_present(
        &self,
        conn: &mut Conn,
        db: &Database,
    ) -> Result<Option<Vec<AppliedMigration>>, MigrateError> {
        if self.dialect == Backend::Postgres {
            let rows = conn.host_query(db, &self.select_sql(), &[]).await;
            if let Err(DbError::Query {
                code: Some(code), ..
            }) = &rows
                && code == "42P01"
            {
                return Ok(None);
            }
            return self.interpret(db, rows).map(Some);
        }
        if !self.exists(conn, db).await? {
            return Ok(None);
        }
        self.read(conn, db).await.map(Some)
    }

    fn interpret(
        &self,
        db: &Database,
        rows: Result<Vec<HostRow>, DbError>,
    ) -> Result<Vec<AppliedMigration>, MigrateError> {
        let rows = rows.map_err(|e| {
            MigrateError::database(format!("read the history table {}", self.name), e)
        })?;
        let raw = rows
            .iter()
            .map(RawRow::from_row)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|message| MigrateError::History {
                database: db.name().to_owned(),
                table: self.name.clone(),
                message,
            })?;
        raw.into_iter()
            .map(|r| r.interpret())
            .collect::<Result<_, String>>()
            .map_err(|message| MigrateError::History {
                database: db.name().to_owned(),
                table: self.name.clone(),
                message,
            })
    }

    /// Records one row.
    pub async fn insert(
        &self,
        conn: &mut Conn,
        db: &Database,
        row: &AppliedMigration,
    ) -> Result<(), DbError> {
        let version = row.version.as_ref().map(|v| v.to_string());
        let (checksum, algorithm) = checksum_columns(&row.checksum);
        let params = [
            Value::Int(row.installed_rank.into()),
            text_value(version.as_deref()),
            Value::Text(row.description.clone()),
            Value::Text(row.kind.clone()),
            Value::Text(row.script.clone()),
            checksum,
            algorithm,
            Value::Text(row.installed_by.clone()),
            timestamp_value(row.installed_on),
            Value::Int(row.execution_time_ms.into()),
            Value::Boolean(row.success),
            int_value(row.statements_done),
        ];
        conn.host_execute(db, &self.insert_sql(), &params)
            .await
            .map(|_| ())
    }
}

/// The checksum and checksum_algorithm column values.
fn checksum_columns(checksum: &Option<Checksum>) -> (Value, Value) {
    match checksum {
        Some(c) => (
            Value::Text(c.value.clone()),
            Value::Text(c.algorithm.as_str().to_owned()),
        ),
        None => (Value::Null, Value::Null),
    }
}

fn int_value(i: Option<i32>) -> Value {
    i.map_or(Value::Null, |i| Value::Int(i.into()))
}

/// A row as stored, before its version and checksum are interpreted.
struct RawRow {
    installed_rank: i32,
    version: Option<String>,
    description: String,
    kind: String,
    script: String,
    checksum: Option<String>,
    checksum_algorithm: Option<String>,
    installed_by: String,
    installed_on: NaiveDateTime,
    execution_time_ms: i32,
    success: bool,
    statements_done: Option<i32>,
}

impl RawRow {
    fn from_row(r: &HostRow) -> Result<RawRow, String> {
        Ok(RawRow {
            installed_rank: r.get("installed_rank")?,
            version: r.get("version")?,
            description: r.get("description")?,
            kind: r.get("type")?,
            script: r.get("script")?,
            checksum: r.get("checksum")?,
            checksum_algorithm: r.get("checksum_algorithm")?,
            installed_by: r.get("installed_by")?,
            installed_on: r.get("installed_on")?,
            execution_time_ms: r.get("execution_time_ms")?,
            success: r.get("success")?,
            // Absent in tables made before the column existed.
            statements_done: match r.has(PROGRESS_COLUMN) {
                true => r.get(PROGRESS_COLUMN)?,
                false => None,
            },
        })
    }

    fn interpret(self) -> Result<AppliedMigration, String> {
        let rank = self.installed_rank;
        let version =
            match self.version.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(Version::parse(text).map_err(|e| {
                    format!("row with installed_rank {rank} ({}): {e}", self.script)
                })?),
            };
        let checksum = match (self.checksum, self.checksum_algorithm) {
            (None, _) => None,
            (Some(value), Some(algorithm)) => {
                let known = ChecksumAlgorithm::from_name(&algorithm).ok_or_else(|| {
                    format!(
                        "row with installed_rank {rank} ({}) has a checksum made with \
                         '{algorithm}', which this version of flowhost cannot verify",
                        self.script
                    )
                })?;
                Some(Checksum {
                    algorithm: known,
                    value,
                })
            }
            (Some(_), None) => {
                return Err(format!(
                    "row with installed_rank {rank} ({}) has a checksum but no \
                     checksum_algorithm; set it (flowhost writes 'sha256')",
                    self.script
                ));
            }
        };
        Ok(AppliedMigration {
            installed_rank: rank,
            version,
            description: self.description,
            kind: self.kind,
            script: self.script,
            checksum,
            installed_by: self.installed_by,
            installed_on: self.installed_on,
            execution_time_ms: self.execution_time_ms,
            success: self.success,
            statements_done: self.statements_done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_must_be_plain_identifiers() {
        for ok in [
            "flowhost_schema_history",
            "_h",
            "History2",
            "schema_version",
        ] {
            assert!(HistoryTable::new(ok, Backend::Postgres).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a.b",
            "h\"; DROP TABLE x; --",
            "a b",
            &"x".repeat(64),
        ] {
            let err = HistoryTable::new(bad, Backend::Sqlite).unwrap_err();
            assert!(matches!(err, MigrateError::InvalidOption(_)), "{bad}");
        }
    }

    #[test]
    fn sql_uses_each_dialects_placeholders_and_quoting() {
        let pg = HistoryTable::new("h", Backend::Postgres).unwrap();
        assert!(
            pg.insert_sql()
                .ends_with("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        );
        assert!(
            pg.select_sql()
                .contains("FROM \"h\" ORDER BY installed_rank")
        );
        assert!(
            pg.create_sql()
                .starts_with("CREATE TABLE IF NOT EXISTS \"h\" (")
        );
        let lite = HistoryTable::new("h", Backend::Sqlite).unwrap();
        assert!(
            lite.insert_sql()
                .ends_with("VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
        );
        assert!(lite.exists_sql().contains("sqlite_master"));
        let ms = HistoryTable::new("h", Backend::SqlServer).unwrap();
        assert!(ms.insert_sql().contains("[h]") && ms.insert_sql().contains("@P12"));
        assert!(ms.create_sql().contains("BIT NOT NULL"));
    }

    fn raw(version: Option<&str>, checksum: Option<&str>, algorithm: Option<&str>) -> RawRow {
        RawRow {
            installed_rank: 1,
            version: version.map(str::to_owned),
            description: "d".into(),
            kind: TYPE_SQL.into(),
            script: "V1__d.sql".into(),
            checksum: checksum.map(str::to_owned),
            checksum_algorithm: algorithm.map(str::to_owned),
            installed_by: "me".into(),
            installed_on: chrono::DateTime::UNIX_EPOCH.naive_utc(),
            execution_time_ms: 3,
            success: true,
            statements_done: None,
        }
    }

    #[test]
    fn rows_are_interpreted_or_refused_with_the_reason() {
        let row = raw(Some("01.01"), Some("ab"), Some("sha256"))
            .interpret()
            .unwrap();
        assert_eq!(row.version, Some(Version::parse("1.1").unwrap()));
        assert_eq!(row.checksum.unwrap().algorithm, ChecksumAlgorithm::Sha256);
        assert!(
            raw(Some(""), None, None)
                .interpret()
                .unwrap()
                .version
                .is_none()
        );
        let e = raw(Some("x"), None, None).interpret().unwrap_err();
        assert!(
            e.contains("installed_rank 1") && e.contains("not a version"),
            "{e}"
        );
        let e = raw(Some("1"), Some("ab"), Some("crc32"))
            .interpret()
            .unwrap_err();
        assert!(e.contains("'crc32'"), "{e}");
        let e = raw(Some("1"), Some("ab"), None).interpret().unwrap_err();
        assert!(e.contains("no checksum_algorithm"), "{e}");
    }

    #[test]
    fn rows_serialise_with_flyway_column_names() {
        let row = raw(Some("2"), Some("ab"), Some("sha256"))
            .interpret()
            .unwrap();
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["type"], "SQL");
        assert_eq!(json["version"], "2");
        assert_eq!(json["installed_on"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["checksum"]["algorithm"], "sha256");
    }
}
