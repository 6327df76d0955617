use super::*;

fn read_only(sql: &str) -> Result<Checked, Refusal> {
    check(sql, true)
}

fn read_write(sql: &str) -> Result<Checked, Refusal> {
    check(sql, false)
}

/// The functions a statement calls by name.
fn names(checked: &Checked) -> Vec<String> {
    called(checked, CallKind::Function)
}

fn called(checked: &Checked, kind: CallKind) -> Vec<String> {
    checked
        .functions
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn plain_reads_pass_a_read_only_grant_with_their_functions_listed() {
    for sql in [
        "SELECT 1",
        "select a, b from t where c = $1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "(SELECT 1) UNION (SELECT 2)",
        "VALUES (1), (2)",
        "TABLE t",
        "SHOW search_path",
        "EXPLAIN SELECT * FROM t",
        "EXPLAIN ANALYZE SELECT * FROM t",
        "SELECT 1 -- a comment\n",
        "/* c */ SELECT 1;",
    ] {
        let checked = read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(checked.kind, StatementKind::Read, "{sql}");
    }
    let checked = read_only("SELECT lower(a), pg_catalog.now(), count(*) FROM t").unwrap();
    assert_eq!(
        names(&checked),
        ["count()", "lower()", "pg_catalog.now()"],
        "every call is listed for the database to resolve"
    );
}

#[test]
fn quoting_and_unicode_escapes_cannot_hide_a_function_name() {
    for sql in [
        r#"SELECT U&"pg_read_file"('/etc/passwd')"#,
        r#"SELECT U&"\0070g_read_file"('/etc/passwd')"#,
        r#"SELECT "pg_read_file"('/etc/passwd')"#,
        r#"SELECT pg_catalog."pg_read_file"('/etc/passwd')"#,
        "SELECT * FROM (SELECT pg_read_file('/etc/passwd')) AS s",
    ] {
        let err = read_only(sql).expect_err(sql);
        assert!(err.to_string().contains("pg_read_file()"), "{sql}: {err}");
        let err = read_write(sql).expect_err(sql);
        assert!(err.to_string().contains("pg_read_file()"), "{sql}: {err}");
    }
}

#[test]
fn a_carriage_return_ends_a_comment_as_the_server_sees_it() {
    // The host's old lexer ended `--` comments only at `\n`: this was a COPY to a program
    // hidden behind a comment. The parser sees the COPY.
    let sql = "--\rCOPY ( --\nSELECT 1) TO PROGRAM 'id'";
    let err = read_only(sql).unwrap_err();
    assert!(err.to_string().contains("COPY"), "{err}");
    assert!(read_write(sql).is_err());
}

#[test]
fn every_write_form_is_refused_on_a_read_only_grant() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "SELECT * INTO newt FROM t",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t FOR SHARE",
        "SELECT * FROM t FOR KEY SHARE SKIP LOCKED",
        "EXPLAIN ANALYZE DELETE FROM t",
        "CREATE TABLE x (a int)",
        "DROP TABLE t",
        "TRUNCATE t",
        "COPY t TO STDOUT",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "DO $$ BEGIN PERFORM 1; END $$",
        "CALL p()",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "LISTEN ch",
        "NOTIFY ch",
        "SET search_path = x",
        "SET ROLE postgres",
        "RESET ALL",
        "DISCARD ALL",
        "LOCK TABLE t",
        "VACUUM t",
        "ANALYZE t",
        "CREATE EXTENSION dblink",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "GRANT SELECT ON t TO public",
    ] {
        let err = read_only(sql).expect_err(sql);
        assert!(matches!(err, Refusal::NotARead(_)), "{sql}: {err:?}");
    }
}

#[test]
fn transaction_control_is_refused_on_every_grant() {
    for sql in [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "START TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "END",
    ] {
        for ro in [true, false] {
            let err = check(sql, ro).expect_err(sql);
            assert!(
                matches!(
                    err,
                    Refusal::TransactionControl(_) | Refusal::NotARead(_) | Refusal::Forbidden(_)
                ),
                "{sql}: {err:?}"
            );
        }
        assert!(matches!(
            read_write(sql),
            Err(Refusal::TransactionControl(_) | Refusal::Forbidden(_))
        ));
    }
}

