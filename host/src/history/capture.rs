//! The log lines of runs in progress, for the history: a tracing layer keeps every event that
//! carries a `run` field naming a run being captured (the flow's own `wasi:logging` records and
//! stdout/stderr lines, and the host's events about the run).
//!
//! It has its own level (info and above, whatever the terminal shows), so `-q` does not empty
//! the history and `-vv` does not fill it with the engine's trace.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::MAX_LOG_LINES;

/// One log line of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub at: String,
    /// `error`, `warn`, `info`, `debug`, `trace`.
    pub level: String,
    /// `flow` (the guest's records and output) or `host`.
    pub source: String,
    pub message: String,
}

/// Lines of the runs being captured, by run id.
static ACTIVE: LazyLock<Mutex<HashMap<String, Buffer>>> = LazyLock::new(Default::default);
/// How many runs are captured: events are not even looked at while it is 0.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct Buffer {
    lines: Vec<LogLine>,
    dropped: usize,
}

/// The tracing layer; install it once, beside the terminal's (see `cli::init_logging`).
pub struct CaptureLayer;

impl CaptureLayer {
    /// The layer with its own filter: info and above of flowhost and the flows.
    pub fn filtered<S>() -> impl Layer<S>
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        CaptureLayer.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("flowhost", tracing::Level::INFO)
                .with_target("flow", tracing::Level::INFO),
        )
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if CAPTURING.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut visit = Fields::default();
        event.record(&mut visit);
        let Some(run) = visit.run else { return };
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        let Some(buffer) = active.get_mut(&run) else {
            return;
        };
        if buffer.lines.len() >= MAX_LOG_LINES {
            buffer.dropped += 1;
            return;
        }
        let meta = event.metadata();
        let mut message = visit.message;
        if !visit.extra.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&visit.extra);
        }
        buffer.lines.push(LogLine {
            at: super::now(),
            level: meta.level().as_str().to_ascii_lowercase(),
            source: if meta.target() == "flow" {
                "flow"
            } else {
                "host"
            }
            .into(),
            message,
        });
    }
}

/// Captures run `run_id`'s lines until [`Capture::finish`] (or drop, which forgets them).
pub struct Capture {
    run_id: String,
    done: bool,
}

impl Capture {
    pub fn start(run_id: &str) -> Capture {
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.to_owned(), Buffer::default());
        CAPTURING.fetch_add(1, Ordering::Relaxed);
        Capture {
            run_id: run_id.to_owned(),
            done: false,
        }
    }

    /// The lines captured so far, and stops capturing; a last line counts lines over the limit.
    pub fn finish(mut self) -> Vec<LogLine> {
        self.done = true;
        let buffer = self.stop().unwrap_or_default();
        let mut lines = buffer.lines;
        if buffer.dropped > 0 {
            lines.push(LogLine {
                at: super::now(),
                level: "warn".into(),
                source: "host".into(),
                message: format!(
                    "{} more lines were not kept: the history keeps {MAX_LOG_LINES} per run",
                    buffer.dropped
                ),
            });
        }
        lines
    }

    fn stop(&self) -> Option<Buffer> {
        let buffer = ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.run_id);
        CAPTURING.fetch_sub(1, Ordering::Relaxed);
        buffer
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if !self.done {
            self.stop();
        }
    }
}

/// The fields of one event: its message, the run it is about, and the rest as `key=value`.
#[derive(Default)]
struct Fields {
    run: Option<String>,
    message: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "run" => self.run = Some(value),
            "message" => self.message = value,
            // Every line of a run is about its flow: the history row already says which.
            "flow" => {}
            name => {
                if !self.extra.is_empty() {
                    self.extra.push(' ');
                }
                let _ = write!(self.extra, "{name}={value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn only_lines_of_captured_runs_are_kept_with_their_level_and_source() {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer::filtered());
        tracing::subscriber::with_default(subscriber, || {
            let capture = Capture::start("run-a");
            tracing::info!(target: "flow", flow = "f", run = %"run-a", context = "ctx", "hello");
            tracing::info!(run = %"run-b", "another run");
            tracing::info!("no run at all");
            tracing::debug!(target: "flow", run = %"run-a", "below info");
            tracing::warn!(run = %"run-a", status = ?"failed", "run finished");
            let lines = capture.finish();
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert_eq!(lines[0].source, "flow");
            assert_eq!(lines[0].level, "info");
            assert_eq!(lines[0].message, "hello context=ctx");
            assert_eq!(lines[1].source, "host");
            assert_eq!(lines[1].level, "warn");
            assert_eq!(lines[1].message, "run finished status=\"failed\"");
            // Finished: later lines of that run are not kept anywhere.
            tracing::info!(run = %"run-a", "late");
            assert!(!ACTIVE.lock().unwrap().contains_key("run-a"));
        });
    }
}
