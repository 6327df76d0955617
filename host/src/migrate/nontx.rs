//! TEMPORARY minimal version; replaced by the dialect branch's full implementation at merge.
use crate::sql::Dialect;

pub fn non_transactional(statement: &str, _dialect: Dialect) -> Option<&'static str> {
    let words: Vec<String> = statement
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(|l| l.split_whitespace())
        .take(4)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["VACUUM", ..] => Some("VACUUM"),
        ["CREATE", "INDEX", "CONCURRENTLY", ..] => Some("CREATE INDEX CONCURRENTLY"),
        ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY", ..] => Some("CREATE INDEX CONCURRENTLY"),
        ["DROP", "INDEX", "CONCURRENTLY", ..] => Some("DROP INDEX CONCURRENTLY"),
        _ => None,
    }
}
