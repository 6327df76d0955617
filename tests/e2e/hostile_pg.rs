//! A hostile flow against real PostgreSQL, through the real `flowhost run`: one database
//! granted twice, `victim` read-only and `scratch` read-write. Each behaviour is its own test:
//! the attempt ends with the specific error (or the allowed outcome), the same run goes on to
//! read normally, and afterwards the database shows no write, no new object and no held lock.
//!
//! The connecting role is the test server's superuser, the worst case: where the host's checks
//! fail, the attack reaches the server's files and programs.

use serde_json::{Value, json};

use crate::support::*;

/// A database with one secret row, granted read-only as `victim` and read-write as `scratch`.
pub struct Lab {
    pub db: PgDatabase,
    pub project: Project,
}

impl Lab {
    pub fn new() -> Lab {
        let db = PgDatabase::create();
        db.exec(
            "CREATE TABLE secrets (id int PRIMARY KEY, note text NOT NULL);
             INSERT INTO secrets VALUES (1, 'original');
             CREATE SEQUENCE s;
             CREATE PROCEDURE wipe() LANGUAGE sql AS 'DELETE FROM secrets';
             CREATE FUNCTION bump() RETURNS int LANGUAGE sql
                 AS 'UPDATE secrets SET note = ''bumped''; SELECT 1';
             -- A function that lies about its volatility: the host's check believes it, the
             -- database's read-only transaction does not.
             -- (PostgreSQL refuses a write made directly in a non-volatile function, but not
             -- one made by a volatile function it calls.)
             CREATE FUNCTION sneaky() RETURNS int STABLE LANGUAGE plpgsql
                 AS 'BEGIN RETURN bump(); END';
             -- Side effects behind an operator and a cast, where no function is named.
             CREATE FUNCTION bump_add(int, int) RETURNS int LANGUAGE sql
                 AS 'UPDATE secrets SET note = ''by operator''; SELECT $1 + $2';
             CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = bump_add);
             CREATE TYPE mood AS ENUM ('calm');
             CREATE FUNCTION bump_mood(int) RETURNS mood LANGUAGE sql
                 AS 'UPDATE secrets SET note = ''by cast''; SELECT ''calm''::mood';
             CREATE CAST (int AS mood) WITH FUNCTION bump_mood(int);
             -- A STABLE function that turns the session's read-only default off.
             CREATE FUNCTION unlock() RETURNS int STABLE LANGUAGE plpgsql AS
                 'BEGIN PERFORM set_config(''default_transaction_read_only'', ''off'', false);
                  RETURN 1; END';",
        );
        let project = Project::new();
        project.write(
            ".env",
            &format!(
                "DEVELOPMENT_GLOBAL_VICTIM_CONNECTION_STRING={url}\n\
                 DEVELOPMENT_GLOBAL_SCRATCH_CONNECTION_STRING={url}\n",
                url = db.url()
            ),
        );
        Lab { db, project }
    }

    /// Runs the probe with both grants.
    pub fn run(&self, steps: Value) -> Vec<Value> {
        probe_results(
            &self
                .project
                .run_probe(&[("victim", "read-only"), ("scratch", "read-write")], steps),
        )
    }

    /// Nothing was written, created or left locked.
    pub fn assert_untouched(&self) {
        assert_eq!(
            self.db.column("SELECT note FROM secrets ORDER BY id"),
            [Some("original".to_owned())],
            "the secret row is unchanged"
        );
        let objects = self.db.column(
            "SELECT count(*)::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public'",
        );
        assert_eq!(
            objects[0].as_deref(),
            Some("3"),
            "no table was created (secrets, its key, s)"
        );
        let leftovers = self.db.column(&format!(
            "SELECT ((SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                     WHERE d.datname = '{name}' AND l.pid <> pg_backend_pid())
                  + (SELECT count(*) FROM pg_replication_slots)
                  + (SELECT count(*) FROM pg_prepared_xacts)
                  + (SELECT count(*) FROM pg_extension WHERE extname = 'dblink')
                  + (SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'
                     AND pid <> pg_backend_pid() AND state = 'active'))::text",
            name = self.db.name
        ));
        assert_eq!(
            leftovers[0].as_deref(),
            Some("0"),
            "no lock, replication slot, prepared transaction, extension or running statement is left"
        );
        assert!(
            !std::path::Path::new(&format!("/tmp/{}", self.db.name)).exists(),
            "no file was written on the server"
        );
    }
}

