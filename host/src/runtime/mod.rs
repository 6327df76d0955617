//! Running a flow component: one engine per process, components compiled once and cached on
//! disk, one fresh store and instance per run from a shared pre-instantiation.

mod database_host;
mod logging_host;
pub mod resources;
mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder, Trap};

pub use state::{CAPTURE_LIMIT, Grant, HostState};

use crate::bindings::{Flow, FlowPre};
use crate::manifest::Limits;

/// How often the deadline clock ticks; a run's deadline is accurate to about this much.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
    Trap,
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrapKind::Panic => "panicked",
            TrapKind::Timeout => "time limit exceeded",
            TrapKind::OutOfMemory => "memory limit exceeded",
            TrapKind::OutOfFuel => "fuel exhausted",
            TrapKind::Trap => "trapped",
        })
    }
}

/// Settings that must be fixed when the engine is built.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// Count instructions so manifests can set `fuel`. Costs some speed, so off unless asked.
    pub fuel: bool,
}

/// The engine, its linker and the epoch ticker that enforces deadlines.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    options: RuntimeOptions,
    ticker_stop: Arc<AtomicBool>,
}

/// A compiled, pre-linked flow: instantiating it per run is microseconds.
#[derive(Clone)]
pub struct FlowComponent {
    pre: FlowPre<HostState>,
    /// SHA-256 of the component bytes: the flow's identity in run records.
    pub digest: String,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(options.fuel);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Flow::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, stop) = (engine.weak(), ticker_stop.clone());
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
        Ok(Runtime {
            engine,
            linker,
            options,
            ticker_stop,
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
            message: one_line(&message),
        };
        if !bytes.starts_with(b"\0asm") {
            return Err(load_err(
                "it is not a WebAssembly file (no \\0asm header); build the flow with \
                 `cargo build --release --target wasm32-wasip2`"
                    .into(),
            ));
        }
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
            return Err(load_err(
                "it is a core WebAssembly module, not a component; build the flow with \
                 `cargo build --release --target wasm32-wasip2`"
                    .into(),
            ));
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let component = self.compile_cached(&bytes, &digest).map_err(load_err)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            load_err(format!(
                "it needs imports flowhost does not provide ({e:#}); flows may import only the \
                 flowhost:flow database interface, wasi:logging and the WASI CLI basics"
            ))
        })?;
        let pre = FlowPre::new(instance_pre).map_err(|e| {
            load_err(format!(
                "it does not export the flow world's `run` function ({e:#}); export it with \
                 flowhost_sdk::flow!"
            ))
        })?;
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
        flow: &str,
        run_id: &str,
        input: &str,
    ) -> Result<serde_json::Value, RuntimeError> {
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        let deadline = std::time::Instant::now() + limits.timeout;
        let state = HostState::new(grants, store_limits, *limits, deadline, flow, run_id);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.store_limits);
        let ticks = (limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        if self.options.fuel {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        }

        // The epoch deadline stops guest code; this outer timeout also stops a run that is
        // waiting in a host call (a slow statement), with a little grace for the epoch to fire.
        let outcome = tokio::time::timeout(limits.timeout + Duration::from_secs(1), async {
            let instance = component.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, input).await
        })
        .await;

        let mut state = store.into_data();
        // Drop the guest's handles first: that stops cursor readers, freeing their sessions.
        drop(std::mem::take(&mut state.table));
        for session in std::mem::take(&mut state.sessions) {
            session.lock().await.finish().await;
        }
        let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
        log_captured(
            flow,
            run_id,
            "stdout",
            &String::from_utf8_lossy(&state.stdout.contents()),
        );
        log_captured(flow, run_id, "stderr", &stderr);

        let flow_owned = flow.to_owned();
        match outcome {
            Err(_elapsed) => Err(RuntimeError::Trapped {
                flow: flow_owned,
                kind: TrapKind::Timeout,
                message: format!(
                    "the run took longer than its limit of {:?} (manifest [limits] timeout-seconds)",
                    limits.timeout
                ),
            }),
            Ok(Err(trap)) => Err(classify_trap(flow, &trap, &stderr, limits)),
            Ok(Ok(Err(message))) => Err(RuntimeError::FlowFailed {
                flow: flow_owned,
                message,
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

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Turns a trap into an error a flow author can act on, using what the guest printed.
fn classify_trap(
    flow: &str,
    trap: &wasmtime::Error,
    stderr: &str,
    limits: &Limits,
) -> RuntimeError {
    let code = trap.downcast_ref::<Trap>().copied();
    let panic_line = stderr
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let (kind, message) = if code == Some(Trap::Interrupt) {
        (
            TrapKind::Timeout,
            format!(
                "the run took longer than its limit of {:?} (manifest [limits] timeout-seconds)",
                limits.timeout
            ),
        )
    } else if code == Some(Trap::OutOfFuel) {
        (
            TrapKind::OutOfFuel,
            "the run used all its fuel (manifest [limits] fuel)".to_owned(),
        )
    } else if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        (
            TrapKind::OutOfMemory,
            format!(
                "the flow needed more than its {} MiB of memory (manifest [limits] memory-mb)",
                limits.memory_bytes >> 20
            ),
        )
    } else if !panic_line.is_empty() {
        (TrapKind::Panic, panic_line.trim().to_owned())
    } else {
        (
            TrapKind::Trap,
            format!("{trap:#}")
                .lines()
                .next()
                .unwrap_or("trap")
                .to_owned(),
        )
    };
    RuntimeError::Trapped {
        flow: flow.to_owned(),
        kind,
        message,
    }
}

/// Engine errors can span lines; CLI errors are one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn log_captured(flow: &str, run_id: &str, stream: &str, text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::info!(target: "flow", flow = %flow, run = %run_id, stream, "{line}");
    }
}
