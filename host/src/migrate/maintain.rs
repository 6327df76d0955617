//! Commands that change the history rather than move the schema forward: `baseline` (adopt a
//! database whose schema exists but has no history), `repair` (realign checksums, remove
//! failed entries) and `undo` (run `U` files). Each takes the same lock as `migrate`.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::MigrateOptions;
use super::apply::{Outcome, RowSpec, Runner, step};
use super::checksum::Checksum;
use super::discover::{Discovered, discover};
use super::error::MigrateError;
use super::history::{AppliedMigration, HistoryTable, TYPE_BASELINE, TYPE_UNDO};
use super::lock::MigrationConn;
use super::plan::plan;
use super::prepare::prepare;
use super::report::{MigrateReport, PendingMigration, StepKind, table};
use super::version::Version;
use crate::db::{Conn, Database};
use crate::sql::TransactionKind;

/// The description of a baseline row unless one is given (Flyway writes
/// `<< Flyway Baseline >>`).
pub const BASELINE_DESCRIPTION: &str = "<< flowhost baseline >>";

/// What `baseline` did.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub database: String,
    pub history_table: String,
    pub version: Version,
    pub description: String,
    /// `false`: the same baseline was already there (or this was a dry run).
    pub created: bool,
    pub dry_run: bool,
    /// Files at or below the baseline, which will never run.
    pub below_baseline: Vec<String>,
}

impl fmt::Display for BaselineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.dry_run, self.created) {
            (true, _) => "would baseline",
            (false, true) => "baselined",
            (false, false) => "already baselined",
        };
        write!(
            f,
            "{}: {what} at version {} ('{}')",
            self.database, self.version, self.description
        )?;
        if !self.below_baseline.is_empty() {
            write!(
                f,
                "\n  treated as already applied (at or below the baseline): {}",
                self.below_baseline.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Marks `db` as being at `version` without running anything: one `BASELINE` row in an empty
/// history. Files at or below the version never run; later ones apply as usual. Refused when
/// the history already has rows (other than this same baseline).
pub async fn baseline(
    db: &Database,
    dir: Option<&Path>,
    opts: &MigrateOptions,
    version: Version,
    description: Option<&str>,
) -> Result<BaselineReport, MigrateError> {
    let table = HistoryTable::new(&opts.history_table, db.backend())?;
    let files = dir.map(discover).transpose()?;
    let description = description
        .map(str::to_owned)
        .unwrap_or_else(|| BASELINE_DESCRIPTION.to_owned());
    let mut report = BaselineReport {
        database: db.name().to_owned(),
        history_table: table.name().to_owned(),
        version: version.clone(),
        description: description.clone(),
        created: false,
        dry_run: opts.dry_run,
        below_baseline: files
            .iter()
            .flat_map(|f| &f.versioned)
            .filter(|m| m.version().is_some_and(|v| v <= &version))
            .map(|m| m.script.clone())
            .collect(),
    };
    let check = |history: &[AppliedMigration]| -> Result<bool, MigrateError> {
        match history {
            [] => Ok(true),
            [only] if only.is_baseline() && only.version.as_ref() == Some(&version) => Ok(false),
            rows => Err(MigrateError::BaselineNotEmpty {
                database: db.name().to_owned(),
                table: table.name().to_owned(),
                rows: rows.len(),
                current: plan(None, rows, None).current,
            }),
        }
    };
    if opts.dry_run {
        let mut conn = db.acquire().await?;
        check(&read_if_exists(&table, &mut conn, db).await?)?;
        return Ok(report);
    }
    let mut mc = MigrationConn::acquire(db, &table, opts.lock_timeout).await?;
    let result = async {
        table.ensure(mc.conn(), db).await?;
        if !check(&table.read(mc.conn(), db).await?)? {
            return Ok(false);
        }
        let row = AppliedMigration {
            installed_rank: 1,
            version: Some(version.clone()),
            description: description.clone(),
            kind: TYPE_BASELINE.to_owned(),
            script: description.clone(),
            checksum: None,
            installed_by: opts.installed_by.clone(),
            installed_on: chrono::Utc::now().naive_utc(),
            execution_time_ms: 0,
            success: true,
            statements_done: None,
        };
        // The primary key on installed_rank makes a racing second baseline fail here.
        table.insert(mc.conn(), db, &row).await.map_err(|e| {
            MigrateError::database(format!("record the baseline in {}", table.name()), e)
        })?;
        Ok::<_, MigrateError>(true)
    }
    .await;
    mc.release(db).await;
    report.created = result?;
    Ok(report)
}

/// One change `repair` makes (or would make).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RepairAction {
    /// Deletes a failed row so the migration can run again.
    RemoveFailed {
        installed_rank: i32,
        script: String,
        version: Option<Version>,
        statements_done: Option<i32>,
    },
    /// Records the file's current checksum for an applied migration whose file changed.
    Realign {
        installed_rank: i32,
        script: String,
        version: Option<Version>,
        recorded: Checksum,
        current: Checksum,
    },
}

/// What `repair` did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub database: String,
    pub history_table: String,
    pub dry_run: bool,
    pub actions: Vec<RepairAction>,
    /// Applied migrations whose files are gone: reported, never changed by repair.
    pub missing_on_disk: Vec<String>,
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = &self.database;
        if self.actions.is_empty() {
            write!(f, "{db}: nothing to repair")?;
        } else {
            let verb = if self.dry_run { "would make" } else { "made" };
            let n = self.actions.len();
            writeln!(
                f,
                "{db}: {verb} {n} change{} to {}{}",
                if n == 1 { "" } else { "s" },
                self.history_table,
                if self.dry_run {
                    " (dry run, nothing changed)"
                } else {
                    ""
                }
            )?;
            let rows = self
                .actions
                .iter()
                .map(|a| match a {
                    RepairAction::RemoveFailed {
                        installed_rank,
                        script,
                        statements_done,
                        ..
                    } => vec![
                        installed_rank.to_string(),
                        script.clone(),
                        match statements_done {
                            Some(n) => format!("remove failed entry ({n} statements had run)"),
                            None => "remove failed entry".to_owned(),
                        },
                    ],
                    RepairAction::Realign {
                        installed_rank,
                        script,
                        recorded,
                        current,
                        ..
                    } => vec![
                        installed_rank.to_string(),
                        script.clone(),
                        format!("checksum {recorded} -> {current}"),
                    ],
                })
                .collect();
            write!(
                f,
                "{}",
                table(&["rank", "script", "change"], rows).trim_end()
            )?;
        }
        for script in &self.missing_on_disk {
            write!(
                f,
                "\n  note: {script} is applied but missing on disk; repair leaves it recorded"
            )?;
        }
        Ok(())
    }
}

