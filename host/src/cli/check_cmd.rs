//! `flowhost check`: everything a run needs, checked without running the flow.
//!
//! The component (a complete component of this contract), its manifest, the manifest against
//! what the component imports, and each grant against the configuration: configured,
//! answering, and its migrations valid. Every check is reported, not just the first failure,
//! one line each, with what to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde::Serialize;

use super::envelope;
use crate::config::Config;
use crate::db::DatabaseSet;
use crate::manifest::Manifest;
use crate::migrate::{self, MigrateOptions};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::{Error, exit};

/// `flowhost check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The flow component (flows/NAME.wasm).
    component: PathBuf,
    /// The flow's manifest (default: the .toml beside the component).
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Print the checks as one JSON document.
    #[arg(long)]
    pub(super) json: bool,
}

/// One check's outcome.
#[derive(Debug, Serialize)]
struct Check {
    /// What was checked: `component`, `manifest`, `grants`, `configuration`, `<db>`,
    /// `<db> migrations`.
    subject: String,
    ok: bool,
    message: String,
    /// What kind of problem ([`Error::kind`]); null when the check passed.
    kind: Option<String>,
    /// The exit code this problem stands for (2: the flow's files or configuration, 3: a
    /// database); 0 when it passed.
    #[serde(skip)]
    code: u8,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn pass(&mut self, subject: &str, message: String) {
        self.0.push(Check {
            subject: subject.to_owned(),
            ok: true,
            message,
            kind: None,
            code: exit::OK,
        });
    }

    fn fail(&mut self, subject: &str, kind: &str, message: String, code: u8) {
        self.0.push(Check {
            subject: subject.to_owned(),
            ok: false,
            message,
            kind: Some(kind.to_owned()),
            code,
        });
    }

    fn fail_with(&mut self, subject: &str, e: &Error) {
        self.fail(subject, &e.kind(), e.to_string(), e.exit_code());
    }
}

pub(super) async fn check(
    config: Result<Arc<Config>, Error>,
    args: &CheckArgs,
    cache_dir: PathBuf,
) -> u8 {
    let mut checks = Checks::default();
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| Manifest::path_beside(&args.component));
    let manifest = match Manifest::load(&manifest_path) {
        Ok(m) => {
            let grants: Vec<String> = m
                .databases
                .iter()
                .map(|(name, g)| format!("{name} ({})", access_name(g.access)))
                .collect();
            checks.pass(
                "manifest",
                format!(
                    "{} grants {}",
                    manifest_path.display(),
                    if grants.is_empty() {
                        "no database".to_owned()
                    } else {
                        grants.join(", ")
                    }
                ),
            );
            Some(m)
        }
        Err(e) => {
            checks.fail_with("manifest", &e.into());
            None
        }
    };
    check_component(&mut checks, args, manifest.as_ref(), cache_dir);
    match (config, &manifest) {
        (Err(e), _) => checks.fail_with("configuration", &e),
        (Ok(config), Some(manifest)) => check_grants(&mut checks, config, manifest).await,
        (Ok(_), None) => {}
    }
    report(&checks, args.json)
}

fn access_name(access: crate::manifest::Access) -> &'static str {
    match access {
        crate::manifest::Access::ReadOnly => "read-only",
        crate::manifest::Access::ReadWrite => "read-write",
    }
}

