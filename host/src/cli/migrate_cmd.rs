//! `flowhost migrate` and its subcommands: apply, inspect and maintain migration histories,
//! one database at a time, as text or one `--json` document.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::envelope;
use crate::config::Config;
use crate::migrate::{self, MigrateOptions};
use crate::{Error, exit};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct MigrateArgs {
    #[command(subcommand)]
    action: Option<MigrateAction>,
    /// Databases to migrate (default: every folder under --migrations-dir).
    databases: Vec<String>,
    #[command(flatten)]
    folder: MigrationsFolder,
    /// Apply versioned migrations up to and including this version only.
    #[arg(long, value_name = "VERSION")]
    target: Option<String>,
    /// Also apply new files whose versions are below the current version (by default they
    /// stop the run, since they were probably merged late).
    #[arg(long)]
    out_of_order: bool,
    /// Print what would be applied; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct MigrationsFolder {
    /// Folder holding one migrations folder per database.
    #[arg(long, value_name = "DIR", default_value = "migrations", global = true)]
    migrations_dir: PathBuf,
    /// The history table's name (a plain identifier).
    #[arg(
        long,
        value_name = "NAME",
        default_value = migrate::DEFAULT_HISTORY_TABLE,
        global = true
    )]
    history_table: String,
    /// Seconds to wait for another migrator's lock before giving up (naming who holds it).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, global = true)]
    lock_timeout: u64,
}

