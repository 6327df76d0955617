//! `make bench`: what flowhost costs a flow, against a native sqlx program doing the same work
//! in the same run, on PostgreSQL (127.0.0.1:5432, a fresh database) and SQLite (a temp file).
//!
//! Scenarios, on a table of five columns (bigint, text, double, integer, boolean): writing N
//! rows (native: one INSERT per row in a transaction, and hand-written 1000-row INSERTs;
//! flowhost: a guest's `execute_batch` of N serde structs), reading N rows into typed structs
//! (native: typed `fetch_all`; flowhost: a guest's cursor with `rows_as`), many trivial queries
//! one after another, and one empty run (instantiate + call). Each is run several times; the
//! table shows medians and flowhost / native ratios.
//!
//! `cargo run --release -p flowhost --example bench -- sqlite` runs only the named parts
//! (`postgres`, `sqlite`, `noop`); with no argument, all of them.

use std::path::Path;
use std::time::{Duration, Instant};

use flowhost::manifest::Manifest;
use flowhost::run::{Host, RunRequest, RunStatus};
use serde_json::json;
use sqlx::{Connection, Executor, QueryBuilder, Row};

#[path = "common/mod.rs"]
mod common;
use common::{Wide, build_probe, host_for};

const ROWS: i64 = 10_000;
const REPEAT: usize = 5;
/// Trivial queries in the per-call scenario (run three times: it takes seconds).
const QUERIES: i64 = 100_000;
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() {
    // Backtraces on every wasmtime error would only add noise to timings.
    // SAFETY: single-threaded at this point; nothing else reads the environment yet.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let parts: Vec<String> = std::env::args().skip(1).collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let probe = build_probe();
    // One thread, as `flowhost run` uses, for both sides: neither pays wake-ups handed from
    // tokio's workers to the thread in block_on.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pg_name = format!("fh_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {pg_name}")))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sqlite_file = dir.path().join("bench.sqlite");

        let mut table = Vec::new();
        let pg_url = format!("postgres://postgres@127.0.0.1:5432/{pg_name}");
        if wants("postgres") {
            table.extend(
                bench_backend(
                    "PostgreSQL",
                    &pg_url,
                    &format!("postgresql://postgres@127.0.0.1:5432/{pg_name}"),
                    &probe,
                    dir.path(),
                )
                .await,
            );
        }
        let sqlite_url = format!("sqlite://{}?mode=rwc", sqlite_file.display());
        if wants("sqlite") {
            table.extend(
                bench_backend(
                    "SQLite",
                    &sqlite_url,
                    &format!("sqlite:///{}", sqlite_file.display()),
                    &probe,
                    dir.path(),
                )
                .await,
            );
        }

        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {pg_name} WITH (FORCE)"
            )))
            .await
            .unwrap();
        if !table.is_empty() {
            print_table(&table);
        }
        if wants("noop") {
            print_noop(&probe, dir.path()).await;
        }
    });
}

