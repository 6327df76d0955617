//! Turning the way a run was stopped into an error its author can act on.

use wasmtime::{Trap, WasmBacktrace};

use super::log::{RECORD_LIMIT, escape};
use super::{RuntimeError, TrapKind};
use crate::manifest::Limits;

/// What the run left behind that explains its end.
pub(super) struct Evidence<'a> {
    /// The end of what the guest wrote to stderr (a panic message, an allocation failure).
    pub stderr: &'a str,
    /// A memory growth the limiter refused, in bytes.
    pub denied_memory: Option<usize>,
}

/// Classifies `error`, which ended a run of `flow`. Limits come first (the engine's own trap
/// codes for time, fuel and stack; then a refused memory growth, which a guest usually reports
/// by aborting), then what the guest said (a panic), then the trap's own description.
pub(super) fn classify(
    flow: &str,
    error: &wasmtime::Error,
    evidence: &Evidence<'_>,
    limits: &Limits,
) -> RuntimeError {
    let code = error.downcast_ref::<Trap>().copied();
    let stderr = evidence.stderr;
    let panic_line = stderr
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let (kind, message) = if code == Some(Trap::Interrupt) {
        (TrapKind::Timeout, timeout_message(limits))
    } else if code == Some(Trap::OutOfFuel) {
        (
            TrapKind::OutOfFuel,
            "the run used all its fuel (manifest [limits] fuel)".to_owned(),
        )
    } else if code == Some(Trap::StackOverflow) {
        (
            TrapKind::StackOverflow,
            format!(
                "the flow overflowed its call stack{}: look for unbounded or very deep recursion \
                 and make it bounded or iterative",
                in_function(error)
            ),
        )
    } else if evidence.denied_memory.is_some()
        || stderr.contains("memory allocation of")
        || stderr.contains("capacity overflow")
    {
        let wanted = evidence
            .denied_memory
            .map(|bytes| format!(" (it asked to grow to {} MiB)", bytes.div_ceil(1 << 20)))
            .unwrap_or_default();
        (
            TrapKind::OutOfMemory,
            format!(
                "the flow needed more than its {} MiB of memory{wanted} (manifest [limits] \
                 memory-mb)",
                limits.memory_bytes >> 20
            ),
        )
    } else if !panic_line.is_empty() {
        (TrapKind::Panic, escape(panic_line.trim(), RECORD_LIMIT).0)
    } else if let Some(code) = code {
        let hint = match code {
            // Rust keeps large locals on a stack in linear memory; overflowing it shows as an
            // access below address 0, not as the engine's stack overflow.
            Trap::MemoryOutOfBounds => {
                " (a bug in the flow, or deep recursion with large locals overflowing its stack)"
            }
            Trap::UnreachableCodeReached => " (the flow aborted)",
            _ => "",
        };
        (
            TrapKind::Trap,
            format!("wasm trap: {code}{}{hint}", in_function(error)),
        )
    } else {
        // Not a trap: a host call failed in a way that ends the run (a bad resource handle).
        (TrapKind::Trap, error.root_cause().to_string())
    };
    RuntimeError::Trapped {
        flow: flow.to_owned(),
        kind,
        message: one_line(&message),
    }
}

pub(super) fn timeout_message(limits: &Limits) -> String {
    format!(
        "the run took longer than its limit of {:?} (manifest [limits] timeout-seconds)",
        limits.timeout
    )
}

/// ` in <function>`, the innermost guest function the backtrace names.
fn in_function(error: &wasmtime::Error) -> String {
    error
        .downcast_ref::<WasmBacktrace>()
        .and_then(|bt| bt.frames().iter().find_map(|f| f.func_name()))
        .map(|name| format!(" in {}", demangle(name)))
        .unwrap_or_default()
}

/// `probe::hostile::recurse` from Rust's legacy mangling `_ZN5probe7hostile7recurse17h…E`; any
/// other name as it is. (The engine demangles only when it prints a whole backtrace.)
fn demangle(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&n| n > 0) {
        let len: usize = rest[..digits].parse().unwrap_or(usize::MAX);
        let Some(part) = rest.get(digits..digits.saturating_add(len)) else {
            return name.to_owned();
        };
        // An identifier that starts with an escape gets a `_` in front of it.
        parts.push(part.strip_prefix("_$").map_or(part, |_| &part[1..]));
        rest = &rest[digits + len..];
    }
    // The last part is the hash: `h` and 16 hex digits.
    if parts
        .last()
        .is_some_and(|h| h.len() == 17 && h.starts_with('h'))
    {
        parts.pop();
    }
    if rest != "E" || parts.is_empty() {
        return name.to_owned();
    }
    parts
        .join("::")
        .replace("$LT$", "<")
        .replace("$GT$", ">")
        .replace("$u20$", " ")
        .replace("$RF$", "&")
        .replace("..", "::")
}

/// Engine errors can span lines; CLI errors are one line.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn legacy_rust_names_are_demangled() {
        assert_eq!(
            demangle("_ZN5probe7hostile7recurse17hd9d559f21a143cf9E"),
            "probe::hostile::recurse"
        );
        assert_eq!(
            demangle("_ZN42_$LT$probe..Probe$u20$as$u20$core..Foo$GT$3run17h0123456789abcdefE"),
            "<probe::Probe as core::Foo>::run"
        );
        for other in ["main", "_ZN5probe", "_ZN99xE", "wasm-function[7]"] {
            assert_eq!(demangle(other), other);
        }
    }
}
