//! Running migrations. A transactional migration runs with its history row in one transaction,
//! so it is either applied and recorded or not there at all. A non-transactional one gets its
//! history row first (as failed, 0 statements done) and records each statement as it commits,
//! so a failure part-way can resume after the last statement that completed.

use std::time::{Duration, Instant};

use super::MigrateOptions;
use super::checksum::Checksum;
use super::discover::{Discovered, Migration};
use super::error::{MigrateError, preview};
use super::history::{AppliedMigration, HistoryTable, TYPE_SQL};
use super::import::{ForeignHistory, adopt, find_foreign};
use super::lock::MigrationConn;
use super::plan::{Plan, plan};
use super::prepare::{Prepared, prepare};
use super::report::{AppliedStep, MigrateReport, PendingMigration, StepKind};
use super::version::Version;
use crate::db::{Backend, Conn, Database};
use crate::sql::TransactionKind;

/// On SQLite this takes the write lock up front, so the history re-read below sees the final
/// state and no other writer can slip in before the commit.
fn begin_sql(backend: Backend) -> &'static str {
    backend.begin_sql(TransactionKind::ReadWrite)
}

/// Refuses to go on when the history and the files disagree. Out-of-order files are refused
/// unless `out_of_order` allows them.
pub fn check(database: &str, plan: &Plan<'_, '_>, out_of_order: bool) -> Result<(), MigrateError> {
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
    if let (Some(latest), false, false) =
        (&plan.current, plan.out_of_order.is_empty(), out_of_order)
    {
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
        .map(|m| PendingMigration::of(m))
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

/// The migrations a run applies, in order: versioned ones by version (out-of-order files among
/// them when allowed), then repeatable ones that are new or changed.
pub fn queue<'f>(plan: &Plan<'f, '_>, out_of_order: bool) -> Vec<&'f Migration> {
    let mut versioned: Vec<&'f Migration> = plan.pending.clone();
    if out_of_order {
        versioned.extend(plan.out_of_order.iter().copied());
        versioned.sort_by(|a, b| a.version().cmp(&b.version()));
    }
    versioned.extend(plan.repeatable_pending.iter().copied());
    versioned
}

/// What a history row will say about a unit of work.
#[derive(Debug, Clone)]
pub struct RowSpec {
    pub version: Option<Version>,
    pub description: String,
    /// `SQL` or `UNDO_SQL`.
    pub kind: &'static str,
    pub script: String,
    pub checksum: Checksum,
}

impl RowSpec {
    /// The row for running `m` itself.
    pub fn of(m: &Migration, kind: &'static str) -> RowSpec {
        RowSpec {
            version: m.version().cloned(),
            description: m.description().to_owned(),
            kind,
            script: m.script.clone(),
            checksum: m.checksum.clone(),
        }
    }

    fn row(
        &self,
        rank: i32,
        installed_by: &str,
        elapsed: Duration,
        success: bool,
    ) -> AppliedMigration {
        AppliedMigration {
            installed_rank: rank,
            version: self.version.clone(),
            description: self.description.clone(),
            kind: self.kind.to_owned(),
            script: self.script.clone(),
            checksum: Some(self.checksum.clone()),
            installed_by: installed_by.to_owned(),
            installed_on: chrono::Utc::now().naive_utc(),
            execution_time_ms: millis(elapsed),
            success,
            statements_done: None,
        }
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// How a unit of work ended.
#[derive(Debug)]
pub enum Outcome {
    /// Applied and recorded at this rank.
    Done { rank: i32, elapsed: Duration },
    /// Another migrator did it (or made it unnecessary) while this one waited.
    Skipped,
}

/// Decides, from a history re-read inside the unit's transaction, whether the unit is still
/// wanted (`Ok(false)`: someone else did it), or that migrating must stop (`Err`).
pub type Recheck<'a> = dyn FnMut(&[AppliedMigration]) -> Result<bool, MigrateError> + Send + 'a;

/// Runs units of work on a migration connection, keeping track of the history's highest rank
/// so a change by another migrator (SQLite holds no lock between migrations) is noticed.
pub struct Runner<'a> {
    pub db: &'a Database,
    pub mc: &'a mut MigrationConn,
    pub table: &'a HistoryTable,
    pub installed_by: &'a str,
    /// The history's highest rank as of our last read or write.
    pub seen_rank: i32,
    /// Another migrator changed the history since the plan was made: every later unit is
    /// re-checked against a fresh read, not only the first one that noticed.
    pub stale: bool,
}

impl Runner<'_> {
    /// Opens a write transaction, takes the next rank, and re-checks when the history moved.
    /// `Ok(None)`: rolled back because the unit is no longer wanted.
    async fn begin(&mut self, recheck: &mut Recheck<'_>) -> Result<Option<i32>, MigrateError> {
        let (db, table) = (self.db, self.table);
        self.mc.mark_dirty();
        self.mc.conn().run_raw(db, begin_sql(db.backend())).await?;
        let rank = match table.max_rank(self.mc.conn(), db).await {
            Ok(rank) => rank,
            Err(e) => {
                self.mc.rollback(db).await;
                return Err(e.into());
            }
        };
        if rank != self.seen_rank || self.stale {
            self.stale = true;
            let wanted = match table.read(self.mc.conn(), db).await {
                Ok(history) => recheck(&history),
                Err(e) => Err(e),
            };
            self.seen_rank = rank;
            match wanted {
                Ok(true) => {}
                Ok(false) => {
                    self.mc.rollback(db).await;
                    return Ok(None);
                }
                Err(e) => {
                    self.mc.rollback(db).await;
                    return Err(e);
                }
            }
        }
        Ok(Some(rank + 1))
    }

    /// Commits, or rolls back and says what was lost.
    async fn commit(&mut self, script: &str) -> Result<(), MigrateError> {
        if let Err(e) = self
            .mc
            .conn()
            .run_raw(self.db, self.db.backend().commit_sql())
            .await
        {
            self.mc.rollback(self.db).await;
            return Err(MigrateError::database(
                format!("commit migration {script} (nothing from it was applied)"),
                e,
            ));
        }
        Ok(())
    }

    /// Runs every statement and the history row in one transaction.
    pub async fn transactional(
        &mut self,
        p: &Prepared<'_>,
        spec: &RowSpec,
        recheck: &mut Recheck<'_>,
    ) -> Result<Outcome, MigrateError> {
        let db = self.db;
        let Some(rank) = self.begin(recheck).await? else {
            return Ok(Outcome::Skipped);
        };
        let started = Instant::now();
        for stmt in &p.statements {
            if let Err(source) = self.mc.conn().run_raw(db, &stmt.sql).await {
                self.mc.rollback(db).await;
                return Err(MigrateError::Failed {
                    database: db.name().to_owned(),
                    script: spec.script.clone(),
                    statement_line: stmt.line,
                    statement_preview: preview(&stmt.sql),
                    source: Box::new(source),
                });
            }
        }
        let elapsed = started.elapsed();
        let row = spec.row(rank, self.installed_by, elapsed, true);
        if let Err(e) = self.table.insert(self.mc.conn(), db, &row).await {
            self.mc.rollback(db).await;
            return Err(MigrateError::database(
                format!(
                    "record {} in the history table {} (the migration was rolled back)",
                    spec.script,
                    self.table.name()
                ),
                e,
            ));
        }
        self.commit(&spec.script).await?;
        self.seen_rank = rank;
        Ok(Outcome::Done { rank, elapsed })
    }

    /// Runs the statements one by one outside a transaction, recording progress after each;
    /// `resume` is the failed row of an earlier attempt, whose completed statements are skipped.
    pub async fn stepwise(
        &mut self,
        p: &Prepared<'_>,
        spec: &RowSpec,
        resume: Option<&AppliedMigration>,
        recheck: &mut Recheck<'_>,
    ) -> Result<Outcome, MigrateError> {
        let db = self.db;
        let total = p.statements.len();
        let (mut row, start, earlier) = match resume {
            Some(r) => {
                let done = usize::try_from(r.statements_done.unwrap_or(0)).unwrap_or(0);
                let earlier = Duration::from_millis(r.execution_time_ms.max(0) as u64);
                tracing::info!(database = %db.name(), script = %spec.script, done, total, "resuming a migration that stopped part-way");
                (r.clone(), done.min(total), earlier)
            }
            None => {
                // Claim the migration: its row, as failed with nothing done, committed first.
                let Some(rank) = self.begin(recheck).await? else {
                    return Ok(Outcome::Skipped);
                };
                let mut row = spec.row(rank, self.installed_by, Duration::ZERO, false);
                row.statements_done = Some(0);
                if let Err(e) = self.table.insert(self.mc.conn(), db, &row).await {
                    self.mc.rollback(db).await;
                    return Err(MigrateError::database(
                        format!("record the start of {}", spec.script),
                        e,
                    ));
                }
                self.commit(&spec.script).await?;
                self.seen_rank = rank;
                (row, 0, Duration::ZERO)
            }
        };
        row.checksum = Some(spec.checksum.clone());
        let started = Instant::now();
        self.mc.mark_dirty();
        for (i, stmt) in p.statements.iter().enumerate().skip(start) {
            let result = self.mc.conn().run_raw(db, &stmt.sql).await;
            row.execution_time_ms = millis(earlier + started.elapsed());
            if let Err(source) = result {
                row.statements_done = Some(i as i32);
                let recorded = self.table.update_progress(self.mc.conn(), db, &row).await;
                if let Err(e) = recorded {
                    tracing::warn!(database = %db.name(), script = %spec.script, error = %e, "could not record the progress of a failed migration");
                }
                return Err(MigrateError::FailedPartway {
                    database: db.name().to_owned(),
                    script: spec.script.clone(),
                    done: i,
                    total,
                    statement_line: stmt.line,
                    source: Box::new(source),
                });
            }
            row.statements_done = Some(i as i32 + 1);
            row.success = i + 1 == total;
            self.record_progress(&row, &spec.script).await?;
        }
        if !row.success {
            // Nothing left to run (an empty file, or every statement done before a crash).
            row.success = true;
            row.statements_done = Some(total as i32);
            self.record_progress(&row, &spec.script).await?;
        }
        Ok(Outcome::Done {
            rank: row.installed_rank,
            elapsed: earlier + started.elapsed(),
        })
    }

    async fn record_progress(
        &mut self,
        row: &AppliedMigration,
        script: &str,
    ) -> Result<(), MigrateError> {
        self.table
            .update_progress(self.mc.conn(), self.db, row)
            .await
            .map_err(|e| {
                MigrateError::database(
                    format!(
                        "record the progress of {script} ({} statement(s) done)",
                        row.statements_done.unwrap_or(0)
                    ),
                    e,
                )
            })
    }
}

/// The step a report shows for a unit that ran.
pub fn step(
    kind: StepKind,
    spec: &RowSpec,
    p: &Prepared<'_>,
    rank: i32,
    elapsed: Duration,
    resumed_after: Option<usize>,
) -> AppliedStep {
    AppliedStep {
        kind,
        version: spec.version.clone(),
        description: spec.description.clone(),
        script: spec.script.clone(),
        installed_rank: rank,
        statements: p.statements.len(),
        transactional: p.transactional,
        resumed_after,
        execution_time_ms: elapsed.as_millis() as u64,
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
    let name = db.name();
    let target = opts.target.as_ref();
    let ooo = opts.out_of_order;
    table.ensure(mc.conn(), db).await?;
    let mut history = table.read(mc.conn(), db).await?;
    if history.is_empty()
        && let Some(foreign) = find_foreign(mc.conn(), db).await?
    {
        // Switching from Pyway or Flyway: take their history over (verified against the files
        // by the plan below, with their checksum algorithm) instead of re-applying everything.
        let copied = adopt(mc.conn(), db, table, &foreign).await?;
        report.imported_from = Some(format!(
            "{} rows from {} table {}",
            copied, foreign.tool, foreign.table
        ));
        history = table.read(mc.conn(), db).await?;
    }
    let seen_rank = history.iter().map(|r| r.installed_rank).max().unwrap_or(0);
    let placeholders = opts.placeholders_for(db.name(), table.name());
    let (prepared, resumable) = {
        let plan = plan(Some(files), &history, target);
        check(name, &plan, ooo)?;
        describe_plan(report, &plan);
        let prepared = queue(&plan, ooo)
            .into_iter()
            .map(|m| prepare(name, m, db.backend(), placeholders.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let resumable: Vec<AppliedMigration> =
            plan.resumable.iter().map(|r| (*r).clone()).collect();
        (prepared, resumable)
    };
    // Wanted still if a fresh plan queues the same script and nothing blocks migrating.
    let recheck_for = |script: String| {
        move |history: &[AppliedMigration]| {
            let replan = plan(Some(files), history, target);
            check(name, &replan, ooo)?;
            Ok(queue(&replan, ooo).iter().any(|m| m.script == script))
        }
    };
    let mut runner = Runner {
        db,
        mc,
        table,
        installed_by: &opts.installed_by,
        seen_rank,
        stale: false,
    };
    for p in &prepared {
        let m = p.migration;
        let spec = RowSpec::of(m, TYPE_SQL);
        let kind = if m.version().is_some() {
            StepKind::Versioned
        } else {
            StepKind::Repeatable
        };
        let resume = m
            .version()
            .and_then(|v| resumable.iter().find(|r| r.version.as_ref() == Some(v)));
        let mut recheck = recheck_for(m.script.clone());
        let outcome = match (p.transactional, resume) {
            (false, resume) => runner.stepwise(p, &spec, resume, &mut recheck).await?,
            (true, None) => runner.transactional(p, &spec, &mut recheck).await?,
            (true, Some(row)) => {
                // Its earlier statements ran outside a transaction: running the whole file in
                // one now would repeat them.
                return Err(MigrateError::FailedEntries {
                    database: name.to_owned(),
                    scripts: vec![row.script.clone()],
                });
            }
        };
        match outcome {
            Outcome::Skipped => report.applied_by_another.push(m.script.clone()),
            Outcome::Done { rank, elapsed } => {
                tracing::info!(database = %name, script = %m.script, ms = elapsed.as_millis() as u64, "applied migration");
                if let Some(v) = m.version()
                    && report.version_after.as_ref().is_none_or(|cur| v > cur)
                {
                    report.version_after = Some(v.clone());
                }
                let resumed_after = resume.and_then(|r| r.statements_done).map(|d| d as usize);
                report
                    .applied
                    .push(step(kind, &spec, p, rank, elapsed, resumed_after));
            }
        }
    }
    Ok(())
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
    let (history, foreign) = read_history(table, conn, db).await?;
    if let Some(foreign) = foreign {
        report.imported_from = Some(format!(
            "{} rows from {} table {} (would be adopted)",
            foreign.rows.len(),
            foreign.tool,
            foreign.table
        ));
    }
    let plan = plan(Some(files), &history, opts.target.as_ref());
    check(db.name(), &plan, opts.out_of_order)?;
    describe_plan(report, &plan);
    let placeholders = opts.placeholders_for(db.name(), table.name());
    let queue = queue(&plan, opts.out_of_order);
    for m in &queue {
        prepare(db.name(), m, db.backend(), placeholders.as_ref())?;
    }
    report.would_apply = queue.iter().map(|m| PendingMigration::of(m)).collect();
    Ok(())
}

/// The history without changing anything: flowhost's table, or when it is missing or empty,
/// the rows of a Pyway or Flyway table that `migrate` would adopt (returned beside them).
pub async fn read_history(
    table: &HistoryTable,
    conn: &mut Conn,
    db: &Database,
) -> Result<(Vec<AppliedMigration>, Option<ForeignHistory>), MigrateError> {
    read_history_and_presence(table, conn, db)
        .await
        .map(|(_, history, foreign)| (history, foreign))
}

/// [`read_history`], and whether the history table exists (`migrate status` reports it): one
/// catalog round trip for both, which every run's migration check makes.
pub async fn read_history_and_presence(
    table: &HistoryTable,
    conn: &mut Conn,
    db: &Database,
) -> Result<(bool, Vec<AppliedMigration>, Option<ForeignHistory>), MigrateError> {
    let read = table.read_if_present(conn, db).await?;
    let exists = read.is_some();
    let history = read.unwrap_or_default();
    if !history.is_empty() {
        return Ok((exists, history, None));
    }
    match find_foreign(conn, db).await? {
        Some(foreign) => Ok((exists, foreign.rows.clone(), Some(foreign))),
        None => Ok((exists, history, None)),
    }
}
