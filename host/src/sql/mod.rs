//! SQL text handling shared by every database backend: placeholder rewriting, statement
//! classification (the basis of read-only enforcement) and migration-script splitting.
//!
//! Everything here sits on one dialect-aware lexer so that the three consumers can never
//! disagree about where a string, comment or quoted identifier begins and ends.

pub mod classify;
pub mod lexer;
pub mod params;
pub mod postgres;
pub mod split;
#[cfg(test)]
mod split_tsql_tests;
pub mod transaction;
#[cfg(test)]
mod tsql_differential_tests;
#[cfg(test)]
mod tsql_reference;
pub mod values;

pub use classify::{Classified, StatementKind, classify};
pub use lexer::{Lexer, Token, TokenKind, tokenize, tokens};
pub use params::{Placeholders, Rewritten, rewrite};
pub use split::{StatementSpan, split_statements};
pub use transaction::TransactionKind;
pub use values::ValuesTemplate;

/// The backend a statement is destined for decides its SQL dialect.
pub use crate::Backend;

/// Problems found in SQL text; messages are shown to flow authors, so they never echo the SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// A string, quoted identifier or comment is never closed.
    #[error(
        "unterminated {what} starting on line {line}; check for a missing closing quote or \
         comment end"
    )]
    Unterminated {
        /// What was left open, e.g. "string literal".
        what: &'static str,
        /// 1-based line on which it was opened.
        line: usize,
    },
    /// More than one statement was passed where exactly one is expected.
    #[error(
        "only one SQL statement is allowed per call; use execute-batch or an explicit \
         transaction to run several statements"
    )]
    MultipleStatements,
    /// The text holds no statement at all (only whitespace, comments or `;`).
    #[error("the SQL text is empty or contains only comments")]
    Empty,
    /// Placeholder styles that cannot be bound together appear in one statement.
    #[error(
        "a statement cannot mix placeholder styles (:name, $1, or SQLite's native ?, @name, \
         $name); use one style per statement"
    )]
    MixedPlaceholders,
    /// A placeholder that no backend can bind, such as `$0`.
    #[error("invalid placeholder on line {line}: {reason}")]
    InvalidPlaceholder {
        /// 1-based line of the placeholder.
        line: usize,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A SQL Server `GO` line whose repeat count is out of range.
    #[error("invalid GO batch separator on line {line}: {reason}")]
    InvalidBatchSeparator {
        /// 1-based line of the `GO`.
        line: usize,
        /// Why it is invalid.
        reason: &'static str,
    },
}
