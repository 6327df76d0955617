//! Running pending migrations: each in its own transaction, statement by statement, with its
//! history row written in the same transaction.

use std::collections::HashSet;
use std::time::Instant;

use super::MigrateOptions;
use super::discover::{Discovered, Migration};
use super::error::{MigrateError, preview};
use super::history::{AppliedMigration, HistoryTable, TYPE_SQL};
use super::lock::MigrationConn;
use super::plan::{Plan, plan};
use super::report::{AppliedStep, MigrateReport, PendingMigration};
use super::version::Version;
use crate::db::{Backend, Conn, Database};
use crate::sql::{self, Dialect};

/// One statement of a migration, ready to run.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub sql: String,
    /// 1-based line of the statement's first token in the file.
    pub line: usize,
}

/// A pending migration split into statements.
#[derive(Debug)]
pub struct Prepared<'f> {
    pub migration: &'f Migration,
    pub statements: Vec<PreparedStatement>,
}

/// Splits a migration into statements and refuses scripts that manage transactions themselves.
pub fn prepare<'f>(
    database: &str,
    migration: &'f Migration,
    dialect: Dialect,
) -> Result<Prepared<'f>, MigrateError> {
    let spans =
        sql::split_statements(&migration.sql, dialect).map_err(|e| MigrateError::Script {
            database: database.to_owned(),
            script: migration.script.clone(),
            message: e.to_string(),
        })?;
    let mut statements = Vec::with_capacity(spans.len());
    for span in spans {
        let (skipped, first, second) = leading_words(&span.sql);
        let Some(first) = first else {
            continue; // only comments
        };
        let line = span.line + span.sql[..skipped].matches('\n').count();
        if let Some(keyword) = transaction_control(&first, second.as_deref(), dialect) {
            return Err(MigrateError::TransactionControl {
                database: database.to_owned(),
                script: migration.script.clone(),
                line,
                keyword,
            });
        }
        statements.push(PreparedStatement {
            sql: span.sql,
            line,
        });
    }
    Ok(Prepared {
        migration,
        statements,
    })
}

/// The byte length of leading whitespace and comments, and the first two words after them
/// (uppercased). `None` when the text holds nothing but comments.
fn leading_words(sql: &str) -> (usize, Option<String>, Option<String>) {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if b[i..].starts_with(b"/*") {
            i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            break;
        }
    }
    let skipped = i;
    let mut words = sql[i..]
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase);
    if i >= b.len() {
        return (skipped, None, None);
    }
    let first = words.next();
    let first = first.filter(|_| b[i].is_ascii_alphabetic());
    match first {
        Some(first) => (skipped, Some(first), words.next()),
        None => (skipped, Some(String::new()), None),
    }
}

/// The transaction-control keyword a statement starts with, if it is one.
fn transaction_control(first: &str, second: Option<&str>, dialect: Dialect) -> Option<String> {
    let hit = match dialect {
        Dialect::SqlServer => match first {
            "BEGIN" => matches!(second, Some("TRAN" | "TRANSACTION" | "DISTRIBUTED")),
            "COMMIT" | "SAVE" => true,
            "ROLLBACK" => true,
            _ => false,
        },
        _ => match first {
            "BEGIN" | "COMMIT" | "END" | "ABORT" | "START" => true,
            // Savepoints inside the migration's transaction are harmless.
            "ROLLBACK" => second != Some("TO"),
            _ => false,
        },
    };
    hit.then(|| match second {
        Some(s) if first == "START" || (first == "BEGIN" && dialect == Dialect::SqlServer) => {
            format!("{first} {s}")
        }
        _ => first.to_owned(),
    })
}

fn begin_sql(backend: Backend) -> &'static str {
    match backend {
        // Take the write lock up front, so the history re-read below sees the final state and
        // no other writer can slip in before the commit.
        Backend::Sqlite => "BEGIN IMMEDIATE",
        _ => "BEGIN",
    }
}

/// Refuses to go on when the history and the files disagree.
pub fn check(database: &str, plan: &Plan<'_, '_>) -> Result<(), MigrateError> {
    if !plan.failed.is_empty() {
        return Err(MigrateError::FailedEntries {
            database: database.to_owned(),
            scripts: plan.failed.iter().map(|r| r.script.clone()).collect(),
        });
    }
    if !plan.mismatches.is_empty() {
        return Err(MigrateError::ChecksumMismatch {
            database: database.to_owned(),
            mismatches: plan.mismatches.clone(),
        });
    }
    if let (Some(latest), false) = (&plan.current, plan.out_of_order.is_empty()) {
        return Err(MigrateError::OutOfOrder {
            database: database.to_owned(),
            latest: latest.clone(),
            pending: plan.out_of_order.iter().map(|m| m.script.clone()).collect(),
        });
    }
    Ok(())
}

