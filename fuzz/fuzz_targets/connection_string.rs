//! `DatabaseTarget::parse` with every `TYPE` hint (none, postgres, sqlite, sqlserver), and the
//! SQL Server `Key=Value;` parser directly. Beyond not panicking: a parsed target is of the
//! SQL Server target from the key=value parser, and error messages render (they may not echo the
//! input, which holds passwords, so they are built from fixed parts).
#![no_main]

use std::path::Path;

use flowhost::config::fuzzing::parse_key_value;
use flowhost::config::{Backend, DatabaseTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/srv/flows");
    for kind in [
        None,
        Some(Backend::Postgres),
        Some(Backend::Sqlite),
        Some(Backend::SqlServer),
    ] {
        match DatabaseTarget::parse(s, kind, base) {
            Ok(t) => {
                // Debug and Display redact credentials; both walk every part.
                let _ = format!("{t:?} {t}");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    match parse_key_value(s) {
        Ok(t) => assert_eq!(t.kind(), Backend::SqlServer),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
