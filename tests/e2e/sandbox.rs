//! Hostile and failing guests: every one ends with a clean non-zero exit and a message, and
//! leaves the databases as they were before its unfinished work.

use serde_json::json;

use crate::support::*;

#[test]
fn a_flow_that_returns_an_error_exits_1_with_its_message() {
    let project = Project::new();
    let out = project.run_probe(
        &[],
        json!([{ "op": "fail", "message": "the survey API said no" }]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the survey API said no"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).is_empty(),
        "stdout must hold only a result: {}",
        stdout(&out)
    );
}

#[test]
fn a_panicking_flow_exits_4_with_the_panic_message() {
    let project = Project::new();
    let out = project.run_probe(
        &[],
        json!([{ "op": "panic", "message": "index out of bounds in step 3" }]),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("panicked"), "{err}");
    assert!(err.contains("index out of bounds in step 3"), "{err}");
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    let project = Project::new();
    let out = project.run_probe_with("timeout-seconds = 1", &[], json!([{ "op": "loop" }]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("time limit"), "{}", stderr(&out));
}

/// `flowhost run` compiles flows without interruption checks: a flow stuck in its own code
/// past the deadline ends the process, and the run is still reported and recorded.
#[test]
fn an_endless_loop_ends_the_process_and_is_recorded_as_timed_out() {
    let project = Project::new();
    let manifest = project.write(
        "probe.toml",
        "[flow]\nname = \"probe\"\n\n[limits]\ntimeout-seconds = 1\n",
    );
    let input = project.write(
        "input.json",
        &json!({ "steps": [{ "op": "loop" }] }).to_string(),
    );
    let out = project.run_component(
        &probe_wasm(),
        &manifest,
        &["--input-file", input.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let envelope: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    assert_eq!(envelope["ok"], false, "{envelope}");
    assert_eq!(envelope["exit_code"], 4, "{envelope}");
    assert_eq!(envelope["error"]["kind"], "timeout", "{envelope}");
    let message = envelope["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("time limit"), "{envelope}");
    let runs = json_ok(&project.flowhost(&["runs", "list", "--json"]));
    let run = &runs["runs"][0];
    assert_eq!(run["run_id"], envelope["run_id"], "{runs}");
    assert_eq!(run["state"], "timed-out", "{runs}");
}

#[test]
fn a_flow_over_its_memory_limit_is_stopped() {
    let project = Project::new();
    let out = project.run_probe_with("memory-mb = 32", &[], json!([{ "op": "alloc", "mb": 200 }]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("memory limit"), "{}", stderr(&out));
}

#[test]
fn a_flow_sees_no_environment_no_files_and_no_network() {
    let project = Project::new();
    project.write("secret.txt", "do not read");
    let results = probe_results(&project.run_probe(
        &[],
        json!([
            { "op": "env" },
            { "op": "read_file", "path": "secret.txt" },
            { "op": "read_file", "path": "/etc/passwd" },
            { "op": "connect", "addr": "127.0.0.1:5432" },
        ]),
    ));
    assert_eq!(results[0]["ok"]["vars"], 0, "{results:?}");
    for i in 1..=3 {
        assert_eq!(results[i]["error"]["kind"], "sdk", "step {i}: {results:?}");
    }
}

#[test]
fn guest_output_goes_to_the_log_not_to_stdout() {
    let project = Project::new();
    let out = project.run_probe(
        &[],
        json!([
            { "op": "stdout", "message": "printed by the guest" },
            { "op": "log", "level": "warn", "message": "logged by the guest" },
        ]),
    );
    let result = json_ok(&out);
    assert_eq!(result["results"].as_array().unwrap().len(), 2);
    let err = stderr(&out);
    assert!(err.contains("printed by the guest"), "{err}");
    assert!(err.contains("logged by the guest"), "{err}");
    assert!(!stdout(&out).contains("printed by the guest"));
}

#[test]
fn a_transaction_left_open_by_a_panicking_flow_is_rolled_back() {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE work (id int PRIMARY KEY)");
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\n", db.url()),
    );
    let out = project.run_probe(
        &[("rpa_db", "read-write")],
        json!([
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work VALUES (1)" },
            { "op": "begin", "db": "rpa_db" },
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work VALUES (2)", "tx": true },
            { "op": "panic", "message": "crash mid-transaction" },
        ]),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // The autocommitted row stays; the unfinished transaction's row is gone.
    assert_eq!(
        db.column("SELECT id::text FROM work ORDER BY id"),
        vec![Some("1".into())]
    );
}

/// A database with an empty `work (id int PRIMARY KEY, note text)` table, and a project
/// whose `rpa_db` is it.
fn work_table() -> (PgDatabase, Project) {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE work (id int PRIMARY KEY, note text)");
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\n", db.url()),
    );
    (db, project)
}

/// A `work` row as a batch's parameter set.
fn work_row(id: i64) -> serde_json::Value {
    json!({ "id": v("int", json!(id)), "note": v("text", json!(format!("n{id}"))) })
}

#[test]
fn batches_in_a_transaction_keep_it_usable_and_end_with_it() {
    // A batch that is the first statement of the flow's transaction begins it; a later one
    // runs under a savepoint, released with the transaction's next statement, or not at all
    // when a commit or rollback comes next.
    let (db, project) = work_table();
    let insert = "INSERT INTO work (id, note) VALUES (:id, :note)";
    let results = probe_results(&project.run_probe(
        &[("rpa_db", "read-write")],
        json!([
            { "op": "begin", "db": "rpa_db" },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(1), work_row(2)], "tx": true },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(3), work_row(1)], "tx": true },
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work (id) VALUES (4)", "tx": true },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(5)], "tx": true },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(6), work_row(7)], "tx": true },
            { "op": "commit", "db": "rpa_db" },
            { "op": "begin", "db": "rpa_db" },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(8)], "tx": true },
            { "op": "rollback", "db": "rpa_db" },
            { "op": "begin", "db": "rpa_db" },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(9)], "tx": true },
            { "op": "query", "db": "rpa_db", "sql": "SELECT count(*)::int AS n FROM work", "tx": true },
            { "op": "commit", "db": "rpa_db" },
            // A failed batch that was the transaction's first statement leaves it as new.
            { "op": "begin", "db": "rpa_db" },
            { "op": "batch", "db": "rpa_db", "sql": insert, "param_sets": [work_row(10), work_row(10)], "tx": true },
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work (id) VALUES (11)", "tx": true },
            { "op": "commit", "db": "rpa_db" },
            // A transaction with no statement in it.
            { "op": "begin", "db": "rpa_db" },
            { "op": "commit", "db": "rpa_db" },
        ]),
    ));
    assert_eq!(results[1]["ok"]["affected"], 2, "{results:?}");
    assert_eq!(results[2]["error"]["code"], "23505", "{results:?}");
    assert_eq!(results[3]["ok"]["affected"], 1, "{results:?}");
    assert_eq!(results[5]["ok"]["affected"], 2, "{results:?}");
    assert!(results[6].get("error").is_none(), "commit: {results:?}");
    assert!(results[9].get("error").is_none(), "rollback: {results:?}");
    // Inside the transaction, its own batches are visible: 1, 2, 4, 5, 6, 7 and 9.
    assert_eq!(results[12]["ok"]["rows"][0][0]["v"], 7, "{results:?}");
    assert!(results[13].get("error").is_none(), "commit: {results:?}");
    assert_eq!(results[15]["error"]["code"], "23505", "{results:?}");
    assert_eq!(results[16]["ok"]["affected"], 1, "{results:?}");
    for i in [17, 18, 19] {
        assert!(results[i].get("error").is_none(), "step {i}: {results:?}");
    }
    assert_eq!(
        db.column("SELECT string_agg(id::text, ',' ORDER BY id) FROM work"),
        vec![Some("1,2,4,5,6,7,9,11".into())]
    );
}

