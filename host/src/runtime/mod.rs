//! Running a flow component: one engine per process, components compiled once and cached on
//! disk, one fresh store and instance per run from a shared pre-instantiation.

mod database_host;
mod load;
mod log;
mod logging_host;
pub mod packed;
pub mod resources;
mod state;
mod trap;
mod watchdog;

pub use watchdog::StuckHandler;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};

pub use load::CONTRACT;
pub use log::RECORD_LIMIT;
pub use state::{Grant, HostState};

use crate::bindings::{Flow, FlowPre};
use crate::db::SessionStart;
use crate::manifest::Limits;

/// How often the deadline clock ticks; a run's deadline is accurate to about this much.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long past its deadline a run that is not interruptible may take before the watchdog
/// takes over: a run waiting in a host call is stopped by the call's own timeout (the
/// deadline plus a second), which must win; only a run stuck in guest code gets this far.
const STUCK_GRACE: Duration = Duration::from_secs(2);

/// Why a component could not be loaded or a run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read component {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable flow component: {message}")]
    Load { path: PathBuf, message: String },
    #[error("flow '{flow}' failed: {message}")]
    FlowFailed { flow: String, message: String },
    #[error("flow '{flow}' returned output that is not JSON: {message}")]
    BadOutput { flow: String, message: String },
    #[error("flow '{flow}' was stopped: {kind}: {message}")]
    Trapped {
        flow: String,
        kind: TrapKind,
        message: String,
    },
    #[error("flow '{flow}' was cancelled by {reason}; its open transactions were rolled back")]
    Cancelled { flow: String, reason: String },
    #[error("the wasm engine could not be set up: {0}")]
    Engine(String),
}

/// How a run ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrapKind {
    Panic,
    Timeout,
    OutOfMemory,
    OutOfFuel,
    StackOverflow,
    Trap,
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrapKind::Panic => "panicked",
            TrapKind::Timeout => "time limit exceeded",
            TrapKind::OutOfMemory => "memory limit exceeded",
            TrapKind::OutOfFuel => "fuel exhausted",
            TrapKind::StackOverflow => "stack overflow",
            TrapKind::Trap => "trapped",
        })
    }
}

/// Settings that must be fixed when the engine is built.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled components are cached (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// Count instructions so manifests can set `fuel`. Costs some speed, so off unless asked.
    pub fuel: bool,
    /// How many runs may be instantiated at once. `Some(n)` takes instances from wasmtime's
    /// pooling allocator, sized for `n` (memory, tables and stacks reserved once, reused by
    /// every run: instantiation is several times cheaper); `None` maps them per run.
    pub max_concurrent_instances: Option<u32>,
    /// Whether guest code checks the engine's epoch, so that a deadline or a cancel stops it
    /// wherever it is. Without (a process that runs one flow, `flowhost run`), a run stuck in
    /// guest code past its deadline is handed to the run's [`StuckHandler`], which records it
    /// and ends the process; the checks cost about a quarter of a flow's instructions.
    pub interruptible: bool,
}

/// Runs instantiated at once unless told otherwise: the pool reserves address space (about
/// 8 GiB per run, untouched until used), not memory.
pub const DEFAULT_CONCURRENT_INSTANCES: u32 = 256;

impl RuntimeOptions {
    /// What `flowhost run` runs its one flow with, and what `flowhost build` and `check`
    /// compile for, so that a run after them finds the component in the cache: no instance
    /// pool (for one instance, a pool's reservation, and its reset when the run ends, cost
    /// about a millisecond of CPU that mapping the instance as it is made does not), and no
    /// interruption checks (see [`RuntimeOptions::interruptible`]).
    pub fn single_run(cache_dir: PathBuf, fuel: bool) -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: Some(cache_dir),
            fuel,
            max_concurrent_instances: None,
            interruptible: false,
        }
    }
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            fuel: false,
            max_concurrent_instances: Some(DEFAULT_CONCURRENT_INSTANCES),
            interruptible: true,
        }
    }
}

/// The engine, its linker and the epoch ticker that enforces deadlines.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    options: RuntimeOptions,
    ticker_stop: Arc<AtomicBool>,
    /// One permit per pooled instance slot: a run past the pool's size waits for a slot
    /// instead of failing to instantiate.
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// A compiled, pre-linked flow: instantiating it per run is microseconds.
#[derive(Clone)]
pub struct FlowComponent {
    pre: FlowPre<HostState>,
    /// SHA-256 of the component bytes: the flow's identity in run records.
    pub digest: String,
}

