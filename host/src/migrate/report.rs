//! What `migrate` did and what `status` found: serialisable for `--json`, and rendered as small
//! tables for people.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::checksum::Checksum;
use super::discover::{Migration, MigrationKind};
use super::error::ChecksumMismatch;
use super::history::AppliedMigration;
use super::version::Version;

/// What kind of migration a step or a pending file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Versioned,
    Repeatable,
    Undo,
}

impl StepKind {
    pub fn of(m: &Migration) -> StepKind {
        match m.name.kind {
            MigrationKind::Versioned(_) => StepKind::Versioned,
            MigrationKind::Repeatable => StepKind::Repeatable,
            MigrationKind::Undo(_) => StepKind::Undo,
        }
    }

    /// The version column of a table: `3`, `undo 3`, or `repeatable`.
    pub fn label(self, version: Option<&Version>) -> String {
        match (self, version) {
            (StepKind::Undo, Some(v)) => format!("undo {v}"),
            (_, Some(v)) => v.to_string(),
            (_, None) => "repeatable".to_owned(),
        }
    }
}

/// A migration that has not run.
#[derive(Debug, Clone, Serialize)]
pub struct PendingMigration {
    pub kind: StepKind,
    /// `None` for repeatable migrations.
    pub version: Option<Version>,
    pub description: String,
    pub script: String,
    pub checksum: Checksum,
}

impl PendingMigration {
    pub fn of(m: &Migration) -> PendingMigration {
        PendingMigration {
            kind: StepKind::of(m),
            version: m.version().cloned(),
            description: m.description().to_owned(),
            script: m.script.clone(),
            checksum: m.checksum.clone(),
        }
    }

    fn label(&self) -> String {
        self.kind.label(self.version.as_ref())
    }
}

/// A migration applied (or undone) by this run.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedStep {
    pub kind: StepKind,
    /// `None` for repeatable migrations; for undo steps, the version undone.
    pub version: Option<Version>,
    pub description: String,
    pub script: String,
    pub installed_rank: i32,
    pub statements: usize,
    /// Ran in one transaction (`false`: statement by statement).
    pub transactional: bool,
    /// Resumed after this many statements completed in an earlier, failed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<usize>,
    pub execution_time_ms: u64,
}

/// The outcome of [`migrate`](super::migrate).
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub database: String,
    pub history_table: String,
    /// Nothing was executed; `would_apply` says what would have run.
    pub dry_run: bool,
    pub target: Option<Version>,
    pub version_before: Option<Version>,
    pub version_after: Option<Version>,
    /// Applied now, in order.
    pub applied: Vec<AppliedStep>,
    /// What a real run would apply (dry runs only).
    pub would_apply: Vec<PendingMigration>,
    /// Pending migrations left alone because they are above the target.
    pub above_target: Vec<PendingMigration>,
    /// Migrations another process applied while this one waited for the database.
    pub applied_by_another: Vec<String>,
    /// Things worth knowing that did not stop the run (applied migrations missing on disk).
    pub warnings: Vec<String>,
    /// The Pyway or Flyway history adopted into an empty flowhost history by this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    pub elapsed_ms: u64,
}

impl MigrateReport {
    pub fn new(
        database: &str,
        history_table: &str,
        dry_run: bool,
        target: Option<Version>,
    ) -> Self {
        MigrateReport {
            database: database.to_owned(),
            history_table: history_table.to_owned(),
            dry_run,
            target,
            version_before: None,
            version_after: None,
            applied: Vec::new(),
            would_apply: Vec::new(),
            above_target: Vec::new(),
            applied_by_another: Vec::new(),
            warnings: Vec::new(),
            imported_from: None,
            elapsed_ms: 0,
        }
    }
}

fn version_text(v: &Option<Version>) -> String {
    v.as_ref()
        .map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

impl fmt::Display for MigrateReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.render(&mut text)?;
        out.write_str(text.trim_end())
    }
}