/// Sends `sql` through `grant`'s connection, then a normal read on the same connection.
fn attempt(grant: &str, sql: &str) -> (Value, Lab) {
    let lab = Lab::new();
    // `{file}` in a case names a file the attack would create; the check asserts it is absent.
    let sql = sql.replace("{file}", &format!("/tmp/{}", lab.db.name));
    let results = lab.run(json!([
        { "op": "query", "db": grant, "sql": sql },
        { "op": "query", "db": grant, "sql": "SELECT count(*) AS n FROM secrets" },
    ]));
    assert_eq!(
        results[1]["ok"]["rows"][0][0]["v"], 1,
        "the connection still reads after the attempt: {results:?}"
    );
    (results[0].clone(), lab)
}

fn refused(grant: &str, sql: &str, kind: &str, mentions: &str) {
    let (result, lab) = attempt(grant, sql);
    assert_eq!(result["error"]["kind"], kind, "{sql}: {result}");
    let message = result["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_lowercase().contains(&mentions.to_lowercase()),
        "{sql}: the error names the problem ({mentions}): {message}"
    );
    lab.assert_untouched();
}

macro_rules! refused {
    ($($name:ident: $grant:literal, $kind:expr, $mentions:literal, $sql:expr;)*) => {
        $(
            #[test]
            fn $name() {
                refused($grant, $sql, $kind, $mentions);
            }
        )*
    };
}

const RO: &str = "read-only-violation";
const BAD: &str = "invalid-request";

