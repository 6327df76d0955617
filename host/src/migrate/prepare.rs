//! Turning a migration file into statements to run: placeholders, splitting, and deciding
//! whether it runs in a transaction.

use std::borrow::Cow;

use super::discover::Migration;
use super::error::MigrateError;
use super::nontx::non_transactional;
use super::placeholders::Placeholders;
use crate::sql::{self, Backend};

/// One statement of a migration, ready to run.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub sql: String,
    /// 1-based line of the statement's first token in the file.
    pub line: usize,
}

/// A migration split into statements, ready to run.
#[derive(Debug)]
pub struct Prepared<'f> {
    pub migration: &'f Migration,
    pub statements: Vec<PreparedStatement>,
    /// Runs in one transaction with its history row. `false`: statement by statement, each
    /// committed on its own, with progress recorded so a failure can resume.
    pub transactional: bool,
}

/// The header comment that lets a file run outside a transaction.
pub const NO_TRANSACTION_HEADER: &str = "flowhost:no-transaction";

/// Splits a migration into statements (after replacing placeholders, when they are on) and
/// decides how it runs. Refused: scripts that manage transactions themselves, and scripts that
/// mix statements which cannot run in a transaction with ones that can, unless the file's
/// header opts out (`-- flowhost:no-transaction`). A file of nothing but such statements
/// (`CREATE INDEX CONCURRENTLY ...;`) runs outside a transaction without the header.
pub fn prepare<'f>(
    database: &str,
    migration: &'f Migration,
    dialect: Backend,
    placeholders: Option<&Placeholders>,
) -> Result<Prepared<'f>, MigrateError> {
    let text = match placeholders {
        Some(p) => Cow::Owned(p.apply(&migration.sql, database, &migration.script)?),
        None => Cow::Borrowed(migration.sql.as_str()),
    };
    let spans = sql::split_statements(&text, dialect).map_err(|e| MigrateError::Script {
        database: database.to_owned(),
        script: migration.script.clone(),
        message: e.to_string(),
    })?;
    let mut statements = Vec::with_capacity(spans.len());
    // The first statement that cannot run in a transaction, and the first that must.
    let mut outside: Option<(usize, &'static str)> = None;
    let mut inside: Option<usize> = None;
    for span in spans {
        let (skipped, first, second) = leading_words(&span.sql);
        let Some(first) = first else {
            continue; // only comments
        };
        let line = span.line + span.sql[..skipped].matches('\n').count();
        if let Some(keyword) = transaction_control(&first, second.as_deref(), dialect) {
            return Err(MigrateError::TransactionControl {
                database: database.to_owned(),
                script: migration.script.clone(),
                line,
                keyword,
            });
        }
        match non_transactional(&span.sql, dialect) {
            Some(what) => {
                outside.get_or_insert((line, what));
            }
            None => {
                inside.get_or_insert(line);
            }
        }
        statements.push(PreparedStatement {
            sql: span.sql,
            line,
        });
    }
    let opted_out = has_no_transaction_header(&migration.sql);
    let transactional = match (outside, inside) {
        _ if opted_out => false,
        (None, _) => true,
        (Some(_), None) => false,
        (Some((line, what)), Some(other_line)) => {
            return Err(MigrateError::MixedTransactional {
                database: database.to_owned(),
                script: migration.script.clone(),
                line,
                what,
                other_line,
            });
        }
    };
    Ok(Prepared {
        migration,
        statements,
        transactional,
    })
}

/// Whether the comments before a file's first statement say `flowhost:no-transaction`.
pub fn has_no_transaction_header(sql: &str) -> bool {
    let (skipped, _, _) = leading_words(sql);
    sql[..skipped]
        .to_ascii_lowercase()
        .split(['\n', '\r'])
        .any(|line| {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            compact.contains(NO_TRANSACTION_HEADER)
        })
}

/// The byte length of leading whitespace and comments, and the first two words after them
/// (uppercased). `None` when the text holds nothing but comments.
fn leading_words(sql: &str) -> (usize, Option<String>, Option<String>) {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if b[i..].starts_with(b"/*") {
            i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            break;
        }
    }
    let skipped = i;
    let mut words = sql[i..]
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase);
    if i >= b.len() {
        return (skipped, None, None);
    }
    let first = words.next();
    let first = first.filter(|_| b[i].is_ascii_alphabetic());
    match first {
        Some(first) => (skipped, Some(first), words.next()),
        None => (skipped, Some(String::new()), None),
    }
}

