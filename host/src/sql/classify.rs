//! Decides what kind of statement a guest sent; the host's read-only enforcement relies on
//! it, so every uncertain case resolves to "not a read".
//!
//! Only tokens count: keywords inside strings, comments and quoted identifiers are inert.
//! This is a first line of defence, not a parser: a user-defined function can still write
//! from inside a `SELECT`, so read-only access should also be enforced by the database.

use super::lexer::{Token, TokenKind, is_keyword, tokens};
use super::split::statement_ranges;
use super::{Backend, SqlError};
use StatementKind::*;

/// Broad effect of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// Only reads data.
    Read,
    /// Modifies data or takes row locks.
    Write,
    /// Changes schema objects or permissions.
    Ddl,
    /// Starts, ends or configures a transaction.
    TransactionControl,
    /// Changes state that outlives the statement on a pooled session, or reaches outside
    /// the database.
    SessionControl,
    /// Anything else (procedures, maintenance, bulk copy, unrecognised statements).
    Other,
}

/// Result of classifying one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The statement's kind.
    pub kind: StatementKind,
    /// First keyword, uppercased (empty if the statement does not start with one).
    pub keyword: String,
    /// Why the statement is not a read; `None` for reads.
    pub reason: Option<String>,
}

impl Classified {
    /// Whether the statement only reads data.
    pub fn is_read(&self) -> bool {
        self.kind == Read
    }
}

/// Classifies the single statement in `sql`; a trailing `;` and comments are allowed.
pub fn classify(sql: &str, dialect: Backend) -> Result<Classified, SqlError> {
    let mut toks = Vec::with_capacity(sql.len() / 6 + 4);
    for tok in tokens(sql, dialect) {
        let tok = tok?;
        if !tok.is_trivia() {
            toks.push(tok);
        }
    }
    let mut ranges = statement_ranges(sql, &toks, dialect).into_iter();
    let range = ranges.next().ok_or(SqlError::Empty)?;
    if ranges.next().is_some() {
        return Err(SqlError::MultipleStatements);
    }
    let (src, toks) = (sql, &toks[range]);
    Stmt { src, toks, dialect }.classify()
}

type Verdict = (StatementKind, Option<String>);

fn verdict(kind: StatementKind, reason: impl Into<String>) -> Verdict {
    (kind, Some(reason.into()))
}

