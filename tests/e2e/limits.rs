//! Resource limits against hostile guests. Each test drives one kind of exhaustion, asserts
//! the specific error it ends with, then shows the host goes on: runs are driven in-process
//! through `flowhost::run::Host` (one host, one pool, many runs, the way a worker runs), so
//! "goes on" means the next run on the same host and pool succeeds. Log tests run the real
//! binary instead, because what they check is the log it writes.

use std::sync::Arc;

use flowhost::manifest::Manifest;
use flowhost::run::{Host, RunRecord, RunRequest, RunStatus};
use flowhost::runtime::RuntimeOptions;
use serde_json::{Value, json};

use crate::support::*;

/// One host over one PostgreSQL database granted as `lab`.
struct Lab {
    host: Host,
    project: Project,
    /// Last, so it is dropped after the host (dropping it force-drops the database).
    _db: PgDatabase,
}

impl Lab {
    /// `env` adds `.env` lines; `DB` in them stands for `DEVELOPMENT_GLOBAL_LAB`.
    fn new(env: &str) -> Lab {
        let db = PgDatabase::create();
        let project = Project::new();
        project.write(
            ".env",
            &format!(
                "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n{}",
                db.url(),
                env.replace("DB_", "DEVELOPMENT_GLOBAL_LAB_")
            ),
        );
        let config = project.load_config();
        let host = Host::new(Arc::new(config), RuntimeOptions::default()).unwrap();
        Lab {
            host,
            project,
            _db: db,
        }
    }

    /// Runs the probe with `steps` under a manifest whose `[limits]` body is `limits`.
    async fn run(&self, limits: &str, steps: Value) -> RunRecord {
        let manifest = Manifest::parse(
            &format!(
                "[flow]\nname = \"limits\"\n[limits]\n{limits}\n\
                 [databases.lab]\naccess = \"read-write\"\n"
            ),
            self.project.path().join("limits.toml"),
        )
        .unwrap();
        let request = RunRequest {
            component: probe_wasm(),
            manifest,
            input: json!({ "steps": steps }).to_string(),
        };
        self.host.run(&request).await.expect("the run starts")
    }

    /// A plain run on the same host and pool succeeds, and the pool lends nothing out after.
    async fn assert_goes_on(&self) {
        let record = self
            .run(
                "timeout-seconds = 20",
                json!([{ "op": "query", "db": "lab", "sql": "SELECT 1 AS one" }]),
            )
            .await;
        assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
        assert_eq!(
            results(&record)[0]["ok"]["rows"][0][0]["v"],
            1,
            "{record:?}"
        );
        let status = settled_pool(&self.host).await;
        assert_eq!(
            status.in_use, 0,
            "a connection is still lent out: {status:?}"
        );
    }
}

/// The pool's counts once the connections a run released are back: the driver returns a
/// connection to its pool in a task of its own, so "in use" lags the release a little.
async fn settled_pool(host: &Host) -> flowhost::db::PoolStatus {
    let db = host.databases().get("lab").await.unwrap();
    for _ in 0..500 {
        if db.pool_status().in_use == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    db.pool_status()
}

fn results(record: &RunRecord) -> Vec<Value> {
    record.output.as_ref().expect("the run has output")["results"]
        .as_array()
        .unwrap()
        .clone()
}

/// The run failed with this kind; returns its message.
fn failed(record: &RunRecord, kind: &str) -> String {
    assert_eq!(record.status, RunStatus::Failed, "{record:?}");
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, kind, "{record:?}");
    error.message.clone()
}

/// Asserts a step failed because of the handle cap.
fn assert_handle_cap(error: &Value) {
    assert_eq!(error["kind"], "invalid-request", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("manifest [limits] max-open-handles"),
        "{message}"
    );
}