refused! {
    // A volatile function behind an operator or a cast, through a read-only grant.
    ro_volatile_operator: "victim", RO, "operator ===", "SELECT 1 === 2";
    ro_volatile_operator_qualified: "victim", RO, "operator public.===",
        "SELECT 1 OPERATOR(public.===) 2";
    ro_volatile_cast: "victim", RO, "a cast to mood", "SELECT 1::mood";
    ro_volatile_cast_call_syntax: "victim", RO, "a cast to mood", "SELECT CAST(1 AS mood)";

    // Every write form through a read-only grant.
    ro_insert: "victim", RO, "INSERT", "INSERT INTO secrets VALUES (2, 'x')";
    ro_update: "victim", RO, "UPDATE", "UPDATE secrets SET note = 'x'";
    ro_delete: "victim", RO, "DELETE", "DELETE FROM secrets";
    ro_merge: "victim", RO, "MERGE",
        "MERGE INTO secrets t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE";
    ro_select_into: "victim", RO, "INTO", "SELECT * INTO stolen FROM secrets";
    ro_create_table_as: "victim", RO, "CREATE TABLE AS", "CREATE TABLE stolen AS SELECT * FROM secrets";
    ro_ddl: "victim", RO, "DROP", "DROP TABLE secrets";
    ro_truncate: "victim", RO, "TRUNCATE", "TRUNCATE secrets";
    ro_data_modifying_cte: "victim", RO, "DELETE",
        "WITH d AS (DELETE FROM secrets RETURNING id) SELECT id FROM d";
    ro_cte_deep_in_a_subquery: "victim", RO, "UPDATE",
        "SELECT * FROM (WITH u AS (UPDATE secrets SET note = 'x' RETURNING 1) SELECT * FROM u) q";
    ro_for_update: "victim", RO, "FOR UPDATE", "SELECT * FROM secrets FOR UPDATE";
    ro_for_share: "victim", RO, "FOR UPDATE", "SELECT * FROM secrets FOR SHARE NOWAIT";
    ro_nextval: "victim", RO, "nextval", "SELECT nextval('s')";
    ro_lo_import: "victim", RO, "lo_import", "SELECT lo_import('/etc/hostname')";
    ro_lo_create: "victim", RO, "lo_create", "SELECT lo_create(0)";
    ro_pg_read_file: "victim", RO, "pg_read_file", "SELECT pg_read_file('/etc/passwd')";
    ro_unicode_escaped_name: "victim", RO, "pg_read_file",
        r#"SELECT U&"\0070g_read_file"('/etc/passwd')"#;
    ro_quoted_schema_qualified_name: "victim", RO, "pg_read_file",
        r#"SELECT "pg_catalog"."pg_read_file"('/etc/passwd')"#;
    ro_pg_ls_dir: "victim", RO, "pg_ls_dir", "SELECT pg_ls_dir('.')";
    ro_dblink: "victim", RO, "dblink",
        "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(a int)";
    ro_copy_to_program: "victim", RO, "COPY", "COPY (SELECT 1) TO PROGRAM 'touch {file}'";
    ro_copy_hidden_behind_a_carriage_return: "victim", RO, "COPY",
        "--\rCOPY ( --\nSELECT 1) TO PROGRAM 'touch {file}'";
    ro_copy_to_a_server_file: "victim", RO, "COPY", "COPY secrets TO '{file}'";
    ro_terminate_backend: "victim", RO, "pg_terminate_backend",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()";
    ro_cancel_backend: "victim", RO, "pg_cancel_backend",
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity";
    ro_sleep_as_denial_of_service: "victim", RO, "pg_sleep", "SELECT pg_sleep(30)";
    ro_prepare_transaction: "victim", BAD, "transaction", "PREPARE TRANSACTION 'stuck'";
    ro_begin: "victim", BAD, "transaction", "BEGIN";
    ro_commit: "victim", BAD, "transaction", "COMMIT";
    ro_set_transaction_read_write: "victim", BAD, "transaction", "SET TRANSACTION READ WRITE";
    ro_do_block: "victim", RO, "DO", "DO $$ BEGIN DELETE FROM secrets; END $$";
    ro_call: "victim", RO, "CALL", "CALL wipe()";
    ro_writing_function_in_a_select: "victim", RO, "bump", "SELECT bump()";
    ro_writing_function_in_a_where: "victim", RO, "bump", "SELECT 1 FROM secrets WHERE bump() = 1";
    ro_explain_analyze_of_a_write: "victim", RO, "DELETE", "EXPLAIN ANALYZE DELETE FROM secrets";
    ro_comment_hiding_the_verb: "victim", RO, "DELETE", "/* SELECT */ DELETE FROM secrets";
    ro_union_hiding_a_call: "victim", RO, "nextval", "(SELECT 1) UNION (SELECT nextval('s'))";
    ro_sql_given_as_text: "victim", RO, "ts_stat", "SELECT * FROM ts_stat('SELECT pg_advisory_lock(1)')";
    ro_query_to_xml: "victim", RO, "query_to_xml",
        "SELECT query_to_xml('DELETE FROM secrets RETURNING 1', true, true, '')";
    ro_replication_slot: "victim", RO, "replication_slot",
        "SELECT pg_create_physical_replication_slot('pinned')";
    ro_stat_reset: "victim", RO, "pg_stat_reset", "SELECT pg_stat_reset()";
    ro_password_hashes: "victim", RO, "pg_authid", "SELECT rolname, rolpassword FROM pg_authid";
    ro_authentication_rules: "victim", RO, "pg_hba_file_rules", "SELECT * FROM pg_hba_file_rules";
    ro_set_config: "victim", RO, "set_config", "SELECT set_config('search_path', 'evil', false)";
    ro_advisory_lock: "victim", RO, "pg_advisory_lock", "SELECT pg_advisory_lock(42)";
    ro_set_role: "victim", RO, "SET", "SET ROLE pg_read_server_files";
    ro_set_session_authorization: "victim", RO, "SET", "SET SESSION AUTHORIZATION postgres";
    ro_prepare: "victim", RO, "PREPARE", "PREPARE leak AS SELECT 1";
    ro_listen: "victim", RO, "LISTEN", "LISTEN ch";
    ro_chained_statements: "victim", BAD, "one SQL statement", "SELECT 1; DELETE FROM secrets";
    ro_chained_behind_a_carriage_return: "victim", BAD, "one SQL statement",
        "SELECT 1;\r--\rDELETE FROM secrets";

    // What a read-write grant still refuses: what reaches outside the database.
    rw_copy_to_program: "scratch", BAD, "COPY", "COPY (SELECT 1) TO PROGRAM 'touch {file}'";
    rw_copy_to_a_server_file: "scratch", BAD, "COPY", "COPY secrets TO '{file}'";
    rw_copy_from_a_server_file: "scratch", BAD, "COPY", "COPY secrets FROM '/etc/passwd'";
    rw_create_extension: "scratch", BAD, "CREATE EXTENSION", "CREATE EXTENSION IF NOT EXISTS dblink";
    rw_dblink_exec: "scratch", BAD, "dblink_exec",
        "SELECT dblink_exec('dbname=postgres', 'CREATE TABLE pwned (a int)')";
    rw_alter_database: "scratch", BAD, "ALTER DATABASE",
        "ALTER DATABASE postgres SET search_path = evil";
    rw_alter_system: "scratch", BAD, "ALTER SYSTEM", "ALTER SYSTEM SET archive_command = 'touch {file}'";
    rw_alter_role: "scratch", BAD, "ALTER ROLE", "ALTER ROLE CURRENT_USER SET search_path = evil";
    rw_create_role: "scratch", BAD, "CREATE ROLE", "CREATE ROLE intruder LOGIN SUPERUSER";
    rw_grant_role: "scratch", BAD, "GRANT ROLE", "GRANT pg_execute_server_program TO public";
    rw_set_role: "scratch", BAD, "SET", "SET ROLE pg_read_server_files";
    rw_do_block: "scratch", BAD, "DO",
        "DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {file}'''; END $$";
    rw_create_function: "scratch", BAD, "CREATE FUNCTION",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'";
    rw_file_read_inside_an_insert: "scratch", BAD, "pg_read_file",
        "INSERT INTO secrets SELECT 2, pg_read_file('/etc/passwd')";
    rw_file_read_inside_a_view: "scratch", BAD, "pg_read_file",
        "CREATE VIEW leak AS SELECT pg_read_file('/etc/passwd')";
    rw_lo_export: "scratch", BAD, "lo_export", "SELECT lo_export(0, '{file}')";
    rw_logical_replication_slot: "scratch", BAD, "replication_slot",
        "SELECT pg_create_logical_replication_slot('pinned', 'test_decoding')";
    rw_deallocate_all: "scratch", BAD, "DEALLOCATE", "DEALLOCATE ALL";
    rw_with_hold_cursor: "scratch", BAD, "DECLARE CURSOR", "DECLARE c CURSOR WITH HOLD FOR SELECT 1";
    rw_discard_all: "scratch", BAD, "DISCARD", "DISCARD ALL";
    rw_load_library: "scratch", BAD, "LOAD", "LOAD 'plpgsql'";
    rw_password_hashes: "scratch", BAD, "pg_authid", "SELECT rolpassword FROM pg_catalog.pg_authid";
    rw_terminate_backend: "scratch", BAD, "pg_terminate_backend",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()";
}

