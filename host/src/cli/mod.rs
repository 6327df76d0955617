//! The `flowhost` command line. Flags are documented where they are defined; `--help` is the
//! reference.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LoadOptions};
use crate::manifest::Manifest;
use crate::migrate::{self, MigrateOptions};
use crate::run::{Host, RunRequest, RunStatus};
use crate::runtime::RuntimeOptions;
use crate::{Error, exit, health};

mod build_cmd;
mod config_cmd;
pub mod envelope;
mod scaffold;

const AFTER_HELP: &str = "\
Exit codes (the same for every command):
  0  success
  1  the flow returned an error
  2  bad invocation, configuration, manifest, component or build
  3  a database could not be reached or is unhealthy, or a migration failed
  4  the flow was stopped (panic, trap, time, memory or fuel limit)

--json (any command that has it) prints one JSON object on stdout, success or failure:
{\"ok\": bool, \"error\": {\"kind\", \"message\"} | null, \"exit_code\": n, ...}.

Configuration comes from, in order (a later one wins): .env in the current directory, then
.env.<environment>, core/envs/.env.<environment> and $FLOWHOST_ENV_DIR/.env.<environment>,
then --env-file files; the process environment wins over all. `flowhost config` shows what
was read. Only with no configuration at all, for any environment, does the development
environment keep its databases in SQLite files under .flowhost/. See README.md for every key.";

/// Runs data flows as sandboxed WebAssembly components with granted database access.
#[derive(Debug, Parser)]
#[command(name = "flowhost", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Environment whose databases to use (overrides FLOWHOST_ENV; default: development).
    #[arg(long = "env", global = true, value_name = "NAME")]
    environment: Option<String>,
    /// Extra .env file to read after the ones found by name (repeatable; later files win, the
    /// process environment wins over all). A file that configures only other environments
    /// than the selected one is refused.
    #[arg(long = "env-file", global = true, value_name = "PATH")]
    env_files: Vec<PathBuf>,
    /// Folder for embedded SQLite databases and the compiled-component cache.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "FLOWHOST_DATA_DIR",
        default_value = ".flowhost"
    )]
    data_dir: PathBuf,
    /// Folder for compiled components (default: <data-dir>/cache).
    #[arg(long, global = true, value_name = "DIR", env = "FLOWHOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace). FLOWHOST_LOG=<filter> sets it exactly.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a flow component once and print its JSON result on stdout.
    Run(RunArgs),
    /// Apply pending migrations (migrations/<DB>/V<n>__<description>.sql, then R__ files),
    /// or inspect and maintain the migration history (see `flowhost migrate --help`).
    Migrate(MigrateArgs),
    /// Check databases: connection, SELECT 1, response time, migrations, pool.
    Health(HealthArgs),
    /// Show where configuration comes from: the environment and what selected it, the files
    /// read, the databases each defines and other environments found. Never a secret.
    Config(config_cmd::ConfigArgs),
    /// Create a new flow: its crate (flows/NAME/, with a unit test), its commented manifest
    /// (flows/NAME.toml) and the migrations of the database it owns. It builds and runs as
    /// generated: `flowhost build NAME`, then `flowhost run flows/NAME.wasm`.
    New(scaffold::NewArgs),
    /// Compile flows to wasm32-wasip2 components (adding the target if missing), place them
    /// as flows/NAME.wasm and precompile them into the cache. cargo's errors are shown as is.
    Build(build_cmd::BuildArgs),
}

