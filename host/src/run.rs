//! The run pipeline as a library: a run request goes in, a run record comes out.
//!
//! The CLI's `flowhost run` is one caller; a queue worker will be another, which is why the
//! request is plain data and every outcome of an executed flow is a record, not a panic or an
//! exit code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::Digest as _;

use crate::config::Config;
use tokio::sync::OnceCell;

use crate::db::{Database, DatabaseSet, SessionStart, start_session};
use crate::history::{self, NewRun, Outcome, RunHistory, RunState, capture::Capture};
use crate::manifest::{self, Access, Manifest};
use crate::migrate::{self, MigrateOptions};
use crate::runtime::{
    FlowComponent, Grant, RunCall, Runtime, RuntimeError, RuntimeOptions, StuckHandler,
};
use crate::shutdown::Cancel;

/// One run to perform.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The component file (`flows/rpa1.wasm`).
    pub component: PathBuf,
    pub manifest: Manifest,
    /// The flow's parameters as JSON text.
    pub input: String,
}

/// What happened in one executed run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub flow: String,
    /// SHA-256 of the component that ran.
    pub component_sha256: String,
    pub environment: String,
    pub started_at: String,
    pub duration_ms: f64,
    pub status: RunStatus,
    /// The flow's result, when it succeeded.
    pub output: Option<serde_json::Value>,
    /// Why it did not, when it failed.
    pub error: Option<RunFailure>,
    /// Migrations applied before the run, as `database: script`.
    pub migrations_applied: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunFailure {
    /// `flow-error`, `bad-output`, `panic`, `timeout`, `out-of-memory`, `out-of-fuel`,
    /// `stack-overflow`, `trap`.
    pub kind: String,
    pub message: String,
}

/// A host process: configuration, one pool per database, one engine, compiled components.
pub struct Host {
    databases: DatabaseSet,
    /// Set by [`Host::new`], or later by [`Host::install`] (see [`Host::without_runtime`]).
    runtime: std::sync::OnceLock<Runtime>,
    /// Loaded components by path, with the file's length and modification time when loaded:
    /// a file that changes is loaded again, an unchanged one costs no read, hash or link.
    components: std::sync::Mutex<HashMap<PathBuf, (u64, std::time::SystemTime, FlowComponent)>>,
    /// Grants already checked and migrated in this process (see [`GrantKey`]): a long-running
    /// host pays the ping and the migration check once, not per run.
    prepared: std::sync::Mutex<HashMap<GrantKey, Arc<OnceCell<()>>>>,
    /// Where runs are recorded, and as what (`cli`, `serve`); `None` records nothing.
    history: Option<(Arc<RunHistory>, &'static str)>,
    /// This host runs once and exits (see [`Host::single_run`]).
    single_run: bool,
    /// Reports a run stuck past its deadline and ends the process (see [`Host::on_stuck`]).
    on_stuck: Option<StuckReport>,
}

/// A shorthand for the report [`Host::on_stuck`] takes.
pub type StuckReport = Arc<dyn Fn(&RunRecord) + Send + Sync>;

/// A component loaded by an engine before it was given to its host (see [`Host::install`]).
pub struct LoadedComponent {
    path: PathBuf,
    /// The file's length and modification time before it was read.
    stamp: Option<(u64, std::time::SystemTime)>,
    component: FlowComponent,
}

impl LoadedComponent {
    pub fn load(
        runtime: &Runtime,
        path: &std::path::Path,
    ) -> Result<LoadedComponent, RuntimeError> {
        let stamp = file_stamp(path);
        Ok(LoadedComponent {
            path: path.to_owned(),
            stamp,
            component: runtime.load(path)?,
        })
    }
}

/// A manifest's grants, each database connected, checked and migrated: what
/// [`Host::prepare`] gives a run.
pub struct PreparedGrants {
    grants: HashMap<String, Grant>,
    /// Migrations applied while preparing, as `database: script`.
    migrations_applied: Vec<String>,
    /// In a process that runs once, each grant's session, being set up on the connection
    /// that checked its database (see [`Host::prepare`]).
    started: HashMap<String, SessionStart>,
}

/// A grant as prepared: the database, the mode, and the migrations folder with a fingerprint
/// of its files (names, sizes, modification times), so a migration added while the host runs
/// is applied before the next run that owns the folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GrantKey {
    database: String,
    access: Access,
    migrations: Option<(PathBuf, u64)>,
}

impl Host {
    pub fn new(config: Arc<Config>, runtime: RuntimeOptions) -> Result<Host, crate::Error> {
        let host = Host::without_runtime(config);
        host.install(Runtime::new(runtime)?, None);
        Ok(host)
    }