impl MigrateReport {
    fn render(&self, f: &mut String) -> fmt::Result {
        let db = &self.database;
        if self.dry_run {
            if self.would_apply.is_empty() {
                writeln!(
                    f,
                    "{db}: up to date at version {} (dry run)",
                    version_text(&self.version_before)
                )?;
            } else {
                writeln!(
                    f,
                    "{db}: would apply {} from version {} (dry run, nothing executed)",
                    plural(self.would_apply.len(), "migration"),
                    version_text(&self.version_before)
                )?;
                let rows = self
                    .would_apply
                    .iter()
                    .map(|p| vec![p.label(), p.description.clone(), p.script.clone()])
                    .collect();
                write!(f, "{}", table(&["version", "description", "script"], rows))?;
            }
        } else if self.applied.is_empty() {
            writeln!(
                f,
                "{db}: up to date at version {}",
                version_text(&self.version_after)
            )?;
        } else {
            let undo = self.applied.iter().all(|s| s.kind == StepKind::Undo);
            writeln!(
                f,
                "{db}: {} {} in {} ms, now at version {}",
                if undo { "undid" } else { "applied" },
                plural(self.applied.len(), "migration"),
                self.elapsed_ms,
                version_text(&self.version_after)
            )?;
            let rows = self
                .applied
                .iter()
                .map(|s| {
                    let mut script = s.script.clone();
                    if let Some(done) = s.resumed_after {
                        script.push_str(&format!(" (resumed after statement {done})"));
                    } else if !s.transactional {
                        script.push_str(" (no transaction)");
                    }
                    vec![
                        s.kind.label(s.version.as_ref()),
                        s.description.clone(),
                        script,
                        format!("{} ms", s.execution_time_ms),
                    ]
                })
                .collect();
            write!(
                f,
                "{}",
                table(&["version", "description", "script", "time"], rows)
            )?;
        }
        if let Some(source) = &self.imported_from {
            writeln!(f, "  history taken over from another tool: {source}")?;
        }
        if !self.applied_by_another.is_empty() {
            writeln!(
                f,
                "  applied meanwhile by another migrator: {}",
                self.applied_by_another.join(", ")
            )?;
        }
        if !self.above_target.is_empty() {
            let target = version_text(&self.target);
            let names: Vec<&str> = self
                .above_target
                .iter()
                .map(|p| p.script.as_str())
                .collect();
            writeln!(
                f,
                "  left pending above target {target}: {}",
                names.join(", ")
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// The state of one database's migrations, as `flowhost migrate info` and `health` show it.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    pub database: String,
    pub history_table: String,
    /// Whether the history table exists (if not, nothing has been applied).
    pub history_exists: bool,
    /// When flowhost's history is empty but a Pyway or Flyway one exists: which (its rows
    /// are shown, and `migrate` adopts them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_history: Option<String>,
    /// Whether migration files were compared (a folder was given).
    pub files_checked: bool,
    /// The highest successfully applied version (or the baseline, if higher).
    pub current_version: Option<Version>,
    pub applied_count: usize,
    /// The baseline row, if the database was baselined.
    pub baseline: Option<AppliedMigration>,
    /// Versioned rows in effect (applied, not undone), in version order.
    pub applied: Vec<AppliedMigration>,
    /// The latest run of each repeatable migration.
    pub repeatable_applied: Vec<AppliedMigration>,
    /// What `migrate` would run: versioned files, then new or changed repeatable ones.
    pub pending: Vec<PendingMigration>,
    /// Files with versions below the current one that never ran (need `--out-of-order`).
    pub out_of_order: Vec<PendingMigration>,
    /// Files at or below the baseline version: never run.
    pub below_baseline: Vec<PendingMigration>,
    pub checksum_mismatches: Vec<ChecksumMismatch>,
    pub missing_on_disk: Vec<AppliedMigration>,
    pub failed: Vec<AppliedMigration>,
    /// Non-transactional migrations that stopped part-way; `migrate` resumes them.
    pub resumable: Vec<AppliedMigration>,
}

impl MigrationStatus {
    /// Nothing needs attention: no mismatches, failures, half-done or out-of-order files.
    pub fn is_valid(&self) -> bool {
        self.checksum_mismatches.is_empty()
            && self.failed.is_empty()
            && self.out_of_order.is_empty()
            && self.resumable.is_empty()
    }

    /// Everything that needs a person's attention, one sentence each (for `health` warnings
    /// and `validate`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.checksum_mismatches {
            out.push(format!(
                "migration {m}; restore the file, or realign it with `flowhost migrate repair`"
            ));
        }
        for p in &self.out_of_order {
            out.push(format!(
                "{} (version {}) is pending below the current version {} (out of order): \
                 apply it with `flowhost migrate --out-of-order` or give it a higher version",
                p.script,
                version_text(&p.version),
                version_text(&self.current_version)
            ));
        }
        for f in &self.failed {
            out.push(format!(
                "{} is recorded as failed in {}: fix what it left, then `flowhost migrate repair`",
                f.script, self.history_table
            ));
        }
        for r in &self.resumable {
            out.push(format!(
                "{} stopped after statement {} (it runs outside a transaction): `flowhost \
                 migrate` resumes it",
                r.script,
                r.statements_done.unwrap_or(0)
            ));
        }
        for m in &self.missing_on_disk {
            out.push(format!("{} was applied but is missing on disk", m.script));
        }
        out
    }

    /// One line: `version 3, 3 applied, 1 pending`.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "version {}, {} applied",
            version_text(&self.current_version),
            self.applied_count
        );
        if let Some(b) = &self.baseline {
            let _ = write!(out, " (baseline {})", version_text(&b.version));
        }
        if self.files_checked {
            let _ = write!(out, ", {} pending", self.pending.len());
        }
        for (n, what) in [
            (self.out_of_order.len(), "out of order"),
            (self.checksum_mismatches.len(), "changed after applying"),
            (self.missing_on_disk.len(), "missing on disk"),
            (self.failed.len(), "failed"),
            (self.resumable.len(), "stopped part-way"),
        ] {
            if n > 0 {
                let _ = write!(out, ", {n} {what}");
            }
        }
        out
    }
}

