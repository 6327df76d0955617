//! The `flowhost` command line. Flags are documented where they are defined; `--help` is the
//! reference.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LoadOptions};
use crate::history::RunHistory;
use crate::manifest::Manifest;
use crate::run::{Host, LoadedComponent, RunRecord, RunRequest, RunStatus};
use crate::runtime::{Runtime, RuntimeError, RuntimeOptions};
use crate::shutdown::{self, Cancel};
use crate::{Error, exit};

mod build_cmd;
mod check_cmd;
mod config_cmd;
mod db_cmd;
pub mod envelope;
pub(crate) mod health_cmd;
mod migrate_cmd;
pub mod reference;
mod runs_cmd;
mod scaffold;
mod serve_cmd;

const AFTER_HELP: &str = "\
Exit codes (the same for every command):
  0  success
  1  the flow returned an error
  2  bad invocation, configuration, manifest, component or build
  3  a database could not be reached or is unhealthy, or a migration failed
  4  the flow was stopped (panic, trap, time, memory or fuel limit)
  130, 143  stopped by SIGINT, SIGTERM (the run cancelled, its transactions rolled back)

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
pub(super) struct GlobalArgs {
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
    /// More log output: -v the host's and flows' debug lines, -vv their trace lines (the
    /// engine's own stay at warnings). FLOWHOST_LOG or RUST_LOG=<filter> sets it exactly;
    /// NO_COLOR turns colour off.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Days finished runs are kept in the run history (see `flowhost runs`); older ones are
    /// deleted, with their logs, when a process next opens the history.
    #[arg(
        long,
        global = true,
        value_name = "DAYS",
        env = "FLOWHOST_HISTORY_DAYS",
        default_value_t = crate::history::DEFAULT_RETENTION_DAYS
    )]
    history_days: u32,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a flow component once and print its JSON result on stdout.
    Run(RunArgs),
    /// Apply pending migrations (migrations/<DB>/V<n>__<description>.sql, then R__ files),
    /// or inspect and maintain the migration history (see `flowhost migrate --help`).
    Migrate(migrate_cmd::MigrateArgs),
    /// Check databases: connection, SELECT 1, response time, migrations, pool.
    Health(health_cmd::HealthArgs),
    /// Look inside databases: `flowhost db stats` shows table and index statistics, the
    /// slowest statements and recommendations (vacuum, analyze, indexes to add or drop).
    Db(db_cmd::DbArgs),
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
    /// The run history: every run of `flowhost run` and `flowhost serve`, with its input,
    /// outcome and log lines (kept in <data-dir>/history.db, or the database
    /// <ENV>_GLOBAL_FLOWHOST_STATE_CONNECTION_STRING names).
    Runs(runs_cmd::RunsArgs),
    /// Run flowhost as a service: health and readiness probes, Prometheus metrics, and runs
    /// over HTTP, with one set of pools for all runs. Stops cleanly on SIGINT/SIGTERM.
    Serve(serve_cmd::ServeArgs),
    /// Check a flow without running it: the component links against this host, the manifest
    /// parses and matches what the component uses, and every granted database is configured,
    /// answers and has valid migrations. One line per check; exit 0 when all pass.
    Check(check_cmd::CheckArgs),
}