impl Command {
    /// Whether the command was asked for its `--json` document (see [`envelope`]).
    fn json(&self) -> bool {
        match self {
            Command::Run(a) => a.json,
            Command::Health(a) => a.json,
            Command::Config(a) => a.json,
            Command::New(_) | Command::Build(_) => false,
            Command::Migrate(a) => match &a.action {
                None => a.json,
                Some(MigrateAction::Info(i) | MigrateAction::Validate(i)) => i.json,
                Some(
                    MigrateAction::Baseline { json, .. }
                    | MigrateAction::Repair { json, .. }
                    | MigrateAction::Undo { json, .. }
                    | MigrateAction::New { json, .. },
                ) => *json,
            },
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The flow component (a wasm32-wasip2 component, e.g. flows/rpa1.wasm).
    component: PathBuf,
    /// The flow's parameters as JSON (default: {}).
    #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the flow's parameters from a JSON file ("-" for stdin).
    #[arg(long, value_name = "PATH")]
    input_file: Option<PathBuf>,
    /// The flow's manifest (default: the .toml beside the component, flows/rpa1.toml).
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Print the whole run record as JSON (run id, timings, status, output or error).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct MigrateArgs {
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
struct MigrationsFolder {
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
enum MigrateAction {
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
struct InspectArgs {
    /// Databases to inspect (default: every folder under --migrations-dir).
    databases: Vec<String>,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// Databases to check (default: every configured database).
    databases: Vec<String>,
    /// Folder holding one migrations folder per database, for the migration status.
    #[arg(long, value_name = "DIR", default_value = "migrations")]
    migrations_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let json = cli.command.json();
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if json {
                envelope::print_failure(&e);
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Log output on stderr. `FLOWHOST_LOG`, else `RUST_LOG`, sets the filter exactly; otherwise
/// `-v` adds the host's debug lines and `-vv` its trace lines. The engine's own tracing
/// (wasmtime, cranelift: hundreds of lines per component) stays at warnings unless a filter
/// asks for it. `NO_COLOR` (or output that is not a terminal) turns colour off.
fn init_logging(global: &GlobalArgs) {
    const QUIET_ENGINE: &str = "wasmtime=warn,cranelift=warn,regalloc2=warn,wasmparser=warn,\
                                wit_parser=warn,wit_component=warn";
    let default = if global.quiet {
        "warn".to_owned()
    } else {
        match global.verbose {
            0 => "info,sqlx=warn".to_owned(),
            // `flow` is the flows' own log lines (their debug!/trace!).
            1 => format!("info,flowhost=debug,flow=debug,sqlx=info,{QUIET_ENGINE}"),
            _ => format!("debug,flowhost=trace,flow=trace,sqlx=debug,{QUIET_ENGINE}"),
        }
    };
    let filter = ["FLOWHOST_LOG", "RUST_LOG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or(default);
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .try_init();
}

/// Where compiled components are cached: --cache-dir, else <data-dir>/cache.
fn cache_dir(global: &GlobalArgs) -> PathBuf {
    global
        .cache_dir
        .clone()
        .unwrap_or_else(|| global.data_dir.join("cache"))
}

fn load_config(global: &GlobalArgs) -> Result<Arc<Config>, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::Io {
        action: "read the current directory".into(),
        source: e,
    })?;
    let config = Config::load(&LoadOptions {
        env_override: global.environment.clone(),
        dotenv_dir: Some(cwd),
        extra_env_files: global.env_files.clone(),
        data_dir: global.data_dir.clone(),
        ..LoadOptions::from_process()
    })?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(config))
}

async fn dispatch(cli: Cli) -> Result<u8, Error> {
    match &cli.command {
        // Shown even when loading fails: that is when it is needed most.
        Command::Config(args) => return Ok(config_cmd::show(load_config(&cli.global), args)),
        // Writing and building flows needs no database configuration.
        Command::New(args) => return scaffold::new(args),
        Command::Build(args) => return build_cmd::build(args, cache_dir(&cli.global)),
        _ => {}
    }
    let config = load_config(&cli.global)?;
    match cli.command {
        Command::Run(args) => run(config, &cli.global, args).await,
        Command::Migrate(args) => migrate_cmd(config, args).await,
        Command::Health(args) => health_cmd(config, args).await,
        Command::Config(_) | Command::New(_) | Command::Build(_) => {
            unreachable!("handled before the configuration is required")
        }
    }
}

fn read_input(args: &RunArgs) -> Result<String, Error> {
    let text = match (&args.input, &args.input_file) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) if path == Path::new("-") => std::io::read_to_string(std::io::stdin())
            .map_err(|e| Error::Io {
            action: "read the input from stdin".into(),
            source: e,
        })?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| Error::Io {
            action: format!("read the input file {}", path.display()),
            source: e,
        })?,
        (None, None) => "{}".into(),
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| Error::Usage(format!("the flow input is not valid JSON: {e}")))?;
    Ok(text)
}

async fn run(config: Arc<Config>, global: &GlobalArgs, args: RunArgs) -> Result<u8, Error> {
    let input = read_input(&args)?;
    if !args.component.is_file() {
        return Err(Error::Usage(missing_component(&args.component)));
    }
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| Manifest::path_beside(&args.component));
    let manifest = Manifest::load(&manifest_path)?;
    let host = Host::new(
        config,
        RuntimeOptions {
            cache_dir: Some(cache_dir(global)),
            fuel: manifest.limits.fuel.is_some(),
            // One run per process: a pool of one reserves no more than the run uses.
            max_concurrent_instances: Some(1),
        },
    )?;
    let request = RunRequest {
        component: args.component.clone(),
        manifest,
        input,
    };
    let result = host.run(&request).await;
    host.shutdown().await;
    let record = result?;
    let code = match &record.error {
        None => exit::OK,
        Some(failure) => {
            eprintln!("error: {}", failure.message);
            match failure.kind.as_str() {
                "flow-error" | "bad-output" => exit::FLOW_FAILED,
                _ => exit::TRAPPED,
            }
        }
    };
    if args.json {
        let error = record.error.as_ref().map(|f| envelope::ErrorBody {
            kind: f.kind.clone(),
            message: f.message.clone(),
        });
        envelope::print(error, code, &record);
    } else if record.status == RunStatus::Succeeded {
        let output = record.output.as_ref().expect("a succeeded run has output");
        println!(
            "{}",
            serde_json::to_string_pretty(output).expect("JSON values serialize")
        );
    }
    Ok(code)
}

/// What to say when the component to run is not there: the flows that are, and how to build.
fn missing_component(path: &Path) -> String {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .map(|p| p.display().to_string())
        .collect();
    present.sort();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut message = format!("no component at {}", path.display());
    if path.is_dir() {
        message = format!("{} is a folder, not a component", path.display());
    }
    if !present.is_empty() {
        message.push_str(&format!(
            "; components in {}: {}",
            dir.display(),
            present.join(", ")
        ));
    }
    message.push_str(&format!(
        "; build a flow crate with `flowhost build {stem}` (or `make flows` for rpa1)"
    ));
    message
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

async fn migrate_cmd(config: Arc<Config>, args: MigrateArgs) -> Result<u8, Error> {
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

fn folders_in(dir: &Path) -> Result<Vec<String>, Error> {
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

/// The configured databases by the names people wrote: configuration keys are upper-case
/// (`..._SURVEYHUB_CONNECTION_STRING`), so the spelling comes from the manifests in `flows/`
/// and the migrations folders (`SurveyHub`, `rpa_db`), and lower case otherwise.
fn names_as_written(config: &Config, migrations_dir: &Path) -> Vec<String> {
    let mut written: std::collections::HashMap<String, String> = Default::default();
    let manifests = std::fs::read_dir("flows")
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
    for name in folders_in(migrations_dir).unwrap_or_default() {
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

async fn health_cmd(config: Arc<Config>, args: HealthArgs) -> Result<u8, Error> {
    let names = if args.databases.is_empty() {
        names_as_written(&config, &args.migrations_dir)
    } else {
        args.databases.clone()
    };
    let databases = crate::db::DatabaseSet::new(config);
    let report = health::check(&databases, &names, &args.migrations_dir).await;
    databases.close_all().await;
    // A database that is not configured is a configuration error, as it is for `run`.
    let failing: Vec<&health::DatabaseHealth> = report
        .databases
        .iter()
        .filter(|d| d.status == health::Status::Unhealthy)
        .collect();
    let code = if failing.is_empty() {
        exit::OK
    } else if failing
        .iter()
        .any(|d| d.error_kind.as_deref() == Some("config"))
    {
        exit::USAGE
    } else {
        exit::DATABASE
    };
    if args.json {
        let error = (!failing.is_empty()).then(|| envelope::ErrorBody {
            kind: if code == exit::USAGE {
                "config"
            } else {
                "database"
            }
            .into(),
            message: failing
                .iter()
                .map(|d| format!("{}: {}", d.name, d.error.as_deref().unwrap_or("unhealthy")))
                .collect::<Vec<_>>()
                .join("; "),
        });
        envelope::print(error, code, &report);
    } else {
        print!("{}", health::render(&report));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

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
