//! `flowhost serve`: one long-running host (one set of pools, one engine, one run history)
//! answering health probes, metrics scrapes and run requests over HTTP.
//!
//! - [`health`]: `/health/live`, `/health/ready`, `/health/startup` as
//!   `application/health+json`, and the seed system's `/health/database[/pool|/performance]`.
//! - [`runs`]: `POST /runs`, `GET /runs`, `GET /runs/{id}`, `GET /runs/{id}/logs`.
//! - `/metrics`: [`crate::metrics`] as OpenMetrics text.
//!
//! SIGINT or SIGTERM stops it: no new requests are taken, runs in flight are cancelled (their
//! transactions rolled back) and recorded as cancelled, the pools close, and the process exits
//! 130 or 143.

mod health;
mod runs;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::task::TaskTracker;

use crate::metrics::{self, metrics};
use crate::run::Host;
use crate::shutdown::{Cancel, Signal};

/// How `flowhost serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The only folder `POST /runs` takes components from.
    pub flows_dir: PathBuf,
    /// One migrations folder per database, for readiness (`migrations/<db>`).
    pub migrations_dir: PathBuf,
    /// Runs executing at once; more are refused with 429 until one ends.
    pub max_concurrent_runs: usize,
    /// A migration lock held longer than this makes `/health/ready` fail.
    pub migration_lock_limit: Duration,
    /// How often pools and response times are sampled for `/health/database/performance`
    /// and `flowhost_migrations_pending`.
    pub sample_every: Duration,
}

/// What every handler shares.
pub(crate) struct AppState {
    host: Arc<Host>,
    options: ServeOptions,
    /// The flows folder, resolved once: components must resolve inside it.
    flows_dir: PathBuf,
    /// Set once the first readiness check has run (the pools are open): `/health/startup`.
    started: AtomicBool,
    /// Set when a signal arrived: readiness fails, new runs are refused.
    stopping: AtomicBool,
    /// Cancels every run in flight at shutdown.
    cancel: Cancel,
    runs: TaskTracker,
    slots: Arc<tokio::sync::Semaphore>,
    /// Runs accepted and not yet finished, by id, with their flow: `GET /runs/{id}` answers
    /// for them even before the history has their row.
    live: Mutex<HashMap<String, String>>,
    /// Recent samples per database, oldest first, for `/health/database/performance`.
    samples: Mutex<HashMap<String, VecDeque<Sample>>>,
}

/// One sample of one database.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Sample {
    at: String,
    response_time_ms: Option<f64>,
    pool_size: u32,
    pool_in_use: u32,
    pool_max: u32,
}

/// Samples kept per database: an hour at the default interval.
const SAMPLES_KEPT: usize = 720;

/// Serves until `shutdown` resolves, then stops as the module says; returns the signal.
pub async fn serve(
    host: Arc<Host>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = Signal> + Send + 'static,
) -> Result<Signal, crate::Error> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| crate::Error::Io {
            action: format!(
                "listen on {} (is another process using the port? choose another with --listen)",
                options.listen
            ),
            source: e,
        })?;
    let address = listener.local_addr().map_err(|e| crate::Error::Io {
        action: "read the listening address".into(),
        source: e,
    })?;
    let flows_dir = std::fs::canonicalize(&options.flows_dir).map_err(|e| crate::Error::Io {
        action: format!("open the flows folder {}", options.flows_dir.display()),
        source: e,
    })?;
    let state = Arc::new(AppState {
        host,
        flows_dir,
        started: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        cancel: Cancel::new(),
        runs: TaskTracker::new(),
        slots: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_runs)),
        live: Mutex::new(HashMap::new()),
        samples: Mutex::new(HashMap::new()),
        options,
    });
    // The one line a supervisor or a test reads to find the port (`--listen 127.0.0.1:0`).
    println!("flowhost serve: listening on http://{address}");
    tracing::info!(%address, "serving");

    let sampler = tokio::spawn(sample_forever(state.clone()));
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel();
    let stopper = state.clone();
    let graceful = async move {
        let signal = shutdown.await;
        tracing::warn!(
            "{} received: refusing new requests, cancelling runs in flight",
            signal.name()
        );
        stopper.stopping.store(true, Ordering::SeqCst);
        stopper.cancel.cancel(signal.name());
        let _ = signal_tx.send(signal);
    };
    let served = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(graceful)
        .await;
    sampler.abort();
    // Runs were cancelled with the signal; each records itself as cancelled as it ends.
    state.runs.close();
    state.runs.wait().await;
    state.host.shutdown().await;
    served.map_err(|e| crate::Error::Io {
        action: "serve HTTP".into(),
        source: e,
    })?;
    Ok(signal_rx.await.unwrap_or(Signal::Terminate))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/startup", get(health::startup))
        .route("/health/database", get(health::database))
        .route("/health/database/pool", get(health::pool))
        .route("/health/database/performance", get(health::performance))
        .route("/metrics", get(metrics_text))
        .route("/runs", post(runs::start).get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/logs", get(runs::logs))
        .fallback(not_found)
        .with_state(state)
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Response {
    for db in state.host.databases().open_databases() {
        let pool = db.pool_status();
        metrics().set_pool_occupancy(db.name(), pool.idle, pool.in_use, pool.max);
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics().encode(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {}; see docs/operations.md for /health/*, /metrics and /runs",
            uri.path()
        ),
    )
}

/// An error answer: `{"error": message}` with `status`.
pub(crate) fn problem(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Samples every database's pool and response time, and the migrations pending, until aborted.
async fn sample_forever(state: Arc<AppState>) {
    let mut first = true;
    loop {
        let report = health::check_all(&state).await;
        if first {
            state.started.store(true, Ordering::SeqCst);
            tracing::info!(status = report.status.as_str(), "startup checks done");
            first = false;
        }
        let at = crate::history::now();
        {
            let mut samples = state.samples.lock().unwrap_or_else(|e| e.into_inner());
            for db in &report.databases {
                let kept = samples.entry(db.name.clone()).or_default();
                if kept.len() >= SAMPLES_KEPT {
                    kept.pop_front();
                }
                let pool = db.pool.unwrap_or_default();
                kept.push_back(Sample {
                    at: at.clone(),
                    response_time_ms: db.response_time_ms,
                    pool_size: pool.size,
                    pool_in_use: pool.in_use,
                    pool_max: pool.max,
                });
                if let Some(m) = &db.migrations {
                    metrics().set_migrations_pending(&db.name, m.pending);
                }
            }
        }
        tokio::time::sleep(state.options.sample_every).await;
    }
}