impl MigrationsFolder {
    /// Migrate options from these flags and the configuration's placeholders.
    fn options(&self, config: &Config) -> Result<MigrateOptions, Error> {
        let mut options = MigrateOptions::for_current_user();
        options.history_table = self.history_table.clone();
        options.lock_timeout = std::time::Duration::from_secs(self.lock_timeout);
        options.placeholders = config.placeholders()?.map(migrate::Placeholders::new);
        Ok(options)
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum MigrateAction {
    /// Show applied (with dates), pending, failed, changed and missing migrations.
    #[command(alias = "status")]
    Info(InspectArgs),
    /// Check applied migrations against the files (checksums, failures, out of order);
    /// exit code 3 when anything is wrong.
    Validate(InspectArgs),
    /// Record that a database already has the schema up to VERSION (one BASELINE row in an
    /// empty history): files at or below it never run. For databases set up before flowhost.
    Baseline {
        /// Databases to baseline (default: every folder under --migrations-dir).
        databases: Vec<String>,
        /// The version the database's schema is at.
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// The baseline row's description (default: "<< flowhost baseline >>").
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Say what would be recorded; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove failed history entries and record the current checksum of applied files that
    /// changed (only for the --version's given, if any). Use --dry-run first.
    Repair {
        /// Databases to repair (default: every folder under --migrations-dir).
        databases: Vec<String>,
        /// Repair only the entries of this version (repeatable flag).
        #[arg(long = "version", value_name = "VERSION")]
        versions: Vec<String>,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Undo the latest applied migration with its U<version>__*.sql file, or with --to every
    /// migration above a version, newest first. Undone versions become pending again.
    Undo {
        /// Databases to undo in (default: every folder under --migrations-dir).
        databases: Vec<String>,
        /// Undo every applied version above this one (default: only the latest).
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Print what would be undone; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the next correctly numbered, empty migration file and print its path.
    New {
        /// The database whose folder gets the file.
        database: String,
        /// What the migration does ("Add index on survey_id").
        #[arg(required = true, num_args = 1..)]
        description: Vec<String>,
        /// Print the new file's path as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// Databases to inspect (default: every folder under --migrations-dir).
    databases: Vec<String>,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_version(flag: &str, text: &str) -> Result<migrate::Version, Error> {
    text.parse()
        .map_err(|e| Error::Usage(format!("{flag} {text}: {e}")))
}

/// What one database's step produced: its report (a migration that failed may still have
/// applied others first), and the error that stopped it.
type Step<R> = (Option<R>, Option<Error>);

/// A step that either completes with a report or fails with nothing to report.
fn whole<R>(result: Result<R, Error>) -> Step<R> {
    match result {
        Ok(report) => (Some(report), None),
        Err(e) => (None, Some(e)),
    }
}

/// Runs `each` for every database in turn, stopping at the first error; prints each report
/// as text, or one `--json` document (`"databases": [...]`, the failed one's partial report
/// included) at the end.
async fn for_each_database<R, F>(
    config: Arc<Config>,
    names: &[String],
    json: bool,
    each: F,
) -> Result<u8, Error>
where
    R: std::fmt::Display + serde::Serialize,
    F: AsyncFn(&crate::db::Database, &str) -> Step<R>,
{
    let databases = crate::db::DatabaseSet::new(config);
    let mut reports = Vec::new();
    let mut failure = None;
    for name in names {
        let (report, error) = match databases.get(name).await {
            Ok(db) => each(&db, name).await,
            Err(e) => (None, Some(e)),
        };
        if let Some(report) = report {
            if !json {
                println!("{report}");
            }
            reports.push(report);
        }
        if let Some(e) = error {
            failure = Some(e);
            break;
        }
    }
    databases.close_all().await;
    if json {
        let code = failure.as_ref().map_or(exit::OK, Error::exit_code);
        let error = failure.as_ref().map(envelope::ErrorBody::from);
        envelope::print(error, code, serde_json::json!({ "databases": reports }));
    }
    failure.map_or(Ok(exit::OK), Err)
}

pub(super) async fn migrate(config: Arc<Config>, args: MigrateArgs) -> Result<u8, Error> {
    let root = args.folder.migrations_dir.clone();
    let mut options = args.folder.options(&config)?;
    match args.action {
        Some(MigrateAction::Info(inspect)) => {
            inspect_cmd(config, &args.folder, inspect, false).await
        }
        Some(MigrateAction::Validate(inspect)) => {
            inspect_cmd(config, &args.folder, inspect, true).await
        }
        Some(MigrateAction::Baseline {
            databases,
            version,
            description,
            dry_run,
            json,
        }) => {
            let version = parse_version("--version", &version)?;
            options.dry_run = dry_run;
            let names = databases_to_migrate(&databases, &root)?;
            for_each_database(config, &names, json, async |db, name| {
                let dir = root.join(name);
                let result = migrate::baseline(
                    db,
                    Some(&dir),
                    &options,
                    version.clone(),
                    description.as_deref(),
                )
                .await;
                whole(result.map_err(Error::from))
            })
            .await
        }
        Some(MigrateAction::Repair {
            databases,
            versions,
            dry_run,
            json,
        }) => {
            let only = versions
                .iter()
                .map(|v| parse_version("--version", v))
                .collect::<Result<Vec<_>, _>>()?;
            options.dry_run = dry_run;
            let names = databases_to_migrate(&databases, &root)?;
            for_each_database(config, &names, json, async |db, name| {
                whole(
                    migrate::repair(db, &root.join(name), &options, &only)
                        .await
                        .map_err(Error::from),
                )
            })
            .await
        }
        Some(MigrateAction::Undo {
            databases,
            to,
            dry_run,
            json,
        }) => {
            let to = to.map(|v| parse_version("--to", &v)).transpose()?;
            options.dry_run = dry_run;
            let names = databases_to_migrate(&databases, &root)?;
            for_each_database(config, &names, json, async |db, name| {
                let result = migrate::undo(db, &root.join(name), &options, to.as_ref()).await;
                whole(result.map_err(Error::from))
            })
            .await
        }
        Some(MigrateAction::New {
            database,
            description,
            json,
        }) => {
            let path = migrate::new_migration(&root.join(&database), &description.join(" "))?;
            if json {
                envelope::print(
                    None,
                    exit::OK,
                    serde_json::json!({ "database": database, "path": path }),
                );
            } else {
                println!("{}", path.display());
            }
            Ok(exit::OK)
        }
        None => apply_cmd(config, args).await,
    }
}

/// The databases named, or every folder under the migrations folder.
fn databases_to_migrate(named: &[String], folder: &Path) -> Result<Vec<String>, Error> {
    let names = if named.is_empty() {
        folders_in(folder)?
    } else {
        named.to_vec()
    };
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "no databases to migrate: {} has no folders (expected {}/<database>/V1__Description.sql)",
            folder.display(),
            folder.display()
        )));
    }
    for name in &names {
        let dir = folder.join(name);
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "no migrations folder for '{name}' at {}",
                dir.display()
            )));
        }
    }
    Ok(names)
}