#[test]
fn a_function_that_lies_about_its_volatility_is_stopped_by_the_read_only_transaction() {
    // The host's check trusts pg_proc's STABLE; the database's read-only mode is the second
    // layer, outside and inside an explicit transaction.
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql": "SELECT sneaky()" },
        { "op": "begin", "db": "victim" },
        { "op": "query", "db": "victim", "sql": "SELECT sneaky()", "tx": true },
        { "op": "commit", "db": "victim" },
        { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM secrets" },
    ]));
    for i in [0, 2] {
        assert_eq!(
            results[i]["error"]["kind"], "query",
            "step {i}: {results:?}"
        );
        assert_eq!(
            results[i]["error"]["code"], "25006",
            "read-only transaction: {results:?}"
        );
    }
    assert_eq!(results[4]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    lab.assert_untouched();
}

#[test]
fn a_function_turning_the_read_only_default_off_does_not_open_the_next_statement() {
    // unlock() is STABLE, so it passes the host's check; what it did to the session's
    // read-only default is undone before the next statement, which sneaky() then tests.
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql": "SELECT unlock()" },
        { "op": "query", "db": "victim", "sql": "SELECT sneaky()" },
        { "op": "query", "db": "victim", "sql": "SELECT unlock()" },
        { "op": "begin", "db": "victim" },
        { "op": "commit", "db": "victim" },
        { "op": "query", "db": "victim", "sql": "SELECT sneaky()" },
        { "op": "query", "db": "victim", "sql": "SHOW default_transaction_read_only" },
    ]));
    assert_eq!(results[0]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    for i in [1, 5] {
        assert_eq!(
            results[i]["error"]["code"], "25006",
            "step {i} is still read-only: {results:?}"
        );
    }
    assert_eq!(results[6]["ok"]["rows"][0][0]["v"], "on", "{results:?}");
    lab.assert_untouched();
}