/// Removes failed history entries and realigns the checksums of applied migrations whose files
/// changed, for the versions in `only` (every version, and repeatable entries, when empty).
/// Everything in one transaction; with `opts.dry_run`, only reports.
pub async fn repair(
    db: &Database,
    dir: &Path,
    opts: &MigrateOptions,
    only: &[Version],
) -> Result<RepairReport, MigrateError> {
    let table = HistoryTable::new(&opts.history_table, db.backend())?;
    let files = discover(dir)?;
    let chosen =
        |v: &Option<Version>| only.is_empty() || v.as_ref().is_some_and(|v| only.contains(v));
    let actions_for = |history: &[AppliedMigration]| {
        let p = plan(Some(&files), history, None);
        let mut actions = Vec::new();
        for r in p.failed.iter().chain(&p.resumable) {
            if chosen(&r.version) {
                actions.push(RepairAction::RemoveFailed {
                    installed_rank: r.installed_rank,
                    script: r.script.clone(),
                    version: r.version.clone(),
                    statements_done: r.statements_done,
                });
            }
        }
        for m in &p.mismatches {
            if chosen(&m.version) {
                let file = files
                    .versioned
                    .iter()
                    .find(|f| f.script == m.script)
                    .expect("mismatches come from files");
                actions.push(RepairAction::Realign {
                    installed_rank: m.installed_rank,
                    script: m.script.clone(),
                    version: m.version.clone(),
                    recorded: m.recorded.clone(),
                    current: file.checksum.clone(),
                });
            }
        }
        let missing = p.missing.iter().map(|r| r.script.clone()).collect();
        (actions, missing)
    };
    let mut report = RepairReport {
        database: db.name().to_owned(),
        history_table: table.name().to_owned(),
        dry_run: opts.dry_run,
        actions: Vec::new(),
        missing_on_disk: Vec::new(),
    };
    if opts.dry_run {
        let mut conn = db.acquire().await?;
        let history = read_if_exists(&table, &mut conn, db).await?;
        (report.actions, report.missing_on_disk) = actions_for(&history);
        return Ok(report);
    }
    let mut mc = MigrationConn::acquire(db, &table, opts.lock_timeout).await?;
    let result = async {
        let history = read_if_exists(&table, mc.conn(), db).await?;
        let (actions, missing) = actions_for(&history);
        if actions.is_empty() {
            return Ok((actions, missing));
        }
        mc.mark_dirty();
        mc.conn()
            .run_raw(db, db.backend().begin_sql(TransactionKind::ReadWrite))
            .await?;
        for action in &actions {
            let done = match action {
                RepairAction::RemoveFailed { installed_rank, .. } => {
                    table.delete(mc.conn(), db, *installed_rank).await
                }
                RepairAction::Realign {
                    installed_rank,
                    current,
                    ..
                } => table.realign(mc.conn(), db, *installed_rank, current).await,
            };
            if let Err(e) = done {
                mc.rollback(db).await;
                return Err(MigrateError::database(
                    format!("repair {} (nothing was changed)", table.name()),
                    e,
                ));
            }
        }
        if let Err(e) = mc.conn().run_raw(db, db.backend().commit_sql()).await {
            mc.rollback(db).await;
            return Err(MigrateError::database(
                format!(
                    "commit the repair of {} (nothing was changed)",
                    table.name()
                ),
                e,
            ));
        }
        Ok((actions, missing))
    }
    .await;
    mc.release(db).await;
    (report.actions, report.missing_on_disk) = result?;
    Ok(report)
}

