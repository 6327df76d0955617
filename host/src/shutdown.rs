//! SIGINT and SIGTERM: what stops `flowhost run` and `flowhost serve` cleanly. Once either is
//! awaited, the signal no longer kills the process outright: the caller cancels its runs
//! (their futures are dropped, so their connections go back and their transactions are rolled
//! back when the pools close), records them as cancelled, closes the pools and exits with
//! 128 + the signal's number, as a shell would report it.

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

/// The next SIGINT or SIGTERM. Never resolves where the handlers cannot be installed (the
/// default disposition then still ends the process).
pub async fn wait() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
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
