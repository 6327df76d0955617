//! `Manifest::parse`: any text is a manifest or an error (whose message, built from spans of
//! the text, must not panic on multi-byte characters), never a panic.
#![no_main]

use flowhost::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Manifest::parse(text, "fuzz/flow.toml") {
        Ok(m) => {
            for name in m.databases.keys() {
                assert!(
                    m.grant(name).is_some(),
                    "grant {name:?} not found by its name"
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