/// Undoes applied migrations with their `U` files, newest first: the latest one, or with `to`
/// every version above it. Each undo runs in its own transaction and is recorded as an
/// `UNDO_SQL` row, after which its version counts as pending again. Every needed `U` file is
/// checked before anything runs.
pub async fn undo(
    db: &Database,
    dir: &Path,
    opts: &MigrateOptions,
    to: Option<&Version>,
) -> Result<MigrateReport, MigrateError> {
    let started = Instant::now();
    let table = HistoryTable::new(&opts.history_table, db.backend())?;
    let files = discover(dir)?;
    let mut report = MigrateReport::new(db.name(), table.name(), opts.dry_run, None);
    if opts.dry_run {
        let mut conn = db.acquire().await?;
        let history = read_if_exists(&table, &mut conn, db).await?;
        let (targets, current) = undo_targets(db, &files, &history, to)?;
        report.version_before = current;
        for version in &targets {
            let u = files.undo_for(version).expect("checked by undo_targets");
            check_undo_file(db, &table, opts, u)?;
            report.would_apply.push(PendingMigration::of(u));
        }
        return Ok(report);
    }
    let mut mc = MigrationConn::acquire(db, &table, opts.lock_timeout).await?;
    let result = undo_locked(db, &mut mc, &table, &files, opts, to, &mut report).await;
    mc.release(db).await;
    result?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn undo_locked(
    db: &Database,
    mc: &mut MigrationConn,
    table: &HistoryTable,
    files: &Discovered,
    opts: &MigrateOptions,
    to: Option<&Version>,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    table.ensure(mc.conn(), db).await?;
    let history = table.read(mc.conn(), db).await?;
    let seen_rank = history.iter().map(|r| r.installed_rank).max().unwrap_or(0);
    let (targets, current) = undo_targets(db, files, &history, to)?;
    report.version_before = current.clone();
    report.version_after = current;
    let placeholders = opts.placeholders_for(db.name(), table.name());
    let mut prepared = Vec::new();
    for version in &targets {
        let u = files.undo_for(version).expect("checked by undo_targets");
        check_undo_file(db, table, opts, u)?;
        let p = prepare(db.name(), u, db.backend(), placeholders.as_ref())?;
        prepared.push((version.clone(), p));
    }
    let mut runner = Runner {
        db,
        mc,
        table,
        installed_by: &opts.installed_by,
        seen_rank,
        stale: false,
    };
    for (version, p) in &prepared {
        let u = p.migration;
        let spec = RowSpec {
            version: Some(version.clone()),
            description: u.description().to_owned(),
            kind: TYPE_UNDO,
            script: u.script.clone(),
            checksum: u.checksum.clone(),
        };
        // Still wanted if the version is still the newest applied one.
        let mut recheck = |history: &[AppliedMigration]| {
            let p = plan(None, history, None);
            Ok(p.applied.last().and_then(|r| r.version.as_ref()) == Some(version))
        };
        match runner.transactional(p, &spec, &mut recheck).await? {
            Outcome::Skipped => report.applied_by_another.push(u.script.clone()),
            Outcome::Done { rank, elapsed } => {
                tracing::info!(database = %db.name(), script = %u.script, version = %version, "undid migration");
                report
                    .applied
                    .push(step(StepKind::Undo, &spec, p, rank, elapsed, None));
            }
        }
    }
    let history = table.read(runner.mc.conn(), db).await?;
    report.version_after = plan(None, &history, None).current;
    Ok(())
}

/// The versions to undo, newest first, and the current version. Errors when the history has
/// failures or a needed `U` file is missing.
fn undo_targets(
    db: &Database,
    files: &Discovered,
    history: &[AppliedMigration],
    to: Option<&Version>,
) -> Result<(Vec<Version>, Option<Version>), MigrateError> {
    let p = plan(Some(files), history, None);
    if !p.failed.is_empty() || !p.resumable.is_empty() {
        return Err(MigrateError::FailedEntries {
            database: db.name().to_owned(),
            scripts: p
                .failed
                .iter()
                .chain(&p.resumable)
                .map(|r| r.script.clone())
                .collect(),
        });
    }
    let mut applied: Vec<&AppliedMigration> = p.applied.clone();
    applied.reverse();
    let targets: Vec<Version> = match to {
        Some(to) => applied
            .iter()
            .filter_map(|r| r.version.clone())
            .filter(|v| v > to)
            .collect(),
        None => applied
            .first()
            .and_then(|r| r.version.clone())
            .into_iter()
            .collect(),
    };
    for version in &targets {
        if files.undo_for(version).is_none() {
            let script = applied
                .iter()
                .find(|r| r.version.as_ref() == Some(version))
                .map(|r| r.script.clone())
                .unwrap_or_default();
            return Err(MigrateError::NoUndoFile {
                database: db.name().to_owned(),
                version: version.clone(),
                script,
            });
        }
    }
    Ok((targets, p.current))
}

/// Undo files always run in a transaction: refuse one that cannot.
fn check_undo_file(
    db: &Database,
    table: &HistoryTable,
    opts: &MigrateOptions,
    u: &super::discover::Migration,
) -> Result<(), MigrateError> {
    let placeholders = opts.placeholders_for(db.name(), table.name());
    let p = prepare(db.name(), u, db.backend(), placeholders.as_ref())?;
    if p.transactional {
        return Ok(());
    }
    let (line, what) = p
        .statements
        .iter()
        .find_map(|s| super::nontx::non_transactional(&s.sql, db.backend()).map(|w| (s.line, w)))
        .unwrap_or((1, super::prepare::NO_TRANSACTION_HEADER));
    Err(MigrateError::UndoNotTransactional {
        database: db.name().to_owned(),
        script: u.script.clone(),
        line,
        what,
    })
}

async fn read_if_exists(
    table: &HistoryTable,
    conn: &mut Conn,
    db: &Database,
) -> Result<Vec<AppliedMigration>, MigrateError> {
    if table.exists(conn, db).await? {
        table.read(conn, db).await
    } else {
        Ok(Vec::new())
    }
}
