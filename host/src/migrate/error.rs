//! What can go wrong while migrating, each message saying what to do about it. No message
//! carries a connection string: database errors come through [`DbError`], already scrubbed.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use super::checksum::Checksum;
use super::version::Version;
use crate::db::DbError;

/// Why migrating (or reading migration status) failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The migrations folder (or a folder in it) could not be read.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Files in the migrations folder that are not valid migrations: bad names, duplicate
    /// versions, kinds not supported yet, unreadable or non-UTF-8 files.
    #[error("{}", files_message(dir, problems))]
    InvalidFiles {
        dir: PathBuf,
        problems: Vec<FileProblem>,
    },
    /// A [`MigrateOptions`](super::MigrateOptions) value is unusable.
    #[error("invalid migration option: {0}")]
    InvalidOption(String),
    /// Applied migrations whose files changed since.
    #[error("{}", mismatch_message(database, mismatches))]
    ChecksumMismatch {
        database: String,
        mismatches: Vec<ChecksumMismatch>,
    },
    /// Pending migrations whose versions are lower than the latest applied one.
    #[error(
        "database {database}: {} pending but version {latest} is already applied, so {} would \
         run out of order; give the new {} a version above {latest} (rename it), or apply it \
         with `flowhost migrate --out-of-order`",
        list(pending), if pending.len() == 1 { "it" } else { "they" },
        if pending.len() == 1 { "file" } else { "files" }
    )]
    OutOfOrder {
        database: String,
        latest: Version,
        /// The scripts that would run out of order.
        pending: Vec<String>,
    },
    /// The history records migrations that failed part-way (written by a tool or a backend that
    /// could not roll them back).
    #[error(
        "database {database}: the history table records {} as failed; check what {} left in the \
         database and fix it by hand, then remove the failed {} from the history with \
         `flowhost migrate repair` before migrating again",
        list(scripts), if scripts.len() == 1 { "it" } else { "they" },
        if scripts.len() == 1 { "entry" } else { "entries" }
    )]
    FailedEntries {
        database: String,
        scripts: Vec<String>,
    },
    /// A migration script cannot be split into statements (an unterminated string or comment).
    #[error("migration {script} (database {database}) cannot be split into statements: {message}")]
    Script {
        database: String,
        script: String,
        message: String,
    },
    /// A migration script begins or ends transactions itself, which would break the guarantee
    /// that a failed migration leaves nothing behind.
    #[error(
        "migration {script} (database {database}) line {line}: the script runs `{keyword}`, but \
         flowhost runs each migration in a transaction of its own; remove the transaction \
         control statements from the file"
    )]
    TransactionControl {
        database: String,
        script: String,
        line: usize,
        keyword: String,
    },
    /// A file mixes statements that cannot run inside a transaction with ones that can.
    #[error(
        "migration {script} (database {database}) line {line}: `{what}` cannot run inside a \
         transaction, but line {other_line} holds a statement that flowhost would run in one. \
         Put the `{what}` statement in a migration file of its own (it then runs outside a \
         transaction), or start this file with the comment `-- flowhost:no-transaction` to run \
         every statement on its own (a failure then leaves the earlier statements applied; the \
         next `flowhost migrate` resumes after them)"
    )]
    MixedTransactional {
        database: String,
        script: String,
        line: usize,
        what: &'static str,
        other_line: usize,
    },
    /// A `${name}` placeholder with no configured value.
    #[error(
        "migration {script} (database {database}) line {line}: unknown placeholder ${{{name}}}; \
         set FLOWHOST_PLACEHOLDER_{} (known: {known})", name.to_ascii_uppercase().replace([':', '.', '-'], "_")
    )]
    UnknownPlaceholder {
        database: String,
        script: String,
        line: usize,
        name: String,
        known: String,
    },
    /// `undo` was asked for a version that has no `U` file.
    #[error(
        "database {database}: cannot undo version {version} ({script}): there is no \
         U{version}__<description>.sql file for it; write one, or restore from a backup"
    )]
    NoUndoFile {
        database: String,
        version: Version,
        script: String,
    },
    /// An undo file that cannot run inside a transaction.
    #[error(
        "undo migration {script} (database {database}) line {line}: `{what}` cannot run in a \
         transaction; undo files always run in one, so undo that step by hand"
    )]
    UndoNotTransactional {
        database: String,
        script: String,
        line: usize,
        what: &'static str,
    },
    /// `baseline` on a database whose history already has rows.
    #[error(
        "database {database}: cannot baseline: the history table {table} already has {rows} \
         row(s) (current version {}); baseline is for a database that has a schema but no \
         history yet", current.as_ref().map_or_else(|| "none".to_owned(), |v| v.to_string())
    )]
    BaselineNotEmpty {
        database: String,
        table: String,
        rows: usize,
        current: Option<Version>,
    },
    /// A statement of a migration running outside a transaction failed: the statements before
    /// it stay applied and are recorded.
    #[error(
        "migration {script} (database {database}) runs outside a transaction and failed at \
         statement {} of {total} (line {statement_line}): {source}; statements 1 to {done} stay \
         applied and are recorded in the history, so after fixing the failing statement \
         `flowhost migrate` resumes at statement {}", done + 1, done + 1
    )]
    FailedPartway {
        database: String,
        script: String,
        done: usize,
        total: usize,
        statement_line: usize,
        source: Box<DbError>,
    },
    /// Another migrator held the lock for longer than the configured wait.
    #[error(
        "database {database}: gave up after {} waiting for the migration lock, held by {}; \
         another `flowhost migrate` or flow start is migrating this database. Let it finish and \
         retry, or raise the lock timeout; if that session is stuck, end it on the server \
         (PostgreSQL: pg_terminate_backend(pid); SQL Server: KILL session)",
        human_duration(*waited), holder.as_deref().unwrap_or("another session (it could not be identified)")
    )]
    LockTimeout {
        database: String,
        waited: Duration,
        holder: Option<String>,
    },
    /// A migration's statement failed; the migration was rolled back.
    #[error(
        "migration {script} (database {database}) failed at line {statement_line}: {source}; \
         nothing from this migration was applied (statement: {statement_preview})"
    )]
    Failed {
        database: String,
        script: String,
        statement_line: usize,
        /// The statement's first 80 characters, whitespace collapsed.
        statement_preview: String,
        /// Boxed to keep every `Result<_, MigrateError>` small.
        source: Box<DbError>,
    },
    /// A history row flowhost cannot interpret.
    #[error("database {database}: history table {table}: {message}")]
    History {
        database: String,
        table: String,
        message: String,
    },
    /// A database step around the migrations (the lock, the history table) failed.
    #[error("could not {action}: {source}")]
    Database {
        action: String,
        source: Box<DbError>,
    },
    /// A database error without more context (the error names its database). Converted from
    /// [`DbError`] by `?`.
    #[error(transparent)]
    Db(Box<DbError>),
}

