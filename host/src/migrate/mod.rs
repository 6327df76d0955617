//! Schema migrations, Flyway style: `migrations/<db>/V<version>__<description>.sql` applied in
//! numeric version order, each in its own transaction, recorded in a history table with a
//! SHA-256 checksum of the normalised file.
//!
//! The pieces, each usable on its own:
//! - [`discover`](discover::discover) reads a folder into checksummed [`Migration`]s;
//! - [`plan`](plan::plan) sets files against the history (pending, changed, missing, out of
//!   order) — pure, linear in files + rows;
//! - [`HistoryTable`] holds the history SQL for each dialect;
//! - [`MigrationConn`](lock::MigrationConn) is the connection migrations run on and the lock that
//!   serialises migrators (PostgreSQL advisory lock; SQLite `BEGIN IMMEDIATE` per migration);
//! - [`non_transactional`] names what a transaction block refuses (`CREATE INDEX CONCURRENTLY`,
//!   `VACUUM`, `ALTER DATABASE`, ...), per dialect;
//! - [`sqlserver`] holds the T-SQL of the SQL Server migration lock (`sp_getapplock`);
//! - [`migrate`] and [`status`] put them together for the CLI, `flowhost run` and `health`.
//!
//! - [`prepare`](prepare::prepare) turns a file into statements (placeholders replaced) and
//!   decides whether it runs in a transaction;
//! - [`baseline`], [`repair`] and [`undo`] (in `maintain`) share the lock and history table;
//! - [`find_foreign`] and [`adopt`] read a Pyway or Flyway history table and copy it into
//!   flowhost's, checksums and all, so a database another tool migrated is taken over without
//!   re-applying anything; the planner verifies those rows with the other tool's
//!   [`ChecksumAlgorithm`]. `migrate` does this by itself when flowhost's history is empty.

mod apply;
mod checksum;
mod discover;
mod error;
mod history;
mod import;
mod lock;
mod maintain;
mod nontx;
mod placeholders;
mod plan;
mod prepare;
mod report;
mod scaffold;
pub mod sqlserver;
mod version;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::{Duration, Instant};

pub use checksum::{Checksum, ChecksumAlgorithm, normalise};
pub use discover::{
    Discovered, Migration, MigrationKind, MigrationName, discover, parse_file_name,
};
pub use error::{ChecksumMismatch, FileProblem, MigrateError};
pub use history::{
    AppliedMigration, DEFAULT_HISTORY_TABLE, HistoryTable, TYPE_BASELINE, TYPE_SQL, TYPE_UNDO,
};
pub use import::{ForeignHistory, ForeignTool, adopt, find_foreign};
pub use lock::MigrationConn;
pub use lock::oldest_lock;
pub use maintain::{BaselineReport, RepairAction, RepairReport, baseline, repair, undo};
pub use nontx::non_transactional;
pub use placeholders::Placeholders;
pub use plan::{Plan, plan};
pub use prepare::{NO_TRANSACTION_HEADER, has_no_transaction_header};
pub use report::{AppliedStep, MigrateReport, MigrationStatus, PendingMigration, StepKind, table};
pub use scaffold::new_migration;
pub use version::{Version, VersionError};

use crate::db::{Conn, Database};

/// How [`migrate`] and [`status`] behave.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The history table's name: a plain identifier. Default [`DEFAULT_HISTORY_TABLE`].
    pub history_table: String,
    /// Recorded in `installed_by`; the CLI passes the OS user.
    pub installed_by: String,
    /// How long to wait for another migrator's lock (PostgreSQL). Default 60 s.
    pub lock_timeout: Duration,
    /// Apply nothing above this version.
    pub target: Option<Version>,
    /// Plan only: read the history, execute nothing, report what would run.
    pub dry_run: bool,
    /// Also apply pending files whose versions are below the current version.
    pub out_of_order: bool,
    /// `${name}` values; `None` leaves files as written (placeholders off).
    pub placeholders: Option<Placeholders>,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            history_table: DEFAULT_HISTORY_TABLE.to_owned(),
            installed_by: default_installed_by(),
            lock_timeout: Duration::from_secs(60),
            target: None,
            dry_run: false,
            out_of_order: false,
            placeholders: None,
        }
    }
}

impl MigrateOptions {
    /// The defaults, recording the OS user as `installed_by` (what the CLI and runs use).
    pub fn for_current_user() -> Self {
        MigrateOptions::default()
    }

    /// The placeholders for one database with the built-ins filled in, if placeholders are on.
    pub fn placeholders_for(&self, database: &str, table: &str) -> Option<Placeholders> {
        self.placeholders.as_ref().map(|p| {
            p.with("flowhost:database", database)
                .with("flowhost:table", table)
                .with("flowhost:user", &self.installed_by)
        })
    }
}

/// The OS user: from the environment, else (containers and services often set no `USER`) the
/// name the system's user database gives the process's user id, else `flowhost`.
pub fn default_installed_by() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .or_else(os_user_name)
        .unwrap_or_else(|| "flowhost".to_owned())
}

