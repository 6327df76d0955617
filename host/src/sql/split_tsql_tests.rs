//! `split_statements` on SQL Server scripts: `GO` batch separators the way sqlcmd and SSMS
//! read them, and routine bodies that must stay in one batch. Complements the tests in
//! `split.rs`.

use super::{Backend, SqlError, split_statements};

/// The batches of `script`, as (text, line), checking each span's offset against its text.
fn batches(script: &str) -> Vec<(String, usize)> {
    split_statements(script, Backend::SqlServer)
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
fn go_in_any_case_and_indented() {
    let script = "select 1\ngo\nselect 2\nGo\nselect 3\ngO\nselect 4\n\t GO \t\nselect 5";
    assert_eq!(
        batches(script),
        owned(&[
            ("select 1", 1),
            ("select 2", 3),
            ("select 3", 5),
            ("select 4", 7),
            ("select 5", 9),
        ])
    );
}

#[test]
fn go_with_trailing_comment() {
    let script = "select 1\nGO -- first batch\nselect 2\nGO--tight\nselect 3\nGO 2 -- twice\n\
                  select 4\n  go   -- indented, spaced\n";
    assert_eq!(
        batches(script),
        owned(&[
            ("select 1", 1),
            ("select 2", 3),
            ("select 3", 5),
            ("select 3", 5),
            ("select 4", 7),
        ])
    );
}

#[test]
fn go_count_repeats_the_batch() {
    let script = "insert into dbo.t default values;\nGO 3\nselect count(*) from dbo.t\nGO 1\n";
    let spans = split_statements(script, Backend::SqlServer).unwrap();
    assert_eq!(spans.len(), 4);
    for s in &spans[..3] {
        assert_eq!(
            (s.sql.as_str(), s.line, s.offset),
            ("insert into dbo.t default values;", 1, 0)
        );
    }
    assert_eq!(
        (spans[3].sql.as_str(), spans[3].line),
        ("select count(*) from dbo.t", 3)
    );
    // A count after an empty batch repeats nothing.
    assert!(batches("GO 5\n-- nothing\nGO 2").is_empty());
}

#[test]
fn last_batch_needs_no_go() {
    let script = "create table dbo.t (id int)\nGO\ninsert into dbo.t values (1);\n\
                  insert into dbo.t values (2);\n";
    assert_eq!(
        batches(script),
        owned(&[
            ("create table dbo.t (id int)", 1),
            // Batches are kept whole, semicolons included.
            (
                "insert into dbo.t values (1);\ninsert into dbo.t values (2);",
                3
            ),
        ])
    );
    // A script without any GO is one batch.
    assert_eq!(
        batches("select 1;\nselect 2;"),
        owned(&[("select 1;\nselect 2;", 1)])
    );
}

#[test]
fn empty_and_comment_only_batches_are_dropped() {
    assert!(batches("").is_empty());
    assert!(batches("GO\nGO\n").is_empty());
    assert!(batches("-- header\nGO\n/* nothing\nhere */\nGO\n\n").is_empty());
    assert_eq!(
        batches("GO\n-- only a comment\nGO\nselect 1\nGO\n/* trailing */\n"),
        owned(&[("select 1", 4)])
    );
}

#[test]
fn go_inside_strings_comments_and_identifiers_does_not_split() {
    let script = "\
SELECT 'line one
GO
line three' AS a, N'it''s
GO' AS b
-- GO
/* outer /* inner */
GO
*/
SELECT 1 AS [x
GO
y], 2 AS \"p
GO
q\"
GOTO done
GOAL:
done:
SELECT @GO = 1
GO select 2
x GO
GO";
    let got = batches(script);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0],
        (script[..script.len() - "\nGO".len()].to_owned(), 1)
    );
}

#[test]
fn go_line_splits_even_inside_a_block() {
    // Like sqlcmd and SSMS, a GO line ends the batch wherever it is: the server then rejects
    // the unfinished procedure, as it would from those tools.
    let script = "CREATE PROCEDURE dbo.p AS\nBEGIN\n  SELECT 1;\nGO\n  SELECT 2;\nEND\n";
    assert_eq!(
        batches(script),
        owned(&[
            ("CREATE PROCEDURE dbo.p AS\nBEGIN\n  SELECT 1;", 1),
            ("SELECT 2;\nEND", 5),
        ])
    );
}

const SETTINGS: &str = "SET ANSI_NULLS ON;\nSET QUOTED_IDENTIFIER ON;";

const PROCEDURE: &str = "\
CREATE OR ALTER PROCEDURE dbo.transfer
    @from int, @to int, @amount money