#[test]
fn read_write_grants_run_data_and_table_statements() {
    for (sql, kind) in [
        (
            "INSERT INTO t VALUES ($1) ON CONFLICT DO NOTHING",
            StatementKind::Write,
        ),
        ("UPDATE t SET a = a + 1 WHERE id = $1", StatementKind::Write),
        ("DELETE FROM t", StatementKind::Write),
        ("SELECT * FROM t FOR UPDATE", StatementKind::Write),
        ("SELECT * INTO t2 FROM t", StatementKind::Write),
        (
            "WITH d AS (DELETE FROM t RETURNING *) INSERT INTO u SELECT * FROM d",
            StatementKind::Write,
        ),
        ("SELECT nextval('s')", StatementKind::Read),
        (
            "CREATE TABLE IF NOT EXISTS x (a int primary key)",
            StatementKind::Ddl,
        ),
        ("CREATE INDEX ON x (a)", StatementKind::Ddl),
        ("CREATE TEMP TABLE tmp (a int)", StatementKind::Ddl),
        ("ALTER TABLE x ADD COLUMN b text", StatementKind::Ddl),
        ("DROP TABLE IF EXISTS x", StatementKind::Ddl),
        ("TRUNCATE x", StatementKind::Ddl),
        ("CREATE VIEW v AS SELECT 1", StatementKind::Ddl),
        ("VACUUM x", StatementKind::Ddl),
        ("ALTER TABLE x RENAME TO y", StatementKind::Ddl),
        ("ALTER TABLE x RENAME COLUMN a TO b", StatementKind::Ddl),
        ("DROP VIEW IF EXISTS v", StatementKind::Ddl),
        ("DROP INDEX i", StatementKind::Ddl),
        ("COMMENT ON TABLE x IS 'work'", StatementKind::Ddl),
    ] {
        let checked = read_write(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(checked.kind, kind, "{sql}");
        assert!(checked.functions.is_empty());
    }
}

#[test]
fn read_write_grants_refuse_what_escapes_the_database() {
    for (sql, word) in [
        ("COPY t FROM '/etc/passwd'", "COPY"),
        ("COPY (SELECT 1) TO PROGRAM 'id'", "COPY"),
        ("COPY t FROM STDIN", "COPY"),
        ("CREATE EXTENSION IF NOT EXISTS dblink", "CREATE EXTENSION"),
        (
            "SELECT dblink_exec('dbname=postgres', 'DROP TABLE x')",
            "dblink_exec",
        ),
        ("ALTER SYSTEM SET archive_command = 'id'", "ALTER SYSTEM"),
        (
            "ALTER DATABASE postgres SET search_path = x",
            "ALTER DATABASE",
        ),
        ("ALTER ROLE postgres SUPERUSER", "ALTER ROLE"),
        ("CREATE ROLE r LOGIN", "CREATE ROLE"),
        ("GRANT pg_read_server_files TO flow", "GRANT ROLE"),
        ("SET ROLE postgres", "SET"),
        ("SET SESSION AUTHORIZATION postgres", "SET"),
        ("SET search_path = evil", "SET"),
        ("RESET ALL", "SET"),
        (
            "DO $$ BEGIN EXECUTE 'COPY t TO PROGRAM ''id'''; END $$",
            "DO",
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE FUNCTION",
        ),
        (
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'",
            "CREATE FUNCTION",
        ),
        ("LOAD 'plpgsql'", "LOAD"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("DEALLOCATE ALL", "DEALLOCATE"),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DECLARE CURSOR"),
        ("LISTEN ch", "LISTEN"),
        ("DISCARD ALL", "DISCARD"),
        ("CREATE DATABASE x", "CREATE DATABASE"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT pg_ls_dir('.')", "pg_ls_dir"),
        ("SELECT lo_import('/etc/passwd')", "lo_import"),
        ("SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
        (
            "SELECT pg_create_physical_replication_slot('s')",
            "pg_create_physical_replication_slot",
        ),
        ("SELECT pg_stat_reset()", "pg_stat_reset"),
        ("SELECT ts_stat('SELECT pg_advisory_lock(1)')", "ts_stat"),
        (
            "SELECT query_to_xml('DELETE FROM t', true, true, '')",
            "query_to_xml",
        ),
        ("SELECT set_config('role', 'postgres', false)", "set_config"),
        ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
        (
            "INSERT INTO t SELECT pg_read_file('/etc/passwd')",
            "pg_read_file",
        ),
        (
            "CREATE VIEW v AS SELECT pg_read_file('/etc/passwd')",
            "pg_read_file",
        ),
    ] {
        let err = read_write(sql).expect_err(sql);
        assert!(matches!(err, Refusal::Forbidden(_)), "{sql}: {err:?}");
        assert!(err.to_string().contains(word), "{sql}: {err}");
    }
}

#[test]
fn protected_catalogs_are_refused_on_every_grant() {
    for sql in [
        "SELECT rolpassword FROM pg_authid",
        "SELECT * FROM pg_catalog.pg_shadow",
        "SELECT * FROM pg_hba_file_rules",
        r#"SELECT * FROM "pg_authid""#,
        "WITH a AS (SELECT * FROM pg_authid) SELECT 1",
    ] {
        for ro in [true, false] {
            let err = check(sql, ro).expect_err(sql);
            assert!(matches!(err, Refusal::Forbidden(_)), "{sql}: {err:?}");
        }
    }
    // The same name in a user schema is just a table.
    read_only("SELECT * FROM etl.pg_authid").unwrap();
}

#[test]
fn one_statement_per_call() {
    assert!(matches!(
        read_only("SELECT 1; SELECT 2"),
        Err(Refusal::Sql(SqlError::MultipleStatements))
    ));
    assert!(matches!(
        read_only("SELECT 1;\r--\rDELETE FROM t"),
        Err(Refusal::Sql(SqlError::MultipleStatements))
    ));
    assert!(matches!(
        read_only("-- nothing"),
        Err(Refusal::Sql(SqlError::Empty))
    ));
    assert!(matches!(read_only("SELEC 1"), Err(Refusal::Syntax(_))));
    assert!(matches!(read_only("SELECT '\0'"), Err(Refusal::Syntax(_))));
}

#[test]
fn deep_but_ordinary_expressions_are_checked() {
    // A long chain of additions nests one level per term; generated SQL does this.
    let sum = (0..2000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    read_only(&format!("SELECT {sum}")).unwrap();
    // Hostile depth ends in a clear refusal, never a crashed host.
    let calls = |depth: usize| format!("SELECT {}1{}", "abs(".repeat(depth), ")".repeat(depth));
    read_only(&calls(500)).unwrap();
    let err = read_only(&calls(200_000)).unwrap_err();
    assert!(matches!(err, Refusal::Syntax(_)), "{err}");
    let chain = format!("SELECT 1{}", " + 1".repeat(400_000));
    if let Err(err) = read_only(&chain) {
        assert!(matches!(err, Refusal::Syntax(_)), "{err}");
    }
}

#[test]
fn function_policy_allows_only_side_effect_free_calls() {
    assert!(function_allowed(&function("lower"), &['i']));
    assert!(function_allowed(&function("now"), &['s']));
    assert!(function_allowed(&function("random"), &['v']));
    assert!(function_allowed(&function("no_such_function"), &[]));
    assert!(!function_allowed(&function("nextval"), &['v']));
    assert!(
        !function_allowed(&function("my_func"), &['s', 'v']),
        "one volatile overload is enough"
    );
    assert!(
        !function_allowed(&function("query_to_xml"), &['s']),
        "stable but runs SQL text"
    );
    assert!(!function_allowed(&function("pg_ls_waldir"), &['v']));
}

#[test]
fn keywords_read_as_sql() {
    assert_eq!(keyword_of("SelectStmt"), "SELECT");
    assert_eq!(keyword_of("CreateTableAsStmt"), "CREATE TABLE AS");
    assert_eq!(keyword_of("AlterSystemStmt"), "ALTER SYSTEM");
    assert_eq!(keyword_of("CreateExtensionStmt"), "CREATE EXTENSION");
}

fn function(name: &str) -> FunctionName {
    FunctionName::new(CallKind::Function, &[name]).unwrap()
}

#[test]
fn operators_and_casts_are_listed_for_resolution_like_functions() {
    let checked = read_only(
        "SELECT a + b, a OPERATOR(app.===) b, x::app.money, CAST(y AS mood) FROM t \
         WHERE c = ANY(SELECT d FROM u) AND e BETWEEN 1 AND 2 AND f LIKE 'x%' ORDER BY g USING <",
    )
    .unwrap();
    let mut operators = called(&checked, CallKind::Operator);
    operators.sort();
    assert_eq!(
        operators,
        [
            "operator +",
            "operator <",
            "operator <=",
            "operator =",
            "operator >=",
            "operator app.===",
            "operator ~~",
        ]
    );
    let mut casts = called(&checked, CallKind::Cast);
    casts.sort();
    assert_eq!(casts, ["a cast to app.money", "a cast to mood"]);
    assert!(names(&checked).is_empty(), "{:?}", names(&checked));
}

#[test]
fn a_volatile_operator_or_cast_is_refused_but_not_by_a_function_name_it_shares() {
    let op = FunctionName::new(CallKind::Operator, &["+"]).unwrap();
    assert!(function_allowed(&op, &['i', 'i', 's']));
    assert!(
        !function_allowed(&op, &['i', 'v']),
        "one volatile candidate refuses"
    );
    let cast = FunctionName::new(CallKind::Cast, &["random"]).unwrap();
    assert!(
        !function_allowed(&cast, &['v']),
        "the pure-function list is for functions called by name"
    );
    let named_like_denied = FunctionName::new(CallKind::Cast, &["pg_read_file"]).unwrap();
    assert!(function_allowed(&named_like_denied, &['i']));
}

#[test]
fn the_volatility_query_asks_only_for_the_kinds_a_statement_calls() {
    let operators = function_volatility_sql(&[CallKind::Operator]);
    assert!(operators.contains("pg_operator") && operators.contains("ANY($1)"));
    assert!(
        !operators.contains("pg_cast") && !operators.contains("UNION"),
        "{operators}"
    );

    let all = function_volatility_sql(&CallKind::ALL);
    let branches: Vec<&str> = all.split(" UNION ALL ").collect();
    assert_eq!(branches.len(), 3, "{all}");
    for (branch, (tag, param)) in branches
        .iter()
        .zip([("'f'", "$1"), ("'o'", "$2"), ("'c'", "$3")])
    {
        assert!(branch.starts_with(&format!("SELECT {tag}")), "{branch}");
        assert!(branch.contains(&format!("ANY({param})")), "{branch}");
    }

    let casts_after_functions = function_volatility_sql(&[CallKind::Function, CallKind::Cast]);
    assert!(
        casts_after_functions.contains("t.typname = ANY($2)"),
        "{casts_after_functions}"
    );
}

#[test]
fn checks_from_many_threads_at_once_each_get_their_own_verdict() {
    // Checker threads are shared and reused: every caller must get the verdict for its own
    // statement, however many check at once and however often.
    let verdicts: Vec<(bool, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                scope.spawn(move || {
                    (0..20)
                        .map(|_| {
                            let write = i % 2 == 0;
                            let sql = if write {
                                format!("DELETE FROM t{i} WHERE id = $1")
                            } else {
                                format!("SELECT id FROM t{i} WHERE id = $1")
                            };
                            (write, read_only(&sql).is_ok())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(verdicts.len(), 160);
    for (write, allowed) in verdicts {
        assert_eq!(
            allowed, !write,
            "a read-only grant allows reads and refuses writes"
        );
    }
    assert!(IDLE.lock().unwrap().len() <= IDLE_CHECKERS);
}