#[test]
fn reads_pass_with_side_effect_free_functions() {
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql":
          "SELECT upper(note), now() IS NOT NULL, random() < 2, length(gen_random_uuid()::text) \
           FROM secrets WHERE id = :id", "params": { "id": v("int", json!(1)) } },
        { "op": "query", "db": "victim", "sql": "EXPLAIN SELECT * FROM secrets" },
        { "op": "query", "db": "victim", "sql": "SHOW search_path" },
        { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM pg_class" },
    ]));
    let row = &results[0]["ok"]["rows"][0];
    assert_eq!(row[0]["v"], "ORIGINAL", "{results:?}");
    assert_eq!(row[1]["v"], true);
    assert_eq!(row[3]["v"], 36);
    for (i, r) in results.iter().enumerate() {
        assert!(r.get("ok").is_some(), "step {i}: {r}");
    }
    lab.assert_untouched();
}

#[test]
fn a_failed_read_does_not_poison_the_next_one() {
    // Regression: reads on a read-only grant shared one READ ONLY transaction, so after
    // `SELECT 1/0` every later statement failed with 25P02.
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql": "SELECT 1/0" },
        { "op": "query", "db": "victim", "sql": "SELECT 1 AS one" },
        { "op": "query", "db": "victim", "sql": "SELECT * FROM no_such_table" },
        { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM secrets" },
        { "op": "query", "db": "scratch", "sql": "SELECT 1/0" },
        { "op": "query", "db": "scratch", "sql": "SELECT 2 AS two" },
    ]));
    assert_eq!(results[0]["error"]["code"], "22012", "{results:?}");
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert_eq!(results[2]["error"]["code"], "42P01", "{results:?}");
    assert_eq!(results[3]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert_eq!(results[4]["error"]["code"], "22012", "{results:?}");
    assert_eq!(results[5]["ok"]["rows"][0][0]["v"], 2, "{results:?}");
}

#[test]
fn read_write_grants_still_run_data_and_table_statements() {
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "execute", "db": "scratch", "sql": "CREATE TABLE work (id int PRIMARY KEY, n int)" },
        { "op": "execute", "db": "scratch", "sql": "INSERT INTO work VALUES (1, 1), (2, 2)" },
        { "op": "execute", "db": "scratch", "sql": "UPDATE work SET n = n + nextval('s')" },
        { "op": "query", "db": "scratch", "sql": "SELECT * FROM work FOR UPDATE" },
        { "op": "execute", "db": "scratch", "sql": "CREATE TEMP TABLE scratchpad (a int)" },
        { "op": "execute", "db": "scratch", "sql": "SELECT bump()" },
        { "op": "execute", "db": "scratch", "sql": "CALL wipe()" },
    ]));
    for (i, r) in results.iter().enumerate() {
        assert!(r.get("ok").is_some(), "step {i}: {r}");
    }
    assert_eq!(lab.db.count("work"), 2);
    assert_eq!(
        lab.db.count("secrets"),
        0,
        "trusted procedures run on a read-write grant"
    );
}