impl Command {
    /// Whether the command was asked for its `--json` document (see [`envelope`]).
    fn json(&self) -> bool {
        match self {
            Command::Run(a) => a.json,
            Command::Health(a) => a.json,
            Command::Db(a) => a.json(),
            Command::Config(a) => a.json,
            Command::Check(a) => a.json,
            Command::Runs(a) => a.json(),
            Command::New(_) | Command::Build(_) | Command::Serve(_) => false,
            Command::Migrate(a) => a.json(),
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

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    // One thread: a command is one run or one check, its waiting is I/O, and socket wake-ups
    // handed from tokio's workers to the thread in block_on cost a query-heavy run about 10%
    // (20,000 SELECT 1s: 1.30 s against 1.46 s, medians of six alternating runs). SQLite's
    // statements run on sqlx's own threads; the epoch ticker that stops runaway flows is a
    // thread of its own.
    // `serve` is the exception: its runs, probes and scrapes must not wait on each other.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
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
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The terminal's filter is the terminal's alone: the run history captures its own levels.
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .with_filter(tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::registry()
        .with(terminal)
        .with(crate::history::capture::CaptureLayer::filtered())
        .try_init();
}

/// Where compiled components are cached: --cache-dir, else <data-dir>/cache.
pub(super) fn cache_dir(global: &GlobalArgs) -> PathBuf {
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
        // Reports a configuration that does not load as one of its checks.
        Command::Check(args) => {
            let config = load_config(&cli.global);
            return Ok(check_cmd::check(config, args, cache_dir(&cli.global)).await);
        }
        _ => {}
    }
    let config = load_config(&cli.global)?;
    match cli.command {
        Command::Run(args) => run(config, &cli.global, args).await,
        Command::Migrate(args) => migrate_cmd::migrate(config, args).await,
        Command::Health(args) => health_cmd::health(config, args).await,
        Command::Db(args) => db_cmd::db(config, args).await,
        Command::Runs(args) => runs_cmd::runs(config, &cli.global, args).await,
        Command::Serve(args) => serve_cmd::serve(config, &cli.global, args).await,
        Command::Config(_) | Command::New(_) | Command::Build(_) | Command::Check(_) => {
            unreachable!("handled before the configuration is required")
        }
    }
}

/// The run history, or `None` with a warning: a run is not refused because its history
/// cannot be written (a read-only data directory, a state database that is down).
pub(super) async fn open_history(config: &Config, global: &GlobalArgs) -> Option<Arc<RunHistory>> {
    match RunHistory::open(config, retention(global)).await {
        Ok(history) => Some(Arc::new(history)),
        Err(e) => {
            tracing::warn!("this run is not recorded in the run history: {e}");
            None
        }
    }
}

pub(super) fn retention(global: &GlobalArgs) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(global.history_days) * 86_400)
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
    // A flow stuck in its own code past the deadline ends the process (`on_stuck` below)
    // instead of being interrupted where it is: the interruption checks cost about a quarter
    // of a flow's instructions.
    let options = RuntimeOptions::single_run(cache_dir(global), manifest.limits.fuel.is_some());
    // The engine is built and the component loaded on a thread of their own (a few
    // milliseconds of CPU), while this thread dials the databases and the history opens on
    // sqlx's thread: a run's start costs the slowest of the three, not their sum, and no
    // handshake waits for this thread to come back from loading.
    let component_path = args.component.clone();
    let loading = std::thread::Builder::new()
        .name("flowhost-load".into())
        .spawn(move || {
            let runtime = Runtime::new(options)?;
            // A component that does not load is the run's failure, recorded as such when the
            // run loads it again; only the engine is needed here.
            let loaded = LoadedComponent::load(&runtime, &component_path).ok();
            Ok::<_, RuntimeError>((runtime, loaded))
        })
        .map_err(|e| Error::Io {
            action: "start the thread that loads the component".into(),
            source: e,
        })?;
    let json = args.json;
    let host = Host::without_runtime(config)
        .single_run()
        .on_stuck(Arc::new(move |record: &RunRecord| {
            report(record, exit::TRAPPED, json);
            let _ = std::io::Write::flush(&mut std::io::stdout());
            std::process::exit(i32::from(exit::TRAPPED));
        }));
    // SIGINT/SIGTERM cancel the run: the flow is stopped, its transactions rolled back, and
    // the run recorded as cancelled before the pools close and the process exits 130/143.
    // Preparing the databases is never cut short (a migration is not left half-applied); a
    // signal during it cancels the run before the flow starts.
    let cancel = Cancel::new();
    let run_id = crate::run::new_run_id();
    let signals = shutdown::wait();
    tokio::pin!(signals);
    let mut signal = None;
    let on_signal = |received: shutdown::Signal| {
        tracing::warn!(run = %run_id, "{} received: cancelling the run", received.name());
        cancel.cancel(received.name());
        Some(received)
    };
    let (prepared, history) = {
        let early = futures_util::future::join(
            host.prepare(&manifest),
            open_history(host.databases().config(), global),
        );
        tokio::pin!(early);
        tokio::select! {
            early = &mut early => early,
            received = &mut signals => {
                signal = on_signal(received);
                early.await
            }
        }
    };
    // Usually done by now: the handshakes and the migration check take longer.
    let (runtime, loaded) = loading.join().map_err(|_| {
        Error::Runtime(RuntimeError::Engine("the component loader panicked".into()))
    })??;
    host.install(runtime, loaded);
    let host = match history {
        Some(history) => host.with_history(history, "cli"),
        None => host,
    };
    let request = RunRequest {
        component: args.component.clone(),
        manifest,
        input,
    };
    let run = host.run_prepared(&request, &run_id, &cancel, Some(prepared));
    tokio::pin!(run);
    let result = if signal.is_some() {
        run.await
    } else {
        tokio::select! {
            result = &mut run => result,
            received = &mut signals => {
                signal = on_signal(received);
                run.await
            }
        }
    };
    host.shutdown().await;
    // A signal that stopped an SQLite statement stepped on this thread ends the run as
    // cancelled before tokio's handler has run (see `runtime::database_host::answer`).
    let signal = signal.or_else(shutdown::received);
    let record = result?;
    let code = match (&record.error, signal) {
        (None, _) => exit::OK,
        (Some(failure), signal) => match (failure.kind.as_str(), signal) {
            ("cancelled", Some(signal)) => signal.exit_code(),
            ("flow-error" | "bad-output", _) => exit::FLOW_FAILED,
            _ => exit::TRAPPED,
        },
    };
    report(&record, code, args.json);
    // Everything that outlives the run is closed: the history, every connection. What is left
    // (the engine and its instance pool, the component, the runtime and its threads) the
    // kernel frees at once on exit, faster than their destructors do one mapping at a time.
    exit_now(code)
}

/// Ends the process with `code` once stdout and stderr are flushed, without unwinding the
/// stack or running destructors (see its callers for why that is safe there).
fn exit_now(code: u8) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(code))
}

/// Tells how a run ended: the error on stderr; the output (or with `--json`, the envelope
/// with the record) on stdout.
fn report(record: &RunRecord, code: u8, json: bool) {
    if let Some(failure) = &record.error {
        eprintln!("error: {}", failure.message);
    }
    if json {
        let error = record.error.as_ref().map(|f| envelope::ErrorBody {
            kind: f.kind.clone(),
            message: f.message.clone(),
        });
        envelope::print(error, code, record);
    } else if record.status == RunStatus::Succeeded {
        let output = record.output.as_ref().expect("a succeeded run has output");
        println!(
            "{}",
            serde_json::to_string_pretty(output).expect("JSON values serialize")
        );
    }
}

/// What to say when the component to run is not there: the flows that are, and how to build.
pub(super) fn missing_component(path: &Path) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