    /// A host without its engine yet, for a caller that builds the engine (and loads the
    /// component) on a thread of its own while this one dials the databases: `flowhost run`,
    /// where the two together are a few milliseconds of CPU that would otherwise hold up
    /// every handshake. [`Host::install`] the engine before loading or running a flow.
    pub fn without_runtime(config: Arc<Config>) -> Host {
        Host {
            databases: DatabaseSet::new(config),
            runtime: std::sync::OnceLock::new(),
            components: Default::default(),
            prepared: Default::default(),
            history: None,
            single_run: false,
            on_stuck: None,
        }
    }

    /// Gives a host made [`Host::without_runtime`] its engine, with a component that engine
    /// has loaded, if any (then [`Host::component`] of its path costs nothing). A host that has
    /// an engine keeps it.
    pub fn install(&self, runtime: Runtime, loaded: Option<LoadedComponent>) {
        let _ = self.runtime.set(runtime);
        if let Some(LoadedComponent {
            path,
            stamp: Some((len, modified)),
            component,
        }) = loaded
        {
            let mut cache = self.components.lock().unwrap_or_else(|e| e.into_inner());
            cache.insert(path, (len, modified, component));
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .get()
            .expect("a host made without_runtime runs a flow only after install")
    }

    /// For a process that runs one flow and exits (`flowhost run`): a run's connections are
    /// closed when it ends instead of being reset for a next run that will not come, which
    /// saves each database a round trip.
    pub fn single_run(mut self) -> Host {
        self.single_run = true;
        self
    }

    /// For a host whose engine is not interruptible ([`RuntimeOptions::interruptible`], a
    /// process that runs once): a run stuck in guest code past its deadline is recorded in
    /// the history as timed out (without its log lines, which the stuck run still holds),
    /// then `report` tells the user and must end the process (the process exits with
    /// [`crate::exit::TRAPPED`] should it return).
    pub fn on_stuck(mut self, report: StuckReport) -> Host {
        self.on_stuck = Some(report);
        self
    }

    /// Records every run of this host in `history`, as started from `origin` (`cli`, `serve`).
    pub fn with_history(mut self, history: Arc<RunHistory>, origin: &'static str) -> Host {
        self.history = Some((history, origin));
        self
    }

    pub fn history(&self) -> Option<&Arc<RunHistory>> {
        self.history.as_ref().map(|(h, _)| h)
    }

    /// The component at `path`, compiled (from the cache) and linked; an unchanged file is
    /// loaded once per host.
    pub fn component(&self, path: &std::path::Path) -> Result<FlowComponent, crate::Error> {
        let stamp = file_stamp(path);
        let mut cache = self.components.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((len, modified)), Some((cached_len, cached_modified, component))) =
            (stamp, cache.get(path))
            && (len, modified) == (*cached_len, *cached_modified)
        {
            return Ok(component.clone());
        }
        let component = self.runtime().load(path)?;
        if let Some((len, modified)) = stamp {
            cache.insert(path.to_owned(), (len, modified, component.clone()));
        }
        Ok(component)
    }

    pub fn databases(&self) -> &DatabaseSet {
        &self.databases
    }

    /// Checks every grant's database is configured and answering, applies migrations for the
    /// databases the flow owns, then runs the flow. Errors before the flow starts are `Err`;
    /// everything after is in the record.
    pub async fn run(&self, request: &RunRequest) -> Result<RunRecord, crate::Error> {
        self.run_as(request, &new_run_id(), &Cancel::new()).await
    }

    /// [`Host::run`] under a run id the caller chose (to answer with it before the run ends),
    /// stopped early when `cancel` fires: the flow is stopped, its sessions rolled back and
    /// returned, and the record says `cancelled`. Preparing the grants (connecting, migrating)
    /// is never cut short, so a signal does not leave a migration half-applied.
    ///
    /// With a history, the run is recorded as running before anything can fail, and its
    /// outcome (an `Err` too) and log lines when it ends.
    pub async fn run_as(
        &self,
        request: &RunRequest,
        run_id: &str,
        cancel: &Cancel,
    ) -> Result<RunRecord, crate::Error> {
        self.run_prepared(request, run_id, cancel, None).await
    }

