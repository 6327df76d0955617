//! The T-SQL classifier against sqlparser's MsSql dialect, on any text: whenever the classifier
//! calls the text a read, the other parser must not see more than one statement or anything
//! but a plain read (the generated cases of `sql/tsql_differential_tests.rs`, unbounded).
#![no_main]

use flowhost::sql::{Backend, StatementKind, classify};
use libfuzzer_sys::fuzz_target;

#[path = "../../host/src/sql/tsql_reference.rs"]
mod tsql_reference;

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let sql = String::from_utf8_lossy(data);
    let ours_read = classify(&sql, Backend::SqlServer).is_ok_and(|c| c.kind == StatementKind::Read);
    if !ours_read {
        return;
    }
    if let Some(statements) = tsql_reference::parse(&sql) {
        assert!(
            statements.len() <= 1 && statements.iter().all(tsql_reference::sqlparser_sees_a_read),
            "flowhost calls this a read, sqlparser sees {statements:?}"
        );
    }
});
