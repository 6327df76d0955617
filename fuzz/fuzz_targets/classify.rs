//! `sql::classify` for every dialect, and PostgreSQL's parser-based `sql::postgres::check`
//! for both grants. Beyond not panicking: the lexer's tokens cover the input exactly, a
//! reason is given exactly when the statement is not a read, and the keyword is the
//! uppercased first word.
#![no_main]

use flowhost::sql::{Backend, StatementKind, classify, postgres, tokens};
use libfuzzer_sys::fuzz_target;

const DIALECTS: [Backend; 3] = [Backend::Postgres, Backend::Sqlite, Backend::SqlServer];

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let sql = String::from_utf8_lossy(data);
    for d in DIALECTS {
        // Tokens are contiguous, non-empty and on char boundaries; only an error ends early.
        let mut end = 0;
        let mut failed = false;
        for tok in tokens(&sql, d) {
            let Ok(tok) = tok else {
                failed = true;
                break;
            };
            assert_eq!(tok.start, end, "{d:?}: gap or overlap before {tok:?}");
            assert!(
                tok.end > tok.start && tok.end <= sql.len(),
                "{d:?}: bad span {tok:?}"
            );
            assert!(
                sql.is_char_boundary(tok.end),
                "{d:?}: span inside a character {tok:?}"
            );
            end = tok.end;
        }
        assert!(
            failed || end == sql.len(),
            "{d:?}: tokens end at {end} of {}",
            sql.len()
        );

        if let Ok(c) = classify(&sql, d) {
            assert_eq!(
                c.reason.is_none(),
                c.kind == StatementKind::Read,
                "{d:?}: {c:?}"
            );
            assert_eq!(c.keyword, c.keyword.to_ascii_uppercase(), "{d:?}: {c:?}");
        }
    }
    // One thread per call (the checker's big stack): slow, hence the size limit above.
    for read_only in [true, false] {
        if let Ok(c) = postgres::check(&sql, read_only) {
            assert!(
                !read_only || c.kind == StatementKind::Read,
                "read-only grant allowed {c:?}"
            );
            assert!(read_only || c.functions.is_empty(), "{c:?}");
        }
    }
});