/// A flow that does nothing, granted no database: what a run costs by itself, in process
/// (instantiate, call, drop; component cache warm) and as a whole `flowhost run` process.
async fn print_noop(probe: &Path, dir: &Path) {
    const IN_PROCESS: usize = 200;
    const PROCESSES: usize = 30;
    let host = host_for("sqlite::memory:", dir, &[]);
    let manifest = Manifest::parse("[flow]\nname = \"noop\"\n", dir.join("noop.toml")).unwrap();
    let request = RunRequest {
        component: probe.to_owned(),
        manifest,
        input: json!({ "steps": [] }).to_string(),
    };
    let mut in_process = Vec::new();
    for _ in 0..=IN_PROCESS {
        let started = Instant::now();
        let record = host.run(&request).await.expect("run starts");
        in_process.push(started.elapsed());
        assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    }
    host.shutdown().await;
    std::fs::write(dir.join("noop.toml"), "[flow]\nname = \"noop\"\n").unwrap();
    std::fs::write(dir.join("noop.json"), r#"{"steps": []}"#).unwrap();
    let component = dir.join("noop.wasm");
    std::fs::copy(probe, &component).unwrap();
    let flowhost = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/flowhost");
    let mut processes = Vec::new();
    for _ in 0..=PROCESSES {
        let started = Instant::now();
        let status = std::process::Command::new(&flowhost)
            .current_dir(dir)
            .args(["run", "noop.wasm", "--input-file", "noop.json", "-q"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the flowhost binary (make bench builds it)");
        processes.push(started.elapsed());
        assert!(status.success(), "flowhost run of the no-op flow failed");
    }
    let median = |mut times: Vec<Duration>| {
        times.remove(0); // the first fills the component cache
        times.sort();
        times[times.len() / 2]
    };
    println!("\nA no-op flow, no database, component cache warm (median)\n");
    println!(
        "  in process: instantiate, call, drop ({IN_PROCESS} runs)  {:.1} µs   (goal < 25 µs)",
        median(in_process).as_secs_f64() * 1e6
    );
    println!(
        "  whole process: flowhost run ({PROCESSES} runs)          {:.2} ms  (goal < 20 ms)",
        median(processes).as_secs_f64() * 1e3
    );
}

struct Line {
    backend: &'static str,
    scenario: String,
    baseline: String,
    native: Duration,
    flowhost: Duration,
}

async fn bench_backend(
    backend: &'static str,
    sqlx_url: &str,
    flowhost_url: &str,
    probe: &Path,
    dir: &Path,
) -> Vec<Line> {
    let create = "CREATE TABLE IF NOT EXISTS wide (id BIGINT PRIMARY KEY, note TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, qty INTEGER NOT NULL, flag BOOLEAN NOT NULL)";
    let mut native = NativeDb::connect(sqlx_url).await;
    native.exec(create).await;

    let host = host_for(flowhost_url, dir, &[]);
    let manifest = Manifest::parse("[flow]\nname = \"bench\"\n[limits]\nmax-rows = 1000000\n[databases.lab]\naccess = \"read-write\"\n", dir.join("bench.toml")).unwrap();
    let insert =
        "INSERT INTO wide (id, note, score, qty, flag) VALUES (:id, :note, :score, :qty, :flag)";

    let per_row = median(async || {
        native.exec("DELETE FROM wide").await;
        let started = Instant::now();
        native.insert_per_row().await;
        started.elapsed()
    })
    .await;
    let multi_row = median(async || {
        native.exec("DELETE FROM wide").await;
        let started = Instant::now();
        native.insert_multi_row().await;
        started.elapsed()
    })
    .await;
    let guest_insert = median(async || {
        native.exec("DELETE FROM wide").await;
        run(
            &host,
            &manifest,
            probe,
            json!([{ "op": "insert_wide", "db": "lab", "sql": insert, "rows": ROWS }]),
        )
        .await
    })
    .await;
    let native_select = median(async || {
        let started = Instant::now();
        assert_eq!(native.select_all().await, ROWS as usize);
        started.elapsed()
    })
    .await;
    let guest_select = median(async || {
        run(&host, &manifest, probe, json!([{ "op": "read_wide", "db": "lab", "sql": "SELECT id, note, score, qty, flag FROM wide", "batch": 1000 }])).await
    })
    .await;
    let native_queries = median_of(3, async || {
        let started = Instant::now();
        native.queries(QUERIES).await;
        started.elapsed()
    })
    .await;
    let guest_queries = median_of(3, async || {
        run(
            &host,
            &manifest,
            probe,
            json!([{ "op": "queries", "db": "lab", "n": QUERIES }]),
        )
        .await
    })
    .await;
    let native_noop = median(async || {
        let started = Instant::now();
        native.exec("SELECT 1").await;
        started.elapsed()
    })
    .await;
    let guest_noop = median(async || {
        run(
            &host,
            &manifest,
            probe,
            json!([{ "op": "execute", "db": "lab", "sql": "SELECT 1" }]),
        )
        .await
    })
    .await;
    host.shutdown().await;

    let rows = format!("{} rows", ROWS);
    vec![
        Line {
            backend,
            scenario: format!("insert {rows}"),
            baseline: "sqlx, INSERT per row in a transaction".into(),
            native: per_row,
            flowhost: guest_insert,
        },
        Line {
            backend,
            scenario: format!("insert {rows}"),
            baseline: "sqlx, 1000-row INSERTs by hand".into(),
            native: multi_row,
            flowhost: guest_insert,
        },
        Line {
            backend,
            scenario: format!("select {rows}"),
            baseline: "sqlx, typed fetch_all".into(),
            native: native_select,
            flowhost: guest_select,
        },
        Line {
            backend,
            scenario: format!("{QUERIES} queries"),
            baseline: "sqlx, SELECT 1 one after another".into(),
            native: native_queries,
            flowhost: guest_queries,
        },
        Line {
            backend,
            scenario: "one statement, whole run".into(),
            baseline: "sqlx, one statement on an open connection".into(),
            native: native_noop,
            flowhost: guest_noop,
        },
    ]
}

/// Runs the probe once; returns the whole run's wall time (instantiate, call, cleanup).
async fn run(host: &Host, manifest: &Manifest, probe: &Path, steps: serde_json::Value) -> Duration {
    let request = RunRequest {
        component: probe.to_owned(),
        manifest: manifest.clone(),
        input: json!({ "steps": steps }).to_string(),
    };
    let started = Instant::now();
    let record = host.run(&request).await.expect("run starts");
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let result = &record.output.as_ref().unwrap()["results"][0];
    assert!(result.get("ok").is_some(), "{result}");
    elapsed
}

async fn median(f: impl AsyncFnMut() -> Duration) -> Duration {
    median_of(REPEAT, f).await
}

async fn median_of(runs: usize, mut f: impl AsyncFnMut() -> Duration) -> Duration {
    f().await; // warm-up: pools, statement caches, compiled component
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(f().await);
    }
    times.sort();
    times[runs / 2]
}

/// The native baseline: one sqlx connection, typed binds, no flowhost.
enum NativeDb {
    Pg(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

macro_rules! on_conn {
    ($self:ident, $c:ident => $body:expr) => {
        match $self {
            NativeDb::Pg($c) => $body,
            NativeDb::Sqlite($c) => $body,
        }
    };
}

impl NativeDb {
    async fn connect(url: &str) -> NativeDb {
        if url.starts_with("postgres") {
            NativeDb::Pg(sqlx::PgConnection::connect(url).await.unwrap())
        } else {
            NativeDb::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        }
    }

    async fn exec(&mut self, sql: &'static str) {
        on_conn!(self, c => { c.execute(sql).await.unwrap(); })
    }

    async fn insert_per_row(&mut self) {
        let placeholders = match self {
            NativeDb::Pg(_) => {
                "INSERT INTO wide (id, note, score, qty, flag) VALUES ($1, $2, $3, $4, $5)"
            }
            NativeDb::Sqlite(_) => {
                "INSERT INTO wide (id, note, score, qty, flag) VALUES (?1, ?2, ?3, ?4, ?5)"
            }
        };
        on_conn!(self, c => {
            let mut tx = c.begin().await.unwrap();
            for id in 0..ROWS {
                sqlx::query(placeholders).bind(id).bind(format!("row {id}")).bind(id as f64 / 7.0).bind((id % 1000) as i32).bind(id % 2 == 0).execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        })
    }

    async fn insert_multi_row(&mut self) {
        on_conn!(self, c => {
            let mut tx = c.begin().await.unwrap();
            let ids: Vec<i64> = (0..ROWS).collect();
            for chunk in ids.chunks(1000) {
                let mut q = QueryBuilder::new("INSERT INTO wide (id, note, score, qty, flag) ");
                q.push_values(chunk, |mut b, id| {
                    b.push_bind(*id).push_bind(format!("row {id}")).push_bind(*id as f64 / 7.0).push_bind((*id % 1000) as i32).push_bind(*id % 2 == 0);
                });
                q.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        })
    }

    async fn select_all(&mut self) -> usize {
        on_conn!(self, c => {
            let rows = sqlx::query("SELECT id, note, score, qty, flag FROM wide").fetch_all(&mut *c).await.unwrap();
            // Decode every value into the same struct as the guest's.
            let decoded: Vec<Wide> = rows
                .iter()
                .map(|r| Wide { id: r.get(0), note: r.get(1), score: r.get(2), qty: r.get(3), flag: r.get(4) })
                .collect();
            let note_bytes: usize = decoded.iter().map(|w| w.note.len() + usize::from(w.flag) + (w.score > 0.0) as usize + w.qty as usize + w.id as usize % 2).sum();
            assert!(note_bytes > 0);
            decoded.len()
        })
    }

    async fn queries(&mut self, n: i64) {
        on_conn!(self, c => {
            for _ in 0..n {
                let row = sqlx::query("SELECT 1").fetch_one(&mut *c).await.unwrap();
                let one: i32 = row.get(0);
                assert_eq!(one, 1);
            }
        })
    }
}

fn print_table(lines: &[Line]) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.backend.to_owned(),
                l.scenario.clone(),
                l.baseline.clone(),
                ms(l.native),
                ms(l.flowhost),
                format!("{:.2}x", l.flowhost.as_secs_f64() / l.native.as_secs_f64()),
            ]
        })
        .collect();
    println!("\nflowhost vs native sqlx, medians of {REPEAT} runs after a warm-up\n");
    print!(
        "{}",
        flowhost::migrate::table(
            &[
                "backend",
                "work",
                "native baseline",
                "native",
                "flowhost",
                "flowhost / native"
            ],
            rows
        )
    );
}
