//! The `.env` parser and `${VAR}` interpolation, as `Config::load` uses them: parse a file,
//! then expand every value (files' values, plus two process variables, one of them empty).
//! Beyond not panicking: keys are non-empty and their lines lie within the file, and literal
//! (single-quoted) values come back unexpanded.
#![no_main]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flowhost::config::Origin;
use flowhost::config::fuzzing::{RawValue, Vars, parse_dotenv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz/.env");
    let Ok(entries) = parse_dotenv(text, path) else {
        return;
    };
    let lines = text.split('\n').count();
    let mut vars = Vars {
        process: HashMap::from([
            ("HOME".to_string(), "/home/fuzz".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]),
        files: HashMap::new(),
    };
    for e in entries {
        assert!(!e.key.is_empty(), "empty key");
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        if let Some(text) = e.value {
            let origin = Origin::File {
                path: PathBuf::from(path),
                line: e.line,
            };
            let raw = RawValue {
                text,
                origin,
                literal: e.literal,
            };
            vars.files.insert(e.key, raw);
        }
    }
    for (key, raw) in &vars.files {
        match vars.resolve(key, raw) {
            Ok(value) => {
                if raw.literal {
                    assert_eq!(value, raw.text, "a literal value was expanded");
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
