//! The reference side of the T-SQL differential test: what sqlparser's MsSql dialect (an
//! independent T-SQL parser) makes of a text. Shared by `tsql_differential_tests.rs` and the
//! `tsql_differential` fuzz target (which includes this file by path).

use sqlparser::ast::{SetExpr, Statement, TableFactor};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::{Parser, ParserOptions};

/// Whether sqlparser reads `stmt` as a plain read: a query with no INTO and no locking hint.
pub fn sqlparser_sees_a_read(stmt: &Statement) -> bool {
    let Statement::Query(query) = stmt else {
        return false;
    };
    if !query.locks.is_empty() {
        return false;
    }
    match query.body.as_ref() {
        SetExpr::Select(select) => {
            select.into.is_none()
                && select.from.iter().all(|from| match &from.relation {
                    TableFactor::Table { with_hints, .. } => with_hints.iter().all(|hint| {
                        let hint = hint.to_string().to_uppercase();
                        !["UPDLOCK", "XLOCK", "HOLDLOCK", "TABLOCKX", "PAGLOCK"]
                            .iter()
                            .any(|lock| hint.contains(lock))
                    }),
                    _ => true,
                })
        }
        SetExpr::SetOperation { .. } | SetExpr::Values(_) | SetExpr::Query(_) => true,
        _ => false,
    }
}

pub fn parse(sql: &str) -> Option<Vec<Statement>> {
    // T-SQL needs no `;` between statements: `SELECT 1 DELETE FROM t` is two.
    let options = ParserOptions {
        require_semicolon_stmt_delimiter: false,
        ..ParserOptions::new()
    };
    Parser::new(&MsSqlDialect {})
        .with_options(options)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .ok()
}
