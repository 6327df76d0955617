//! Statement boundaries: splitting migration scripts, and (through `statement_ranges`)
//! deciding whether a guest call holds more than one statement.
//!
//! A top-level `;` ends a statement unless it sits inside a body that the server parses as
//! part of one statement: the `BEGIN ... END` of a SQLite/Postgres trigger or a Postgres
//! `BEGIN ATOMIC` function, or T-SQL `BEGIN ... END` blocks. SQL Server scripts are instead
//! cut into batches at `GO` lines, the way sqlcmd and SSMS do, because T-SQL procedure and
//! trigger bodies run to the end of their batch and cannot be split on `;` at all.

use std::ops::Range;

use super::lexer::{Token, TokenKind, is_keyword, line_at, tokenize};
use super::{Backend, SqlError};

/// One statement (or, for SQL Server, one `GO` batch) of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSpan {
    /// Statement text from its first to its last non-comment token, without the
    /// terminating `;` (SQL Server batches are kept whole, including any final `;`).
    pub sql: String,
    /// 1-based line of the statement's first non-comment token.
    pub line: usize,
    /// Byte offset of that token in the script.
    pub offset: usize,
}

/// Upper bound for `GO n`: each repetition is a copy of the batch text.
const MAX_GO_COUNT: u64 = 10_000;

/// Splits `script` into statements (SQL Server: `GO` batches), dropping empty and
/// comment-only pieces.
pub fn split_statements(script: &str, dialect: Backend) -> Result<Vec<StatementSpan>, SqlError> {
    let toks = tokenize(script, dialect)?;
    let mut lines = LineCounter::default();
    let mut out = Vec::new();
    let mut emit = |range: Range<usize>, count: u64| {
        let (start, end) = (toks[range.start].start, toks[range.end - 1].end);
        let span = StatementSpan {
            sql: script[start..end].to_owned(),
            line: lines.line_at(script, start),
            offset: start,
        };
        for _ in 1..count {
            out.push(span.clone());
        }
        out.push(span);
    };
    if dialect == Backend::SqlServer {
        for (range, count) in go_batches(script, &toks)? {
            emit(range, count);
        }
    } else {
        for range in statement_ranges(script, &toks, dialect) {
            emit(range, 1);
        }
    }
    Ok(out)
}

/// Token-index ranges of the non-empty statements in `toks` (with or without trivia), each
/// from its first to its last significant token, excluding the terminating `;`.
pub(crate) fn statement_ranges(src: &str, toks: &[Token], dialect: Backend) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut first = None;
    let mut last = 0;
    let mut blocks = BlockTracker::new(dialect);
    for (i, tok) in toks.iter().enumerate() {
        if tok.is_trivia() {
            continue;
        }
        blocks.feed(src, tok);
        if tok.kind == TokenKind::Semicolon && blocks.at_top_level() {
            if let Some(f) = first.take() {
                out.push(f..last + 1);
            }
            blocks = BlockTracker::new(dialect);
            continue;
        }
        first.get_or_insert(i);
        last = i;
    }
    if let Some(f) = first {
        out.push(f..last + 1);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Still reading the leading `CREATE [OR REPLACE] ...` words.
    Undecided,
    /// An ordinary statement.
    Plain,
    /// Postgres/SQLite routine or trigger, which may carry a `BEGIN ... END` body.
    Body,
    /// T-SQL procedure, function, trigger or view: the rest of the text is its body.
    WholeText,
}

/// Tracks the nesting inside which a `;` does not end the statement: parentheses (Postgres
/// `CREATE RULE ... DO (a; b)`) and `BEGIN`/`CASE` ... `END`.
struct BlockTracker {
    dialect: Backend,
    mode: Mode,
    leading_words: usize,
    parens: usize,
    depth: usize,
    /// `BEGIN`/`END` whose meaning depends on the next token (`BEGIN TRAN`, `END CONVERSATION`).
    pending: Option<Pending>,
}

#[derive(Clone, Copy)]
enum Pending {
    Begin,
    End,
}