    /// [`Host::run_as`] with the grants already prepared by [`Host::prepare`] (`None`: prepare
    /// them now). A caller with other work before the run (the CLI opens the run history and
    /// loads the component) starts preparing first, so connecting overlaps that work; a
    /// failed preparation is the run's failure, recorded like any other.
    pub async fn run_prepared(
        &self,
        request: &RunRequest,
        run_id: &str,
        cancel: &Cancel,
        prepared: Option<Result<PreparedGrants, crate::Error>>,
    ) -> Result<RunRecord, crate::Error> {
        let Some((history, origin)) = &self.history else {
            let started = Instant::now();
            let result = self.execute(request, run_id, None, prepared, cancel).await;
            count(&request.manifest.flow.name, &result, started);
            return result;
        };
        let capture = Capture::start(run_id);
        let started_at = history::now();
        let started = Instant::now();
        let component = self.component(&request.component);
        let manifest_sha256 = std::fs::read(&request.manifest.path)
            .ok()
            .map(|bytes| hex::encode(sha2::Sha256::digest(&bytes)));
        let input = request.input.clone();
        let component_path = request.component.display().to_string();
        let new_run = NewRun {
            run_id,
            flow: &request.manifest.flow.name,
            component: &component_path,
            component_sha256: component.as_ref().ok().map(|c| c.digest.as_str()),
            manifest_sha256: manifest_sha256.as_deref(),
            environment: &self.databases.config().environment,
            input: &input,
            origin,
            started_at: &started_at,
        };
        // Written before the run starts, not beside it: a run that never yields this thread
        // (stuck in its own code, then ended with the process) or that is killed must already
        // have its record, and the write needs this thread to make progress.
        if let Err(e) = history.start(&new_run).await {
            tracing::warn!(run = %run_id, "the run is not recorded in the history: {e}");
        }
        let result = match component {
            Ok(component) => {
                self.execute(request, run_id, Some(component), prepared, cancel)
                    .await
            }
            Err(e) => Err(e),
        };
        count(&request.manifest.flow.name, &result, started);
        let outcome = match &result {
            Ok(record) => Outcome {
                state: state_of(&result),
                duration_ms: Some(record.duration_ms),
                output: record.output.clone(),
                error_kind: record.error.as_ref().map(|f| f.kind.clone()),
                error_message: record.error.as_ref().map(|f| f.message.clone()),
            },
            Err(e) => Outcome {
                state: state_of(&result),
                duration_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
                output: None,
                error_kind: Some(e.kind()),
                error_message: Some(e.to_string()),
            },
        };
        if let Err(e) = history.finish(run_id, &outcome, &capture.finish()).await {
            tracing::warn!(run = %run_id, "the run's outcome is not recorded in the history: {e}");
        }
        result
    }

    async fn execute(
        &self,
        request: &RunRequest,
        run_id: &str,
        component: Option<FlowComponent>,
        prepared: Option<Result<PreparedGrants, crate::Error>>,
        cancel: &Cancel,
    ) -> Result<RunRecord, crate::Error> {
        let manifest = &request.manifest;
        let flow = manifest.flow.name.clone();
        let component = match component {
            Some(c) => c,
            None => self.component(&request.component)?,
        };
        let PreparedGrants {
            grants,
            migrations_applied,
            started: sessions,
        } = match prepared {
            Some(prepared) => prepared?,
            None => self.prepare(manifest).await?,
        };

        let run_id = run_id.to_owned();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let started = Instant::now();
        if !migrations_applied.is_empty() {
            // Also in the run's own log (the history), not only the process's.
            tracing::info!(flow = %flow, run = %run_id, applied = %migrations_applied.join(", "), "migrations applied for this run");
        }
        tracing::info!(flow = %flow, run = %run_id, "run started");
        let on_stuck = self.on_stuck.as_ref().map(|report| {
            self.stuck_handler(
                report.clone(),
                RunRecord {
                    run_id: run_id.clone(),
                    flow: flow.clone(),
                    component_sha256: component.digest.clone(),
                    environment: self.databases.config().environment.clone(),
                    started_at: started_at.clone(),
                    duration_ms: 0.0,
                    status: RunStatus::Failed,
                    output: None,
                    error: None,
                    migrations_applied: migrations_applied.clone(),
                },
                started,
            )
        });
        let outcome = self
            .runtime()
            .run(
                &component,
                grants,
                &manifest.limits,
                RunCall {
                    flow: &flow,
                    run_id: &run_id,
                    input: &request.input,
                    cancel,
                    keep_connections: !self.single_run,
                    on_stuck: on_stuck.as_ref(),
                    sessions,
                },
            )
            .await;
        // To the hundredth of a millisecond: finer digits are noise in a log and a record.
        let duration_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        let (status, output, error) = match outcome {
            Ok(output) => (RunStatus::Succeeded, Some(output), None),
            Err(e) => (RunStatus::Failed, None, Some(failure(&e))),
        };
        tracing::info!(flow = %flow, run = %run_id, status = ?status, duration_ms, "run finished");
        Ok(RunRecord {
            run_id,
            flow,
            component_sha256: component.digest.clone(),
            environment: self.databases.config().environment.clone(),
            started_at,
            duration_ms,
            status,
            output,
            error,
            migrations_applied,
        })
    }

