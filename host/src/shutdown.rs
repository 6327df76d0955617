//! SIGINT and SIGTERM: what stops `flowhost run` and `flowhost serve` cleanly. Once either is
//! awaited, the signal no longer kills the process outright: the caller cancels its runs
//! (their futures are dropped, so their connections go back and their transactions are rolled
//! back when the pools close), records them as cancelled, closes the pools and exits with
//! 128 + the signal's number, as a shell would report it.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, `docker stop`, Kubernetes).
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 130 or 143.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => exit::INTERRUPTED,
            Signal::Terminate => exit::TERMINATED,
        }
    }
}

/// The signal number of the first SIGINT or SIGTERM received since [`wait`] was first called;
/// 0 before.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The first SIGINT or SIGTERM received so far, seen at once from any thread.
///
/// Tokio hears a signal only when its thread next polls; an SQLite statement stepped on that
/// thread (`db/sqlite_step.rs`) looks here from its progress handler, so a long one stops as
/// soon as the signal arrives rather than when it finishes.
pub fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::Relaxed) {
        libc_signal::SIGINT => Some(Signal::Interrupt),
        libc_signal::SIGTERM => Some(Signal::Terminate),
        _ => None,
    }
}

/// Signal numbers, as Linux has them (the only system flowhost runs on).
mod libc_signal {
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
}

/// Records the first SIGINT or SIGTERM in [`RECEIVED`], beside tokio's own handling.
fn record_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for number in [libc_signal::SIGINT, libc_signal::SIGTERM] {
            // SAFETY: the action only stores to an atomic, which is async-signal-safe.
            let registered = unsafe {
                signal_hook_registry::register(number, move || {
                    let _ =
                        RECEIVED.compare_exchange(0, number, Ordering::Relaxed, Ordering::Relaxed);
                })
            };
            if let Err(e) = registered {
                tracing::debug!("cannot record signal {number} for running statements: {e}");
            }
        }
    });
}

/// The next SIGINT or SIGTERM. Never resolves where the handlers cannot be installed (the
/// default disposition then still ends the process).
pub async fn wait() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    record_signals();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!(
            "cannot install the SIGINT/SIGTERM handlers; a signal ends the process at once"
        );
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => Signal::Terminate,
        _ = int.recv() => Signal::Interrupt,
    }
}

/// What a host call answers a flow whose process received a signal while the call ran: the
/// call traps, and the run is recorded as cancelled by that signal.
#[derive(Debug, thiserror::Error)]
#[error("stopped: flowhost received {}", .0.name())]
pub struct Stopped(pub Signal);

/// Asks runs to stop, saying why; cheap to clone, shared by every run it should stop.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: tokio_util::sync::CancellationToken,
    reason: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Stops every run watching this; the first reason given is kept.
    pub fn cancel(&self, reason: &str) {
        let _ = self.reason.set(reason.to_owned());
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once [`Cancel::cancel`] is called.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Why it was cancelled (`SIGTERM`, `server shutdown`).
    pub fn reason(&self) -> String {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| "a cancel request".into())
    }
}
