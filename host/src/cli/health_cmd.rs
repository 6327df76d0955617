//! `flowhost health`: every configured database checked at once, as a table or one `--json`
//! document.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::envelope;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::{Error, health};

#[derive(Debug, Args)]
pub(super) struct HealthArgs {
    /// Databases to check (default: every configured database).
    databases: Vec<String>,
    /// Folder holding one migrations folder per database, for the migration status.
    #[arg(long, value_name = "DIR", default_value = "migrations")]
    migrations_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

/// The configured databases by the names people wrote: configuration keys are upper-case
/// (`..._SURVEYHUB_CONNECTION_STRING`), so the spelling comes from the manifests in `flows/`
/// and the migrations folders (`SurveyHub`, `rpa_db`), and lower case otherwise.
pub(crate) fn names_as_written(
    config: &Config,
    flows_dir: &Path,
    migrations_dir: &Path,
) -> Vec<String> {
    let mut written: std::collections::HashMap<String, String> = Default::default();
    let manifests = std::fs::read_dir(flows_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"));
    for manifest in manifests {
        if let Ok(manifest) = Manifest::load(&manifest) {
            for name in manifest.databases.keys() {
                written.insert(crate::config::key_name(name), name.clone());
            }
        }
    }
    for name in super::migrate_cmd::folders_in(migrations_dir).unwrap_or_default() {
        written
            .entry(crate::config::key_name(&name))
            .or_insert(name);
    }
    config
        .database_names()
        .into_iter()
        .map(|name| {
            written
                .get(&crate::config::key_name(&name))
                .cloned()
                .unwrap_or(name)
        })
        .collect()
}

pub(super) async fn health(config: Arc<Config>, args: HealthArgs) -> Result<u8, Error> {
    let names = if args.databases.is_empty() {
        names_as_written(&config, Path::new("flows"), &args.migrations_dir)
    } else {
        args.databases.clone()
    };
    let databases = crate::db::DatabaseSet::new(config);
    let report = health::check(&databases, &names, &args.migrations_dir).await;
    databases.close_all().await;
    // A database that is not configured is a configuration error, as it is for `run`.
    let failing: Vec<_> = report
        .databases
        .iter()
        .filter(|d| d.status == health::Status::Unhealthy)
        .map(|d| (d.name.as_str(), d.error_kind.as_deref(), d.error.as_deref()))
        .collect();
    let (code, error) = envelope::per_database_failure(&failing);
    if args.json {
        envelope::print(error, code, &report);
    } else {
        print!("{}", health::render(&report));
    }
    Ok(code)
}