#[cfg(unix)]
fn os_user_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is the process's user; /etc/passwd names it.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(not(unix))]
fn os_user_name() -> Option<String> {
    None
}

/// Applies the pending migrations in `dir` (the folder `migrations/<db>`) to `db`.
///
/// Refuses to run anything when an applied file changed, a pending file would run out of
/// order, the history records a failure, or a file is malformed. Each migration runs in its own
/// transaction together with its history row; a failure rolls that migration back and stops
/// (earlier migrations of the same run stay applied). Concurrent callers on one database apply
/// each migration exactly once.
pub async fn migrate(
    db: &Database,
    dir: &Path,
    opts: &MigrateOptions,
) -> Result<MigrateReport, MigrateError> {
    let (report, result) = migrate_reporting(db, dir, opts).await;
    result.map(|()| report)
}

/// [`migrate`], with the report of what was done even when it failed: the migrations applied
/// (and committed) before the one that failed.
pub async fn migrate_reporting(
    db: &Database,
    dir: &Path,
    opts: &MigrateOptions,
) -> (MigrateReport, Result<(), MigrateError>) {
    let started = Instant::now();
    let mut report = MigrateReport::new(
        db.name(),
        &opts.history_table,
        opts.dry_run,
        opts.target.clone(),
    );
    let result = async {
        let table = HistoryTable::new(&opts.history_table, db.backend())?;
        report.history_table = table.name().to_owned();
        let files = discover(dir)?;
        if opts.dry_run {
            let mut conn = db.acquire().await?;
            apply::plan_only(db, &mut conn, &table, &files, opts, &mut report).await?;
        } else {
            let mut mc = MigrationConn::acquire(db, &table, opts.lock_timeout).await?;
            let result = apply::apply_locked(db, &mut mc, &table, &files, opts, &mut report).await;
            // Released on success and on error alike; a panic or a dropped future closes the
            // connection instead (see MigrationConn's Drop), which releases the lock too.
            mc.release(db).await;
            result?;
        }
        Ok(())
    }
    .await;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    (report, result)
}

/// The migration state of `db`: the history, and when `dir` is given, the files set against
/// it. Works before the history table exists (everything is pending). Changes nothing.
pub async fn status(
    db: &Database,
    dir: Option<&Path>,
    opts: &MigrateOptions,
) -> Result<MigrationStatus, MigrateError> {
    // The folder and the table name are checked before connecting: their errors need no server.
    let (table, files) = status_inputs(db, dir, opts)?;
    let mut conn = db.acquire().await?;
    status_of(&mut conn, db, table, files).await
}

/// [`status`] on a connection the caller holds: a run checks its database on the connection
/// that just answered, rather than dialling a second one while the first is still on its way
/// back to the pool.
pub async fn status_on(
    conn: &mut Conn,
    db: &Database,
    dir: Option<&Path>,
    opts: &MigrateOptions,
) -> Result<MigrationStatus, MigrateError> {
    let (table, files) = status_inputs(db, dir, opts)?;
    status_of(conn, db, table, files).await
}

/// The history table's name checked and the migration folder read.
fn status_inputs(
    db: &Database,
    dir: Option<&Path>,
    opts: &MigrateOptions,
) -> Result<(HistoryTable, Option<Discovered>), MigrateError> {
    let table = HistoryTable::new(&opts.history_table, db.backend())?;
    Ok((table, dir.map(discover).transpose()?))
}

async fn status_of(
    conn: &mut Conn,
    db: &Database,
    table: HistoryTable,
    files: Option<Discovered>,
) -> Result<MigrationStatus, MigrateError> {
    let (exists, history, foreign) = apply::read_history_and_presence(&table, conn, db).await?;
    let p = plan(files.as_ref(), &history, None);
    let pending = |list: &[&Migration]| list.iter().map(|m| PendingMigration::of(m)).collect();
    let owned = |list: &[&AppliedMigration]| list.iter().map(|r| (*r).clone()).collect();
    let mut pending_now: Vec<PendingMigration> = pending(&p.pending);
    pending_now.extend(p.repeatable_pending.iter().map(|m| PendingMigration::of(m)));
    Ok(MigrationStatus {
        database: db.name().to_owned(),
        history_table: table.name().to_owned(),
        history_exists: exists,
        foreign_history: foreign.map(|f| format!("{} table {}", f.tool, f.table)),
        files_checked: files.is_some(),
        current_version: p.current.clone(),
        applied_count: p.applied.len(),
        baseline: p.baseline.cloned(),
        applied: owned(&p.applied),
        repeatable_applied: owned(&p.repeatable_applied),
        pending: pending_now,
        out_of_order: pending(&p.out_of_order),
        below_baseline: pending(&p.below_baseline),
        checksum_mismatches: p.mismatches.clone(),
        missing_on_disk: owned(&p.missing),
        failed: owned(&p.failed),
        resumable: owned(&p.resumable),
    })
}