AS
BEGIN
    SET NOCOUNT ON;
    BEGIN TRY
        BEGIN TRANSACTION;
        IF @amount <= 0
        BEGIN
            RAISERROR('amount must be positive; got %d', 16, 1, @amount);
            RETURN;
        END;
        UPDATE dbo.account SET balance = balance - @amount WHERE id = @from;
        UPDATE dbo.account SET balance = balance + @amount WHERE id = @to;
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        BEGIN TRY
            INSERT INTO dbo.errors (msg) VALUES (ERROR_MESSAGE());
        END TRY
        BEGIN CATCH
            -- ignore logging failures; the original error matters
        END CATCH;
        THROW;
    END CATCH
END";

const FUNCTION: &str = "\
CREATE FUNCTION dbo.clamp (@x int, @lo int, @hi int)
RETURNS int
AS
BEGIN
    DECLARE @r int = @x;
    IF @r < @lo SET @r = @lo;
    ELSE IF @r > @hi
    BEGIN
        SET @r = @hi;
    END
    RETURN @r;
END;";

const TRIGGER: &str = "\
CREATE TRIGGER dbo.account_audit ON dbo.account
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    INSERT INTO dbo.audit (id, at) SELECT i.id, SYSUTCDATETIME() FROM inserted AS i;
    IF UPDATE(balance) BEGIN PRINT 'balance changed; audited'; END
END";

#[test]
fn routine_bodies_stay_whole() {
    let script = format!("{SETTINGS}\nGO\n{PROCEDURE}\nGO\n{FUNCTION}\nGO\n{TRIGGER}\nGO\n");
    assert_eq!(
        batches(&script),
        owned(&[(SETTINGS, 1), (PROCEDURE, 4), (FUNCTION, 32), (TRIGGER, 45)])
    );
}

#[test]
fn routines_without_semicolons_or_begin_end() {
    let script = "\
CREATE VIEW dbo.big_accounts AS
SELECT id, balance FROM dbo.account WHERE balance > 1000
GO
CREATE PROC dbo.touch @id int AS
UPDATE dbo.account SET touched = SYSUTCDATETIME() WHERE id = @id
SELECT @@ROWCOUNT AS touched
GO
CREATE FUNCTION dbo.accounts_over (@min money) RETURNS TABLE AS RETURN
    (SELECT id FROM dbo.account WHERE balance > @min);
GO";
    let got = batches(script);
    assert_eq!(
        got.iter().map(|b| b.1).collect::<Vec<_>>(),
        [1, 4, 8],
        "{got:?}"
    );
    assert!(got[1].0.ends_with("SELECT @@ROWCOUNT AS touched"));
    assert!(got[2].0.ends_with("balance > @min);"));
}

#[test]
fn if_blocks_and_loops_in_plain_batches() {
    let first = "\
IF OBJECT_ID(N'dbo.t', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.t (id int NOT NULL);
    INSERT INTO dbo.t VALUES (1);
END
ELSE
BEGIN
    PRINT 'exists; skipping';
END;";
    let second = "\
DECLARE @n int = 0;
WHILE @n < 3
BEGIN
    SET @n += 1;
    IF @n = 2 CONTINUE;
    INSERT INTO dbo.t VALUES (@n);
END
SELECT CASE WHEN @n > 2 THEN 'done; ok' ELSE 'short' END AS state;";
    let script = format!("{first}\nGO\n\n{second}\n");
    assert_eq!(batches(&script), owned(&[(first, 1), (second, 12)]));
}

#[test]
fn batch_lines_skip_leading_comments_and_count_crlf() {
    let script = "-- header\r\n\r\n/* about\r\n   the table */\r\nCREATE TABLE dbo.t (id int);\r\n\
                  GO\r\n\r\n-- seed\r\nINSERT INTO dbo.t VALUES (1);\r\nGO\r\n  \r\n\
                  /* a */ /* b */ SELECT 1\r\nGO 2\r\n";
    assert_eq!(
        batches(script),
        owned(&[
            ("CREATE TABLE dbo.t (id int);", 5),
            ("INSERT INTO dbo.t VALUES (1);", 9),
            ("SELECT 1", 12),
            ("SELECT 1", 12),
        ])
    );
}

#[test]
fn unterminated_constructs_report_their_line() {
    for (script, what, line) in [
        ("select 1\nGO\nselect 'oops\nGO\n", "string literal", 3),
        (
            "select 1\n/* never closed\nGO\nselect 2",
            "block comment",
            2,
        ),
        ("select 1\nGO\n\nselect [col\nGO", "bracketed identifier", 4),
        ("select \"col\nGO", "quoted identifier", 1),
    ] {
        assert_eq!(
            split_statements(script, Backend::SqlServer).unwrap_err(),
            SqlError::Unterminated { what, line },
            "{script}"
        );
    }
}
