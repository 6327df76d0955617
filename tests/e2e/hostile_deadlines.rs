//! Limits reach the database server: when a run's time is up, or a statement's, nothing the
//! run started keeps working on the server or keeps holding a lock there.

use serde_json::json;

use crate::hostile_pg::Lab;
use crate::support::*;

/// Statements of `lab`'s database still running (other than the checker's own).
fn running(lab: &Lab, like: &str) -> i64 {
    lab.db.column(&format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{}' \
         AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%{like}%'",
        lab.db.name
    ))[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// The run's limit reached the server: the statement was cancelled there (57014) as the run's
/// time ran out, or the run was stopped at its deadline.
fn stopped_at_the_deadline(out: &std::process::Output) {
    if out.status.code() == Some(4) {
        assert!(stderr(out).contains("time limit"), "{}", stderr(out));
        return;
    }
    let results = probe_results(out);
    assert_eq!(results[0]["error"]["code"], "57014", "{results:?}");
}

#[test]
fn a_statement_running_at_the_deadline_is_stopped_on_the_server() {
    let lab = Lab::new();
    let out = lab.project.run_probe_with(
        "timeout-seconds = 2",
        &[("scratch", "read-write")],
        json!([{ "op": "query", "db": "scratch", "sql": "SELECT pg_sleep(30)" }]),
    );
    stopped_at_the_deadline(&out);
    assert_eq!(
        running(&lab, "pg_sleep"),
        0,
        "the sleep was stopped on the server"
    );
}

#[test]
fn a_statement_still_running_when_the_run_is_stopped_is_ended_on_the_server() {
    // The session's statement timeout is set when it starts (the run's time left then), so a
    // statement started late outlives the run's deadline: the host ends its backend.
    let lab = Lab::new();
    let out = lab.project.run_probe_with(
        "timeout-seconds = 3",
        &[("scratch", "read-write")],
        json!([
            { "op": "query", "db": "scratch", "sql": "SELECT pg_sleep(2.5)" },
            { "op": "query", "db": "scratch", "sql": "SELECT pg_sleep(30)" },
        ]),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("time limit"), "{}", stderr(&out));
    assert_eq!(
        running(&lab, "pg_sleep"),
        0,
        "the sleep was ended on the server"
    );
}

#[test]
fn a_row_lock_held_when_the_deadline_passes_is_released() {
    let lab = Lab::new();
    let out = lab.project.run_probe_with(
        "timeout-seconds = 2",
        &[("scratch", "read-write")],
        json!([
            { "op": "begin", "db": "scratch" },
            { "op": "query", "db": "scratch", "sql": "SELECT * FROM secrets FOR UPDATE", "tx": true },
            { "op": "loop" },
        ]),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let free = lab
        .db
        .column("SELECT count(*)::text FROM (SELECT 1 FROM secrets FOR UPDATE NOWAIT) l");
    assert_eq!(free[0].as_deref(), Some("1"), "the row is free at once");
}

#[test]
fn a_statement_waiting_on_a_lock_is_stopped_at_the_deadline() {
    // Another session holds the row; the flow's UPDATE waits for it until the run's time is
    // up. The server must stop waiting then, not when the other session lets go.
    let lab = Lab::new();
    let holder = std::thread::spawn({
        let url = lab.db.sqlx_url();
        move || {
            block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql("BEGIN; SELECT * FROM secrets FOR UPDATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_secs(8)).await;
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            })
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = lab.project.run_probe_with(
        "timeout-seconds = 2",
        &[("scratch", "read-write")],
        json!([{ "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = 'late'" }]),
    );
    stopped_at_the_deadline(&out);
    assert_eq!(
        running(&lab, "UPDATE secrets"),
        0,
        "the waiting UPDATE is gone from the server"
    );
    holder.join().unwrap();
    lab.assert_untouched();
}

#[test]
fn the_manifest_statement_timeout_is_enforced_by_the_server() {
    let lab = Lab::new();
    let results = probe_results(&lab.project.run_probe_with(
        "timeout-seconds = 20\nstatement-timeout-seconds = 1",
        &[("scratch", "read-write"), ("victim", "read-only")],
        json!([
            { "op": "query", "db": "scratch", "sql": "SELECT pg_sleep(5)" },
            { "op": "query", "db": "scratch", "sql": "SELECT 1 AS after" },
            { "op": "query", "db": "victim", "sql":
              "SELECT count(*) FROM generate_series(1, 100000000)" },
            { "op": "query", "db": "victim", "sql": "SELECT 2 AS after" },
        ]),
    ));
    for i in [0, 2] {
        assert_eq!(
            results[i]["error"]["code"], "57014",
            "statement timeout: {results:?}"
        );
    }
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert_eq!(results[3]["ok"]["rows"][0][0]["v"], 2, "{results:?}");
}

#[test]
fn a_cursor_dropped_on_a_slow_query_stops_it_and_frees_the_connection() {
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "hold_cursor", "db": "victim", "name": "c", "batch": 10, "batches": 1,
          "sql": "SELECT g, pg_catalog.md5(g::text) FROM generate_series(1, 50000000) g" },
        { "op": "close_cursor", "name": "c" },
        // Seen from another connection, before this one is used again.
        { "op": "query", "db": "scratch", "sql":
          "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series(1, 50000000)%' AND pid <> pg_backend_pid()" },
        { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM secrets" },
    ]));
    assert_eq!(results[0]["ok"], 10, "{results:?}");
    assert_eq!(
        results[2]["ok"]["rows"][0][0]["v"], 0,
        "the dropped cursor's query was stopped: {results:?}"
    );
    assert_eq!(
        results[3]["ok"]["rows"][0][0]["v"], 1,
        "the connection answers at once: {results:?}"
    );
}

#[test]
fn a_transaction_whose_cursor_was_dropped_mid_result_says_it_was_lost() {
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "begin", "db": "scratch" },
        { "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = 'in tx'", "tx": true },
        { "op": "hold_cursor", "db": "scratch", "name": "c", "batch": 10, "batches": 1, "tx": true,
          "sql": "SELECT g FROM generate_series(1, 10000000) g" },
        { "op": "close_cursor", "name": "c" },
        { "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = 'after'", "tx": true },
        { "op": "rollback", "db": "scratch" },
        { "op": "query", "db": "scratch", "sql": "SELECT note FROM secrets" },
    ]));
    assert_eq!(
        results[4]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert!(
        results[4]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{results:?}"
    );
    assert_eq!(
        results[6]["ok"]["rows"][0][0]["v"], "original",
        "{results:?}"
    );
    lab.assert_untouched();
}