#[test]
fn transactions_commit_roll_back_and_batches_are_all_or_nothing() {
    let (db, project) = work_table();
    let results = probe_results(&project.run_probe(
        &[("rpa_db", "read-write")],
        json!([
            { "op": "begin", "db": "rpa_db" },
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work (id) VALUES (1)", "tx": true },
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work (id) VALUES (99)" },
            { "op": "rollback", "db": "rpa_db" },
            { "op": "begin", "db": "rpa_db" },
            { "op": "execute", "db": "rpa_db", "sql": "INSERT INTO work (id) VALUES (2)", "tx": true },
            { "op": "commit", "db": "rpa_db" },
            { "op": "batch", "db": "rpa_db", "sql": "INSERT INTO work (id, note) VALUES (:id, :note)",
              "param_sets": [work_row(10), work_row(11), work_row(2), work_row(12)] },
            { "op": "batch", "db": "rpa_db", "sql": "INSERT INTO work (id, note) VALUES (:id, :note)",
              "param_sets": [work_row(20), work_row(21)] },
            { "op": "cursor", "db": "rpa_db", "sql": "SELECT id FROM work ORDER BY id", "batch": 1 },
        ]),
    ));
    assert_eq!(
        results[2]["error"]["kind"], "invalid-request",
        "connection busy with a transaction: {results:?}"
    );
    assert_eq!(results[7]["error"]["kind"], "query", "{results:?}");
    assert_eq!(results[7]["error"]["code"], "23505", "{results:?}");
    assert!(
        results[7]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parameter set 2"),
        "{results:?}"
    );
    assert_eq!(results[8]["ok"]["affected"], 2, "{results:?}");
    assert_eq!(results[9]["ok"]["rows"], 3, "{results:?}");
    assert_eq!(results[9]["ok"]["batches"], 3, "{results:?}");
    assert_eq!(
        db.column("SELECT string_agg(id::text, ',' ORDER BY id) FROM work"),
        vec![Some("2,20,21".into())]
    );
}
