//! The T-SQL classifier against an independent T-SQL parser (sqlparser's MsSql dialect).
//!
//! No parser of SQL Server's own exists in Rust, so the read-only check for SQL Server rests
//! on the host's lexer. Here thousands of generated statements (reads, writes, DDL, session and
//! transaction control; joined without semicolons, with comments, strings and brackets in odd
//! places) go to both. The property that matters is one-sided: whenever the other parser sees
//! more than one statement, or anything but a plain read, the classifier must not call the text
//! a read. Where only the classifier refuses (it is stricter on purpose: it ends `--` comments
//! at `\r` as SQL Server does, and refuses what it does not know) the count is printed.

use super::tsql_reference::{parse, sqlparser_sees_a_read};
use super::{Backend, StatementKind, classify};

const READS: &[&str] = &[
    "SELECT 1",
    "SELECT a, b FROM t WHERE c = @p1",
    "SELECT TOP 5 * FROM [dbo].[t] ORDER BY a DESC",
    "SELECT N'it''s; DELETE FROM t' AS s",
    "SELECT [select], [delete] FROM [from] WITH (NOLOCK)",
    "SELECT a FROM t WHERE b IN (SELECT b FROM u)",
    "WITH c AS (SELECT 1 AS a) SELECT a FROM c",
    "SELECT 1 UNION ALL SELECT 2",
    "SELECT COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1",
    "SELECT a FROM t ORDER BY a OFFSET 10 ROWS FETCH NEXT 5 ROWS ONLY",
    "SELECT \"quoted \"\" name\" FROM t",
    "SELECT '/* not a comment */' + '-- nor this'",
];

const NOT_READS: &[&str] = &[
    "INSERT INTO t (a) VALUES (1)",
    "INSERT INTO t SELECT a FROM u",
    "UPDATE t SET a = 1 WHERE b = 2",
    "DELETE FROM t WHERE a = 1",
    "DELETE t",
    "MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN UPDATE SET b = u.b;",
    "SELECT a INTO t2 FROM t",
    "SELECT a FROM t WITH (UPDLOCK)",
    "SELECT a FROM t WITH (XLOCK, ROWLOCK)",
    "CREATE TABLE t2 (a INT)",
    "DROP TABLE t",
    "ALTER TABLE t ADD b INT",
    "TRUNCATE TABLE t",
    "CREATE INDEX i ON t (a)",
    "GRANT SELECT ON t TO someone",
    "EXEC sp_who",
    "EXECUTE xp_cmdshell 'dir'",
    "BEGIN TRANSACTION",
    "BEGIN TRAN",
    "COMMIT",
    "ROLLBACK",
    "SET NOCOUNT ON",
    "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    "DECLARE @x INT",
    "USE master",
    "PRINT 'x'",
];

/// Text the classifier must treat as nothing: whitespace and comments, in every form T-SQL has.
const TRIVIA: &[&str] = &[
    " ",
    "\n",
    "\t",
    "\r\n",
    "/* c */",
    "/* a /* nested */ b */",
    "-- line\n",
    "--\r\n",
    "/**/",
];

/// A small deterministic generator (xorshift64*): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// `stmt` with trivia between some of its words and around it, and some words' case changed.
fn mangle(rng: &mut Rng, stmt: &str) -> String {
    let mut out = String::new();
    if rng.chance(40) {
        out.push_str(rng.pick(TRIVIA));
    }
    for (i, word) in stmt.split(' ').enumerate() {
        if i > 0 {
            out.push_str(if rng.chance(30) {
                rng.pick(TRIVIA)
            } else {
                " "
            });
        }
        // Only words without quotes: changing a string's case changes nothing that matters.
        if rng.chance(20) && !word.contains(['\'', '"', '[']) {
            out.push_str(&word.to_lowercase());
        } else {
            out.push_str(word);
        }
    }
    if rng.chance(30) {
        out.push(';');
    }
    if rng.chance(30) {
        out.push_str(rng.pick(TRIVIA));
    }
    out
}

/// One generated case: a statement, or two joined the ways T-SQL allows (with or without `;`).
fn case(rng: &mut Rng) -> String {
    let any = |rng: &mut Rng| -> &'static str {
        if rng.chance(50) {
            rng.pick(READS)
        } else {
            rng.pick(NOT_READS)
        }
    };
    let first = any(rng);
    let mut sql = mangle(rng, first);
    if rng.chance(40) {
        let joint = rng.pick(&[" ", "\n", "; ", ";", "/* x */", "-- x\n"]);
        sql.push_str(joint);
        let second = any(rng);
        sql.push_str(&mangle(rng, second));
    }
    sql
}

#[test]
fn the_tsql_classifier_never_calls_a_read_what_another_parser_sees_as_more() {
    let mut rng = Rng(0x5eed_f10e_0057_0001);
    let (mut compared, mut unparsed, mut agreed_reads, mut stricter) = (0, 0, 0, 0);
    let mut escapes = Vec::new();
    for _ in 0..20_000 {
        let sql = case(&mut rng);
        let Some(statements) = parse(&sql) else {
            unparsed += 1;
            continue;
        };
        if statements.is_empty() {
            continue;
        }
        compared += 1;
        let theirs_read = statements.len() == 1 && sqlparser_sees_a_read(&statements[0]);
        let ours_read = classify(&sql, Backend::SqlServer)
            .map(|c| c.kind == StatementKind::Read)
            .unwrap_or(false);
        match (ours_read, theirs_read) {
            (true, false) => escapes.push(sql),
            (true, true) => agreed_reads += 1,
            (false, true) => stricter += 1,
            (false, false) => {}
        }
    }
    println!(
        "T-SQL differential: {compared} compared, {unparsed} not parsed by sqlparser, \
         {agreed_reads} reads agreed, {stricter} refused only by flowhost"
    );
    assert!(
        escapes.is_empty(),
        "{} statement(s) the classifier calls a read but sqlparser sees as more, e.g. {:?}",
        escapes.len(),
        &escapes[..escapes.len().min(5)]
    );
    // The comparison is only worth something if both sides took part.
    assert!(compared > 10_000, "only {compared} cases compared");
    assert!(agreed_reads > 1_000, "only {agreed_reads} reads agreed");
}

#[test]
fn every_listed_read_is_a_read_to_both_and_every_other_statement_to_neither() {
    for sql in READS {
        let theirs = parse(sql).unwrap_or_else(|| panic!("sqlparser parses {sql}"));
        assert!(
            theirs.len() == 1 && sqlparser_sees_a_read(&theirs[0]),
            "sqlparser: {sql}"
        );
        assert!(
            classify(sql, Backend::SqlServer).unwrap().is_read(),
            "flowhost: {sql}"
        );
    }
    for sql in NOT_READS {
        if let Some(theirs) = parse(sql) {
            assert!(
                !(theirs.len() == 1 && sqlparser_sees_a_read(&theirs[0])),
                "sqlparser: {sql}"
            );
        }
        assert!(
            !classify(sql, Backend::SqlServer)
                .map(|c| c.is_read())
                .unwrap_or(false),
            "flowhost: {sql}"
        );
    }
}
