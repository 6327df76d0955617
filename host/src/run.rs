//! The run pipeline as a library: a run request goes in, a run record comes out.
//!
//! The CLI's `flowhost run` is one caller; a queue worker will be another, which is why the
//! request is plain data and every outcome of an executed flow is a record, not a panic or an
//! exit code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::db::DatabaseSet;
use crate::manifest::Manifest;
use crate::migrate::{self, MigrateOptions};
use crate::runtime::{FlowComponent, Grant, Runtime, RuntimeError, RuntimeOptions};

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
    runtime: Runtime,
    /// Loaded components by path, with the file's length and modification time when loaded:
    /// a file that changes is loaded again, an unchanged one costs no read, hash or link.
    components: std::sync::Mutex<HashMap<PathBuf, (u64, std::time::SystemTime, FlowComponent)>>,
}

impl Host {
    pub fn new(config: Arc<Config>, runtime: RuntimeOptions) -> Result<Host, crate::Error> {
        Ok(Host {
            databases: DatabaseSet::new(config),
            runtime: Runtime::new(runtime)?,
            components: Default::default(),
        })
    }

    fn component(&self, path: &std::path::Path) -> Result<FlowComponent, crate::Error> {
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        let mut cache = self.components.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((len, modified)), Some((cached_len, cached_modified, component))) =
            (stamp, cache.get(path))
            && (len, modified) == (*cached_len, *cached_modified)
        {
            return Ok(component.clone());
        }
        let component = self.runtime.load(path)?;
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
        let manifest = &request.manifest;
        let flow = manifest.flow.name.clone();
        let component = self.component(&request.component)?;

        let mut grants = HashMap::new();
        let mut migrations_applied = Vec::new();
        let mut migrate_options = MigrateOptions::for_current_user();
        migrate_options.placeholders = self
            .databases
            .config()
            .placeholders()?
            .map(migrate::Placeholders::new);
        for (name, grant) in &manifest.databases {
            let database = self.databases.for_grant(name, grant.access).await?;
            database.ping().await?;
            if let Some(dir) = &grant.migrations {
                let report = migrate::migrate(&database, dir, &migrate_options).await?;
                migrations_applied.extend(
                    report
                        .applied
                        .iter()
                        .map(|m| format!("{name}: {}", m.script)),
                );
            }
            grants.insert(
                name.clone(),
                Grant {
                    database,
                    access: grant.access,
                },
            );
        }

        let run_id = uuid::Uuid::new_v4().to_string();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let started = Instant::now();
        tracing::info!(flow = %flow, run = %run_id, "run started");
        let outcome = self
            .runtime
            .run(
                &component,
                grants,
                &manifest.limits,
                &flow,
                &run_id,
                &request.input,
            )
            .await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
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

    /// Closes every pool so servers see clean disconnects.
    pub async fn shutdown(&self) {
        self.databases.close_all().await;
    }
}

fn failure(err: &RuntimeError) -> RunFailure {
    let kind = match err {
        RuntimeError::FlowFailed { .. } => "flow-error".to_owned(),
        RuntimeError::BadOutput { .. } => "bad-output".to_owned(),
        RuntimeError::Trapped { kind, .. } => serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "trap".into()),
        _ => "host-error".to_owned(),
    };
    RunFailure {
        kind,
        message: err.to_string(),
    }
}
