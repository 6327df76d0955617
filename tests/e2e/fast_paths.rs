//! The paths that make flows fast, held to the semantics of the slow ones: packed cursor reads
//! (`rows_as`), packed batches (`execute_batch` of structs), the grant preparation a host does
//! once per process, and the instance pool's slots.

use std::sync::Arc;

use flowhost::manifest::Manifest;
use flowhost::run::{Host, RunRecord, RunRequest, RunStatus};
use flowhost::runtime::RuntimeOptions;
use serde_json::{Value, json};

use crate::support::*;

const WIDE: &str = "CREATE TABLE wide (id BIGINT PRIMARY KEY, note TEXT NOT NULL, \
    score DOUBLE PRECISION NOT NULL, qty INTEGER NOT NULL, flag BOOLEAN NOT NULL)";
const INSERT: &str =
    "INSERT INTO wide (id, note, score, qty, flag) VALUES (:id, :note, :score, :qty, :flag)";
const SELECT: &str = "SELECT id, note, score, qty, flag FROM wide ORDER BY id";

/// What the probe's `read_wide` reports for the rows `insert_wide` writes (ids 0..n).
fn expected_read(n: i64) -> Value {
    let id_sum: i64 = (0..n)
        .map(|id| id + id % 1000 + i64::from(id % 2 == 0))
        .sum();
    let note_bytes: usize = (0..n)
        .map(|id| format!("row {id}").len() + usize::from(id > 0))
        .sum();
    json!({ "rows": n, "id_sum": id_sum, "note_bytes": note_bytes })
}

/// 2,500 rows: a write of one packed batch, then a read over three packed cursor batches.
fn round_trip(project: &Project) {
    let out = project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "execute", "db": "lab", "sql": WIDE },
            { "op": "insert_wide", "db": "lab", "sql": INSERT, "rows": 2500 },
            { "op": "read_wide", "db": "lab", "sql": SELECT, "batch": 1000 },
        ]),
    );
    let results = probe_results(&out);
    assert_eq!(
        results[1],
        json!({ "ok": { "affected": 2500 } }),
        "{results:?}"
    );
    assert_eq!(
        results[2],
        json!({ "ok": expected_read(2500) }),
        "{results:?}"
    );
}

#[test]
fn packed_batches_and_packed_reads_round_trip_on_postgresql() {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    round_trip(&project);
    // The rows as the database holds them, not as the flow read them back.
    assert_eq!(
        db.column("SELECT concat_ws('|', note, score, qty, flag) FROM wide WHERE id = 7"),
        vec![Some("row 7|1|7|f".to_owned())]
    );
    assert_eq!(db.count("wide"), 2500);
}

#[test]
fn packed_batches_and_packed_reads_round_trip_on_sqlite() {
    let project = Project::new();
    project.write(
        ".env",
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING=sqlite:///lab.sqlite\n",
    );
    round_trip(&project);
    assert_eq!(
        sqlite_rows(
            &project.path().join("lab.sqlite"),
            "SELECT note || '|' || score || '|' || qty || '|' || flag FROM wide WHERE id = 7"
        ),
        vec![vec![Some("row 7|1.0|7|0".to_owned())]]
    );
}

#[test]
fn a_packed_batch_that_breaks_a_constraint_writes_nothing_and_names_the_set() {
    let db = PgDatabase::create();
    db.exec(&format!("{WIDE}; ALTER TABLE wide ADD CHECK (qty < 50)"));
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    let out = project.run_probe(
        &[("lab", "read-write")],
        json!([{ "op": "insert_wide", "db": "lab", "sql": INSERT, "rows": 100 }]),
    );
    let error = &probe_results(&out)[0]["error"];
    assert_eq!(error["kind"], "query", "{error}");
    assert_eq!(error["code"], "23514", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("parameter set 50"),
        "the first row past the check is named: {error}"
    );
    assert_eq!(db.count("wide"), 0, "nothing of the batch stays");
}

/// The database helpers block on a runtime of their own: call them from a plain thread.
fn outside_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("helper thread"))
}

async fn run(host: &Host, manifest: &Manifest, steps: Value) -> RunRecord {
    let request = RunRequest {
        component: probe_wasm(),
        manifest: manifest.clone(),
        input: json!({ "steps": steps }).to_string(),
    };
    let record = host.run(&request).await.expect("the run starts");
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    record
}

