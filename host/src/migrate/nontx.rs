//! Statements the server refuses (or silently ignores) inside a transaction block, so that a
//! migration holding one cannot run in the transaction flowhost wraps around each migration.
//!
//! Only tokens count: keywords in comments, strings and quoted identifiers never match. The
//! lists follow the servers themselves:
//! - PostgreSQL: every `PreventInTransactionBlock` call in the server (checked against the
//!   PostgreSQL 18 sources: `tcop/utility.c`, `commands/{vacuum,cluster,indexcmds,dbcommands,
//!   discard,subscriptioncmds}.c`). What depends on catalog state (REINDEX or CLUSTER of a
//!   partitioned table, DROP SUBSCRIPTION of a subscription without a slot) is decided from
//!   the text alone, erring towards "refused".
//! - SQLite: `VACUUM` ("cannot VACUUM from within a transaction", also `VACUUM INTO`),
//!   `PRAGMA synchronous = ...` ("Safety level may not be changed inside a transaction") and
//!   `PRAGMA journal_mode = ...` (changing into or out of WAL fails; other changes are ignored
//!   once the transaction has written).
//! - SQL Server: the Microsoft list of statements not allowed in explicit transactions (SQL
//!   Server transaction locking and row versioning guide): CREATE/ALTER/DROP DATABASE,
//!   CREATE/ALTER/DROP FULLTEXT CATALOG and INDEX, BACKUP, RESTORE, RECONFIGURE, full-text
//!   system procedures and `sp_dboption`; plus `KILL` (error 6115).

use crate::sql::{Backend, Token, TokenKind, tokenize};

/// What makes `statement` (one statement, as split by [`sql::split_statements`]; may start with
/// comments) impossible inside a transaction block, e.g. `"CREATE INDEX CONCURRENTLY"`; `None`
/// if it can run in one.
///
/// For SQL Server the "statement" is a whole `GO` batch, so every statement in it is looked at,
/// except in a batch that creates a procedure, function, trigger or view: its body does not
/// run when the batch does. Text that does not lex (an unterminated string) yields `None`; the
/// splitter reports it.
///
/// [`sql::split_statements`]: crate::sql::split_statements
pub fn non_transactional(statement: &str, dialect: Backend) -> Option<&'static str> {
    let toks: Vec<Token> = tokenize(statement, dialect)
        .ok()?
        .into_iter()
        .filter(|t| !t.is_trivia())
        .collect();
    let s = Toks {
        src: statement,
        toks: &toks,
    };
    match dialect {
        Backend::Postgres => postgres(&s),
        Backend::Sqlite => sqlite(&s),
        Backend::SqlServer => sqlserver(&s),
    }
}

/// The significant tokens of one statement, with keyword tests by position.
struct Toks<'a> {
    src: &'a str,
    toks: &'a [Token],
}

