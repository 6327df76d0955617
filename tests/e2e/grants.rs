//! A flow reaches only what its manifest grants, in the mode granted; the host enforces it.

use serde_json::json;

use crate::support::*;

#[test]
fn opening_a_database_not_in_the_manifest_is_not_granted() {
    let project = Project::new();
    let results = probe_results(&project.run_probe(
        &[("rpa_db", "read-write")],
        json!([
            { "op": "open", "db": "SurveyHub" },
            { "op": "open", "db": "rpa_db" },
        ]),
    ));
    assert_eq!(results[0]["error"]["kind"], "not-granted", "{results:?}");
    assert!(
        results[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SurveyHub")
    );
    assert_eq!(results[1]["ok"]["access"], "read-write", "{results:?}");
    // Not granted means not even created: the embedded default made no file for it.
    assert!(!project.path().join(".flowhost/surveyhub.sqlite").exists());
}

/// Writes and session changes through a read-only grant are refused, and nothing changes.
fn refuses_writes_through_read_only(project: &Project) -> Vec<serde_json::Value> {
    probe_results(&project.run_probe(
        &[("ledger", "read-only")],
        json!([
            { "op": "execute", "db": "ledger", "sql": "INSERT INTO entries (id, note) VALUES (2, 'sneaky')" },
            { "op": "execute", "db": "ledger", "sql": "UPDATE entries SET note = 'changed'" },
            { "op": "query", "db": "ledger", "sql": "WITH d AS (DELETE FROM entries RETURNING id) SELECT id FROM d" },
            { "op": "execute", "db": "ledger", "sql": "DROP TABLE entries" },
            { "op": "execute", "db": "ledger", "sql": "SELECT 1; DELETE FROM entries" },
            { "op": "begin", "db": "ledger" },
            { "op": "execute", "db": "ledger", "sql": "INSERT INTO entries (id, note) VALUES (3, 'in tx')", "tx": true },
            { "op": "commit", "db": "ledger" },
            { "op": "query", "db": "ledger", "sql": "SELECT count(*) AS n FROM entries" },
        ]),
    ))
}

fn assert_refused(results: &[serde_json::Value]) {
    for i in [0, 1, 2, 3, 6] {
        assert_eq!(
            results[i]["error"]["kind"], "read-only-violation",
            "step {i}: {results:?}"
        );
    }
    assert_eq!(
        results[4]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert!(
        results[4]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one SQL statement"),
        "{results:?}"
    );
    assert!(results[5].get("ok").is_some(), "{results:?}");
    assert!(results[7].get("ok").is_some(), "{results:?}");
    assert_eq!(results[8]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
}

#[test]
fn read_only_grant_refuses_writes_on_postgresql_and_nothing_is_written() {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE entries (id int PRIMARY KEY, note text); INSERT INTO entries VALUES (1, 'original')");
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LEDGER_CONNECTION_STRING={}\n", db.url()),
    );
    assert_refused(&refuses_writes_through_read_only(&project));
    assert_eq!(
        db.column("SELECT id::text || note FROM entries"),
        vec![Some("1original".into())]
    );
}

#[test]
fn read_only_grant_refuses_writes_on_sqlite_and_nothing_is_written() {
    let project = Project::new();
    let file = project.path().join("ledger.db");
    block_on(async {
        use sqlx::{Connection, Executor};
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        conn.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, note TEXT); INSERT INTO entries VALUES (1, 'original')")
            .await
            .unwrap();
    });
    project.write(".env", "DEVELOPMENT_GLOBAL_LEDGER_TYPE=sqlite\nDEVELOPMENT_GLOBAL_LEDGER_CONNECTION_STRING=sqlite:///ledger.db\n");
    assert_refused(&refuses_writes_through_read_only(&project));
    assert_eq!(
        sqlite_rows(&file, "SELECT id || note FROM entries"),
        vec![vec![Some("1original".into())]]
    );
}

#[test]
fn session_and_transaction_escapes_are_refused_on_postgresql() {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE entries (id int PRIMARY KEY)");
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LEDGER_CONNECTION_STRING={}\n", db.url()),
    );
    let results = probe_results(&project.run_probe(
        &[("ledger", "read-only")],
        json!([
            // Measured: BEGIN READ ONLY alone lets these through.
            { "op": "execute", "db": "ledger", "sql": "SET TRANSACTION READ WRITE" },
            { "op": "query", "db": "ledger", "sql": "SELECT pg_advisory_lock(42)" },
            { "op": "execute", "db": "ledger", "sql": "SET search_path = pg_catalog" },
            { "op": "query", "db": "ledger", "sql": "SELECT set_config('search_path', 'x', false)" },
            { "op": "execute", "db": "ledger", "sql": "COMMIT" },
            { "op": "execute", "db": "ledger", "sql": "BEGIN" },
        ]),
    ));
    assert_eq!(
        results[0]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert_eq!(
        results[1]["error"]["kind"], "read-only-violation",
        "{results:?}"
    );
    assert_eq!(
        results[2]["error"]["kind"], "read-only-violation",
        "{results:?}"
    );
    assert_eq!(
        results[3]["error"]["kind"], "read-only-violation",
        "{results:?}"
    );
    assert_eq!(
        results[4]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert_eq!(
        results[5]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert_eq!(db.count("pg_locks WHERE locktype = 'advisory'"), 0);
}