/// What calling a listed function does.
enum Effect {
    /// Changes the session or reaches outside the database: any statement becomes
    /// SessionControl.
    Session(&'static str),
    /// Modifies data: a read becomes a Write.
    Write,
}

/// Listed functions per dialect; a name ending in `*` matches as a prefix. Only the
/// session-level advisory locks are listed: `pg_advisory_xact_lock` ends with the transaction.
#[rustfmt::skip]
const PG_FUNCTIONS: &[(&[&str], Effect)] = &[
    (&["pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
       "pg_try_advisory_lock_shared"], Effect::Session("takes a session-level advisory lock")),
    (&["pg_advisory_unlock*"], Effect::Session("releases session-level advisory locks")),
    (&["set_config"], Effect::Session("changes a session setting")),
    (&["pg_notify"], Effect::Session("notifies other sessions")),
    (&["pg_terminate_backend", "pg_cancel_backend"],
     Effect::Session("interferes with another session")),
    (&["pg_reload_conf", "pg_rotate_logfile", "pg_promote"],
     Effect::Session("administers the server")),
    (&["pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_*", "lo_import"],
     Effect::Session("reads the database server's file system")),
    (&["pg_file_*", "lo_export"], Effect::Session("writes to the database server's file system")),
    (&["dblink*"], Effect::Session("runs SQL over another connection")),
    (&["query_to_xml*"], Effect::Session("runs SQL text that cannot be checked")),
    (&["nextval", "setval", "lo_create", "lo_creat", "lo_unlink", "lo_put", "lo_from_bytea"],
     Effect::Write),
];
#[rustfmt::skip]
const SQLITE_FUNCTIONS: &[(&[&str], Effect)] = &[
    (&["load_extension"], Effect::Session("loads native code into the database engine")),
];
#[rustfmt::skip]
const MSSQL_FUNCTIONS: &[(&[&str], Effect)] = &[
    (&["openrowset", "opendatasource", "openquery"],
     Effect::Session("reads external files or runs SQL on another server")),
];

/// Words that start a DML statement.
const DML: &[&str] = &["INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT"];

/// Reserved T-SQL words that can only begin a new statement. T-SQL needs no `;` between
/// statements, so one of these after a `SELECT` means a second statement is hiding there.
#[rustfmt::skip]
const MSSQL_STATEMENT_STARTERS: &[&str] = &[
    "ALTER", "BACKUP", "BEGIN", "BULK", "CHECKPOINT", "CLOSE", "COMMIT", "CREATE", "DBCC",
    "DEALLOCATE", "DECLARE", "DENY", "DROP", "GOTO", "GRANT", "IF", "KILL", "OPEN", "PRINT",
    "RAISERROR", "RECONFIGURE", "RESTORE", "RETURN", "REVERT", "REVOKE", "ROLLBACK", "SAVE",
    "SETUSER", "SHUTDOWN", "TRUNCATE", "USE", "WAITFOR", "WHILE",
];

/// T-SQL table hints that hold locks like `SELECT ... FOR UPDATE`.
const MSSQL_LOCK_HINTS: &[&str] = &["UPDLOCK", "XLOCK", "HOLDLOCK", "TABLOCKX"];

/// The significant tokens of one statement.
struct Stmt<'a> {
    src: &'a str,
    toks: &'a [Token],
    dialect: Backend,
}