/// Fills the parts of a report that come from the plan.
pub fn describe_plan(report: &mut MigrateReport, plan: &Plan<'_, '_>) {
    report.version_before = plan.current.clone();
    report.version_after = plan.current.clone();
    report.above_target = plan
        .above_target
        .iter()
        .filter_map(|m| PendingMigration::of(m))
        .collect();
    for row in &plan.missing {
        report.warnings.push(format!(
            "{} (version {}) was applied on {} but is missing on disk",
            row.script,
            row.version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            row.installed_on.format("%Y-%m-%d %H:%M:%S UTC"),
        ));
    }
}

/// Applies what is pending, holding `mc` (and its lock) throughout.
pub async fn apply_locked(
    db: &Database,
    mc: &mut MigrationConn,
    table: &HistoryTable,
    files: &Discovered,
    opts: &MigrateOptions,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    let dialect = db.backend().dialect();
    let name = db.name();
    // Checked first so PostgreSQL does not log an "already exists" notice on every run; the
    // CREATE still says IF NOT EXISTS for a SQLite migrator racing this one.
    if !table.exists(mc.conn(), db).await? {
        table.create(mc.conn(), db).await.map_err(|e| {
            MigrateError::database(format!("create the history table {}", table.name()), e)
        })?;
    }
    let mut history = table.read(mc.conn(), db).await?;
    let mut seen_rank = history.iter().map(|r| r.installed_rank).max().unwrap_or(0);
    let (prepared, mut pending_now) = {
        let plan = plan(Some(&files.versioned), &history, opts.target.as_ref());
        check(name, &plan)?;
        describe_plan(report, &plan);
        let prepared = plan
            .pending
            .iter()
            .map(|m| prepare(name, m, dialect))
            .collect::<Result<Vec<_>, _>>()?;
        (prepared, pending_versions(&plan))
    };

    for p in prepared {
        let m = p.migration;
        let version = m
            .version()
            .expect("planned migrations are versioned")
            .clone();
        mc.mark_dirty();
        mc.conn().run_raw(db, begin_sql(db.backend())).await?;
        let rank = match table.max_rank(mc.conn(), db).await {
            Ok(rank) => rank,
            Err(e) => {
                mc.rollback(db).await;
                return Err(e.into());
            }
        };
        if rank != seen_rank {
            // Someone else migrated since we read the history (SQLite holds no lock across
            // migrations): look again, inside this write transaction, before running anything.
            history = match table.read(mc.conn(), db).await {
                Ok(h) => h,
                Err(e) => {
                    mc.rollback(db).await;
                    return Err(e);
                }
            };
            seen_rank = rank;
            let replan = plan(Some(&files.versioned), &history, opts.target.as_ref());
            report.version_after = replan.current.clone();
            if let Err(e) = check(name, &replan) {
                mc.rollback(db).await;
                return Err(e);
            }
            pending_now = pending_versions(&replan);
        }
        if !pending_now.contains(&version) {
            mc.rollback(db).await;
            report.applied_by_another.push(m.script.clone());
            continue;
        }

        let started = Instant::now();
        for stmt in &p.statements {
            if let Err(source) = mc.conn().run_raw(db, &stmt.sql).await {
                mc.rollback(db).await;
                return Err(MigrateError::Failed {
                    database: name.to_owned(),
                    script: m.script.clone(),
                    version,
                    statement_line: stmt.line,
                    statement_preview: preview(&stmt.sql),
                    source: Box::new(source),
                });
            }
        }
        let elapsed = started.elapsed();
        let row = AppliedMigration {
            installed_rank: rank + 1,
            version: Some(version.clone()),
            description: m.description().to_owned(),
            kind: TYPE_SQL.to_owned(),
            script: m.script.clone(),
            checksum: Some(m.checksum.clone()),
            installed_by: opts.installed_by.clone(),
            installed_on: chrono::Utc::now().naive_utc(),
            execution_time_ms: i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX),
            success: true,
        };
        if let Err(e) = table.insert(mc.conn(), db, &row).await {
            mc.rollback(db).await;
            return Err(MigrateError::database(
                format!(
                    "record {} in the history table {} (the migration was rolled back)",
                    m.script,
                    table.name()
                ),
                e,
            ));
        }
        if let Err(e) = mc.conn().run_raw(db, "COMMIT").await {
            mc.rollback(db).await;
            return Err(MigrateError::database(
                format!(
                    "commit migration {} (nothing from it was applied)",
                    m.script
                ),
                e,
            ));
        }
        seen_rank = rank + 1;
        tracing::info!(database = %name, script = %m.script, version = %version, ms = elapsed.as_millis() as u64, "applied migration");
        report.version_after = Some(version.clone());
        report.applied.push(AppliedStep {
            version,
            description: m.description().to_owned(),
            script: m.script.clone(),
            installed_rank: row.installed_rank,
            statements: p.statements.len(),
            execution_time_ms: elapsed.as_millis() as u64,
        });
    }
    Ok(())
}