#[test]
fn a_host_checks_migrations_once_and_again_when_the_folder_changes() {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    project.write("migrations/lab/V1__a.sql", "CREATE TABLE a (id int);");
    let manifest = Manifest::parse(
        "[flow]\nname = \"owner\"\n[databases.lab]\naccess = \"read-write\"\nmigrations = \"migrations/lab\"\n",
        project.path().join("owner.toml"),
    )
    .unwrap();
    let config = project.load_config();
    block_on(async {
        let host = Host::new(Arc::new(config), RuntimeOptions::default()).unwrap();
        let first = run(&host, &manifest, json!([])).await;
        assert_eq!(first.migrations_applied, vec!["lab: V1__a.sql"]);

        // Behind the host's back: the history and the table go. An unchanged folder is not
        // checked again by this host, so nothing is re-applied...
        outside_runtime(|| db.exec("DROP TABLE flowhost_schema_history; DROP TABLE a"));
        let second = run(&host, &manifest, json!([])).await;
        assert!(second.migrations_applied.is_empty(), "{second:?}");
        let a = outside_runtime(|| db.column("SELECT to_regclass('a')::text"));
        assert_eq!(a, vec![None]);

        // ...but a new file changes the folder, and the next run migrates before it starts.
        project.write("migrations/lab/V2__b.sql", "CREATE TABLE b (id int);");
        let third = run(&host, &manifest, json!([])).await;
        assert_eq!(
            third.migrations_applied,
            vec!["lab: V1__a.sql", "lab: V2__b.sql"]
        );
        host.shutdown().await;
    });
    assert_eq!(db.count("b"), 0, "V2 ran: its table exists");
}

#[test]
fn runs_beyond_the_instance_pool_wait_for_a_slot_instead_of_failing() {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    let manifest = Manifest::parse(
        "[flow]\nname = \"slots\"\n[databases.lab]\naccess = \"read-write\"\n",
        project.path().join("slots.toml"),
    )
    .unwrap();
    let config = project.load_config();
    block_on(async {
        let host = Host::new(
            Arc::new(config),
            RuntimeOptions {
                max_concurrent_instances: Some(2),
                ..RuntimeOptions::default()
            },
        )
        .unwrap();
        // Eight runs at once, each holding its instance for 0.2 s, through two slots.
        let steps = json!([{ "op": "execute", "db": "lab", "sql": "SELECT pg_sleep(0.2)" }]);
        let runs = (0..8).map(|_| run(&host, &manifest, steps.clone()));
        let records = futures_util::future::join_all(runs).await;
        for record in &records {
            let result = &record.output.as_ref().unwrap()["results"][0];
            assert!(result.get("ok").is_some(), "{result}");
        }
        host.shutdown().await;
    });
}

/// SQLite result columns are remembered per statement for the run; a schema change made by
/// the run's own connection forgets them, so the same `SELECT *` sees the new column and
/// declared types still decide each value's case.
#[test]
fn sqlite_remembers_result_columns_only_until_the_schema_changes() {
    let project = Project::new();
    project.write(
        ".env",
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING=sqlite:///lab.sqlite\n",
    );
    let select = "SELECT * FROM t";
    let out = project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "execute", "db": "lab", "sql": "CREATE TABLE t (id INTEGER, ok BOOLEAN)" },
            { "op": "execute", "db": "lab", "sql": "INSERT INTO t VALUES (1, 1)" },
            { "op": "query", "db": "lab", "sql": select },
            { "op": "query", "db": "lab", "sql": select },
            { "op": "execute", "db": "lab", "sql": "ALTER TABLE t ADD COLUMN born DATE" },
            { "op": "execute", "db": "lab", "sql": "UPDATE t SET born = '2026-12-07'" },
            { "op": "query", "db": "lab", "sql": select },
        ]),
    );
    let results = probe_results(&out);
    let names = |i: usize| -> Vec<Value> {
        results[i]["ok"]["columns"]
            .as_array()
            .unwrap_or_else(|| panic!("step {i}: {results:?}"))
            .iter()
            .map(|c| c["name"].clone())
            .collect()
    };
    assert_eq!(names(2), vec![json!("id"), json!("ok")]);
    assert_eq!(
        results[3], results[2],
        "the remembered columns decode as the first read did"
    );
    assert_eq!(names(6), vec![json!("id"), json!("ok"), json!("born")]);
    let row = &results[6]["ok"]["rows"][0];
    assert_eq!(
        row,
        &json!([
            { "t": "int", "v": 1 },
            { "t": "boolean", "v": true },
            { "t": "date", "v": "2026-12-07" },
        ]),
        "{results:?}"
    );
}