impl<'a> Stmt<'a> {
    fn word(&self, i: usize) -> Option<&'a str> {
        let tok = self.toks.get(i)?;
        (tok.kind == TokenKind::Word).then(|| tok.text(self.src))
    }

    fn is(&self, i: usize, kws: &[&str]) -> bool {
        self.word(i).is_some_and(|w| is_keyword(w, kws))
    }

    fn kind_at(&self, i: usize) -> Option<TokenKind> {
        self.toks.get(i).map(|t| t.kind)
    }

    /// A word that is a keyword candidate: not part of a qualified name like `t.update`.
    fn keyword_at(&self, i: usize) -> Option<&'a str> {
        let dotted = (i > 0 && self.kind_at(i - 1) == Some(TokenKind::Dot))
            || self.kind_at(i + 1) == Some(TokenKind::Dot);
        self.word(i).filter(|_| !dotted)
    }

    fn classify(&self) -> Result<Classified, SqlError> {
        // `(SELECT 1) UNION (SELECT 2)` is classified by its first word.
        let first = self
            .toks
            .iter()
            .take_while(|t| t.kind == TokenKind::LParen)
            .count();
        let keyword = self.word(first).unwrap_or_default().to_ascii_uppercase();
        let (mut kind, mut reason) = if keyword.is_empty() {
            verdict(Other, "the statement does not start with a keyword")
        } else {
            self.by_keyword(first, &keyword)?
        };
        // Ddl and Other statements legitimately contain nested statements (procedure bodies,
        // `IF ... DROP`), so only the others are checked for a hidden second statement.
        if self.dialect == Backend::SqlServer
            && keyword != "CREATE"
            && !matches!(kind, Ddl | Other)
            && let Some(v) = self.mssql_hidden_statement(first, kind)?
        {
            (kind, reason) = v;
        }
        if let Some(v) = self.function_effect(kind) {
            (kind, reason) = v;
        }
        Ok(Classified {
            kind,
            keyword,
            reason,
        })
    }

    fn by_keyword(&self, first: usize, kw: &str) -> Result<Verdict, SqlError> {
        let pg = self.dialect == Backend::Postgres;
        let ms = self.dialect == Backend::SqlServer;
        let next = first + 1;
        let tc = || verdict(TransactionControl, format!("{kw} controls the transaction"));
        let session = || verdict(SessionControl, format!("{kw} changes session state"));
        Ok(match kw {
            "SELECT" | "VALUES" | "WITH" => self.scan_read(first),
            "TABLE" if pg => self.scan_read(first),
            "SHOW" if pg => (Read, None),
            "EXPLAIN" if !ms => self.explain(first)?,
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "REPLACE" | "UPSERT" => {
                verdict(Write, format!("{kw} modifies data"))
            }
            "CREATE" => self.create(first),
            "ALTER" | "DROP" | "TRUNCATE" | "COMMENT" | "GRANT" | "REVOKE" | "DENY" | "RENAME"
            | "REINDEX" | "CLUSTER" | "SECURITY" | "IMPORT" => {
                verdict(Ddl, format!("{kw} changes the schema or permissions"))
            }
            // In T-SQL only `BEGIN TRAN` is transaction control; `BEGIN ... END` and
            // `BEGIN TRY` are blocks of arbitrary statements.
            "BEGIN" if ms && !self.is(next, &["TRAN", "TRANSACTION", "DISTRIBUTED"]) => {
                verdict(Other, "BEGIN starts a block of statements")
            }
            "BEGIN" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => tc(),
            "END" | "ABORT" if !ms => tc(),
            "START" if self.is(next, &["TRANSACTION"]) => tc(),
            "SAVE" if ms && self.is(next, &["TRAN", "TRANSACTION"]) => tc(),
            "PREPARE" if self.is(next, &["TRANSACTION"]) => tc(),
            "SET"
                if self.is(next, &["TRANSACTION", "CONSTRAINTS"])
                    || (self.is(next, &["SESSION"]) && self.is(next + 1, &["CHARACTERISTICS"])) =>
            {
                tc()
            }
            "SET" if ms && self.kind_at(next) == Some(TokenKind::Variable) => {
                verdict(Other, "SET @variable assigns a batch variable")
            }
            "SET" | "RESET" | "DISCARD" | "LISTEN" | "UNLISTEN" | "NOTIFY" | "LOAD" | "PREPARE"
            | "DEALLOCATE" | "PRAGMA" | "ATTACH" | "DETACH" | "USE" => session(),
            // SQLite's VACUUM INTO writes a copy of the database to any file the host can write.
            "VACUUM"
                if self.dialect == Backend::Sqlite
                    && (next..self.toks.len()).any(|i| self.is(i, &["INTO"])) =>
            {
                verdict(
                    SessionControl,
                    "VACUUM INTO writes a copy of the database to a file on the host",
                )
            }
            // Postgres prepared statements and cursors are session state.
            "EXECUTE" | "DECLARE" | "FETCH" | "MOVE" | "CLOSE" if pg => session(),
            _ => verdict(Other, format!("{kw} is not a plain read or write")),
        })
    }

    /// A statement that reads unless something in it writes, locks rows or creates a table.
    fn scan_read(&self, first: usize) -> Verdict {
        let words = (first..self.toks.len()).filter_map(|i| Some((i, self.keyword_at(i)?)));
        for (i, w) in words {
            if w.eq_ignore_ascii_case("FOR") && self.is(i + 1, &["UPDATE", "SHARE", "NO", "KEY"]) {
                return verdict(Write, "SELECT ... FOR UPDATE/SHARE locks rows");
            }
            let replace_stmt =
                w.eq_ignore_ascii_case("REPLACE") && self.kind_at(i + 1) != Some(TokenKind::LParen);
            if is_keyword(w, DML) || replace_stmt {
                let w = w.to_ascii_uppercase();
                return verdict(Write, format!("contains {w}, which modifies data"));
            }
            if w.eq_ignore_ascii_case("INTO") {
                let temp = self.is(i + 1, &["TEMP", "TEMPORARY"])
                    || (self.dialect == Backend::SqlServer
                        && self.word(i + 1).is_some_and(|n| n.starts_with('#')));
                return if temp {
                    verdict(
                        SessionControl,
                        "SELECT ... INTO a temp table is session state",
                    )
                } else {
                    verdict(Write, "SELECT ... INTO creates a table")
                };
            }
            if self.dialect == Backend::SqlServer && is_keyword(w, MSSQL_LOCK_HINTS) {
                let w = w.to_ascii_uppercase();
                return verdict(Write, format!("the {w} table hint locks rows"));
            }
        }
        (Read, None)
    }

    /// EXPLAIN only plans its statement, unless ANALYZE makes it run it.
    fn explain(&self, first: usize) -> Result<Verdict, SqlError> {
        let mut i = first + 1;
        let mut analyze = false;
        let is_analyze = |i: usize| self.is(i, &["ANALYZE", "ANALYSE"]);
        if self.kind_at(i) == Some(TokenKind::LParen) {
            while let Some(kind) = self.kind_at(i) {
                i += 1;
                if kind == TokenKind::RParen {
                    break;
                }
                // `(ANALYZE false)` / `(ANALYZE off)` / `(ANALYZE 0)` switch it back off.
                let off = self.is(i, &["FALSE", "OFF"])
                    || self.toks.get(i).is_some_and(|t| t.text(self.src) == "0");
                analyze |= is_analyze(i - 1) && !off;
            }
        }
        while self.is(i, &["ANALYZE", "ANALYSE", "VERBOSE", "QUERY", "PLAN"]) {
            analyze |= is_analyze(i);
            i += 1;
        }
        if !analyze {
            return Ok((Read, None));
        }
        let inner = Stmt {
            toks: &self.toks[i..],
            ..*self
        }
        .classify()?;
        Ok(match inner.reason {
            None => (Read, None),
            Some(why) => verdict(inner.kind, format!("EXPLAIN ANALYZE runs it: {why}")),
        })
    }

    fn create(&self, first: usize) -> Verdict {
        let mut i = first + 1;
        while self.is(i, &["OR", "REPLACE", "ALTER", "GLOBAL", "LOCAL"]) {
            i += 1;
        }
        let temp_name = || {
            self.toks[i..]
                .iter()
                .take_while(|t| t.kind != TokenKind::LParen && !t.is_word(self.src, "AS"))
                .any(|t| t.kind == TokenKind::Word && t.text(self.src).starts_with('#'))
        };
        if self.is(i, &["TEMP", "TEMPORARY"]) || (self.dialect == Backend::SqlServer && temp_name())
        {
            return verdict(
                SessionControl,
                "temp objects outlive the statement on a pooled session",
            );
        }
        verdict(Ddl, "CREATE changes the schema")
    }

    /// T-SQL does not need `;` between statements, so look for a second one. Each UPDATE
    /// may own one SET; an EXEC inside an INSERT runs a procedure whose effects are unknown.
    fn mssql_hidden_statement(
        &self,
        first: usize,
        kind: StatementKind,
    ) -> Result<Option<Verdict>, SqlError> {
        let mut depth = 0usize;
        let mut sets_owed = usize::from(self.is(first, &["UPDATE"]));
        let leads_with_select = self.is(first, &["SELECT", "WITH"]);
        // After `WITH name AS (...)` the first top-level SELECT is the statement's own query.
        let mut main_select_owed = self.is(first, &["WITH"]);
        // Open top-level `CASE`s: an `END` closing none ends a block, not an expression.
        let mut open_cases = usize::from(self.is(first, &["CASE"]));
        for i in first + 1..self.toks.len() {
            match self.toks[i].kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            let Some(w) = self.keyword_at(i).filter(|_| depth == 0) else {
                continue;
            };
            if w.eq_ignore_ascii_case("CASE") {
                open_cases += 1;
                continue;
            }
            if w.eq_ignore_ascii_case("END") {
                if open_cases == 0 {
                    return Err(SqlError::MultipleStatements);
                }
                open_cases -= 1;
                continue;
            }
            // A top-level SELECT continues a query only after a set operator: T-SQL needs no
            // `;`, so `SELECT 1 SELECT 2` is two statements (and two result sets).
            if leads_with_select && w.eq_ignore_ascii_case("SELECT") {
                const SET_OPS: &[&str] = &["UNION", "EXCEPT", "INTERSECT"];
                let after_set_op = self.is(i - 1, SET_OPS)
                    || (i >= 2 && self.is(i - 1, &["ALL"]) && self.is(i - 2, SET_OPS));
                if std::mem::take(&mut main_select_owed) || after_set_op {
                    continue;
                }
                return Err(SqlError::MultipleStatements);
            }
            if w.eq_ignore_ascii_case("UPDATE") {
                sets_owed += 1;
            } else if w.eq_ignore_ascii_case("SET") && sets_owed > 0 {
                sets_owed -= 1;
            } else if is_keyword(w, &["EXEC", "EXECUTE"]) && kind == Write {
                let why = "EXEC runs a procedure whose effects cannot be checked";
                return Ok(Some(verdict(Other, why)));
            } else if is_keyword(w, &["SET", "EXEC", "EXECUTE"])
                || is_keyword(w, MSSQL_STATEMENT_STARTERS)
                || (kind != Write && is_keyword(w, DML))
                || (kind != Write && !leads_with_select && w.eq_ignore_ascii_case("SELECT"))
            {
                return Err(SqlError::MultipleStatements);
            }
        }
        Ok(None)
    }

    /// A call to a listed function overrides the statement's own kind.
    fn function_effect(&self, kind: StatementKind) -> Option<Verdict> {
        let list = match self.dialect {
            Backend::Postgres => PG_FUNCTIONS,
            Backend::Sqlite => SQLITE_FUNCTIONS,
            Backend::SqlServer => MSSQL_FUNCTIONS,
        };
        for (i, tok) in self.toks.iter().enumerate() {
            if self.kind_at(i + 1) != Some(TokenKind::LParen) {
                continue;
            }
            let name = match tok.kind {
                TokenKind::Word => tok.text(self.src),
                // `"set_config"(...)` calls the same function.
                TokenKind::QuotedIdent => {
                    let t = tok.text(self.src);
                    t.get(1..t.len() - 1).unwrap_or_default()
                }
                _ => continue,
            };
            let listed = list
                .iter()
                .find(|(names, _)| names.iter().any(|n| matches_name(name, n)));
            let Some((_, effect)) = listed else { continue };
            let shown = name.to_ascii_lowercase();
            return Some(match effect {
                Effect::Session(why) => {
                    verdict(SessionControl, format!("calls {shown}(), which {why}"))
                }
                Effect::Write if kind == Read => {
                    verdict(Write, format!("calls {shown}(), which writes"))
                }
                Effect::Write => continue,
            });
        }
        None
    }
}

