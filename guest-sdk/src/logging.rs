//! Logging through the host's `wasi:logging/logging` import.

use crate::bindings::wasi::logging::logging::Level;
use std::fmt;

/// Sends one log record to the host, which routes it to `tracing` with the flow name and run id
/// attached. The macros ([`info!`](crate::info) and friends) call this with the module path as
/// `context`; call it directly to choose the context or the level at run time.
///
/// Outside WebAssembly (a flow's native unit tests) the record goes to stderr instead, so code
/// that logs stays testable.
///
/// ```
/// use flowhost_sdk::{Level, log};
/// log(Level::Info, "rpa1::scoring", "scored 19 responses");
/// ```
pub fn log(level: Level, context: &str, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::wasi::logging::logging::log(level, context, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level} {context}: {message}");
}

impl fmt::Display for Level {
    /// The level's name in the WIT contract (`info`, `warn`, ...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        })
    }
}

/// Shared body of the level macros. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log(
            $crate::Level::$level,
            ::core::module_path!(),
            &::std::format!($($arg)+),
        )
    };
}

/// Logs at `trace` level with `format!` syntax; the context is the calling module's path.
///
/// ```
/// let batch = 3;
/// flowhost_sdk::trace!("fetched batch {batch}");
/// ```
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::__log!(Trace, $($arg)+) };
}

/// Logs at `debug` level with `format!` syntax; the context is the calling module's path.
///
/// ```
/// flowhost_sdk::debug!("{} responses already processed", 12);
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::__log!(Debug, $($arg)+) };
}

/// Logs at `info` level with `format!` syntax; the context is the calling module's path.
///
/// ```
/// let written = 19;
/// flowhost_sdk::info!("wrote {written} rows");
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::__log!(Info, $($arg)+) };
}

/// Logs at `warn` level with `format!` syntax; the context is the calling module's path.
///
/// ```
/// flowhost_sdk::warn!("response {} has no email", 4);
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::__log!(Warn, $($arg)+) };
}

/// Logs at `error` level with `format!` syntax; the context is the calling module's path.
///
/// ```
/// flowhost_sdk::error!("response {}: {}", 9, "not JSON");
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::__log!(Error, $($arg)+) };
}