impl From<DbError> for MigrateError {
    fn from(e: DbError) -> Self {
        MigrateError::Db(Box::new(e))
    }
}

impl MigrateError {
    /// A database step that failed, with what was being done.
    pub fn database(action: impl Into<String>, source: DbError) -> Self {
        MigrateError::Database {
            action: action.into(),
            source: Box::new(source),
        }
    }

    /// The database error underneath, if there is one.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            MigrateError::Failed { source, .. }
            | MigrateError::FailedPartway { source, .. }
            | MigrateError::Database { source, .. }
            | MigrateError::Db(source) => Some(source),
            _ => None,
        }
    }
}

/// One problem with one file of a migrations folder.
#[derive(Debug, Clone)]
pub enum FileProblem {
    BadName {
        file: PathBuf,
        reason: String,
    },
    Duplicate {
        /// What they share: `version 1`, `the repeatable description 'views'`.
        key: String,
        first: PathBuf,
        second: PathBuf,
    },
    Unreadable {
        file: PathBuf,
        message: String,
    },
    NotUtf8 {
        file: PathBuf,
        offset: usize,
    },
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::BadName { file, reason } => {
                write!(
                    f,
                    "{} is not a valid migration file name: {reason}",
                    file.display()
                )
            }
            FileProblem::Duplicate { key, first, second } => write!(
                f,
                "{} and {} both have {key}; rename one of them",
                first.display(),
                second.display()
            ),
            FileProblem::Unreadable { file, message } => {
                write!(f, "cannot read {}: {message}", file.display())
            }
            FileProblem::NotUtf8 { file, offset } => write!(
                f,
                "{} is not valid UTF-8 (at byte {offset}); save it as UTF-8",
                file.display()
            ),
        }
    }
}

