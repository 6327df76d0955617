//! Running flowhost in production: `flowhost serve` (health, readiness, metrics, runs over
//! HTTP), the run history (`flowhost runs`), and SIGINT/SIGTERM, against the real PostgreSQL
//! and real components. Every server here is a real process on a loopback port.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve_support::*;
use crate::support::*;

/// A password the server accepts (trust auth ignores it) and no answer may contain.
const SECRET: &str = "S3cretPw-not-for-logs";

/// A project whose `rpa_db` is a fresh PostgreSQL database with one migration, and whose
/// flows folder holds the probe, granted `rpa_db` read-write and owning its migrations.
fn pg_project() -> (Project, PgDatabase) {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://postgres:{SECRET}@127.0.0.1:5432/{}\n",
            db.name
        ),
    );
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write(
        "flows/probe.toml",
        "[flow]\nname = \"probe\"\n\n[limits]\ntimeout-seconds = 120\n\n\
         [databases.rpa_db]\naccess = \"read-write\"\nmigrations = \"../migrations/rpa_db\"\n",
    );
    project.write(
        "migrations/rpa_db/V001__items.sql",
        "CREATE TABLE items (id int PRIMARY KEY, note text);",
    );
    (project, db)
}

#[test]
fn serve_answers_probes_runs_flows_and_counts_them() {
    let (project, db) = pg_project();
    let mut server = Server::start(&project, &["--sample-every", "0.2"], &[]);
    let mut bodies = Vec::new();

    let live = server.get("/health/live");
    assert_eq!(live.status, 200);
    assert!(
        live.headers.contains("application/health+json"),
        "{}",
        live.headers
    );
    assert_eq!(live.json()["status"], "pass");
    server.get_until("/health/startup", |a| a.status == 200);

    // The migration is not applied yet: not ready, and the check says what to do.
    let ready = server.get("/health/ready");
    assert_eq!(ready.status, 503, "{}", ready.body);
    let doc = ready.json();
    assert_eq!(doc["status"], "fail");
    assert_eq!(doc["checks"]["rpa_db:connections"][0]["status"], "pass");
    assert_eq!(doc["checks"]["rpa_db:schemaVersion"][0]["status"], "fail");
    assert!(
        doc["checks"]["rpa_db:schemaVersion"][0]["output"]
            .as_str()
            .unwrap()
            .contains("1 pending migration"),
        "{doc}"
    );
    bodies.push(ready.body);

    // A run: migrates the database it owns, writes, logs.
    let started = server.post(
        "/runs",
        &json!({"flow": "probe", "input": {"steps": [
            {"op": "execute", "db": "rpa_db", "sql": "INSERT INTO items VALUES (1, 'one')"},
            {"op": "log", "level": "info", "message": "inserted one item"},
        ]}}),
    );
    assert_eq!(started.status, 202, "{}", started.body);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    let run = server.finished_run(&run_id);
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["origin"], "serve");
    assert_eq!(run["output"]["results"][0]["ok"]["affected"], 1, "{run}");
    assert_eq!(db.count("items"), 1);

    let logs = server.get(&format!("/runs/{run_id}/logs")).json();
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["source"] == "flow"
            && l["message"].as_str().unwrap().contains("inserted one item")),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["source"] == "host"
                && l["message"].as_str().unwrap().contains("V001__items.sql")),
        "the migration the run applied is in its log: {logs}"
    );

    // Now at its version: ready.
    let ready = server.get("/health/ready");
    assert_eq!(ready.status, 200, "{}", ready.body);
    let doc = ready.json();
    assert_eq!(doc["status"], "pass");
    assert_eq!(
        doc["checks"]["rpa_db:schemaVersion"][0]["observedValue"],
        "001"
    );
    bodies.push(ready.body);

    // A flow that fails is recorded as failed, with its words.
    let failing = server.post(
        "/runs",
        &json!({"flow": "probe", "input": {"steps": [{"op": "fail", "message": "no such customer"}]}}),
    );
    let failed = server.finished_run(failing.json()["run_id"].as_str().unwrap());
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("no such customer")
    );

    // Components come from the flows folder only.
    for (body, status) in [
        (json!({"component": "../outside.wasm"}), 403),
        (json!({"component": "/etc/passwd"}), 403),
        (json!({"flow": "nope"}), 404),
        (json!({"flow": "probe", "bogus": 1}), 400),
    ] {
        let answer = server.post("/runs", &body);
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
    }
    assert_eq!(server.get("/runs/not-a-run").status, 404);

    // Metrics after known work.
    let metrics = server.get_until("/metrics", |a| {
        sample(&a.body, "flowhost_migrations_pending{db=\"rpa_db\"}") == Some(0.0)
    });
    assert!(
        metrics.headers.contains("application/openmetrics-text"),
        "{}",
        metrics.headers
    );
    let text = &metrics.body;
    assert_eq!(
        sample(
            text,
            "flowhost_runs_total{flow=\"probe\",status=\"completed\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            "flowhost_runs_total{flow=\"probe\",status=\"failed\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(text, "flowhost_run_duration_seconds_count{flow=\"probe\"}"),
        Some(2.0)
    );
    assert!(
        sample(
            text,
            "db_client_operation_duration_seconds_count{pool_name=\"rpa_db\",db_operation_name=\"execute\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, "db_client_connection_max{pool_name=\"rpa_db\"}"),
        Some(10.0)
    );
    assert_eq!(
        sample(
            text,
            "db_client_connection_pending_requests{pool_name=\"rpa_db\"}"
        ),
        Some(0.0)
    );
    bodies.push(metrics.body.clone());
    for path in [
        "/health/database",
        "/health/database/pool",
        "/health/database/performance",
        "/runs",
    ] {
        let answer = server.get(path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        bodies.push(answer.body);
    }
    let pool = server.get("/health/database/pool").json();
    assert_eq!(pool["pools"][0]["name"], "rpa_db", "{pool}");
    let performance = server.get("/health/database/performance").json();
    assert!(
        performance["slow_statements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sql"].as_str().unwrap().contains("INSERT INTO items")),
        "{performance}"
    );
    for body in &bodies {
        assert!(!body.contains(SECRET), "a secret in an answer: {body}");
    }

    // SIGTERM with a run in flight: the run is cancelled and its transaction rolled back, the
    // run is recorded as cancelled, no session is left, the process exits 143.
    let in_flight = server.post(
        "/runs",
        &json!({"flow": "probe", "input": {"steps": [
            {"op": "begin", "db": "rpa_db"},
            {"op": "execute", "db": "rpa_db", "tx": true, "sql": "INSERT INTO items VALUES (2, 'two')"},
            {"op": "query", "db": "rpa_db", "tx": true, "sql": "SELECT pg_sleep(60)"},
        ]}}),
    );
    let in_flight = in_flight.json()["run_id"].as_str().unwrap().to_owned();
    wait_for_statement(&db, "pg_sleep");
    let (status, stderr) = server.stop("TERM");
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(!stderr.contains(SECRET));
    assert_eq!(
        db.count("items"),
        1,
        "the cancelled run's insert was rolled back"
    );
    assert_eq!(sessions(&db), 0, "no session left after shutdown");
    let shown = project.flowhost(&["runs", "show", &in_flight[..8], "--json"]);
    let shown = json_ok(&shown);
    assert_eq!(shown["state"], "cancelled", "{shown}");
    assert!(
        shown["error_message"].as_str().unwrap().contains("SIGTERM"),
        "{shown}"
    );
}

#[test]
fn sigterm_and_sigint_cancel_a_cli_run_roll_back_and_record_it() {
    let (project, db) = pg_project();
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let input = project.write(
            "input.json",
            &json!({"steps": [
                {"op": "begin", "db": "rpa_db"},
                {"op": "execute", "db": "rpa_db", "tx": true, "sql": "INSERT INTO items VALUES (7, 'seven')"},
                {"op": "query", "db": "rpa_db", "tx": true, "sql": "SELECT pg_sleep(60)"},
            ]})
            .to_string(),
        );
        let child = spawn_flowhost(
            &project,
            &[
                "run",
                "flows/probe.wasm",
                "--json",
                "--input-file",
                input.to_str().unwrap(),
            ],
        );
        wait_for_statement(&db, "pg_sleep");
        let (status, out) = signal_and_wait(child, signal);
        assert_eq!(status, Some(code), "SIG{signal}: {}", stderr(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("--json prints its document");
        assert_eq!(doc["error"]["kind"], "cancelled", "{doc}");
        assert_eq!(doc["exit_code"], code);
        assert_eq!(
            db.count("items"),
            0,
            "SIG{signal}: the insert was rolled back"
        );
        assert_eq!(sessions(&db), 0, "SIG{signal}: no session left");
    }
    let list = json_ok(&project.flowhost(&["runs", "list", "--state", "cancelled", "--json"]));
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert!(
        runs.iter()
            .all(|r| r["origin"] == "cli" && r["flow"] == "probe")
    );
    let reasons: Vec<&str> = runs
        .iter()
        .map(|r| r["error_message"].as_str().unwrap())
        .collect();
    assert!(reasons.iter().any(|m| m.contains("SIGINT")), "{reasons:?}");
    assert!(reasons.iter().any(|m| m.contains("SIGTERM")), "{reasons:?}");
}

#[test]
fn a_killed_run_is_marked_crashed_by_the_next_process_never_left_running() {
    // The embedded default: no server needed.
    let project = Project::new();
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write(
        "flows/probe.toml",
        "[flow]\nname = \"spinner\"\n\n[limits]\ntimeout-seconds = 120\n",
    );
    let mut child = project
        .command(
            &[
                "run",
                "flows/probe.wasm",
                "--input",
                r#"{"steps": [{"op": "loop"}]}"#,
            ],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Running, as the history says.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = project.flowhost(&["runs", "list", "--json"]);
        if list.status.success()
            && json_ok(&list)["runs"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["state"] == "running"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the run never showed as running");
        std::thread::sleep(Duration::from_millis(50));
    }
    send_signal(child.id(), "KILL");
    wait_with_deadline(&mut child, Duration::from_secs(30));

    let list = json_ok(&project.flowhost(&["runs", "list", "--json"]));
    let run = &list["runs"][0];
    assert_eq!(run["state"], "crashed", "{list}");
    assert_eq!(run["flow"], "spinner");
    let message = run["error_message"].as_str().unwrap();
    assert!(
        message.contains(&format!("pid {}", child.id())),
        "{message}"
    );

    // Short ids work; an unknown one is a usage error with the way to list runs.
    let id = run["run_id"].as_str().unwrap();
    let shown = project.flowhost(&["runs", "show", &id[..6]]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(stdout(&shown).contains("crashed"));
    let missing = project.flowhost(&["runs", "show", "0000000"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("flowhost runs list"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn a_postgresql_state_database_keeps_the_history_when_configured() {
    let state = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_FLOWHOST_STATE_CONNECTION_STRING={}\n",
            state.url()
        ),
    );
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write("flows/probe.toml", "[flow]\nname = \"stateless\"\n");
    let out = project.flowhost(&[
        "run",
        "flows/probe.wasm",
        "--input",
        r#"{"steps": [{"op": "log", "level": "warn", "message": "kept in postgres"}]}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(state.count("flowhost_runs"), 1);
    assert_eq!(sessions(&state), 0, "the history's pool was closed at exit");
    assert!(
        !project.path().join(".flowhost/history.db").exists(),
        "no SQLite history beside a configured one"
    );
    let list = json_ok(&project.flowhost(&["runs", "list", "--json"]));
    let run = &list["runs"][0];
    assert_eq!(run["flow"], "stateless");
    assert_eq!(run["state"], "completed");
    let logs =
        json_ok(&project.flowhost(&["runs", "logs", run["run_id"].as_str().unwrap(), "--json"]));
    assert!(
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["level"] == "warn"
                && l["source"] == "flow"
                && l["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("kept in postgres")),
        "{logs}"
    );
}

#[test]
fn finished_runs_older_than_the_retention_are_deleted_with_their_logs() {
    let project = Project::new();
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write("flows/probe.toml", "[flow]\nname = \"kept\"\n");
    let steps = r#"{"steps": [{"op": "log", "level": "info", "message": "hello"}]}"#;
    for _ in 0..2 {
        let out = project.flowhost(&["run", "flows/probe.wasm", "--input", steps]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let kept = json_ok(&project.flowhost(&["runs", "list", "--json"]));
    assert_eq!(kept["runs"].as_array().unwrap().len(), 2, "{kept}");
    let id = kept["runs"][0]["run_id"].as_str().unwrap().to_owned();

    // A retention of 0 days: every finished run is older than that.
    let pruned = json_ok(&project.flowhost(&["runs", "list", "--history-days", "0", "--json"]));
    assert_eq!(pruned["runs"].as_array().unwrap().len(), 0, "{pruned}");
    let db = project.path().join(".flowhost/history.db");
    assert_eq!(
        sqlite_rows(&db, "SELECT count(*) FROM flowhost_run_logs"),
        vec![vec![Some("0".to_owned())]],
        "the logs went with their runs"
    );
    let gone = project.flowhost(&["runs", "show", &id]);
    assert_eq!(gone.status.code(), Some(2), "{}", stderr(&gone));
}

#[test]
fn concurrent_serve_runs_writing_one_sqlite_file_wait_their_turn_and_all_commit() {
    // SQLite statements run on the runtime's worker threads, and so does waiting for the
    // file's write lock (flowhost's busy handler, which sleeps off the worker): every run
    // waits for the one holding the lock and none fails with "database is locked".
    let project = Project::new();
    project.write(
        ".env",
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING=sqlite:///lab.db\n",
    );
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write(
        "flows/probe.toml",
        "[flow]\nname = \"probe\"\n\n[limits]\ntimeout-seconds = 120\nstatement-timeout-seconds = 20\n\n\
         [databases.lab]\naccess = \"read-write\"\nmigrations = \"../migrations/lab\"\n",
    );
    project.write(
        "migrations/lab/V001__items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT);",
    );
    let mut server = Server::start(&project, &["--max-concurrent-runs", "8"], &[]);
    // Each run holds the write lock while it counts to a million (a few hundred ms).
    let runs: Vec<String> = (1..=6)
        .map(|id| {
            let answer = server.post(
                "/runs",
                &json!({"flow": "probe", "input": {"steps": [
                    {"op": "begin", "db": "lab"},
                    {"op": "execute", "db": "lab", "tx": true, "sql": format!("INSERT INTO items VALUES ({id}, 'run {id}')")},
                    {"op": "query", "db": "lab", "tx": true, "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT count(*) FROM c"},
                    {"op": "commit", "db": "lab"},
                ]}}),
            );
            assert_eq!(answer.status, 202, "{}", answer.body);
            answer.json()["run_id"].as_str().unwrap().to_owned()
        })
        .collect();
    for run_id in &runs {
        let run = server.finished_run(run_id);
        assert_eq!(run["state"], "completed", "{run}");
        let results = run["output"]["results"].as_array().unwrap();
        assert!(
            results.iter().all(|r| r.get("ok").is_some()),
            "every step succeeded: {run}"
        );
        assert_eq!(results[2]["ok"]["rows"][0][0]["v"], 1_000_000, "{run}");
    }
    let (status, stderr) = server.stop("TERM");
    assert_eq!(status.code(), Some(143), "{stderr}");
    let rows = sqlite_rows(
        &project.path().join("lab.db"),
        "SELECT count(*), group_concat(id) FROM (SELECT id FROM items ORDER BY id)",
    );
    assert_eq!(rows[0][0].as_deref(), Some("6"), "every run committed");
    assert_eq!(rows[0][1].as_deref(), Some("1,2,3,4,5,6"));
}