/// A pooled SQLite connection outlives the run: a statement it ran before the table changed
/// (here by another connection, between two runs of one host) reads the new columns, instead
/// of the driver's worker crashing on its stale copy and the read ending as if empty.
#[test]
fn a_pooled_sqlite_connection_reads_a_table_changed_between_runs() {
    let project = Project::new();
    project.write(
        ".env",
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING=sqlite:///lab.sqlite\n",
    );
    // An empty file is an empty SQLite database.
    let file = project.write("lab.sqlite", "");
    sqlite_rows(&file, "CREATE TABLE t (id INTEGER)");
    sqlite_rows(&file, "INSERT INTO t VALUES (1)");
    let manifest = Manifest::parse(
        "[flow]\nname = \"reader\"\n[databases.lab]\naccess = \"read-only\"\n",
        project.path().join("reader.toml"),
    )
    .unwrap();
    let config = project.load_config();
    let select = json!([{ "op": "query", "db": "lab", "sql": "SELECT * FROM t" }]);
    let row_of =
        |record: &RunRecord| record.output.as_ref().unwrap()["results"][0]["ok"]["rows"][0].clone();
    block_on(async {
        let host = Host::new(Arc::new(config), RuntimeOptions::default()).unwrap();
        let first = run(&host, &manifest, select.clone()).await;
        assert_eq!(row_of(&first), json!([{ "t": "int", "v": 1 }]), "{first:?}");
        outside_runtime(|| sqlite_rows(&file, "ALTER TABLE t ADD COLUMN note TEXT DEFAULT 'x'"));
        let second = run(&host, &manifest, select).await;
        assert_eq!(
            row_of(&second),
            json!([{ "t": "int", "v": 1 }, { "t": "text", "v": "x" }]),
            "{second:?}"
        );
        host.shutdown().await;
    });
}

/// A PostgreSQL read without parameters starts without being described first (no column-origin
/// lookup): its columns are the same whether it returns rows or none, the same as a read with a
/// parameter reports, its rows are all there (the first is taken to learn the columns), and a
/// mistake in it is still the server's error.
#[test]
fn a_parameterless_postgresql_read_reports_its_columns_with_or_without_rows() {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE t (id BIGINT, note TEXT, born DATE)");
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    let select = "SELECT id, note, born FROM t ORDER BY id";
    let out = project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "query", "db": "lab", "sql": select },
            { "op": "execute", "db": "lab", "sql": "INSERT INTO t SELECT g, 'n' || g, DATE '2026-12-07' FROM generate_series(1, 3) g" },
            { "op": "query", "db": "lab", "sql": select },
            { "op": "query", "db": "lab", "sql": "SELECT id, note, born FROM t WHERE id >= :min ORDER BY id", "params": { "min": { "t": "int", "v": 0 } } },
            { "op": "cursor", "db": "lab", "sql": select, "batch": 2 },
            { "op": "query", "db": "lab", "sql": "SELECT nope FROM t" },
        ]),
    );
    let results = probe_results(&out);
    let expected_columns = json!([
        { "name": "id", "type": "INT8" },
        { "name": "note", "type": "TEXT" },
        { "name": "born", "type": "DATE" },
    ]);
    assert_eq!(results[0]["ok"]["columns"], expected_columns, "{results:?}");
    assert_eq!(results[0]["ok"]["rows"], json!([]), "{results:?}");
    assert_eq!(results[2]["ok"]["columns"], expected_columns, "{results:?}");
    assert_eq!(
        results[2]["ok"]["rows"], results[3]["ok"]["rows"],
        "{results:?}"
    );
    let ids: Vec<&Value> = results[2]["ok"]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{results:?}"))
        .iter()
        .map(|row| &row[0]["v"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3)], "{results:?}");
    assert_eq!(results[4]["ok"]["rows"], 3, "{results:?}");
    let error = &results[5]["error"];
    assert_eq!(error["code"], "42703", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("nope"),
        "{error}"
    );
}