    /// What the runtime calls, on its watchdog's thread, when `record`'s run is stuck past
    /// its deadline: the record, finished as timed out, goes to the history (on a runtime of
    /// the thread's own; the stuck thread holds the process's) and then to `report`.
    fn stuck_handler(
        &self,
        report: StuckReport,
        record: RunRecord,
        started: Instant,
    ) -> StuckHandler {
        let history = self.history.as_ref().map(|(h, _)| h.clone());
        Arc::new(move |timeout: RuntimeError| {
            let mut record = record.clone();
            record.duration_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
            let failure = failure(&timeout);
            let (kind, message) = (failure.kind.clone(), failure.message.clone());
            record.error = Some(failure);
            tracing::warn!(flow = %record.flow, run = %record.run_id, "the run is stuck in the flow's code past its deadline: ending the process");
            if let Some(history) = &history {
                let outcome = Outcome {
                    state: RunState::TimedOut,
                    duration_ms: Some(record.duration_ms),
                    output: None,
                    error_kind: Some(kind),
                    error_message: Some(message),
                };
                let recorded = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(history.finish(&record.run_id, &outcome, &[]))
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = recorded {
                    tracing::warn!(run = %record.run_id, "the run's outcome is not recorded in the history: {e}");
                }
            }
            report(&record);
            std::process::exit(i32::from(crate::exit::TRAPPED));
        })
    }

    /// Opens, checks and migrates the database of every grant in `manifest`, all at once:
    /// two databases cost the slower one's connection, not the sum. In a long-running host,
    /// a grant prepared before costs nothing (see [`GrantKey`]).
    pub async fn prepare(&self, manifest: &Manifest) -> Result<PreparedGrants, crate::Error> {
        self.databases.seeds_for(&manifest.path);
        let prepared = futures_util::future::join_all(
            manifest
                .databases
                .iter()
                .map(|(name, grant)| self.prepare_grant(name, grant, &manifest.limits)),
        )
        .await;
        let mut grants = HashMap::new();
        let mut migrations_applied = Vec::new();
        let mut started = HashMap::new();
        // Errors in the manifest's order, whichever finished first.
        for ((name, grant), outcome) in manifest.databases.iter().zip(prepared) {
            let (database, applied, start) = outcome?;
            migrations_applied.extend(applied);
            started.extend(start.map(|start| (name.clone(), start)));
            grants.insert(
                name.clone(),
                Grant {
                    database,
                    access: grant.access,
                },
            );
        }
        Ok(PreparedGrants {
            grants,
            migrations_applied,
            started,
        })
    }

    /// The database of one grant, checked (it answers) and migrated (when the flow owns its
    /// migrations) on the first run that needs it in this process; later runs reuse the
    /// outcome. Returns the migrations this call applied, as `database: script`, and in a
    /// process that runs once the flow's session, already being set up on the connection the
    /// check used: its round trip then overlaps the other databases' checks and the run's
    /// start instead of following them.
    async fn prepare_grant(
        &self,
        name: &str,
        grant: &manifest::Grant,
        limits: &manifest::Limits,
    ) -> Result<(Arc<Database>, Vec<String>, Option<SessionStart>), crate::Error> {
        let database = self.databases.for_grant(name, grant.access).await?;
        let key = GrantKey {
            database: name.to_owned(),
            access: grant.access,
            migrations: grant
                .migrations
                .as_ref()
                .map(|dir| (dir.clone(), folder_fingerprint(dir))),
        };
        let cell = {
            let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
            prepared.entry(key).or_default().clone()
        };
        let mut applied = Vec::new();
        let mut checked_on = None;
        cell.get_or_try_init(|| async {
            // A connection dialled for this check has just passed the server's startup and
            // authentication: that is the answer, and a `SELECT 1` would only add a round
            // trip. One that sat idle in the pool (another grant's, under `serve`) may have
            // been dropped by the server since, so it is pinged.
            let idle_before = database.pool_status().idle;
            // The same connection answers the migration check: a second `acquire` right after
            // the first connection's drop would dial again, because a dropped connection goes
            // back to the pool on a task of its own.
            let mut conn = database.acquire().await?;
            if idle_before > 0 {
                conn.run_raw(&database, "SELECT 1").await?;
            }
            let Some(dir) = &grant.migrations else {
                checked_on = Some(conn);
                return Ok(());
            };
            let mut options = MigrateOptions::for_current_user();
            options.placeholders = self
                .databases
                .config()
                .placeholders()?
                .map(migrate::Placeholders::new);
            // Read-only first: when every file is applied as it is, there is nothing to lock,
            // and the locked path (a connection of its own, the lock, the history again) is
            // skipped.
            let status = migrate::status_on(&mut conn, &database, Some(dir), &options).await?;
            if up_to_date(&status) {
                checked_on = Some(conn);
                return Ok(());
            }
            conn.release().await;
            let report = migrate::migrate(&database, dir, &options).await?;
            applied.extend(
                report
                    .applied
                    .iter()
                    .map(|m| format!("{name}: {}", m.script)),
            );
            Ok::<_, crate::Error>(())
        })
        .await?;
        if !self.single_run {
            // A long-running host starts each run's sessions as that run starts.
            if let Some(conn) = checked_on {
                conn.release().await;
            }
            return Ok((database, applied, None));
        }
        // The run's own deadline is not set yet; it starts within milliseconds with the same
        // timeout, and the host holds every call to that deadline whatever the server's limit.
        let statement_timeout = [limits.statement_timeout, database.statement_timeout()]
            .into_iter()
            .flatten()
            .fold(limits.timeout, Duration::min);
        let start = start_session(
            database.clone(),
            checked_on,
            grant.access == Access::ReadOnly,
            statement_timeout,
        );
        Ok((database, applied, Some(start)))
    }

