//! A hostile flow against a real SQLite file, granted read-only as `victim` and read-write as
//! `scratch` (the same file). SQLite has no server and no roles: what the host refuses and
//! SQLite's own `query_only` mode are all that stand between a flow and the host's files.

use serde_json::{Value, json};

use crate::support::*;

struct SqliteLab {
    project: Project,
}

impl SqliteLab {
    fn new() -> SqliteLab {
        let project = Project::new();
        let file = project.path().join("lab.db");
        block_on(async {
            use sqlx::Connection;
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
            sqlx::raw_sql(
                "CREATE TABLE secrets (id INTEGER PRIMARY KEY, note TEXT NOT NULL);
                 INSERT INTO secrets VALUES (1, 'original');",
            )
            .execute(&mut conn)
            .await
            .unwrap();
        });
        project.write(
            ".env",
            "DEVELOPMENT_GLOBAL_VICTIM_CONNECTION_STRING=sqlite:///lab.db\n\
             DEVELOPMENT_GLOBAL_SCRATCH_CONNECTION_STRING=sqlite:///lab.db\n",
        );
        SqliteLab { project }
    }

    fn run(&self, steps: Value) -> Vec<Value> {
        probe_results(
            &self
                .project
                .run_probe(&[("victim", "read-only"), ("scratch", "read-write")], steps),
        )
    }

    fn assert_untouched(&self) {
        let rows = sqlite_rows(
            &self.project.path().join("lab.db"),
            "SELECT (SELECT group_concat(note) FROM secrets), \
             (SELECT count(*) FROM sqlite_master)",
        );
        assert_eq!(
            rows[0][0].as_deref(),
            Some("original"),
            "the row is unchanged"
        );
        assert_eq!(rows[0][1].as_deref(), Some("1"), "no object was created");
        let stray: Vec<_> = std::fs::read_dir(self.project.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("stolen"))
            .collect();
        assert!(stray.is_empty(), "no file was written: {stray:?}");
    }
}

fn refused(grant: &str, sql: &str, kind: &str) {
    let lab = SqliteLab::new();
    let results = lab.run(json!([
        { "op": "query", "db": grant, "sql": sql },
        { "op": "query", "db": grant, "sql": "SELECT count(*) FROM secrets" },
    ]));
    assert_eq!(results[0]["error"]["kind"], kind, "{sql}: {results:?}");
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    lab.assert_untouched();
}

macro_rules! refused {
    ($($name:ident: $grant:literal, $kind:literal, $sql:expr;)*) => {
        $( #[test] fn $name() { refused($grant, $sql, $kind); } )*
    };
}

refused! {
    sqlite_ro_insert: "victim", "read-only-violation", "INSERT INTO secrets VALUES (2, 'x')";
    sqlite_ro_replace: "victim", "read-only-violation", "REPLACE INTO secrets VALUES (1, 'x')";
    sqlite_ro_upsert_in_cte: "victim", "read-only-violation",
        "WITH x AS (SELECT 1) INSERT INTO secrets SELECT 2, 'x' FROM x";
    sqlite_ro_create_table_as: "victim", "read-only-violation", "CREATE TABLE stolen AS SELECT * FROM secrets";
    sqlite_ro_comment_hiding_the_verb: "victim", "read-only-violation", "/* SELECT */ DELETE FROM secrets";
    sqlite_attach_a_file: "scratch", "invalid-request", "ATTACH DATABASE 'stolen.db' AS s";
    sqlite_attach_on_read_only: "victim", "read-only-violation", "ATTACH 'stolen.db' AS s";
    sqlite_vacuum_into_a_file: "scratch", "invalid-request", "VACUUM INTO 'stolen.db'";
    sqlite_pragma: "scratch", "invalid-request", "PRAGMA query_only = OFF";
    sqlite_pragma_writable_schema: "scratch", "invalid-request", "PRAGMA writable_schema = ON";
    sqlite_load_extension: "scratch", "invalid-request", "SELECT load_extension('/tmp/evil.so')";
    sqlite_temp_table: "scratch", "invalid-request", "CREATE TEMP TABLE leak (a)";
    sqlite_begin: "scratch", "invalid-request", "BEGIN IMMEDIATE";
}

#[test]
fn a_failed_read_does_not_poison_the_next_one_on_sqlite() {
    let lab = SqliteLab::new();
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql": "SELECT * FROM no_such_table" },
        { "op": "query", "db": "victim", "sql": "SELECT 1 AS one" },
        { "op": "begin", "db": "victim" },
        { "op": "query", "db": "victim", "sql": "SELECT * FROM no_such_table", "tx": true },
        { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM secrets", "tx": true },
        { "op": "commit", "db": "victim" },
    ]));
    assert_eq!(results[0]["error"]["kind"], "query", "{results:?}");
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert_eq!(results[4]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert!(results[5].get("ok").is_some(), "{results:?}");
}