impl Toks<'_> {
    fn len(&self) -> usize {
        self.toks.len()
    }

    fn kind(&self, i: usize) -> Option<TokenKind> {
        self.toks.get(i).map(|t| t.kind)
    }

    /// Whether token `i` is the unquoted word `kw` (any case).
    fn is(&self, i: usize, kw: &str) -> bool {
        self.toks.get(i).is_some_and(|t| t.is_word(self.src, kw))
    }

    fn is_any(&self, i: usize, kws: &[&str]) -> bool {
        kws.iter().any(|kw| self.is(i, kw))
    }

    /// Index of the first token at or after `from` that is the word `kw` outside parentheses.
    fn find_top(&self, from: usize, kw: &str) -> Option<usize> {
        let mut depth = 0usize;
        for i in from..self.len() {
            match self.toks[i].kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.saturating_sub(1),
                _ if depth == 0 && self.is(i, kw) => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// Index just past the parenthesised group opening at `open`.
    fn after_parens(&self, open: usize) -> usize {
        let mut depth = 0usize;
        for i in open..self.len() {
            match self.toks[i].kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        self.len()
    }

    /// The `name [=] [value]` items of the option list opening at `open`, names lowercased and
    /// values unquoted (`None` for an option given without a value).
    fn options(&self, open: usize) -> Vec<(String, Option<String>)> {
        let end = self.after_parens(open);
        let mut out = Vec::new();
        let mut item: Vec<usize> = Vec::new();
        let mut depth = 0usize;
        for i in open + 1..end {
            let t = &self.toks[i];
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen if depth == 0 => break,
                TokenKind::RParen => depth -= 1,
                TokenKind::Punct if depth == 0 && t.text(self.src) == "," => {
                    out.extend(self.option(&item));
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(i);
        }
        out.extend(self.option(&item));
        out
    }

    fn option(&self, item: &[usize]) -> Option<(String, Option<String>)> {
        let (&name, rest) = item.split_first()?;
        let name = unquote(self.toks[name].text(self.src)).to_ascii_lowercase();
        let value = rest
            .iter()
            .map(|&i| self.toks[i].text(self.src))
            .find(|text| *text != "=")
            .map(|text| unquote(text).to_owned());
        Some((name, value))
    }
}

/// The text of a string or quoted identifier without its delimiters (doubled quotes are left
/// as they are: option values never contain them).
fn unquote(text: &str) -> &str {
    let b = text.as_bytes();
    match (b.first(), b.last()) {
        (Some(b'\'' | b'"'), Some(b'\'' | b'"')) | (Some(b'['), Some(b']')) if b.len() >= 2 => {
            &text[1..text.len() - 1]
        }
        _ => text,
    }
}

/// The boolean an option stands for, the way PostgreSQL's `defGetBoolean` reads it: no value
/// is true; `true`/`on`/`1` and `false`/`off`/`0`; anything else is unknown.
fn option_bool(value: &Option<String>) -> Option<bool> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("true" | "on" | "1") => Some(true),
        Some("false" | "off" | "0") => Some(false),
        Some(_) => None,
    }
}

/// The boolean option `name` in `opts`, if given.
fn lookup(opts: &[(String, Option<String>)], name: &str) -> Option<Option<bool>> {
    opts.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| option_bool(v))
}

/// Options of the top-level `WITH ( ... )` at or after `from`, empty if there is none.
fn with_options(s: &Toks<'_>, from: usize) -> Vec<(String, Option<String>)> {
    match s.find_top(from, "WITH") {
        Some(w) if s.kind(w + 1) == Some(TokenKind::LParen) => s.options(w + 1),
        _ => Vec::new(),
    }
}