/// The component loads and links against this host's contract, and uses what it is granted.
fn check_component(
    checks: &mut Checks,
    args: &CheckArgs,
    manifest: Option<&Manifest>,
    cache_dir: PathBuf,
) {
    if !args.component.is_file() {
        checks.fail(
            "component",
            "component",
            super::missing_component(&args.component),
            exit::USAGE,
        );
        return;
    }
    // As `flowhost run` compiles it, so that a run after the check finds it cached.
    let loaded = Runtime::new(RuntimeOptions::single_run(
        cache_dir,
        manifest.is_some_and(|m| m.limits.fuel.is_some()),
    ))
    .and_then(|runtime| runtime.load(&args.component));
    let component = match loaded {
        Ok(c) => c,
        Err(e) => return checks.fail_with("component", &e.into()),
    };
    let size = std::fs::metadata(&args.component).map_or(0, |m| m.len());
    checks.pass(
        "component",
        format!(
            "{} ({} KiB) links against {}",
            args.component.display(),
            size.div_ceil(1024),
            crate::runtime::CONTRACT
        ),
    );
    let Some(manifest) = manifest else { return };
    let uses_databases = component
        .imports()
        .iter()
        .any(|i| i.starts_with("flowhost:flow/database"));
    match (uses_databases, manifest.databases.is_empty()) {
        (true, true) => checks.fail(
            "grants",
            "manifest",
            "the flow can open databases but its manifest grants none: add a \
             [databases.NAME] table with access = \"read-only\" or \"read-write\""
                .into(),
            exit::USAGE,
        ),
        (false, false) => checks.pass(
            "grants",
            "the manifest grants databases the component never opens (it does not import \
             flowhost:flow/database); the grants are harmless but unused"
                .into(),
        ),
        _ => {}
    }
}

/// Every grant: configured, answering, its migrations valid.
async fn check_grants(checks: &mut Checks, config: Arc<Config>, manifest: &Manifest) {
    let databases = DatabaseSet::new(config);
    databases.seeds_for(&manifest.path);
    for (name, grant) in &manifest.databases {
        let db = match databases.for_grant(name, grant.access).await {
            Ok(db) => db,
            Err(e) => {
                checks.fail_with(name, &e);
                continue;
            }
        };
        match db.ping().await {
            Ok(took) => checks.pass(
                name,
                format!(
                    "{} answered in {:.1} ms",
                    db.target(),
                    took.as_secs_f64() * 1000.0
                ),
            ),
            Err(e) => {
                checks.fail_with(name, &e.into());
                continue;
            }
        }
        if let Some(dir) = &grant.migrations {
            check_migrations(checks, &db, name, dir).await;
        }
    }
    databases.close_all().await;
}

async fn check_migrations(checks: &mut Checks, db: &crate::db::Database, name: &str, dir: &Path) {
    let subject = format!("{name} migrations");
    if !dir.is_dir() {
        return checks.fail(
            &subject,
            "manifest",
            format!(
                "the manifest's migrations folder {} does not exist: create it, or fix \
                 `migrations` under [databases.{name}]",
                dir.display()
            ),
            exit::USAGE,
        );
    }
    match migrate::status(db, Some(dir), &MigrateOptions::default()).await {
        Ok(status) if status.is_valid() => checks.pass(
            &subject,
            format!(
                "{} at {}, {} pending (applied before the next run)",
                dir.display(),
                status
                    .current_version
                    .as_ref()
                    .map_or("no version yet".to_owned(), |v| format!("version {v}")),
                status.pending.len()
            ),
        ),
        Ok(status) => checks.fail(
            &subject,
            "migration",
            format!(
                "{}; see `flowhost migrate info {name}`",
                status.problems().join("; ")
            ),
            exit::DATABASE,
        ),
        Err(e) => checks.fail_with(&subject, &e.into()),
    }
}

fn report(checks: &Checks, json: bool) -> u8 {
    let problems: Vec<&Check> = checks.0.iter().filter(|c| !c.ok).collect();
    // The flow's own files and configuration first: a database problem may follow from them.
    let worst = problems
        .iter()
        .min_by_key(|c| if c.code == exit::USAGE { 0 } else { c.code });
    let code = worst.map_or(exit::OK, |c| c.code);
    if json {
        let error = worst.map(|worst| envelope::ErrorBody {
            kind: worst.kind.clone().unwrap_or_default(),
            message: problems
                .iter()
                .map(|c| format!("{}: {}", c.subject, c.message))
                .collect::<Vec<_>>()
                .join("; "),
        });
        envelope::print(error, code, serde_json::json!({ "checks": checks.0 }));
        return code;
    }
    for c in &checks.0 {
        let mark = if c.ok { "ok     " } else { "PROBLEM" };
        println!("{mark}  {}: {}", c.subject, c.message);
    }
    match problems.len() {
        0 => println!("\nall checks passed"),
        1 => println!("\n1 problem"),
        n => println!("\n{n} problems"),
    }
    code
}