impl BlockTracker {
    fn new(dialect: Backend) -> Self {
        Self {
            dialect,
            mode: Mode::Undecided,
            leading_words: 0,
            parens: 0,
            depth: 0,
            pending: None,
        }
    }

    fn at_top_level(&self) -> bool {
        self.depth == 0 && self.parens == 0 && self.mode != Mode::WholeText
    }

    fn feed(&mut self, src: &str, tok: &Token) {
        let word = (tok.kind == TokenKind::Word).then(|| tok.text(src));
        let is = |kws: &[&str]| word.is_some_and(|w| is_keyword(w, kws));
        // An unbalanced `(` swallows the rest of the text, which the server then rejects
        // whole, so it can never hide a second statement.
        match tok.kind {
            TokenKind::LParen => self.parens += 1,
            TokenKind::RParen => self.parens = self.parens.saturating_sub(1),
            _ => {}
        }

        match self.pending.take() {
            Some(Pending::Begin)
                if !is(&[
                    "TRAN",
                    "TRANSACTION",
                    "DISTRIBUTED",
                    "DIALOG",
                    "CONVERSATION",
                ]) =>
            {
                self.depth += 1;
            }
            Some(Pending::End) if !is(&["CONVERSATION"]) => {
                self.depth = self.depth.saturating_sub(1)
            }
            _ => {}
        }

        if self.mode == Mode::Undecided {
            self.mode = self.decide_mode(word);
            self.leading_words += 1;
        }
        // T-SQL has blocks in any statement; elsewhere they only occur in routine bodies.
        let tracking = match self.dialect {
            Backend::SqlServer => self.mode != Mode::WholeText,
            _ => self.mode == Mode::Body,
        };
        if !tracking {
            return;
        }
        // A block's BEGIN never sits inside parentheses; there it is a name (a parameter
        // called `begin`), and counting it would hide every later statement in this one.
        let block_begin = self.parens == 0 || self.dialect == Backend::SqlServer;
        if is(&["BEGIN"]) && block_begin {
            self.pending = Some(Pending::Begin);
        } else if is(&["CASE"]) {
            self.depth += 1;
        } else if is(&["END"]) {
            self.pending = Some(Pending::End);
        }
    }

    fn decide_mode(&self, word: Option<&str>) -> Mode {
        let Some(w) = word else { return Mode::Plain };
        let is = |kws: &[&str]| is_keyword(w, kws);
        let ms = self.dialect == Backend::SqlServer;
        if self.leading_words == 0 {
            let opener = if ms {
                is(&["CREATE", "ALTER"])
            } else {
                is(&["CREATE"])
            };
            return if opener { Mode::Undecided } else { Mode::Plain };
        }
        if ms {
            if is(&["OR", "ALTER"]) {
                Mode::Undecided
            } else if is(&["PROC", "PROCEDURE", "FUNCTION", "TRIGGER", "VIEW"]) {
                Mode::WholeText
            } else {
                Mode::Plain
            }
        } else if is(&["OR", "REPLACE", "TEMP", "TEMPORARY", "CONSTRAINT"]) {
            Mode::Undecided
        } else if is(&["TRIGGER", "FUNCTION", "PROCEDURE"]) {
            Mode::Body
        } else {
            Mode::Plain
        }
    }
}

/// Token ranges of the non-empty `GO`-separated batches, with their repeat counts.
fn go_batches(src: &str, toks: &[Token]) -> Result<Vec<(Range<usize>, u64)>, SqlError> {
    let mut out = Vec::new();
    let mut first = None;
    let mut last = 0;
    let mut i = 0;
    while i < toks.len() {
        if toks[i].is_word(src, "GO")
            && starts_line(src, toks, i)
            && let Some((count, next)) = go_line(src, toks, i)?
        {
            if let Some(f) = first.take() {
                out.push((f..last + 1, count));
            }
            i = next;
            continue;
        }
        if !toks[i].is_trivia() {
            first.get_or_insert(i);
            last = i;
        }
        i += 1;
    }
    if let Some(f) = first {
        out.push((f..last + 1, 1));
    }
    Ok(out)
}