fn postgres(s: &Toks<'_>) -> Option<&'static str> {
    if s.is(0, "VACUUM") {
        return Some("VACUUM");
    }
    if s.is(0, "CLUSTER") {
        // `CLUSTER [VERBOSE]` and `CLUSTER (options)` without a table process every table, each
        // in a transaction of its own.
        let mut i = 1;
        if s.kind(i) == Some(TokenKind::LParen) {
            i = s.after_parens(i);
        }
        if s.is(i, "VERBOSE") {
            i += 1;
        }
        return (i >= s.len()).then_some("CLUSTER without a table name");
    }
    if s.is(0, "REINDEX") {
        let mut i = 1;
        if s.kind(i) == Some(TokenKind::LParen) {
            let opts = s.options(i);
            if lookup(&opts, "concurrently").is_some_and(|b| b != Some(false)) {
                return Some("REINDEX CONCURRENTLY");
            }
            i = s.after_parens(i);
        }
        if s.is(i + 1, "CONCURRENTLY") {
            return Some("REINDEX CONCURRENTLY");
        }
        return [
            ("SCHEMA", "REINDEX SCHEMA"),
            ("DATABASE", "REINDEX DATABASE"),
            ("SYSTEM", "REINDEX SYSTEM"),
        ]
        .into_iter()
        .find_map(|(kw, what)| s.is(i, kw).then_some(what));
    }
    if s.is(0, "CREATE") {
        let i = if s.is(1, "UNIQUE") { 2 } else { 1 };
        if s.is(i, "INDEX") && s.is(i + 1, "CONCURRENTLY") {
            return Some("CREATE INDEX CONCURRENTLY");
        }
        if s.is(1, "DATABASE") {
            return Some("CREATE DATABASE");
        }
        if s.is(1, "TABLESPACE") {
            return Some("CREATE TABLESPACE");
        }
        if s.is(1, "SUBSCRIPTION") {
            // create_slot defaults to true, unless connect = false.
            let opts = with_options(s, 2);
            let connect = lookup(&opts, "connect").flatten().unwrap_or(true);
            let create_slot = lookup(&opts, "create_slot").flatten().unwrap_or(connect);
            return create_slot.then_some("CREATE SUBSCRIPTION ... WITH (create_slot = true)");
        }
        return None;
    }
    if s.is(0, "DROP") {
        if s.is(1, "INDEX") && s.is(2, "CONCURRENTLY") {
            return Some("DROP INDEX CONCURRENTLY");
        }
        // DROP SUBSCRIPTION is refused when the subscription has a replication slot, which it
        // has unless it was altered to slot_name = NONE.
        return [
            ("DATABASE", "DROP DATABASE"),
            ("TABLESPACE", "DROP TABLESPACE"),
            ("SUBSCRIPTION", "DROP SUBSCRIPTION"),
        ]
        .into_iter()
        .find_map(|(kw, what)| s.is(1, kw).then_some(what));
    }
    if s.is(0, "ALTER") {
        if s.is(1, "SYSTEM") {
            return Some("ALTER SYSTEM");
        }
        if s.is(1, "DATABASE") {
            // ALTER DATABASE name [SET | WITH] TABLESPACE new_tablespace
            let i = if s.is_any(3, &["SET", "WITH"]) { 4 } else { 3 };
            return s
                .is(i, "TABLESPACE")
                .then_some("ALTER DATABASE SET TABLESPACE");
        }
        if s.is(1, "TABLE") {
            let detach = s.find_top(2, "DETACH")?;
            return (s.is(detach + 1, "PARTITION")
                && s.find_top(detach + 2, "CONCURRENTLY").is_some())
            .then_some("ALTER TABLE ... DETACH CONCURRENTLY");
        }
        if s.is(1, "SUBSCRIPTION") {
            return alter_subscription(s);
        }
        return None;
    }
    if s.is(0, "DISCARD") && s.is(1, "ALL") {
        return Some("DISCARD ALL");
    }
    if s.is(1, "PREPARED") {
        if s.is(0, "COMMIT") {
            return Some("COMMIT PREPARED");
        }
        if s.is(0, "ROLLBACK") {
            return Some("ROLLBACK PREPARED");
        }
    }
    None
}

/// `ALTER SUBSCRIPTION name ...` (token 2 is the name).
fn alter_subscription(s: &Toks<'_>) -> Option<&'static str> {
    if s.is(3, "REFRESH") && s.is(4, "PUBLICATION") {
        return Some("ALTER SUBSCRIPTION ... REFRESH");
    }
    if s.is_any(3, &["SET", "ADD", "DROP"]) && s.is(4, "PUBLICATION") {
        // refresh defaults to true.
        let opts = with_options(s, 5);
        let refresh = lookup(&opts, "refresh").flatten().unwrap_or(true);
        return refresh.then_some("ALTER SUBSCRIPTION with refresh");
    }
    if s.is(3, "SET") && s.kind(4) == Some(TokenKind::LParen) {
        // Options that change the replication slot, which cannot be rolled back: any failover
        // setting, and turning two_phase off.
        let opts = s.options(4);
        if lookup(&opts, "failover").is_some() {
            return Some("ALTER SUBSCRIPTION ... SET (failover)");
        }
        if lookup(&opts, "two_phase").is_some_and(|b| b == Some(false)) {
            return Some("ALTER SUBSCRIPTION ... SET (two_phase)");
        }
    }
    None
}

fn sqlite(s: &Toks<'_>) -> Option<&'static str> {
    if s.is(0, "VACUUM") {
        return Some("VACUUM");
    }
    if s.is(0, "PRAGMA") {
        // PRAGMA [schema.]name = value | PRAGMA [schema.]name(value); the bare query form is fine.
        let name = if s.kind(2) == Some(TokenKind::Dot) {
            3
        } else {
            1
        };
        let sets = s.kind(name + 1) == Some(TokenKind::LParen)
            || s.toks
                .get(name + 1)
                .is_some_and(|t| t.kind == TokenKind::Punct && t.text(s.src) == "=");
        if sets && s.is(name, "journal_mode") {
            return Some("PRAGMA journal_mode");
        }
        if sets && s.is(name, "synchronous") {
            return Some("PRAGMA synchronous");
        }
    }
    None
}

fn sqlserver(s: &Toks<'_>) -> Option<&'static str> {
    // A batch that creates a routine or view is all body: nothing in it runs now.
    let lead = if s.is(0, "CREATE") && s.is(1, "OR") && s.is(2, "ALTER") {
        3
    } else if s.is_any(0, &["CREATE", "ALTER"]) {
        1
    } else {
        usize::MAX
    };
    if s.is_any(lead, &["PROC", "PROCEDURE", "FUNCTION", "TRIGGER", "VIEW"]) {
        return None;
    }
    if let Some(hit) = fulltext_procedure(s, 0) {
        return Some(hit);
    }
    (0..s.len()).find_map(|i| sqlserver_at(s, i))
}

/// The refused statement starting at token `i` of a T-SQL batch, if one does.
fn sqlserver_at(s: &Toks<'_>, i: usize) -> Option<&'static str> {
    if s.toks[i].kind != TokenKind::Word {
        return None;
    }
    if s.is_any(i, &["EXEC", "EXECUTE"]) {
        return fulltext_procedure(s, i + 1);
    }
    // The same keywords name permissions (`GRANT CREATE DATABASE, BACKUP LOG TO u`), and a
    // keyword after a `.` is a column or object name. T-SQL reserves all of them otherwise.
    if i > 0 {
        let prev = &s.toks[i - 1];
        let in_permission_list = s.is_any(i - 1, &["GRANT", "DENY", "REVOKE", "FOR"])
            || (prev.kind == TokenKind::Punct && prev.text(s.src) == ",");
        if in_permission_list || prev.kind == TokenKind::Dot {
            return None;
        }
    }
    let create = s.is(i, "CREATE");
    let alter = s.is(i, "ALTER");
    let drop = s.is(i, "DROP");
    if create || alter || drop {
        if s.is(i + 1, "DATABASE") {
            // CREATE DATABASE AUDIT SPECIFICATION, ... ENCRYPTION KEY and ... SCOPED
            // CONFIGURATION/CREDENTIAL are other statements, not on Microsoft's list.
            let other = (s.is(i + 2, "AUDIT") && s.is(i + 3, "SPECIFICATION"))
                || (s.is(i + 2, "ENCRYPTION") && s.is(i + 3, "KEY"))
                || (s.is(i + 2, "SCOPED") && s.is_any(i + 3, &["CONFIGURATION", "CREDENTIAL"]));
            if other {
                return None;
            }
            return Some(if create {
                "CREATE DATABASE"
            } else if alter {
                "ALTER DATABASE"
            } else {
                "DROP DATABASE"
            });
        }
        if s.is(i + 1, "FULLTEXT") {
            let catalog = s.is(i + 2, "CATALOG");
            if !catalog && !s.is(i + 2, "INDEX") {
                return None;
            }
            return Some(match (create, alter, catalog) {
                (true, _, true) => "CREATE FULLTEXT CATALOG",
                (_, true, true) => "ALTER FULLTEXT CATALOG",
                (_, _, true) => "DROP FULLTEXT CATALOG",
                (true, _, false) => "CREATE FULLTEXT INDEX",
                (_, true, false) => "ALTER FULLTEXT INDEX",
                _ => "DROP FULLTEXT INDEX",
            });
        }
        return None;
    }
    // BACKUP/RESTORE of certificates and keys are other statements.
    let key_backup = |j: usize| s.is_any(j, &["CERTIFICATE", "MASTER", "SERVICE", "SYMMETRIC"]);
    if s.is(i, "BACKUP") && !key_backup(i + 1) {
        return Some("BACKUP");
    }
    if s.is(i, "RESTORE") && !key_backup(i + 1) {
        return Some("RESTORE");
    }
    if s.is(i, "RECONFIGURE") {
        return Some("RECONFIGURE");
    }
    // KILL QUERY NOTIFICATION SUBSCRIPTION and KILL STATS JOB are other statements.
    if s.is(i, "KILL") && !s.is_any(i + 1, &["QUERY", "STATS"]) {
        return Some("KILL");
    }
    None
}

/// Whether the tokens from `i` name a full-text system procedure or `sp_dboption`, as called by
/// `EXEC [@rc =] [db.][schema.]name` (`i` just past `EXEC`) or as the first word of a batch.
fn fulltext_procedure(s: &Toks<'_>, mut i: usize) -> Option<&'static str> {
    if s.kind(i) == Some(TokenKind::Variable)
        && s.toks
            .get(i + 1)
            .is_some_and(|t| t.kind == TokenKind::Punct && t.text(s.src) == "=")
    {
        i += 2;
    }
    // The last part of a dotted name (`master..sp_dboption` skips the schema).
    while matches!(s.kind(i), Some(TokenKind::Word | TokenKind::QuotedIdent))
        && s.kind(i + 1) == Some(TokenKind::Dot)
    {
        i += 1;
        while s.kind(i) == Some(TokenKind::Dot) {
            i += 1;
        }
    }
    let t = s.toks.get(i)?;
    if !matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent) {
        return None;
    }
    let name = unquote(t.text(s.src)).to_ascii_lowercase();
    if name.starts_with("sp_fulltext_") {
        Some("a full-text system procedure (sp_fulltext_*)")
    } else if name == "sp_dboption" {
        Some("sp_dboption")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Backend::{Postgres, SqlServer, Sqlite};

    fn pg(sql: &str) -> Option<&'static str> {
        non_transactional(sql, Postgres)
    }

    fn lite(sql: &str) -> Option<&'static str> {
        non_transactional(sql, Sqlite)
    }

    fn ms(sql: &str) -> Option<&'static str> {
        non_transactional(sql, SqlServer)
    }

    #[test]
    fn postgres_concurrent_index_statements() {
        for (sql, what) in [
            (
                "CREATE INDEX CONCURRENTLY i ON t (a)",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "create unique index concurrently if not exists i on t (a)",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "CREATE INDEX CONCURRENTLY ON t (a)",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "DROP INDEX CONCURRENTLY IF EXISTS i",
                "DROP INDEX CONCURRENTLY",
            ),
            ("REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY"),
            (
                "REINDEX TABLE CONCURRENTLY public.t",
                "REINDEX CONCURRENTLY",
            ),
            ("REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY"),
            (
                "REINDEX (VERBOSE, CONCURRENTLY true) TABLE t",
                "REINDEX CONCURRENTLY",
            ),
            ("REINDEX SCHEMA app", "REINDEX SCHEMA"),
            ("REINDEX (VERBOSE) DATABASE", "REINDEX DATABASE"),
            ("REINDEX SYSTEM", "REINDEX SYSTEM"),
            (
                "ALTER TABLE ONLY m DETACH PARTITION m_2020 CONCURRENTLY",
                "ALTER TABLE ... DETACH CONCURRENTLY",
            ),
        ] {
            assert_eq!(pg(sql), Some(what), "{sql}");
        }
        for sql in [
            "CREATE INDEX i ON t (a)",
            "CREATE UNIQUE INDEX i ON t (a) WHERE b",
            "DROP INDEX i",
            "REINDEX TABLE t",
            "REINDEX INDEX i",
            "REINDEX (CONCURRENTLY false) TABLE t",
            "REINDEX (VERBOSE) TABLE t",
            "ALTER TABLE m DETACH PARTITION m_2020",
            "ALTER TABLE m DETACH PARTITION m_2020 FINALIZE",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
            "ALTER INDEX i ATTACH PARTITION j",
        ] {
            assert_eq!(pg(sql), None, "{sql}");
        }
    }

    #[test]
    fn postgres_maintenance_and_server_statements() {
        for (sql, what) in [
            ("VACUUM", "VACUUM"),
            ("vacuum (analyze, verbose) t", "VACUUM"),
            ("VACUUM FULL t", "VACUUM"),
            ("CLUSTER", "CLUSTER without a table name"),
            ("CLUSTER VERBOSE", "CLUSTER without a table name"),
            ("CLUSTER (VERBOSE)", "CLUSTER without a table name"),
            ("ALTER SYSTEM SET work_mem = '64MB'", "ALTER SYSTEM"),
            ("CREATE DATABASE app2 TEMPLATE template0", "CREATE DATABASE"),
            ("DROP DATABASE IF EXISTS app2 WITH (FORCE)", "DROP DATABASE"),
            (
                "ALTER DATABASE app SET TABLESPACE fast",
                "ALTER DATABASE SET TABLESPACE",
            ),
            (
                "ALTER DATABASE app WITH TABLESPACE fast",
                "ALTER DATABASE SET TABLESPACE",
            ),
            (
                "ALTER DATABASE app TABLESPACE fast",
                "ALTER DATABASE SET TABLESPACE",
            ),
            (
                "CREATE TABLESPACE fast LOCATION '/ssd'",
                "CREATE TABLESPACE",
            ),
            ("DROP TABLESPACE IF EXISTS fast", "DROP TABLESPACE"),
            ("DISCARD ALL", "DISCARD ALL"),
            ("COMMIT PREPARED 'x'", "COMMIT PREPARED"),
            ("ROLLBACK PREPARED 'x'", "ROLLBACK PREPARED"),
        ] {
            assert_eq!(pg(sql), Some(what), "{sql}");
        }
        for sql in [
            "ANALYZE t",
            "ANALYZE",
            "CLUSTER t",
            "CLUSTER VERBOSE t USING i",
            "CLUSTER (VERBOSE) t",
            "CLUSTER i ON t",
            "ALTER DATABASE app SET search_path TO app, public",
            "ALTER DATABASE app SET default_tablespace = fast",
            "ALTER DATABASE app RENAME TO app2",
            "ALTER TABLESPACE fast RENAME TO quick",
            "ALTER TYPE mood ADD VALUE 'meh'",
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh' BEFORE 'sad'",
            "DISCARD PLANS",
            "DISCARD TEMP",
            "CHECKPOINT",
            "ROLLBACK TO SAVEPOINT s",
        ] {
            assert_eq!(pg(sql), None, "{sql}");
        }
    }

    #[test]
    fn postgres_subscriptions() {
        let create = "CREATE SUBSCRIPTION ... WITH (create_slot = true)";
        for sql in [
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p",
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (copy_data = false)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (create_slot)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (create_slot = 'on')",
        ] {
            assert_eq!(pg(sql), Some(create), "{sql}");
        }
        for sql in [
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (create_slot = false, slot_name = 's')",
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (connect = false)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (CREATE_SLOT = OFF)",
        ] {
            assert_eq!(pg(sql), None, "{sql}");
        }
        assert_eq!(
            pg("DROP SUBSCRIPTION IF EXISTS s"),
            Some("DROP SUBSCRIPTION")
        );
        for (sql, what) in [
            (
                "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
                Some("ALTER SUBSCRIPTION ... REFRESH"),
            ),
            (
                "ALTER SUBSCRIPTION s REFRESH PUBLICATION WITH (copy_data = false)",
                Some("ALTER SUBSCRIPTION ... REFRESH"),
            ),
            (
                "ALTER SUBSCRIPTION s SET PUBLICATION p, q",
                Some("ALTER SUBSCRIPTION with refresh"),
            ),
            (
                "ALTER SUBSCRIPTION s ADD PUBLICATION q WITH (copy_data = false)",
                Some("ALTER SUBSCRIPTION with refresh"),
            ),
            (
                "ALTER SUBSCRIPTION s DROP PUBLICATION q WITH (refresh = false)",
                None,
            ),
            (
                "ALTER SUBSCRIPTION s SET (failover = true)",
                Some("ALTER SUBSCRIPTION ... SET (failover)"),
            ),
            (
                "ALTER SUBSCRIPTION s SET (two_phase = false)",
                Some("ALTER SUBSCRIPTION ... SET (two_phase)"),
            ),
            ("ALTER SUBSCRIPTION s SET (two_phase = true)", None),
            ("ALTER SUBSCRIPTION s SET (slot_name = NONE)", None),
            ("ALTER SUBSCRIPTION s DISABLE", None),
            ("ALTER SUBSCRIPTION s CONNECTION 'host=b'", None),
        ] {
            assert_eq!(pg(sql), what, "{sql}");
        }
    }

    #[test]
    fn comments_strings_and_names_never_match() {
        for sql in [
            "-- VACUUM\nSELECT 1",
            "/* CREATE INDEX CONCURRENTLY */ CREATE INDEX i ON t (a)",
            "SELECT 'VACUUM'",
            "INSERT INTO log VALUES ('DROP DATABASE x')",
            "CREATE TABLE vacuum_log (id int)",
            "CREATE TABLE \"vacuum\" (id int)",
            "INSERT INTO vacuum_log VALUES (1)",
            "SELECT $$ALTER SYSTEM SET x = 1$$",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'VACUUM'; END $$",
            "CREATE INDEX \"concurrently\" ON t (a)",
            "COMMENT ON TABLE t IS 'run VACUUM after loading'",
            "",
            "-- only a comment",
            "SELECT 'unterminated",
        ] {
            assert_eq!(pg(sql), None, "{sql}");
        }
        // Leading comments before a real one do not hide it.
        assert_eq!(
            pg("-- rebuild\n/* nightly */\nVACUUM ANALYZE t"),
            Some("VACUUM")
        );
        assert_eq!(lite("-- x\nVACUUM"), Some("VACUUM"));
        assert_eq!(lite("SELECT 'VACUUM'"), None);
        assert_eq!(lite("CREATE TABLE vacuum_log (id)"), None);
        assert_eq!(ms("SELECT 'BACKUP DATABASE x' AS [RESTORE]"), None);
        assert_eq!(ms("-- ALTER DATABASE x SET ONLINE\nSELECT 1"), None);
        assert_eq!(ms("CREATE TABLE dbo.backup_log (id int)"), None);
        assert_eq!(ms("SELECT [kill] FROM dbo.t"), None);
    }

    #[test]
    fn sqlite_statements() {
        for (sql, what) in [
            ("VACUUM", "VACUUM"),
            ("vacuum main", "VACUUM"),
            ("VACUUM INTO '/tmp/copy.db'", "VACUUM"),
            ("PRAGMA journal_mode = WAL", "PRAGMA journal_mode"),
            ("pragma main.journal_mode=delete", "PRAGMA journal_mode"),
            ("PRAGMA journal_mode(wal)", "PRAGMA journal_mode"),
            ("PRAGMA synchronous = NORMAL", "PRAGMA synchronous"),
            ("PRAGMA aux.synchronous(1)", "PRAGMA synchronous"),
        ] {
            assert_eq!(lite(sql), Some(what), "{sql}");
        }
        for sql in [
            "PRAGMA journal_mode",
            "PRAGMA main.synchronous",
            "PRAGMA foreign_keys = ON",
            "PRAGMA user_version = 3",
            "PRAGMA table_info(t)",
            "ANALYZE",
            "REINDEX t",
            "ATTACH DATABASE 'x.db' AS x",
            "CREATE INDEX i ON t (a)",
        ] {
            assert_eq!(lite(sql), None, "{sql}");
        }
    }

    #[test]
    fn sqlserver_statements() {
        for (sql, what) in [
            ("CREATE DATABASE app2", "CREATE DATABASE"),
            (
                "ALTER DATABASE CURRENT SET READ_COMMITTED_SNAPSHOT ON",
                "ALTER DATABASE",
            ),
            ("DROP DATABASE IF EXISTS app2", "DROP DATABASE"),
            (
                "CREATE FULLTEXT CATALOG ftc AS DEFAULT",
                "CREATE FULLTEXT CATALOG",
            ),
            (
                "ALTER FULLTEXT CATALOG ftc REBUILD",
                "ALTER FULLTEXT CATALOG",
            ),
            ("DROP FULLTEXT CATALOG ftc", "DROP FULLTEXT CATALOG"),
            (
                "CREATE FULLTEXT INDEX ON dbo.doc (body) KEY INDEX pk_doc",
                "CREATE FULLTEXT INDEX",
            ),
            (
                "ALTER FULLTEXT INDEX ON dbo.doc ENABLE",
                "ALTER FULLTEXT INDEX",
            ),
            ("DROP FULLTEXT INDEX ON dbo.doc", "DROP FULLTEXT INDEX"),
            ("BACKUP DATABASE app TO DISK = N'app.bak'", "BACKUP"),
            ("BACKUP LOG app TO DISK = N'app.trn'", "BACKUP"),
            ("RESTORE DATABASE app FROM DISK = N'app.bak'", "RESTORE"),
            ("RESTORE HEADERONLY FROM DISK = N'app.bak'", "RESTORE"),
            ("RECONFIGURE", "RECONFIGURE"),
            ("RECONFIGURE WITH OVERRIDE", "RECONFIGURE"),
            ("KILL 53", "KILL"),
            (
                "EXEC sp_fulltext_database 'enable'",
                "a full-text system procedure (sp_fulltext_*)",
            ),
            (
                "EXECUTE @rc = sys.sp_fulltext_catalog N'ftc', 'start_full'",
                "a full-text system procedure (sp_fulltext_*)",
            ),
            (
                "sp_fulltext_table 'dbo.doc', 'activate'",
                "a full-text system procedure (sp_fulltext_*)",
            ),
            (
                "EXEC [master].[dbo].[sp_dboption] 'app', 'read only', 'TRUE'",
                "sp_dboption",
            ),
        ] {
            assert_eq!(ms(sql), Some(what), "{sql}");
        }
        for sql in [
            "CREATE TABLE dbo.t (id int)",
            "CREATE INDEX ix ON dbo.t (id)",
            "ALTER TABLE dbo.t ADD c int",
            "UPDATE STATISTICS dbo.t",
            "CREATE DATABASE AUDIT SPECIFICATION a FOR SERVER AUDIT b",
            "CREATE DATABASE ENCRYPTION KEY WITH ALGORITHM = AES_256 ENCRYPTION BY SERVER CERTIFICATE c",
            "ALTER DATABASE SCOPED CONFIGURATION SET MAXDOP = 4",
            "CREATE DATABASE SCOPED CREDENTIAL c WITH IDENTITY = 'x'",
            "BACKUP CERTIFICATE c TO FILE = 'c.cer'",
            "BACKUP MASTER KEY TO FILE = 'k' ENCRYPTION BY PASSWORD = 'p'",
            "RESTORE SERVICE MASTER KEY FROM FILE = 'k' DECRYPTION BY PASSWORD = 'p'",
            "KILL QUERY NOTIFICATION SUBSCRIPTION ALL",
            "KILL STATS JOB 5",
            "GRANT CREATE DATABASE TO app_admin",
            "GRANT CREATE TABLE, BACKUP DATABASE, BACKUP LOG TO ops",
            "REVOKE GRANT OPTION FOR CREATE FULLTEXT CATALOG FROM u",
            "DENY ALTER ANY DATABASE TO u",
            "EXEC sp_help_fulltext_catalogs",
            "EXEC dbo.load_backup_rows",
            "EXEC('BACKUP DATABASE app TO DISK = ''x''')",
            "SELECT t.[backup] FROM dbo.t AS t",
        ] {
            assert_eq!(ms(sql), None, "{sql}");
        }
    }

    #[test]
    fn sqlserver_batches_are_searched_whole() {
        // Any statement of a batch counts, not only the first, with or without `;`.
        assert_eq!(
            ms("CREATE TABLE dbo.t (id int);\nALTER DATABASE CURRENT SET RECOVERY SIMPLE;"),
            Some("ALTER DATABASE")
        );
        assert_eq!(
            ms("IF DB_ID(N'x') IS NULL\n  CREATE DATABASE x\nSELECT 1"),
            Some("CREATE DATABASE")
        );
        assert_eq!(
            ms("IF 1 = 1 BEGIN PRINT 'x' END ELSE BACKUP LOG app TO DISK = 'l'"),
            Some("BACKUP")
        );
        assert_eq!(
            ms("BEGIN TRY RECONFIGURE END TRY BEGIN CATCH THROW; END CATCH"),
            Some("RECONFIGURE")
        );
        assert_eq!(
            ms("SET NOCOUNT ON\nEXEC sp_fulltext_service 'load_os_resources', 1"),
            Some("a full-text system procedure (sp_fulltext_*)")
        );
        // Creating a routine does not run its body.
        for sql in [
            "CREATE PROCEDURE dbo.nightly AS BEGIN BACKUP DATABASE app TO DISK = 'x'; END",
            "CREATE OR ALTER PROC dbo.p AS ALTER DATABASE CURRENT SET ONLINE",
            "ALTER PROCEDURE dbo.p AS RECONFIGURE",
            "CREATE TRIGGER tr ON DATABASE FOR CREATE_TABLE AS KILL 1",
            "CREATE FUNCTION dbo.f() RETURNS int AS BEGIN RETURN 1 END",
        ] {
            assert_eq!(ms(sql), None, "{sql}");
        }
    }
}