    /// Closes every pool, the run history's too, so servers see clean disconnects.
    pub async fn shutdown(&self) {
        // At once: closing the history checkpoints its file while the servers say goodbye.
        let history = async {
            if let Some((history, _)) = &self.history {
                history.close().await;
            }
        };
        futures_util::future::join(self.databases.close_all(), history).await;
    }
}

/// A file's length and modification time: what says a loaded component is still the file's.
fn file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// The state a run ended in, as the history and the metrics name it.
fn state_of(result: &Result<RunRecord, crate::Error>) -> RunState {
    match result {
        Ok(record) => match (&record.error, record.status) {
            (_, RunStatus::Succeeded) => RunState::Completed,
            (Some(f), _) if f.kind == "timeout" => RunState::TimedOut,
            (Some(f), _) if f.kind == "cancelled" => RunState::Cancelled,
            _ => RunState::Failed,
        },
        Err(_) => RunState::Failed,
    }
}

/// Counts a finished run in `flowhost_runs_total` and `flowhost_run_duration_seconds`.
fn count(flow: &str, result: &Result<RunRecord, crate::Error>, started: Instant) {
    crate::metrics::metrics().run_finished(flow, state_of(result).as_str(), started.elapsed());
}

/// A new run id.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn failure(err: &RuntimeError) -> RunFailure {
    RunFailure {
        kind: failure_kind(err),
        message: err.to_string(),
    }
}

/// The `kind` a runtime error is reported under (see [`RunFailure::kind`]); a component that
/// cannot be read or loaded is `component`.
pub(crate) fn failure_kind(err: &RuntimeError) -> String {
    match err {
        RuntimeError::FlowFailed { .. } => "flow-error".to_owned(),
        RuntimeError::BadOutput { .. } => "bad-output".to_owned(),
        RuntimeError::Trapped { kind, .. } => serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "trap".into()),
        RuntimeError::Read { .. } | RuntimeError::Load { .. } => "component".to_owned(),
        RuntimeError::Cancelled { .. } => "cancelled".to_owned(),
        _ => "host-error".to_owned(),
    }
}

/// Whether `migrate` would find nothing to do, nothing to refuse and nothing to warn about:
/// anything else goes through the locked path, which applies, refuses or warns as it always has.
fn up_to_date(status: &migrate::MigrationStatus) -> bool {
    status.history_exists
        && status.foreign_history.is_none()
        && status.pending.is_empty()
        && status.out_of_order.is_empty()
        && status.below_baseline.is_empty()
        && status.checksum_mismatches.is_empty()
        && status.missing_on_disk.is_empty()
        && status.failed.is_empty()
        && status.resumable.is_empty()
}

/// Names, sizes and modification times of a migrations folder's entries, hashed: changes when
/// a file is added, removed or edited. An unreadable folder hashes as empty, and the migration
/// check that follows reports why it cannot be read.
fn folder_fingerprint(dir: &std::path::Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut entries: Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)> =
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let meta = entry.metadata().ok();
                (
                    entry.file_name(),
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
    entries.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    entries.hash(&mut hasher);
    hasher.finish()
}