fn is_blank(src: &str, tok: Option<&Token>, with_newline: bool) -> bool {
    tok.is_some_and(|t| {
        t.kind == TokenKind::Whitespace && t.text(src).contains('\n') == with_newline
    })
}

/// Whether only spaces precede token `i` on its line. Line comments stop before their
/// newline, so the token before a line start is always whitespace holding a newline.
fn starts_line(src: &str, toks: &[Token], i: usize) -> bool {
    i == 0 || is_blank(src, toks.get(i - 1), true) || (i == 1 && is_blank(src, toks.first(), false))
}

/// If the `GO` at `i` is followed only by an optional count and an optional line comment
/// up to the end of its line, its repeat count and the index of the next token.
fn go_line(src: &str, toks: &[Token], i: usize) -> Result<Option<(u64, usize)>, SqlError> {
    let mut j = i + 1;
    if is_blank(src, toks.get(j), false) {
        j += 1;
    }
    let mut count = None;
    if let Some(t) = toks.get(j)
        && t.kind == TokenKind::Number
        && t.text(src).bytes().all(|b| b.is_ascii_digit())
    {
        count = Some(t.text(src).parse::<u64>().unwrap_or(u64::MAX));
        j += 1;
        if is_blank(src, toks.get(j), false) {
            j += 1;
        }
    }
    if toks
        .get(j)
        .is_some_and(|t| t.kind == TokenKind::LineComment)
    {
        j += 1;
    }
    if j < toks.len() && !is_blank(src, toks.get(j), true) {
        return Ok(None);
    }
    match count {
        None => Ok(Some((1, j))),
        Some(n) if (1..=MAX_GO_COUNT).contains(&n) => Ok(Some((n, j))),
        Some(_) => Err(SqlError::InvalidBatchSeparator {
            line: line_at(src, toks[i].start),
            reason: "the repeat count after GO must be between 1 and 10000",
        }),
    }
}

