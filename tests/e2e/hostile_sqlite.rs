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

/// Counts the rows of an endless recursive CTE: on its own it never finishes.
const ENDLESS: &str = "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)";

#[test]
fn a_sqlite_statement_past_its_timeout_is_stopped_and_the_connection_goes_on() {
    // SQLite has no server to cancel on: the session's watchdog stops the statement in
    // SQLite's own loop, so the 60 s run never gets near its deadline.
    let lab = SqliteLab::new();
    let write_forever = format!("UPDATE secrets SET note = ({ENDLESS})");
    let results = probe_results(&lab.project.run_probe_with(
        "timeout-seconds = 60\nstatement-timeout-seconds = 1",
        &[("victim", "read-only"), ("scratch", "read-write")],
        json!([
            { "op": "query", "db": "victim", "sql": ENDLESS },
            { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM secrets" },
            { "op": "execute", "db": "scratch", "sql": write_forever },
            { "op": "query", "db": "scratch", "sql": "SELECT note FROM secrets" },
        ]),
    ));
    for i in [0, 2] {
        assert_eq!(results[i]["error"]["kind"], "timeout", "{results:?}");
        assert!(
            results[i]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("statement-timeout-seconds"),
            "the error says which limit: {results:?}"
        );
    }
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert_eq!(
        results[3]["ok"]["rows"][0][0]["v"], "original",
        "the stopped UPDATE wrote nothing: {results:?}"
    );
    lab.assert_untouched();
}

#[test]
fn a_sqlite_statement_running_at_the_run_deadline_is_stopped_and_the_run_ends() {
    // The statement runs on the thread that would enforce the run's deadline: without the
    // watchdog it would run forever and the run would never end.
    let lab = SqliteLab::new();
    let out = lab.project.run_probe_with(
        "timeout-seconds = 2",
        &[("scratch", "read-write")],
        json!([
            { "op": "begin", "db": "scratch" },
            { "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = 'in tx'", "tx": true },
            { "op": "query", "db": "scratch", "sql": ENDLESS, "tx": true },
        ]),
    );
    // The statement's time is the run's time left: the watchdog stops it as the run's time
    // runs out, and the flow hears a timeout, or the run is stopped at its deadline.
    if out.status.code() == Some(4) {
        assert!(stderr(&out).contains("time limit"), "{}", stderr(&out));
    } else {
        let results = probe_results(&out);
        assert_eq!(results[2]["error"]["kind"], "timeout", "{results:?}");
    }
    lab.assert_untouched();
    // Nothing holds the file: a writer gets it at once.
    let rows = sqlite_rows(
        &lab.project.path().join("lab.db"),
        "INSERT INTO secrets VALUES (2, 'after') RETURNING id",
    );
    assert_eq!(rows[0][0].as_deref(), Some("2"));
}

#[test]
fn sigterm_stops_a_running_sqlite_statement_at_once_and_rolls_its_transaction_back() {
    // The statement is stepped on the very thread that hears signals, so tokio cannot cancel
    // the run while it steps: SQLite's progress handler sees the signal itself. Without that
    // the process would wait for the statement's 600 s limit.
    use std::time::Duration;

    use crate::serve_support::{signal_and_wait, spawn_flowhost};

    let lab = SqliteLab::new();
    let manifest = lab.project.write(
        "probe.toml",
        "[flow]\nname = \"probe\"\n\n[limits]\ntimeout-seconds = 600\nstatement-timeout-seconds = 600\n\n[databases.scratch]\naccess = \"read-write\"\n",
    );
    let input = lab.project.write(
        "input.json",
        &json!({"steps": [
            { "op": "begin", "db": "scratch" },
            { "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = 'in tx'", "tx": true },
            { "op": "query", "db": "scratch", "sql": ENDLESS, "tx": true },
        ]})
        .to_string(),
    );
    let child = spawn_flowhost(
        &lab.project,
        &[
            "run",
            probe_wasm().to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--json",
            "--input-file",
            input.to_str().unwrap(),
        ],
    );
    // The UPDATE holds the write lock from just before the endless read starts.
    wait_until_write_locked(&lab.project.path().join("lab.db"));
    std::thread::sleep(Duration::from_millis(300));
    let (status, out) = signal_and_wait(child, "TERM");
    assert_eq!(status, Some(143), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("--json prints its document");
    assert_eq!(doc["error"]["kind"], "cancelled", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SIGTERM"),
        "{doc}"
    );
    lab.assert_untouched();
}

/// Waits until another connection holds `file`'s write lock (a write transaction is open).
fn wait_until_write_locked(file: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    block_on(async {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(file)
            .busy_timeout(std::time::Duration::ZERO);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        loop {
            match sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await {
                Err(_) => return,
                Ok(_) => {
                    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the flow never took the write lock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
}