impl FlowComponent {
    /// The interfaces the component imports (`flowhost:flow/database@0.1.0`, `wasi:...`).
    pub fn imports(&self) -> Vec<String> {
        let pre = self.pre.instance_pre();
        pre.component()
            .component_type()
            .imports(self.pre.engine())
            .map(|(name, _)| name.to_owned())
            .collect()
    }
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(options.interruptible);
        config.consume_fuel(options.fuel);
        // So `perf` can name a flow's functions: wasmtime writes /tmp/perf-<pid>.map as code loads.
        if std::env::var_os("FLOWHOST_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = match options.max_concurrent_instances {
            Some(runs) => {
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(runs)));
                // A machine that limits address space (`ulimit -v`) cannot reserve the pool:
                // run there with per-run mappings rather than not at all.
                Engine::new(&config).or_else(|e| {
                    tracing::warn!(error = %e, runs, "cannot reserve the instance pool; instantiating without it");
                    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                    Engine::new(&config)
                })
            }
            None => Engine::new(&config),
        }
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Flow::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, stop) = (engine.weak(), ticker_stop.clone());
        if options.interruptible {
            std::thread::Builder::new()
                .name("flowhost-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match weak_engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        }
        let slots = options
            .max_concurrent_instances
            .map(|runs| Arc::new(tokio::sync::Semaphore::new(runs as usize)));
        Ok(Runtime {
            engine,
            linker,
            options,
            ticker_stop,
            slots,
        })
    }

    /// Loads a component from `path`, from the compiled cache when it holds this exact file.
    pub fn load(&self, path: &Path) -> Result<FlowComponent, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.to_owned(),
            source,
        })?;
        let load_err = |message: String| RuntimeError::Load {
            path: path.to_owned(),
            message: trap::one_line(&message),
        };
        load::check_binary(&bytes).map_err(load_err)?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let component = self.compile_cached(&bytes, &digest).map_err(|e| {
            load_err(format!(
                "it is not a valid WebAssembly component ({e}); rebuild it with `cargo build \
                 --release --target wasm32-wasip2 -p <flow crate>`"
            ))
        })?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_err(load::explain_imports(&self.engine, &component, &e)))?;
        let pre = FlowPre::new(instance_pre)
            .map_err(|e| load_err(load::explain_export(&self.engine, &component, &e)))?;
        Ok(FlowComponent { pre, digest })
    }

    fn compile_cached(&self, bytes: &[u8], digest: &str) -> Result<Component, String> {
        let Some(dir) = &self.options.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"));
        };
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(
            &self.engine.precompile_compatibility_hash(),
            &mut engine_hash,
        );
        let key = std::hash::Hasher::finish(&engine_hash);
        let file = dir.join(format!("{digest}-{key:016x}.cwasm"));
        if file.is_file() {
            // SAFETY: the cache directory is written only by this function, from components this
            // engine compiled; the file name binds the component digest and engine settings.
            match unsafe { Component::deserialize_file(&self.engine, &file) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(cache = %file.display(), error = %e, "ignoring unusable cached component")
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"))?;
        // Caching is an optimisation: failing to write the cache is logged, never fatal.
        let written = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|compiled| {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                let temp = file.with_extension(format!("tmp-{}", std::process::id()));
                std::fs::write(&temp, compiled).map_err(|e| e.to_string())?;
                std::fs::rename(&temp, &file).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            tracing::warn!(cache = %dir.display(), error = %e, "could not cache the compiled component");
        }
        Ok(component)
    }

    /// Runs `component` once with `input`. Every session the run opened is rolled back and
    /// returned clean before this returns, whether the flow succeeded, failed or trapped.
    pub async fn run(
        &self,
        component: &FlowComponent,
        grants: HashMap<String, Grant>,
        limits: &Limits,
        call: RunCall<'_>,
    ) -> Result<serde_json::Value, RuntimeError> {
        let RunCall {
            flow,
            run_id,
            input,
            cancel,
            keep_connections,
            on_stuck,
            sessions,
        } = call;
        // Held until the store is gone (the end of this function), so its slot is free again.
        let _slot = match &self.slots {
            Some(slots) => Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| RuntimeError::Engine(e.to_string()))?,
            ),
            None => None,
        };
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        let deadline = std::time::Instant::now() + limits.timeout;
        let mut state = HostState::new(grants, store_limits, *limits, deadline, flow, run_id);
        state.keep_connections = keep_connections;
        state.prestart_sessions(sessions);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let watchdog = if self.options.interruptible {
            let ticks = (limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
            store.set_epoch_deadline(ticks);
            store.epoch_deadline_trap();
            None
        } else {
            let Some(on_stuck) = on_stuck.cloned() else {
                return Err(RuntimeError::Engine(
                    "a run that cannot be interrupted needs a handler for its deadline".into(),
                ));
            };
            let timeout = RuntimeError::Trapped {
                flow: flow.to_owned(),
                kind: TrapKind::Timeout,
                message: trap::timeout_message(limits),
            };
            Some(
                watchdog::Watchdog::arm(deadline + STUCK_GRACE, move || on_stuck(timeout))
                    .map_err(|e| RuntimeError::Engine(e.to_string()))?,
            )
        };
        if self.options.fuel {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        }

        // The epoch deadline stops guest code; this outer timeout also stops a run that is
        // waiting in a host call (a slow statement), with a little grace for the epoch to fire.
        let call = tokio::time::timeout(limits.timeout + Duration::from_secs(1), async {
            let instance = component.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, input).await
        });
        // A cancel drops the call wherever it is (guest code or a host call waiting on a
        // statement); the store is still ours, so the sessions are finished below as after a
        // trap: a statement under way is ended on the server and transactions rolled back.
        let outcome = tokio::select! {
            outcome = call => Some(outcome),
            () = cancel.cancelled() => None,
        };
        if let Some(watchdog) = watchdog
            && !watchdog.disarm()
        {
            // The deadline passed while the guest held this thread: the handler is recording
            // the run and ending the process. Nothing here may report it a second time.
            loop {
                std::thread::park();
            }
        }

        let mut state = store.into_data();
        // Drop the guest's handles first: that stops cursor readers, freeing their sessions.
        drop(std::mem::take(&mut state.table));
        // All at once: each finish is a round trip to its own server.
        let sessions = std::mem::take(&mut state.sessions);
        futures_util::future::join_all(sessions.iter().map(|session| async move {
            let mut session = session.lock().await;
            match keep_connections {
                true => session.finish().await,
                false => session.close().await,
            }
        }))
        .await;
        state.log.finish();
        let stderr = state.log.stderr_tail();
        let evidence = trap::Evidence {
            stderr: &stderr,
            denied_memory: state.limiter.denied_memory,
        };

        let flow_owned = flow.to_owned();
        let Some(outcome) = outcome else {
            return Err(RuntimeError::Cancelled {
                flow: flow_owned,
                reason: cancel.reason(),
            });
        };
        match outcome {
            Err(_elapsed) => Err(RuntimeError::Trapped {
                flow: flow_owned,
                kind: TrapKind::Timeout,
                message: trap::timeout_message(limits),
            }),
            Ok(Err(error)) => match error.downcast_ref::<crate::shutdown::Stopped>() {
                Some(stopped) => Err(RuntimeError::Cancelled {
                    flow: flow_owned,
                    reason: stopped.0.name().to_owned(),
                }),
                None => Err(trap::classify(flow, &error, &evidence, limits)),
            },
            // The flow's own words end up on the operator's terminal: escaped like its logs.
            Ok(Ok(Err(message))) => Err(RuntimeError::FlowFailed {
                flow: flow_owned,
                message: log::escape(&message, RECORD_LIMIT).0,
            }),
            Ok(Ok(Ok(output))) => {
                serde_json::from_str(&output).map_err(|e| RuntimeError::BadOutput {
                    flow: flow_owned,
                    message: e.to_string(),
                })
            }
        }
    }
}