#[test]
fn deep_recursion_is_reported_as_a_stack_overflow() {
    let lab = Lab::new("");
    block_on(async {
        let shallow = lab
            .run("", json!([{ "op": "recurse", "depth": 1000 }]))
            .await;
        assert_eq!(results(&shallow)[0]["ok"], 1000, "{shallow:?}");
        let deep = lab
            .run("", json!([{ "op": "recurse", "depth": 100_000_000u64 }]))
            .await;
        let message = failed(&deep, "stack-overflow");
        assert!(message.contains("recursion"), "{message}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn allocation_past_the_memory_cap_is_out_of_memory() {
    let lab = Lab::new("");
    block_on(async {
        let record = lab
            .run("memory-mb = 32", json!([{ "op": "alloc", "mb": 200 }]))
            .await;
        let message = failed(&record, "out-of-memory");
        assert!(message.contains("32 MiB"), "{message}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn a_denied_memory_growth_is_out_of_memory_even_when_the_guest_prints_nothing() {
    let lab = Lab::new("");
    block_on(async {
        // `quiet`: the guest aborts on allocation failure without a word on stderr, so only
        // the host's record of the refused growth can say what happened.
        let record = lab
            .run(
                "memory-mb = 32",
                json!([{ "op": "alloc", "mb": 200, "quiet": true }]),
            )
            .await;
        let message = failed(&record, "out-of-memory");
        assert!(message.contains("memory-mb"), "{message}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn a_million_queries_stop_at_the_deadline() {
    let lab = Lab::new("");
    block_on(async {
        let record = lab
            .run(
                "timeout-seconds = 1",
                json!([{ "op": "queries", "db": "lab", "n": 1_000_000 }]),
            )
            .await;
        let message = failed(&record, "timeout");
        assert!(message.contains("timeout-seconds"), "{message}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn a_100_mb_parameter_is_refused() {
    let lab = Lab::new("");
    block_on(async {
        let record = lab
            .run(
                "memory-mb = 512\ntimeout-seconds = 60",
                json!([{ "op": "big_param", "db": "lab", "mb": 100 }]),
            )
            .await;
        assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
        let error = &results(&record)[0]["error"];
        assert_eq!(error["kind"], "invalid-request", "{record:?}");
        assert!(
            error["message"].as_str().unwrap().contains("max-param-mb"),
            "{error}"
        );
        lab.assert_goes_on().await;
    });
}

#[test]
fn backend_answers_while_a_cursor_is_open() {
    let lab = Lab::new("");
    block_on(async {
        let record = lab
            .run(
                "timeout-seconds = 20",
                json!([
                    { "op": "hold_cursor", "db": "lab", "sql": "SELECT generate_series(1, 1000000)",
                      "batch": 10, "batches": 1, "name": "big" },
                    { "op": "backend", "db": "lab" },
                    { "op": "close_cursor", "name": "big" },
                    { "op": "query", "db": "lab", "sql": "SELECT 1 AS one" },
                ]),
            )
            .await;
        let results = results(&record);
        assert_eq!(results[0]["ok"], 10, "{results:?}");
        assert_eq!(results[1]["ok"], "postgresql", "{results:?}");
        assert_eq!(results[3]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn open_cursors_past_the_handle_cap_are_refused_and_dropping_frees_a_slot() {
    let lab = Lab::new("");
    let cursor = "SELECT generate_series(1, 100000)";
    block_on(async {
        // Each held connection with its cursor is two handles: with 5, two pairs fit, and the
        // third connection opens but its cursor does not.
        let record = lab
            .run(
                "max-open-handles = 5",
                json!([
                    { "op": "open_many", "db": "lab", "n": 10, "then": "cursor", "sql": cursor },
                    { "op": "hold_cursor", "db": "lab", "sql": cursor, "name": "c", "batches": 1 },
                    { "op": "release" },
                    { "op": "hold_cursor", "db": "lab", "sql": cursor, "name": "c", "batches": 1 },
                ]),
            )
            .await;
        let results = results(&record);
        assert_eq!(results[0]["ok"]["held"], 2, "{results:?}");
        assert_handle_cap(&results[0]["ok"]["error"]);
        // The probe's own connection is the fifth handle; its cursor would be the sixth.
        assert_handle_cap(&results[1]["error"]);
        assert_eq!(results[3]["ok"], 1000, "{results:?}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn open_transactions_past_the_handle_cap_are_refused() {
    let lab = Lab::new("");
    block_on(async {
        let record = lab
            .run(
                "max-open-handles = 3",
                json!([
                    { "op": "open_many", "db": "lab", "n": 5, "then": "begin" },
                    { "op": "release" },
                    { "op": "open_many", "db": "lab", "n": 1, "then": "begin" },
                ]),
            )
            .await;
        let results = results(&record);
        assert_eq!(results[0]["ok"]["held"], 1, "{results:?}");
        assert_handle_cap(&results[0]["ok"]["error"]);
        assert_eq!(results[2]["ok"]["held"], 1, "{results:?}");
        assert_eq!(results[2]["ok"]["error"], Value::Null, "{results:?}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn open_connections_past_the_handle_cap_are_refused() {
    let lab = Lab::new("");
    block_on(async {
        let record = lab
            .run(
                "max-open-handles = 3",
                json!([
                    { "op": "open_many", "db": "lab", "n": 10 },
                    { "op": "release" },
                    { "op": "open_many", "db": "lab", "n": 3 },
                ]),
            )
            .await;
        let results = results(&record);
        assert_eq!(results[0]["ok"]["held"], 3, "{results:?}");
        assert_handle_cap(&results[0]["ok"]["error"]);
        assert_eq!(results[2]["ok"]["held"], 3, "{results:?}");
        lab.assert_goes_on().await;
    });
}

#[test]
fn more_connections_than_the_pool_has_fail_the_run_and_the_pool_recovers() {
    let lab = Lab::new("DB_CONNECTION_POOL_SIZE=1\nDB_MAX_OVERFLOW=0\nDB_POOL_TIMEOUT=1\n");
    block_on(async {
        let record = lab
            .run(
                "timeout-seconds = 20",
                json!([{ "op": "open_many", "db": "lab", "n": 2, "then": "query",
                         "sql": "SELECT 1", "fail_on_error": true }]),
            )
            .await;
        let message = failed(&record, "flow-error");
        assert!(
            message.contains("timeout") && message.contains("pooled connection"),
            "{message}"
        );
        let status = settled_pool(&lab.host).await;
        assert!(status.size <= 1 && status.in_use == 0, "{status:?}");
        lab.assert_goes_on().await;
    });
}

// Logs: these run the real binary and read the log it writes on stderr.

/// The flow's records in a `flowhost` stderr: lines that carry `needle`.
fn lines_with<'a>(err: &'a str, needle: &str) -> Vec<&'a str> {
    err.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn a_100_mb_log_record_is_cut_to_64_kib_and_says_how_much() {
    let project = Project::new();
    let out = project.run_probe_with(
        "timeout-seconds = 60\nmemory-mb = 512\nmax-log-mb = 8",
        &[],
        json!([
            { "op": "log_big", "mb": 100 },
            { "op": "log_big", "mb": 100, "stream": "stdout" },
        ]),
    );
    let results = probe_results(&out);
    assert_eq!(results[0]["ok"], 100 << 20, "{results:?}");
    let err = stderr(&out);
    let cut = (100 << 20) - (64 << 10);
    let records = lines_with(&err, &format!("{cut} more bytes cut"));
    assert_eq!(records.len(), 2, "{}", &err[..err.len().min(2000)]);
    // Each record is the 64 KiB kept plus the record's prefix and fields.
    for record in records {
        assert!(record.len() < (64 << 10) + 512, "{} bytes", record.len());
    }
    assert!(err.len() < 256 << 10, "the log is {} bytes", err.len());
}

#[test]
fn a_log_flood_stops_at_max_log_mb_with_one_warning_and_a_count() {
    let project = Project::new();
    // 1014 bytes a record (1000 of message, 14 of context "probe::hostile"): 1034 fit in 1 MiB.
    // The other 3966 records are dropped, 3966 * 1014 = 4021524 bytes.
    let out = project.run_probe_with(
        "max-log-mb = 1",
        &[],
        json!([{ "op": "log_flood", "n": 5000, "bytes": 1000 }]),
    );
    assert_eq!(probe_results(&out)[0]["ok"], 5000);
    let err = stderr(&out);
    assert_eq!(lines_with(&err, &"f".repeat(1000)).len(), 1034);
    let warnings = lines_with(&err, "reached its limit");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("max-log-mb"), "{}", warnings[0]);
    let summary = lines_with(&err, "dropped 4021524 bytes in 3966 records");
    assert_eq!(
        summary.len(),
        1,
        "{}",
        &err[err.len().saturating_sub(3000)..]
    );
}

#[test]
fn captured_output_counts_against_the_same_log_limit() {
    let project = Project::new();
    // 600 records of 1014 bytes leave 440176 bytes: 440 lines of 1000 bytes of stdout fit.
    let out = project.run_probe_with(
        "max-log-mb = 1",
        &[],
        json!([
            { "op": "log_flood", "n": 600, "bytes": 1000 },
            { "op": "log_flood", "n": 1000, "bytes": 1000, "stream": "stdout" },
        ]),
    );
    assert_eq!(probe_results(&out).len(), 2);
    let err = stderr(&out);
    assert_eq!(
        lines_with(&err, "stream=\"stdout\"").len(),
        440,
        "{}",
        &err[..2000]
    );
    assert_eq!(lines_with(&err, "reached its limit").len(), 1);
    assert_eq!(
        lines_with(&err, "dropped 560000 bytes in 560 records").len(),
        1
    );
}

#[test]
fn a_guest_cannot_forge_a_host_log_line() {
    let project = Project::new();
    let forged = "x\nINFO run finished status=Succeeded";
    let out = project.run_probe(
        &[],
        json!([
            { "op": "log", "level": "info", "message": forged },
            { "op": "log", "level": "info", "message": "red \u{1b}[31m bell \u{7} cr \r end" },
            { "op": "stdout", "message": "y\rINFO run finished status=Succeeded" },
        ]),
    );
    json_ok(&out);
    let err = stderr(&out);
    let forged_lines = lines_with(&err, "x\\nINFO run finished status=Succeeded");
    assert_eq!(forged_lines.len(), 1, "{err}");
    assert!(forged_lines[0].contains("flow=probe"), "one record: {err}");
    assert!(
        !err.lines().any(|l| l.starts_with("INFO run finished")),
        "a forged line: {err}"
    );
    assert!(err.contains("red \\x1b[31m bell \\x07 cr \\r end"), "{err}");
    assert!(err.contains("y\\rINFO run finished"), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
}