fn matches_name(name: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
        None => name.eq_ignore_ascii_case(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Backend::{Postgres, SqlServer, Sqlite};

    fn check(d: Backend, expected: StatementKind, cases: &[&str]) {
        for sql in cases {
            let c = classify(sql, d).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(c.kind, expected, "{sql}: {c:?}");
            assert_eq!(c.reason.is_none(), expected == Read, "{sql}: {c:?}");
        }
    }

    fn reason(sql: &str, d: Backend) -> String {
        classify(sql, d).unwrap().reason.unwrap_or_default()
    }

    #[test]
    #[rustfmt::skip]
    fn reads() {
        check(Postgres, Read, &[
            "SELECT 1", "select * from t where a = 'delete me'",
            r#"SELECT "update", "insert" FROM t"#,
            "select 1 -- delete from t\n", "select /* drop table t; */ 1", "VALUES (1), (2)",
            "select $$ insert $$, $x$ ; update $x$", "TABLE t", "SHOW search_path",
            "WITH a AS (SELECT 1) SELECT * FROM a", "(SELECT 1) UNION (SELECT 2)",
            "select t.update, t.delete from t", "select replace(name, 'a', 'b') from t",
            "EXPLAIN SELECT 1", "EXPLAIN DELETE FROM t",
            "EXPLAIN (ANALYZE false, COSTS off) DELETE FROM t",
            "EXPLAIN ANALYZE SELECT 1", "explain (analyze, buffers) select 1",
            "select pg_sleep(1), pg_advisory_xact_lock(1)",
            "select substring(x from 1 for 2) from t",
            "select 1;", "select 1;  -- done", "select 1; /* c */ ;\n",
        ]);
        check(Sqlite, Read, &["EXPLAIN QUERY PLAN SELECT 1", "SELECT [delete] FROM `update`"]);
        check(SqlServer, Read, &[
            "SELECT TOP (1) * FROM t WITH (NOLOCK) OPTION (RECOMPILE)",
            "SELECT [delete] FROM t FOR XML PATH('')", "WITH c AS (SELECT 1 AS a) SELECT a FROM c",
            "SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3 INTERSECT SELECT 4",
            "WITH c AS (SELECT 1 AS a), d AS (SELECT 2 AS a) SELECT a FROM c UNION SELECT a FROM d",
            "SELECT a FROM t WHERE b IN (SELECT b FROM u)",
            "SELECT CASE WHEN a = 1 THEN CASE b WHEN 2 THEN 3 END ELSE 4 END AS c FROM t",
            "SELECT (CASE WHEN a = 1 THEN 2 END) FROM t ORDER BY CASE a WHEN 1 THEN 0 END",
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn writes() {
        check(Postgres, Write, &[
            "INSERT INTO t VALUES (1)", "update t set a = 1", "DELETE FROM t",
            "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "SELECT * INTO new_t FROM t",
            "select * from t for update", "select * from t for no key update nowait",
            "SELECT * FROM t FOR SHARE", "select * from t for key share",
            "EXPLAIN ANALYZE DELETE FROM t", "explain (analyze) update t set a = 1",
            "select nextval('seq')",
        ]);
        check(Sqlite, Write, &[
            "REPLACE INTO t VALUES (1)", "INSERT OR REPLACE INTO t VALUES (1)",
            "WITH x AS (SELECT 1) REPLACE INTO t SELECT * FROM x",
        ]);
        check(SqlServer, Write, &[
            "SELECT * INTO dbo.copy FROM t", "SELECT * FROM t WITH (UPDLOCK, ROWLOCK)",
            "UPDATE t SET a = 1 WHERE b = 2",
            "MERGE t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 \
             WHEN NOT MATCHED THEN INSERT (a) VALUES (1);",
        ]);
        assert!(reason("select * from t for update", Postgres).contains("locks rows"));
        assert!(reason("SELECT * INTO x FROM t", Postgres).contains("SELECT ... INTO"));
        let c = classify("EXPLAIN ANALYZE DELETE FROM t", Postgres).unwrap();
        assert_eq!(c.keyword, "EXPLAIN");
        assert!(c.reason.unwrap().starts_with("EXPLAIN ANALYZE runs it"));
    }

    #[test]
    #[rustfmt::skip]
    fn ddl() {
        check(Postgres, Ddl, &[
            "CREATE TABLE t (a int)", "create unlogged table t (a int)", "ALTER TABLE t ADD b int",
            "CREATE OR REPLACE VIEW v AS SELECT 1", "DROP TABLE t", "TRUNCATE t", "CLUSTER t",
            "COMMENT ON TABLE t IS 'x'", "GRANT SELECT ON t TO r", "REVOKE ALL ON t FROM r",
            "REINDEX TABLE t",
            "CREATE FUNCTION f() AS $$ select set_config('a','b',false) $$ LANGUAGE sql",
        ]);
        check(Sqlite, Ddl, &[
            "ALTER TABLE t RENAME TO u",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END;",
        ]);
        check(SqlServer, Ddl, &[
            "CREATE OR ALTER PROCEDURE p AS BEGIN SELECT 1; SET NOCOUNT ON; END",
            "DENY SELECT ON t TO r",
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn transaction_control() {
        check(Postgres, TransactionControl, &[
            "BEGIN", "begin isolation level serializable", "START TRANSACTION READ ONLY", "COMMIT",
            "ROLLBACK", "END", "ABORT", "SAVEPOINT s", "RELEASE SAVEPOINT s",
            "ROLLBACK TO SAVEPOINT s",
            "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'",
            "SET TRANSACTION READ WRITE", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "SET CONSTRAINTS ALL DEFERRED",
        ]);
        check(Sqlite, TransactionControl, &["BEGIN IMMEDIATE", "END TRANSACTION", "RELEASE s"]);
        check(SqlServer, TransactionControl, &[
            "BEGIN TRAN", "BEGIN TRANSACTION t1", "begin distributed transaction", "COMMIT TRAN",
            "ROLLBACK TRANSACTION", "SAVE TRAN s", "SET TRANSACTION ISOLATION LEVEL SNAPSHOT",
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn session_control() {
        check(Postgres, SessionControl, &[
            "SET search_path = x", "SET ROLE admin", "RESET ALL", "DISCARD ALL", "LISTEN c",
            "UNLISTEN *", "NOTIFY c, 'x'", "LOAD 'plugin'", "PREPARE q AS SELECT 1", "EXECUTE q",
            "DEALLOCATE q", "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "CREATE TEMP TABLE t (a int)",
            "create temporary view v as select 1", "CREATE GLOBAL TEMPORARY TABLE t (a int)",
            "SELECT * INTO TEMP t FROM u", "SELECT set_config('a','b',false)",
            "select pg_catalog.set_config('a', 'b', true)", r#"SELECT "set_config"('a','b',false)"#,
            "select pg_advisory_lock(1)", "select pg_try_advisory_lock_shared /* x */ (1)",
            "select pg_advisory_unlock_all()", "select pg_notify('c', 'x')",
            "select pg_terminate_backend(1)", "select pg_read_file('/etc/passwd')",
            "select * from pg_ls_dir('.')", "select lo_import('/tmp/x')",
            "select * from dblink('db', 'delete from t') as x(a int)",
            "select DBLINK_EXEC('db', 'drop table t')",
            "select query_to_xml('select 1', true, false, '')",
            "INSERT INTO t SELECT pg_advisory_lock(1)",
        ]);
        check(Sqlite, SessionControl, &[
            "PRAGMA foreign_keys = ON", "ATTACH 'x.db' AS x", "DETACH x", "CREATE TEMP TABLE t (a)",
            "SELECT load_extension('x')",
        ]);
        check(SqlServer, SessionControl, &[
            "USE master", "SET NOCOUNT ON", "CREATE TABLE #t (a int)", "SELECT * INTO #t FROM u",
            "CREATE NONCLUSTERED INDEX ix ON #t (a)",
            r"SELECT * FROM OPENROWSET(BULK 'c:\x', SINGLE_CLOB) AS x",
        ]);
        assert!(reason("SELECT set_config('a','b',false)", Postgres).contains("set_config()"));
        assert!(reason("select * from dblink_exec('x')", Postgres).contains("dblink_exec()"));
        assert!(reason("CREATE TEMP TABLE t (a int)", Postgres).contains("pooled session"));
    }

    #[test]
    #[rustfmt::skip]
    fn other() {
        check(Postgres, Other, &[
            "COPY t FROM STDIN", "DO $$ BEGIN DELETE FROM t; END $$", "CALL p()", "VACUUM t",
            "ANALYZE t", "CHECKPOINT", "LOCK TABLE t", "REFRESH MATERIALIZED VIEW v", "frobnicate",
            "123",
        ]);
        check(Sqlite, Other, &["VACUUM", "SHOW tables", "TABLE t"]);
        check(SqlServer, Other, &[
            "EXEC sp_who", "EXECUTE dbo.p @a = 1", "BEGIN SELECT 1 END", "IF @x = 1 DROP TABLE t",
            "BEGIN TRY SELECT 1; END TRY BEGIN CATCH SELECT 2; END CATCH",
            "BEGIN TRY\n  DELETE FROM t\nEND TRY\nBEGIN CATCH\n  SELECT 2;\nEND CATCH",
            "DECLARE @x int = 1", "SET @x = 1", "INSERT INTO t EXEC dbo.p", "END",
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn one_statement_per_call() {
        for (sql, d) in [
            ("select 1; select 2", Postgres), ("select 1;\n-- c\nselect 2;", Sqlite),
            ("SELECT 1; DROP TABLE t", SqlServer),
            // T-SQL needs no `;` between statements.
            ("SELECT 1 DROP TABLE t", SqlServer),
            ("SELECT * FROM t EXEC xp_cmdshell 'x'", SqlServer),
            ("BEGIN TRAN DELETE FROM t", SqlServer), ("SET NOCOUNT ON SELECT 1", SqlServer),
            ("UPDATE t SET a = 1 SET NOCOUNT ON", SqlServer), ("select 1 begin tran", SqlServer),
            // Two reads are still two statements (found by the differential test).
            ("SELECT 1 SELECT 2", SqlServer), ("SELECT a FROM t WHERE b = 1 SELECT 2", SqlServer),
            ("WITH c AS (SELECT 1 AS a) SELECT a FROM c SELECT 2", SqlServer),
            ("SELECT 1 WITH c AS (SELECT 2 AS a) SELECT a FROM c", SqlServer),
            // `ALL` continues a query only after a set operator (found by fuzzing).
            ("SELECT ION ALL SELECT 2", SqlServer), ("SELECT  4SELECT 2", SqlServer),
            ("SELECT T END", SqlServer), ("SELECT CASE WHEN a = 1 THEN 2 END END", SqlServer),
        ] {
            assert_eq!(classify(sql, d), Err(SqlError::MultipleStatements), "{sql}");
        }
        let msg = SqlError::MultipleStatements.to_string();
        assert!(msg.contains("one SQL statement") && msg.contains("execute-batch"));
        // A trigger body is one statement even though it contains `;`.
        let trigger = "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;";
        assert_eq!(classify(trigger, Sqlite).unwrap().kind, Ddl);
    }

    #[test]
    fn sqlite_statements_that_reach_other_files_are_session_control() {
        for sql in [
            "VACUUM INTO '/tmp/copy.db'",
            "vacuum main into 'x.db'",
            "ATTACH DATABASE 'x.db' AS x",
            "DETACH x",
            "PRAGMA query_only = OFF",
            "SELECT load_extension('evil.so')",
        ] {
            assert_eq!(classify(sql, Sqlite).unwrap().kind, SessionControl, "{sql}");
        }
        assert_eq!(classify("VACUUM", Sqlite).unwrap().kind, Other);
    }

    #[test]
    fn empty_errors_and_keyword() {
        for sql in ["", "   ", "-- nothing", "/* a */ ; ;", ";"] {
            assert_eq!(classify(sql, Postgres), Err(SqlError::Empty), "{sql:?}");
        }
        let err = classify("select 1 /* open", Postgres);
        assert!(matches!(err, Err(SqlError::Unterminated { line: 1, .. })));
        let c = classify("  -- c\n (select 1)", Sqlite).unwrap();
        assert_eq!((c.kind, c.keyword.as_str()), (Read, "SELECT"));
        let c = classify("insert into t values (1)", Postgres).unwrap();
        assert_eq!(c.keyword, "INSERT");
        assert_eq!(c.reason.as_deref(), Some("INSERT modifies data"));
        assert_eq!(classify("'x'", Postgres).unwrap().keyword, "");
        assert!(classify("select 1", Postgres).unwrap().is_read());
    }
}