/// The transaction-control keyword a statement starts with, if it is one.
fn transaction_control(first: &str, second: Option<&str>, dialect: Backend) -> Option<String> {
    let hit = match dialect {
        Backend::SqlServer => match first {
            "BEGIN" => matches!(second, Some("TRAN" | "TRANSACTION" | "DISTRIBUTED")),
            "COMMIT" | "SAVE" => true,
            "ROLLBACK" => true,
            _ => false,
        },
        _ => match first {
            "BEGIN" | "COMMIT" | "END" | "ABORT" | "START" => true,
            // Savepoints inside the migration's transaction are harmless.
            "ROLLBACK" => second != Some("TO"),
            _ => false,
        },
    };
    hit.then(|| match second {
        Some(s) if first == "START" || (first == "BEGIN" && dialect == Backend::SqlServer) => {
            format!("{first} {s}")
        }
        _ => first.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::checksum::Checksum;
    use crate::migrate::discover::{MigrationKind, MigrationName};
    use crate::migrate::version::Version;

    fn migration(sql: &str) -> Migration {
        Migration {
            name: MigrationName {
                kind: MigrationKind::Versioned(Version::parse("1").unwrap()),
                description: "t".into(),
            },
            script: "V1__t.sql".into(),
            path: "V1__t.sql".into(),
            raw: sql.as_bytes().to_vec(),
            sql: sql.into(),
            checksum: Checksum::of(sql.as_bytes()),
        }
    }

    #[test]
    fn statement_lines_point_at_the_first_token() {
        let m = migration(
            "-- header\nCREATE TABLE a (id int);\n\n/* note */\n  INSERT INTO a VALUES (1);\n-- trailing comment only\n",
        );
        let p = prepare("db", &m, Backend::Sqlite, None).unwrap();
        let lines: Vec<usize> = p.statements.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 5]);
    }

    #[test]
    fn scripts_that_control_transactions_are_refused() {
        for (sql, keyword, line) in [
            ("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;", "BEGIN", 1),
            ("CREATE TABLE a (id int);\n\ncommit;", "COMMIT", 3),
            (
                "CREATE TABLE a (id int);\nSTART TRANSACTION;",
                "START TRANSACTION",
                2,
            ),
            ("CREATE TABLE a (id int);\nEND;", "END", 2),
        ] {
            let err = prepare("db", &migration(sql), Backend::Postgres, None).unwrap_err();
            match &err {
                MigrateError::TransactionControl {
                    keyword: k,
                    line: l,
                    ..
                } => {
                    assert_eq!((k.as_str(), *l), (keyword, line), "{sql}");
                }
                other => panic!("{sql}: {other}"),
            }
        }
        let ok = "SAVEPOINT s;\nINSERT INTO a VALUES (1);\nROLLBACK TO SAVEPOINT s;\nRELEASE s;";
        assert_eq!(
            prepare("db", &migration(ok), Backend::Postgres, None)
                .unwrap()
                .statements
                .len(),
            4
        );
        // A T-SQL BEGIN ... END block is not transaction control; BEGIN TRAN is.
        assert!(transaction_control("BEGIN", Some("SELECT"), Backend::SqlServer).is_none());
        assert_eq!(
            transaction_control("BEGIN", Some("TRAN"), Backend::SqlServer).as_deref(),
            Some("BEGIN TRAN")
        );
    }

    #[test]
    fn leading_words_skip_comments() {
        assert_eq!(
            leading_words("/* x */ -- y\n create table"),
            (14, Some("CREATE".into()), Some("TABLE".into()))
        );
        assert_eq!(leading_words("-- only\n").1, None);
        assert_eq!(leading_words("(SELECT 1)").1, Some(String::new()));
    }

    #[test]
    fn statements_that_cannot_run_in_a_transaction_decide_the_mode() {
        let only = "-- build without locking writers\nCREATE INDEX CONCURRENTLY i ON t (x);";
        let m = migration(only);
        let p = prepare("db", &m, Backend::Postgres, None).unwrap();
        assert!(!p.transactional);

        let mixed = "CREATE TABLE t (x int);\n\nCREATE INDEX CONCURRENTLY i ON t (x);";
        let err = prepare("db", &migration(mixed), Backend::Postgres, None).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                MigrateError::MixedTransactional {
                    line: 3,
                    other_line: 1,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains(NO_TRANSACTION_HEADER), "{text}");

        let opted = format!("-- {NO_TRANSACTION_HEADER}\n{mixed}");
        let m = migration(&opted);
        let p = prepare("db", &m, Backend::Postgres, None).unwrap();
        assert!(!p.transactional);
        assert_eq!(p.statements.len(), 2);

        let plain = "CREATE TABLE t (x int);\nCREATE INDEX i ON t (x);";
        assert!(
            prepare("db", &migration(plain), Backend::Postgres, None)
                .unwrap()
                .transactional
        );
    }

    #[test]
    fn the_header_counts_only_before_the_first_statement() {
        assert!(has_no_transaction_header(
            "/* x */\n--  FlowHost: No-Transaction\nSELECT 1;"
        ));
        assert!(!has_no_transaction_header(
            "SELECT 1;\n-- flowhost:no-transaction\n"
        ));
        assert!(!has_no_transaction_header(
            "SELECT '-- flowhost:no-transaction';"
        ));
    }

    #[test]
    fn placeholders_are_replaced_before_splitting() {
        let m = migration("CREATE TABLE ${schema}.t (id int);\nSELECT '${flowhost:filename}';");
        let p = Placeholders::new([("schema".to_owned(), "etl".to_owned())]);
        let prepared = prepare("db", &m, Backend::Postgres, Some(&p)).unwrap();
        assert_eq!(
            prepared.statements[0].sql.trim().trim_end_matches(';'),
            "CREATE TABLE etl.t (id int)"
        );
        assert!(prepared.statements[1].sql.contains("'V1__t.sql'"));
        // Off: the text runs as written.
        let raw = prepare("db", &m, Backend::Postgres, None).unwrap();
        assert!(raw.statements[0].sql.contains("${schema}"));
        let unknown = migration("SELECT '${nope}';");
        assert!(matches!(
            prepare("db", &unknown, Backend::Postgres, Some(&p)),
            Err(MigrateError::UnknownPlaceholder { .. })
        ));
    }
}