async fn apply_cmd(config: Arc<Config>, args: MigrateArgs) -> Result<u8, Error> {
    let root = &args.folder.migrations_dir;
    let names = databases_to_migrate(&args.databases, root)?;
    let mut options = args.folder.options(&config)?;
    options.dry_run = args.dry_run;
    options.out_of_order = args.out_of_order;
    if let Some(target) = &args.target {
        options.target = Some(parse_version("--target", target)?);
    }
    for_each_database(config, &names, args.json, async |db, name| {
        let (report, result) = migrate::migrate_reporting(db, &root.join(name), &options).await;
        (Some(report), result.err().map(Error::from))
    })
    .await
}

/// `migrate info` and `migrate validate`: read-only looks at history against files.
async fn inspect_cmd(
    config: Arc<Config>,
    folder: &MigrationsFolder,
    args: InspectArgs,
    validate: bool,
) -> Result<u8, Error> {
    let root = &folder.migrations_dir;
    let names = databases_to_migrate(&args.databases, root)?;
    let options = folder.options(&config)?;
    let databases = crate::db::DatabaseSet::new(config);
    let mut statuses = Vec::new();
    let mut outcome = Ok(());
    for name in &names {
        let result = async {
            let db = databases.get(name).await?;
            Ok::<_, Error>(migrate::status(&db, Some(&root.join(name)), &options).await?)
        }
        .await;
        match result {
            Ok(status) => statuses.push(status),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    databases.close_all().await;
    let invalid: Vec<String> = statuses
        .iter()
        .filter(|s| !s.is_valid())
        .flat_map(|s| {
            s.problems()
                .into_iter()
                .map(move |p| format!("{}: {p}", s.database))
        })
        .collect();
    let code = match &outcome {
        Err(e) => e.exit_code(),
        Ok(()) if validate && !invalid.is_empty() => exit::DATABASE,
        Ok(()) => exit::OK,
    };
    if args.json {
        let error = match &outcome {
            Err(e) => Some(envelope::ErrorBody::from(e)),
            Ok(()) if code != exit::OK => Some(envelope::ErrorBody {
                kind: "migration".into(),
                message: format!("the migration history is not valid: {}", invalid.join("; ")),
            }),
            Ok(()) => None,
        };
        let mut fields = serde_json::json!({ "databases": statuses });
        if validate && outcome.is_ok() {
            fields["valid"] = invalid.is_empty().into();
        }
        envelope::print(error, code, fields);
    } else {
        for status in &statuses {
            if validate {
                println!(
                    "{}: {}",
                    status.database,
                    if status.is_valid() {
                        "valid"
                    } else {
                        "INVALID"
                    }
                );
                for problem in status.problems() {
                    println!("  {problem}");
                }
            } else {
                println!("{status}");
            }
        }
    }
    outcome?;
    Ok(code)
}

pub(super) fn folders_in(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        action: format!("list the migrations folder {}", dir.display()),
        source: e,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

impl MigrateArgs {
    /// Whether the command was asked for its `--json` document.
    pub(super) fn json(&self) -> bool {
        match &self.action {
            None => self.json,
            Some(MigrateAction::Info(i) | MigrateAction::Validate(i)) => i.json,
            Some(
                MigrateAction::Baseline { json, .. }
                | MigrateAction::Repair { json, .. }
                | MigrateAction::Undo { json, .. }
                | MigrateAction::New { json, .. },
            ) => *json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn migrate_maintenance_commands_parse_with_shared_flags() {
        let cli = Cli::try_parse_from([
            "flowhost",
            "migrate",
            "repair",
            "rpa_db",
            "--version",
            "2",
            "--version",
            "3",
            "--dry-run",
            "--history-table",
            "schema_history",
            "--lock-timeout",
            "5",
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate");
        };
        assert_eq!(args.folder.history_table, "schema_history");
        assert_eq!(args.folder.lock_timeout, 5);
        match args.action {
            Some(MigrateAction::Repair {
                databases,
                versions,
                dry_run,
                ..
            }) => {
                assert_eq!(databases, ["rpa_db"]);
                assert_eq!(versions, ["2", "3"]);
                assert!(dry_run);
            }
            other => panic!("{other:?}"),
        }
        for argv in [
            &["flowhost", "migrate", "undo", "--to", "1"][..],
            &["flowhost", "migrate", "baseline", "--version", "4", "db"],
            &["flowhost", "migrate", "--out-of-order", "db"],
            &["flowhost", "migrate", "validate", "--migrations-dir", "m"],
            &["flowhost", "migrate", "new", "db", "Add", "index"],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        // baseline needs a version.
        assert!(Cli::try_parse_from(["flowhost", "migrate", "baseline", "db"]).is_err());
    }
}
