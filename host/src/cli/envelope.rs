//! The one `--json` contract: every command prints exactly one JSON object on stdout, on
//! success and on failure alike:
//!
//! ```json
//! {"ok": true, "error": null, "exit_code": 0, ...what the command reports}
//! {"ok": false, "error": {"kind": "database", "message": "..."}, "exit_code": 3, ...}
//! ```
//!
//! `kind` is [`Error::kind`](crate::Error::kind); `exit_code` is the process's. What the
//! command got done before it failed (migrations applied before one failed, the run record of
//! a failed flow) is still reported beside the error.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

/// Set once a command printed its document, so a failure is not printed twice.
static PRINTED: AtomicBool = AtomicBool::new(false);

/// Why a command failed, as `--json` says it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub kind: String,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Prints the document: `ok`, `error`, `exit_code`, then `fields` (an object's members, or a
/// single value under `key` when it is not an object).
pub fn print(error: Option<ErrorBody>, exit_code: u8, fields: impl Serialize) {
    let mut doc = Map::new();
    doc.insert("ok".into(), Value::Bool(error.is_none() && exit_code == 0));
    doc.insert(
        "error".into(),
        serde_json::to_value(&error).expect("errors serialize"),
    );
    doc.insert("exit_code".into(), Value::from(exit_code));
    match serde_json::to_value(fields).expect("reports serialize") {
        Value::Object(members) => {
            for (key, value) in members {
                // The envelope's own members win over a report's of the same name.
                doc.entry(key).or_insert(value);
            }
        }
        Value::Null => {}
        other => {
            doc.insert("result".into(), other);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(doc)).expect("JSON values serialize")
    );
    PRINTED.store(true, Ordering::SeqCst);
}

/// The exit code and error of a command that reports on several databases, from the ones
/// that failed as `(name, error_kind, error)`: 2 with kind `config` when one is not usably
/// configured (as `run` exits), else 3 with kind `database`; 0 and no error when none failed.
pub fn per_database_failure(
    failing: &[(&str, Option<&str>, Option<&str>)],
) -> (u8, Option<ErrorBody>) {
    use crate::exit;
    if failing.is_empty() {
        return (exit::OK, None);
    }
    let config = failing.iter().any(|(_, kind, _)| *kind == Some("config"));
    let (code, kind) = if config {
        (exit::USAGE, "config")
    } else {
        (exit::DATABASE, "database")
    };
    let message = failing
        .iter()
        .map(|(name, _, error)| format!("{name}: {}", error.unwrap_or("unhealthy")))
        .collect::<Vec<_>>()
        .join("; ");
    (
        code,
        Some(ErrorBody {
            kind: kind.into(),
            message,
        }),
    )
}

/// Prints a failure document for `e` unless the command already printed one.
pub fn print_failure(e: &Error) {
    if !PRINTED.load(Ordering::SeqCst) {
        print(Some(e.into()), e.exit_code(), Value::Null);
    }
}