/// Converts increasing byte offsets to line numbers in one pass over the text.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, src: &str, offset: usize) -> usize {
        let skipped = &src.as_bytes()[self.offset..offset];
        self.newlines += skipped.iter().filter(|&&b| b == b'\n').count();
        self.offset = offset;
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Backend::{Postgres, SqlServer, Sqlite};

    fn split(script: &str, d: Backend) -> Vec<(String, usize)> {
        split_statements(script, d)
            .unwrap()
            .into_iter()
            .map(|s| {
                assert_eq!(&script[s.offset..s.offset + s.sql.len()], s.sql);
                (s.sql, s.line)
            })
            .collect()
    }

    fn owned(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(s, l)| (s.to_string(), *l)).collect()
    }

    #[test]
    fn simple_statements_with_exact_lines() {
        let script = "create table a (x int);\n\n\
                      insert into a values (1);  insert into a values (2)\n;\n\
                      -- trailing comment\n";
        assert_eq!(
            split(script, Postgres),
            owned(&[
                ("create table a (x int)", 1),
                ("insert into a values (1)", 3),
                ("insert into a values (2)", 3),
            ])
        );
    }

    #[test]
    fn leading_comments_are_not_part_of_the_statement() {
        let script = "-- header; with semicolon\n/* block;\n comment */\n  select 1 -- trailing;\n\
                      ;\n\n/* only a comment */;\n;;\n";
        assert_eq!(split(script, Sqlite), owned(&[("select 1", 4)]));
        assert!(split("-- nothing\n/* here */ ;", Postgres).is_empty());
        assert!(split("", SqlServer).is_empty());
    }

    #[test]
    fn strings_and_quoted_identifiers_hide_semicolons() {
        let script = "insert into t values ('a;b', \"c;d\");\nselect E'x\\';y' ;\nselect 2";
        assert_eq!(
            split(script, Postgres),
            owned(&[
                ("insert into t values ('a;b', \"c;d\")", 1),
                ("select E'x\\';y'", 2),
                ("select 2", 3),
            ])
        );
    }

    #[test]
    fn dollar_quoted_function_bodies() {
        let script = "\
CREATE FUNCTION f() RETURNS trigger AS $$
BEGIN
  UPDATE t SET n = n + 1;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION g() RETURNS int AS $body$ select 1; $$ ; $$ $body$ LANGUAGE sql;
SELECT 3;";
        let got = split(script, Postgres);
        assert_eq!(got.len(), 3);
        assert!(
            got[0].0.starts_with("CREATE FUNCTION f()") && got[0].0.ends_with("LANGUAGE plpgsql")
        );
        assert_eq!(got[0].1, 1);
        assert_eq!(
            got[1],
            (
                "CREATE FUNCTION g() RETURNS int AS $body$ select 1; $$ ; $$ $body$ LANGUAGE sql"
                    .into(),
                8
            )
        );
        assert_eq!(got[2], ("SELECT 3".into(), 9));
    }

    #[test]
    fn sqlite_trigger_bodies_with_case() {
        let script = "\
CREATE TABLE t (a, b);
CREATE TRIGGER trg AFTER INSERT ON t
WHEN CASE WHEN new.a > 0 THEN 1 ELSE 0 END
BEGIN
  UPDATE t SET b = CASE WHEN new.a > 1 THEN 'big;' ELSE 'small' END WHERE rowid = new.rowid;
  INSERT INTO log VALUES (new.a);
END;
CREATE TEMP TRIGGER t2 BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no'); END;
INSERT INTO t VALUES (1, 2);";
        let got = split(script, Sqlite);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!((got[1].1, got[2].1, got[3].1), (2, 8, 9));
        assert!(got[1].0.ends_with("INSERT INTO log VALUES (new.a);\nEND"));
        assert_eq!(
            got[2].0,
            "CREATE TEMP TRIGGER t2 BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no'); END"
        );
    }

    #[test]
    fn postgres_atomic_bodies_and_plain_begin() {
        let script = "BEGIN;\nCREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\n\
                      BEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 END;\n  SELECT 2;\n\
                      END;\nCOMMIT;";
        let got = split(script, Postgres);
        assert_eq!(got.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2, 7]);
        assert_eq!(got[0].0, "BEGIN");
        assert!(got[1].0.ends_with("SELECT 2;\nEND"));
        // Trigger without a body still ends at its `;`.
        let got = split(
            "CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION f();\nSELECT 1;",
            Postgres,
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_parameter_named_begin_is_not_a_block() {
        let sql = "CREATE FUNCTION in_period(begin date, finish date, d date) RETURNS boolean\n\
                   LANGUAGE sql IMMUTABLE AS $$ SELECT d BETWEEN begin AND finish $$;\n\
                   CREATE TABLE periods (id int PRIMARY KEY);\nCOMMIT;\n";
        let lines: Vec<usize> = split(sql, Backend::Postgres).iter().map(|s| s.1).collect();
        assert_eq!(lines, [1, 3, 4]);
        // A BEGIN ATOMIC body still holds its semicolons.
        let atomic = "CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT (begin) + 1;\nEND;\nSELECT 2;";
        let lines: Vec<usize> = split(atomic, Backend::Postgres)
            .iter()
            .map(|s| s.1)
            .collect();
        assert_eq!(lines, [1, 5]);
    }

    #[test]
    fn semicolons_inside_parentheses() {
        let script = "CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM a; NOTIFY t);\n\
                      SELECT 1;";
        let got = split(script, Postgres);
        assert_eq!(got.len(), 2);
        assert!(got[0].0.ends_with("NOTIFY t)"));
        assert_eq!(split("select 1); select 2", Sqlite).len(), 2);
    }

    #[test]
    fn unterminated_string_reports_its_line() {
        let err = split_statements("select 1;\nselect 'oops;\n", Postgres).unwrap_err();
        assert_eq!(
            err,
            SqlError::Unterminated {
                what: "string literal",
                line: 2
            }
        );
    }

    #[test]
    fn go_batches_keep_procedures_whole() {
        let script = "\
CREATE TABLE dbo.t (id int);
GO
-- the procedure
CREATE PROCEDURE dbo.p AS
BEGIN
  SET NOCOUNT ON;
  SELECT 'GO' AS x; -- not a separator
  /*
GO
  */
  INSERT INTO dbo.t VALUES (1);
END
go
CREATE TRIGGER dbo.tr ON dbo.t AFTER INSERT AS
  UPDATE dbo.t SET id = id;
  DELETE FROM dbo.t WHERE id < 0;
   GO   
MERGE dbo.t AS t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE;
";
        let got = split(script, SqlServer);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], ("CREATE TABLE dbo.t (id int);".into(), 1));
        assert_eq!(got[1].1, 4);
        assert!(got[1].0.starts_with("CREATE PROCEDURE") && got[1].0.ends_with("END"));
        assert!(got[1].0.contains("\nGO\n"));
        assert_eq!(got[2].1, 14);
        assert!(got[2].0.ends_with("id < 0;"));
        // The final `;` of a batch stays: T-SQL requires it after MERGE.
        assert_eq!(got[3].1, 18);
        assert!(got[3].0.ends_with("THEN DELETE;"));
    }

    #[test]
    fn go_line_variants() {
        let script = "select 1\nGO 2\nselect 2\nGo -- done\nselect 3\ngo\n\nGO\n";
        assert_eq!(
            split(script, SqlServer),
            owned(&[
                ("select 1", 1),
                ("select 1", 1),
                ("select 2", 3),
                ("select 3", 5)
            ])
        );
        // `GO` that is not alone on its line is ordinary text.
        let script = "select 1 go\nselect go\nGO x\n  GO\r\nselect [GO]\nGO";
        let got = split(script, SqlServer);
        assert_eq!(
            got,
            owned(&[("select 1 go\nselect go\nGO x", 1), ("select [GO]", 5)])
        );
        assert_eq!(split("GO\nselect 1", SqlServer), owned(&[("select 1", 2)]));
        // Postgres has no GO.
        assert_eq!(split("select 1\nGO\n", Postgres).len(), 1);
    }

    #[test]
    fn go_count_out_of_range() {
        for script in ["select 1\nGO 0\n", "select 1\n\ngo 10001"] {
            let err = split_statements(script, SqlServer).unwrap_err();
            assert!(
                matches!(err, SqlError::InvalidBatchSeparator { .. }),
                "{err}"
            );
        }
        let err =
            split_statements("select 1\n\ngo 99999999999999999999999", SqlServer).unwrap_err();
        assert!(matches!(
            err,
            SqlError::InvalidBatchSeparator { line: 3, .. }
        ));
    }

    #[test]
    fn statement_ranges_tsql_blocks() {
        let block =
            "BEGIN TRY SELECT 1; END TRY BEGIN CATCH SELECT CASE WHEN 1=1 THEN 2 END; END CATCH";
        let sql = &format!("{block}; BEGIN TRAN; COMMIT");
        let toks = tokenize(sql, SqlServer).unwrap();
        let texts: Vec<&str> = statement_ranges(sql, &toks, SqlServer)
            .into_iter()
            .map(|r| &sql[toks[r.start].start..toks[r.end - 1].end])
            .collect();
        assert_eq!(texts, [block, "BEGIN TRAN", "COMMIT",]);
        let sql = "CREATE OR ALTER PROCEDURE p AS SELECT 1; SELECT 2;";
        let toks = tokenize(sql, SqlServer).unwrap();
        assert_eq!(statement_ranges(sql, &toks, SqlServer).len(), 1);
    }

    #[test]
    fn lines_with_crlf_and_offsets() {
        let script = "select 1;\r\n\r\n  select 2;";
        let got = split_statements(script, Sqlite).unwrap();
        assert_eq!((got[1].line, got[1].offset), (3, 15));
    }
}