/// An applied migration whose file no longer matches what ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChecksumMismatch {
    /// `None` for a repeatable migration.
    pub version: Option<Version>,
    pub script: String,
    /// The history row that recorded it.
    pub installed_rank: i32,
    /// What the history recorded.
    pub recorded: Checksum,
    /// The file's checksum now, under the recorded algorithm.
    pub current: Checksum,
}

impl fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = match &self.version {
            Some(v) => format!("version {v}"),
            None => "repeatable".to_owned(),
        };
        write!(
            f,
            "{} ({version}) changed after it was applied: recorded checksum {}, file now {}",
            self.script, self.recorded, self.current
        )
    }
}

fn files_message(dir: &std::path::Path, problems: &[FileProblem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut out = format!(
                "{} problems with the migration files in {}:",
                many.len(),
                dir.display()
            );
            for p in many {
                let _ = write!(out, "\n  - {p}");
            }
            out
        }
    }
}

fn mismatch_message(database: &str, mismatches: &[ChecksumMismatch]) -> String {
    let mut out = format!("database {database}: ");
    match mismatches {
        [one] => {
            let _ = write!(out, "migration {one}.");
        }
        many => {
            let _ = write!(out, "{} applied migrations were changed:", many.len());
            for m in many {
                let _ = write!(out, "\n  - {m}");
            }
            out.push('\n');
        }
    }
    out.push_str(
        " Restore the applied content (for example from version control) and put new changes in a \
         new migration; if the edit is deliberate and harmless (comments, formatting), realign the \
         recorded checksum with `flowhost migrate repair` (see `--dry-run` first).",
    );
    out
}

fn list(items: &[String]) -> String {
    match items {
        [one] => format!("{one} is"),
        many => format!("{} are", many.join(", ")),
    }
}

fn human_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A statement's first 80 characters on one line, for error messages.
pub fn preview(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = collapsed.chars();
    let head: String = chars.by_ref().take(80).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        // Every Result<_, MigrateError> (and the host's Error around it) carries this size.
        assert!(
            std::mem::size_of::<MigrateError>() <= 120,
            "{}",
            std::mem::size_of::<MigrateError>()
        );
    }

    #[test]
    fn preview_is_one_line_and_bounded() {
        assert_eq!(
            preview("  CREATE TABLE t\n  (id int)\n"),
            "CREATE TABLE t (id int)"
        );
        let long = format!("SELECT {}", "x, ".repeat(100));
        let p = preview(&long);
        assert_eq!(p.chars().count(), 81);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn failed_message_reads_like_a_sentence() {
        let e = MigrateError::Failed {
            database: "rpa_db".into(),
            script: "V3__Add_index.sql".into(),
            statement_line: 12,
            statement_preview: "CREATE INDEX i ON missing (x)".into(),
            source: Box::new(DbError::Query {
                database: "rpa_db".into(),
                code: Some("42P01".into()),
                message: "relation \"missing\" does not exist".into(),
                constraint: None,
                detail: None,
            }),
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "migration V3__Add_index.sql (database rpa_db) failed at line 12: database \
                 'rpa_db' rejected the statement (42P01): relation \"missing\" does not exist; \
                 nothing from this migration was applied"
            ),
            "{text}"
        );
    }

    #[test]
    fn out_of_order_and_lock_messages_say_what_to_do() {
        let e = MigrateError::OutOfOrder {
            database: "rpa_db".into(),
            latest: Version::parse("3").unwrap(),
            pending: vec!["V2__late.sql".into()],
        };
        let text = e.to_string();
        assert!(
            text.contains("V2__late.sql is pending but version 3"),
            "{text}"
        );
        assert!(text.contains("--out-of-order"), "{text}");
        let e = MigrateError::LockTimeout {
            database: "rpa_db".into(),
            waited: Duration::from_secs(60),
            holder: Some("pid 42 (application flowhost)".into()),
        };
        let text = e.to_string();
        assert!(text.contains("60.0 s"), "{text}");
        assert!(text.contains("pid 42 (application flowhost)"), "{text}");
    }
}
