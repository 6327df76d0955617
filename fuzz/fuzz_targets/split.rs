//! `sql::split_statements` for every dialect (SQL Server: `GO` batches). Beyond not
//! panicking: every span is the script's text at its offset, starts and ends on a significant
//! token, comes in script order with the right line number, and (outside SQL Server, whose
//! batches may hold many statements) classifies as exactly one statement.
#![no_main]

use flowhost::sql::{Backend, SqlError, classify, lexer::line_at, split_statements};
use libfuzzer_sys::fuzz_target;

const DIALECTS: [Backend; 3] = [Backend::Postgres, Backend::Sqlite, Backend::SqlServer];

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let script = String::from_utf8_lossy(data);
    for d in DIALECTS {
        let Ok(spans) = split_statements(&script, d) else {
            continue;
        };
        let mut prev_end = 0;
        let mut prev_offset = 0;
        for s in &spans {
            assert!(!s.sql.is_empty(), "{d:?}: empty statement");
            assert_eq!(
                script.get(s.offset..s.offset + s.sql.len()),
                Some(s.sql.as_str()),
                "{d:?}: span text is not the script's text at its offset"
            );
            assert_eq!(s.line, line_at(&script, s.offset), "{d:?}: wrong line");
            assert!(
                !s.sql.starts_with(|c: char| c.is_ascii_whitespace()),
                "{d:?}: {s:?}"
            );
            assert!(
                !s.sql.ends_with(|c: char| c.is_ascii_whitespace()),
                "{d:?}: {s:?}"
            );
            if s.offset == prev_offset && prev_end > 0 {
                continue; // a `GO n` repeat
            }
            assert!(
                s.offset >= prev_end,
                "{d:?}: statements overlap or go backwards"
            );
            prev_offset = s.offset;
            prev_end = s.offset + s.sql.len();
            if d != Backend::SqlServer {
                match classify(&s.sql, d) {
                    Err(e @ (SqlError::MultipleStatements | SqlError::Empty)) => panic!(
                        "{d:?}: a split statement classifies as {e:?}\nscript: {script:?}\n\
                         statement: {:?}",
                        s.sql
                    ),
                    _ => {}
                }
            }
        }
    }
});