impl fmt::Display for MigrationStatus {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.render(&mut text)?;
        out.write_str(text.trim_end())
    }
}

/// Sorts versioned rows by version, then repeatable ones by description.
type SortKey = (u8, Option<Version>, String);

impl MigrationStatus {
    fn render(&self, f: &mut String) -> fmt::Result {
        writeln!(
            f,
            "{} (history table {}): {}",
            self.database,
            self.history_table,
            self.summary()
        )?;
        if let Some(foreign) = &self.foreign_history {
            writeln!(
                f,
                "  history read from {foreign}; the next `flowhost migrate` adopts it"
            )?;
        } else if !self.history_exists {
            writeln!(f, "  no history table yet: nothing has been applied")?;
        }
        let changed = |rank: i32| {
            self.checksum_mismatches
                .iter()
                .any(|m| m.installed_rank == rank)
        };
        let missing = |rank: i32| {
            self.missing_on_disk
                .iter()
                .any(|m| m.installed_rank == rank)
        };
        let outdated = |a: &AppliedMigration| {
            self.pending
                .iter()
                .any(|p| p.kind == StepKind::Repeatable && p.description == a.description)
        };
        let key = |version: &Option<Version>, description: &str| -> SortKey {
            match version {
                Some(v) => (0, Some(v.clone()), String::new()),
                None => (1, None, description.to_owned()),
            }
        };
        let mut rows: Vec<(SortKey, Vec<String>)> = Vec::new();
        let history = self
            .baseline
            .iter()
            .chain(&self.applied)
            .chain(&self.repeatable_applied)
            .chain(&self.failed)
            .chain(&self.resumable);
        for a in history {
            let state = match &a.version {
                _ if a.statements_done.is_some() && !a.success => {
                    format!("stopped after statement {}", a.statements_done.unwrap_or(0))
                }
                _ if !a.success => "failed".to_owned(),
                _ if a.is_baseline() => "baseline".to_owned(),
                _ if changed(a.installed_rank) => "changed".to_owned(),
                _ if missing(a.installed_rank) => "missing on disk".to_owned(),
                None if outdated(a) => "outdated".to_owned(),
                _ => "applied".to_owned(),
            };
            let label = match &a.version {
                Some(v) => v.to_string(),
                None => "repeatable".to_owned(),
            };
            rows.push((
                key(&a.version, &a.description),
                vec![
                    label,
                    a.description.clone(),
                    state,
                    a.installed_on.format("%Y-%m-%d %H:%M:%S").to_string(),
                    format!("{} ms", a.execution_time_ms),
                ],
            ));
        }
        let applied_repeatable = |p: &PendingMigration| {
            self.repeatable_applied
                .iter()
                .any(|a| a.description == p.description)
        };
        for (list, state) in [
            (&self.pending, "pending"),
            (&self.out_of_order, "out of order"),
            (&self.below_baseline, "below baseline"),
        ] {
            for p in list {
                if p.kind == StepKind::Repeatable && applied_repeatable(p) {
                    continue; // shown once, as outdated
                }
                let cells = vec![
                    p.label(),
                    p.description.clone(),
                    state.to_owned(),
                    String::new(),
                    String::new(),
                ];
                rows.push((key(&p.version, &p.description), cells));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let header = [
            "version",
            "description",
            "state",
            "installed on (UTC)",
            "time",
        ];
        write!(
            f,
            "{}",
            table(&header, rows.into_iter().map(|r| r.1).collect())
        )
    }
}

/// A plain-text table, indented two spaces, columns padded to their widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_cells: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_cells).chain(&rows) {
        let mut line = String::from(" ");
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, " {cell:<w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let t = table(
            &["v", "description"],
            vec![
                vec!["10".into(), "x".into()],
                vec!["2".into(), "longer".into()],
            ],
        );
        assert_eq!(t, "  v  description\n  10 x\n  2  longer\n");
    }

    #[test]
    fn report_display_names_what_ran() {
        let mut r = MigrateReport::new("rpa_db", "flowhost_schema_history", false, None);
        r.version_after = Some(Version::parse("2").unwrap());
        r.applied.push(AppliedStep {
            kind: StepKind::Versioned,
            transactional: true,
            resumed_after: None,
            version: Some(Version::parse("2").unwrap()),
            description: "Add index".into(),
            script: "V2__Add_index.sql".into(),
            installed_rank: 2,
            statements: 1,
            execution_time_ms: 7,
        });
        r.warnings
            .push("V1__x.sql was applied but is missing on disk".into());
        let text = r.to_string();
        assert!(
            text.starts_with("rpa_db: applied 1 migration in 0 ms, now at version 2"),
            "{text}"
        );
        assert!(
            text.contains("V2__Add_index.sql") && text.contains("7 ms"),
            "{text}"
        );
        assert!(text.contains("warning: V1__x.sql"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["applied"][0]["version"], "2");
        assert_eq!(json["version_before"], serde_json::Value::Null);
    }

    #[test]
    fn empty_status_summary() {
        let s = MigrationStatus {
            database: "d".into(),
            history_table: "h".into(),
            history_exists: false,
            foreign_history: None,
            files_checked: false,
            current_version: None,
            applied_count: 0,
            baseline: None,
            applied: vec![],
            repeatable_applied: vec![],
            pending: vec![],
            out_of_order: vec![],
            below_baseline: vec![],
            checksum_mismatches: vec![],
            missing_on_disk: vec![],
            failed: vec![],
            resumable: vec![],
        };
        assert_eq!(s.summary(), "version none, 0 applied");
        assert!(s.to_string().contains("no history table yet"));
        assert!(s.is_valid());
    }
}