/// Who a run is and what it is given: the flow's name and the run's id (in every log line),
/// its input (JSON text), and what cancels it.
pub struct RunCall<'a> {
    pub flow: &'a str,
    pub run_id: &'a str,
    pub input: &'a str,
    pub cancel: &'a crate::shutdown::Cancel,
    /// Whether the run's connections go back to their pools, reset for the next run, or are
    /// closed (see [`crate::db::Session::close`]): a process that runs once closes them.
    pub keep_connections: bool,
    /// What ends a run stuck past its deadline when the runtime is not interruptible
    /// ([`RuntimeOptions::interruptible`]); required then, unused otherwise.
    pub on_stuck: Option<&'a StuckHandler>,
    /// Sessions already being set up, by grant (see [`crate::db::Session::prestart`]); only
    /// used where connections are not kept.
    pub sessions: HashMap<String, SessionStart>,
}

/// The pooling allocator's slots for `runs` concurrent runs. A flow component built by Rust
/// for wasm32-wasip2 holds one memory, a few tables and a handful of core instances (the
/// module and its canonical-ABI shims); the margins below let components built other ways
/// (several modules, adapters) run too.
fn pooling(runs: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(runs)
        .total_core_instances(runs.saturating_mul(16))
        .total_memories(runs.saturating_mul(2))
        .total_tables(runs.saturating_mul(8))
        .total_stacks(runs);
    // Where the kernel can say which pages a run dirtied (PAGEMAP_SCAN, Linux 6.7), the low
    // MiB of each memory and table stays mapped and only its dirty pages are reset: no
    // `madvise`, so no page faults on the next run and no TLB shootdown across the process's
    // threads. The no-op flow's run went from 36 µs to 18.5 µs. Without the scan, resetting a
    // kept MiB with `memset` costs more than the faults it saves (54 µs), so nothing is kept.
    if pagemap_scan_supported() {
        pool.pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
    }
    pool
}

/// Bytes of each pooled memory and table kept mapped between runs (see [`pooling`]).
const KEEP_RESIDENT: usize = 1 << 20;

/// Whether the running kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7 and later).
fn pagemap_scan_supported() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    kernel_at_least(&release, (6, 7))
}

/// Whether a kernel release string (`6.18.44-fc-v1300`) is at least `major.minor`.
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.18.44-fc-v1300\n", (6, 7)));
        assert!(kernel_at_least("6.7.0", (6, 7)));
        assert!(kernel_at_least("7.0-rc1", (6, 7)));
        assert!(!kernel_at_least("6.6.30-generic", (6, 7)));
        assert!(!kernel_at_least("5.15.0", (6, 7)));
        assert!(!kernel_at_least("weird", (6, 7)));
    }
}