/// The versions a plan would apply.
fn pending_versions(plan: &Plan<'_, '_>) -> HashSet<Version> {
    plan.pending
        .iter()
        .filter_map(|m| m.version().cloned())
        .collect()
}

/// A dry run: reads the history (without creating it) and says what would run.
pub async fn plan_only(
    db: &Database,
    conn: &mut Conn,
    table: &HistoryTable,
    files: &Discovered,
    opts: &MigrateOptions,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    let history = if table.exists(conn, db).await? {
        table.read(conn, db).await?
    } else {
        Vec::new()
    };
    let plan = plan(Some(&files.versioned), &history, opts.target.as_ref());
    check(db.name(), &plan)?;
    describe_plan(report, &plan);
    for m in &plan.pending {
        prepare(db.name(), m, db.backend().dialect())?;
    }
    report.would_apply = plan
        .pending
        .iter()
        .filter_map(|m| PendingMigration::of(m))
        .collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::checksum::Checksum;
    use crate::migrate::discover::{MigrationKind, MigrationName};

    fn migration(sql: &str) -> Migration {
        Migration {
            name: MigrationName {
                kind: MigrationKind::Versioned(Version::parse("1").unwrap()),
                description: "t".into(),
            },
            script: "V1__t.sql".into(),
            path: "V1__t.sql".into(),
            raw: sql.as_bytes().to_vec(),
            sql: sql.into(),
            checksum: Checksum::of(sql.as_bytes()),
        }
    }

    #[test]
    fn statement_lines_point_at_the_first_token() {
        let m = migration(
            "-- header\nCREATE TABLE a (id int);\n\n/* note */\n  INSERT INTO a VALUES (1);\n-- trailing comment only\n",
        );
        let p = prepare("db", &m, Dialect::Sqlite).unwrap();
        let lines: Vec<usize> = p.statements.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 5]);
    }

    #[test]
    fn scripts_that_control_transactions_are_refused() {
        for (sql, keyword, line) in [
            ("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;", "BEGIN", 1),
            ("CREATE TABLE a (id int);\n\ncommit;", "COMMIT", 3),
            (
                "CREATE TABLE a (id int);\nSTART TRANSACTION;",
                "START TRANSACTION",
                2,
            ),
            ("CREATE TABLE a (id int);\nEND;", "END", 2),
        ] {
            let err = prepare("db", &migration(sql), Dialect::Postgres).unwrap_err();
            match &err {
                MigrateError::TransactionControl {
                    keyword: k,
                    line: l,
                    ..
                } => {
                    assert_eq!((k.as_str(), *l), (keyword, line), "{sql}");
                }
                other => panic!("{sql}: {other}"),
            }
        }
        let ok = "SAVEPOINT s;\nINSERT INTO a VALUES (1);\nROLLBACK TO SAVEPOINT s;\nRELEASE s;";
        assert_eq!(
            prepare("db", &migration(ok), Dialect::Postgres)
                .unwrap()
                .statements
                .len(),
            4
        );
        // A T-SQL BEGIN ... END block is not transaction control; BEGIN TRAN is.
        assert!(transaction_control("BEGIN", Some("SELECT"), Dialect::SqlServer).is_none());
        assert_eq!(
            transaction_control("BEGIN", Some("TRAN"), Dialect::SqlServer).as_deref(),
            Some("BEGIN TRAN")
        );
    }

    #[test]
    fn leading_words_skip_comments() {
        assert_eq!(
            leading_words("/* x */ -- y\n create table"),
            (14, Some("CREATE".into()), Some("TABLE".into()))
        );
        assert_eq!(leading_words("-- only\n").1, None);
        assert_eq!(leading_words("(SELECT 1)").1, Some(String::new()));
    }
}
