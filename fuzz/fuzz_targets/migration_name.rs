//! The migration file-name parser (`V<version>__<desc>.sql`, `U...`, `R__...`) and
//! `Version::parse`. Beyond not panicking: a parsed version re-parses from its text to an
//! equal version, and ordering agrees with equality.
#![no_main]

use flowhost::migrate::{MigrationKind, Version, parse_file_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(m)) = parse_file_name(name) {
        assert!(!m.description.contains('_'), "{m:?}");
        if let MigrationKind::Versioned(v) | MigrationKind::Undo(v) = &m.kind {
            let again = Version::parse(v.as_str()).expect("a version's text re-parses");
            assert_eq!(&again, v);
            assert_eq!(again.cmp(v), std::cmp::Ordering::Equal);
        }
    }
    // Two versions from one input: compare them both ways.
    let (a, b) = name.split_once(' ').unwrap_or((name, "1"));
    if let (Ok(a), Ok(b)) = (Version::parse(a), Version::parse(b)) {
        assert_eq!(a.cmp(&b), b.cmp(&a).reverse(), "{a:?} {b:?}");
        assert_eq!(
            a == b,
            a.cmp(&b) == std::cmp::Ordering::Equal,
            "{a:?} {b:?}"
        );
    }
});
