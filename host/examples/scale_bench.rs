//! `make bench-scale`: flowhost at scale, against baselines in the same run (issue 9, items 4-6),
//! on a fresh PostgreSQL database (127.0.0.1:5432, `fh_scale_<pid>`, dropped at the end).
//!
//! 4. Streaming 1,000,000 rows x 5 columns: the probe's `read_wide` (a guest cursor decoding
//!    typed structs) against sqlx `fetch` decoding the same structs. Each peer is a whole child
//!    process (this program re-executed with `--child ...`) that prints its own peak RSS
//!    (VmHWM), so the figure is that peer's alone.
//! 5. Writing 100,000 rows: the probe's `insert_wide` (one `execute_batch` in a transaction,
//!    timed as a whole `Host::run`) against `psql \copy` of the same rows from a CSV file (a
//!    whole process) and against one sqlx UNNEST insert in a transaction on an open connection.
//! 6. 200 concurrent runs of a small flow (a one-row query and an INSERT) in one process, on one
//!    Host whose pool holds 10 connections and no overflow: all must succeed; latencies and the
//!    process's peak RSS during the round.
//!
//! Only correctness is asserted (checksums, row counts, run status); timings are reported.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowhost::manifest::Manifest;
use flowhost::run::{Host, RunRequest, RunStatus};
use futures_util::TryStreamExt;
use serde_json::{Value as Json, json};
use sqlx::{Connection, Executor, Row};

#[path = "common/mod.rs"]
mod common;
use common::{Wide, build_probe, host_for};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const STREAM_ROWS: i64 = 1_000_000;
const STREAM_RUNS: usize = 3;
const STREAM_SQL: &str = "SELECT id, note, score, qty, flag FROM wide";
const WRITE_ROWS: i64 = 100_000;
const WRITE_RUNS: usize = 5;
const WRITE_SQL: &str =
    "INSERT INTO wide (id, note, score, qty, flag) VALUES (:id, :note, :score, :qty, :flag)";
const CONCURRENT_RUNS: usize = 200;
const CONCURRENT_ROUNDS: usize = 3;
const POOL_SIZE: usize = 10;
const MANIFEST: &str = "[flow]\nname = \"scale\"\n[limits]\nmax-rows = 1000000\n\
                        timeout-seconds = 600\n[databases.lab]\naccess = \"read-write\"\n";

fn main() {
    // Backtraces on every wasmtime error would only add noise to timings.
    // SAFETY: single-threaded at this point; nothing else reads the environment yet.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    let probe = build_probe();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let name = format!("fh_scale_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sqlx_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let flowhost_url = format!("postgresql://postgres@127.0.0.1:5432/{name}");

        let mut conn = sqlx::PgConnection::connect(&sqlx_url).await.unwrap();
        conn.execute(
            "CREATE TABLE wide (id BIGINT PRIMARY KEY, note TEXT NOT NULL, \
             score DOUBLE PRECISION NOT NULL, qty INTEGER NOT NULL, flag BOOLEAN NOT NULL); \
             CREATE TABLE small_log (run INTEGER NOT NULL, note TEXT NOT NULL, \
             at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();

        stream_bench(&mut conn, &sqlx_url, &flowhost_url, &probe, dir.path()).await;
        write_bench(&mut conn, &name, &flowhost_url, &probe, dir.path()).await;
        concurrent_bench(&mut conn, &flowhost_url, &probe, dir.path()).await;

        conn.close().await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Streaming 1M rows, each peer a whole child process.

/// What a stream peer reports: the rows it read and its checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checksum {
    rows: u64,
    id_sum: i64,
    note_bytes: u64,
}

struct ChildReport {
    checksum: Checksum,
    /// The timed part inside the child: the stream alone (native) or the whole `Host::run`.
    stream: Duration,
    /// VmHWM just before the timed part, and at the child's end, in KiB.
    hwm_before_kib: u64,
    hwm_end_kib: u64,
    /// The child process from spawn to exit, measured by the parent.
    process: Duration,
}

async fn stream_bench(
    conn: &mut sqlx::PgConnection,
    sqlx_url: &str,
    flowhost_url: &str,
    probe: &Path,
    dir: &Path,
) {
    conn.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO wide SELECT g, 'row ' || g, g::float8 / 7.0, g % 1000, g % 2 = 0 \
         FROM generate_series(0, {}) g",
        STREAM_ROWS - 1
    )))
    .await
    .unwrap();
    conn.execute("VACUUM (ANALYZE) wide").await.unwrap();
    let expected = sql_checksum(conn).await;
    assert_eq!(expected.rows, STREAM_ROWS as u64);

    // Fill the component cache the children share, and check the op works, in process.
    let host = host_for(flowhost_url, dir, &[]);
    let warm = run_ok(
        &host,
        probe,
        dir,
        json!([{ "op": "read_wide", "db": "lab", "sql": format!("{STREAM_SQL} LIMIT 10"), "batch": 1000 }]),
    )
    .await;
    assert_eq!(warm.1[0]["ok"]["rows"], 10, "{}", warm.1[0]);
    host.shutdown().await;

    let probe_arg = probe.to_str().unwrap();
    let dir_arg = dir.to_str().unwrap();
    let mut native = Vec::new();
    let mut guest = Vec::new();
    // Interleaved, so drift on the shared machine hits both peers alike.
    for _ in 0..STREAM_RUNS {
        native.push(spawn_child(&["native-stream", sqlx_url]));
        guest.push(spawn_child(&[
            "flowhost-stream",
            flowhost_url,
            probe_arg,
            dir_arg,
        ]));
    }
    for report in native.iter().chain(&guest) {
        assert_eq!(report.checksum, expected, "a peer read other rows");
    }
    let idle = spawn_child(&["idle"]);

    let line = |peer: &str, reports: &[ChildReport]| {
        let stream = median(reports.iter().map(|r| r.stream).collect());
        let process = median(reports.iter().map(|r| r.process).collect());
        let hwm = reports.iter().map(|r| r.hwm_end_kib).max().unwrap();
        let before = median(reports.iter().map(|r| r.hwm_before_kib).collect());
        vec![
            peer.to_owned(),
            ms(stream),
            format!("{:.0}", STREAM_ROWS as f64 / stream.as_secs_f64()),
            ms(process),
            mib(before),
            mib(hwm),
        ]
    };
    println!(
        "\n4. Stream {STREAM_ROWS} rows x 5 columns ({STREAM_SQL}), each peer a whole child \
         process, median of {STREAM_RUNS}\n"
    );
    print!(
        "{}",
        flowhost::migrate::table(
            &[
                "peer",
                "stream",
                "rows/s",
                "whole process",
                "peak RSS before stream",
                "peak RSS (max)",
            ],
            vec![
                line("native sqlx fetch, typed, streaming", &native),
                line("flowhost probe read_wide, batch 1000", &guest),
                vec![
                    "idle child (tokio runtime only)".into(),
                    "-".into(),
                    "-".into(),
                    ms(idle.process),
                    "-".into(),
                    mib(idle.hwm_end_kib),
                ],
            ]
        )
    );
    let native_time = median(native.iter().map(|r| r.stream).collect()).as_secs_f64();
    let guest_time = median(guest.iter().map(|r| r.stream).collect()).as_secs_f64();
    let ratio = native_time / guest_time;
    let guest_hwm = guest.iter().map(|r| r.hwm_end_kib).max().unwrap();
    println!(
        "  flowhost / native throughput: {ratio:.2}x (goal ≥ 0.7x: {})",
        met(ratio >= 0.7)
    );
    println!(
        "  flowhost peak RSS: {} (goal < 100 MiB: {})",
        mib(guest_hwm),
        met(guest_hwm < 100 * 1024)
    );
    println!(
        "  checksums agree with the database's: rows {}, id_sum {}, note_bytes {}",
        expected.rows, expected.id_sum, expected.note_bytes
    );
    println!(
        "  (stream: native = the fetch loop after connecting; flowhost = one whole Host::run after \
         an untimed warm-up run)"
    );
}

/// The checksums `read_wide` computes, computed by the server over the whole table.
async fn sql_checksum(conn: &mut sqlx::PgConnection) -> Checksum {
    let row = sqlx::query(
        "SELECT count(*), coalesce(sum(id + qty + flag::int), 0)::int8, \
         coalesce(sum(octet_length(note) + (score > 0)::int), 0)::int8 FROM wide",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    Checksum {
        rows: row.get::<i64, _>(0) as u64,
        id_sum: row.get(1),
        note_bytes: row.get::<i64, _>(2) as u64,
    }
}

fn spawn_child(args: &[&str]) -> ChildReport {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .args(args)
        .output()
        .expect("re-execute this benchmark");
    let process = started.elapsed();
    assert!(
        out.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let report: Json = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("child {args:?} printed no report ({e}): {stdout}"));
    let u = |k: &str| report[k].as_u64().unwrap_or(0);
    ChildReport {
        checksum: Checksum {
            rows: u("rows"),
            id_sum: report["id_sum"].as_i64().unwrap_or(0),
            note_bytes: u("note_bytes"),
        },
        stream: Duration::from_secs_f64(report["secs"].as_f64().unwrap_or(0.0)),
        hwm_before_kib: u("hwm_before_kib"),
        hwm_end_kib: u("hwm_end_kib"),
        process,
    }
}

/// `--child MODE ...`: one stream peer (or an idle process); prints one JSON line at its end.
fn child(args: &[String]) {
    // One thread for both peers, as `flowhost run` has: neither pays wake-ups handed between
    // threads (flowhost's cursor reader and its run would otherwise sit on different workers).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        match args[0].as_str() {
            "native-stream" => {
                let mut conn = sqlx::PgConnection::connect(&args[1]).await.unwrap();
                let hwm_before_kib = vm_status("VmHWM");
                let started = Instant::now();
                let mut stream = sqlx::query(STREAM_SQL).fetch(&mut conn);
                let (mut rows, mut id_sum, mut note_bytes) = (0u64, 0i64, 0u64);
                while let Some(row) = stream.try_next().await.unwrap() {
                    let wide = Wide {
                        id: row.try_get(0).unwrap(),
                        note: row.try_get(1).unwrap(),
                        score: row.try_get(2).unwrap(),
                        qty: row.try_get(3).unwrap(),
                        flag: row.try_get(4).unwrap(),
                    };
                    rows += 1;
                    id_sum = id_sum
                        .wrapping_add(wide.id + i64::from(wide.qty) + i64::from(wide.flag));
                    note_bytes += (wide.note.len() + usize::from(wide.score > 0.0)) as u64;
                }
                let secs = started.elapsed().as_secs_f64();
                drop(stream);
                conn.close().await.unwrap();
                json!({"rows": rows, "id_sum": id_sum, "note_bytes": note_bytes, "secs": secs,
                       "hwm_before_kib": hwm_before_kib})
            }
            "flowhost-stream" => {
                let (url, probe, dir) = (&args[1], Path::new(&args[2]), Path::new(&args[3]));
                let host = host_for(url, dir, &[]);
                // Untimed: the component from the cache, the pool's first connection.
                run_ok(
                    &host,
                    probe,
                    dir,
                    json!([{ "op": "read_wide", "db": "lab", "sql": format!("{STREAM_SQL} LIMIT 1"), "batch": 1000 }]),
                )
                .await;
                let hwm_before_kib = vm_status("VmHWM");
                let (elapsed, results) = run_ok(
                    &host,
                    probe,
                    dir,
                    json!([{ "op": "read_wide", "db": "lab", "sql": STREAM_SQL, "batch": 1000 }]),
                )
                .await;
                host.shutdown().await;
                let ok = &results[0]["ok"];
                json!({"rows": ok["rows"], "id_sum": ok["id_sum"], "note_bytes": ok["note_bytes"],
                       "secs": elapsed.as_secs_f64(), "hwm_before_kib": hwm_before_kib})
            }
            "idle" => json!({}),
            other => panic!("unknown child mode {other}"),
        }
    });
    let mut report = report;
    report["hwm_end_kib"] = json!(vm_status("VmHWM"));
    println!("{report}");
}

/// A `/proc/self/status` field in KiB (VmHWM: peak resident set; VmRSS: current).
fn vm_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets VmHWM to the current RSS (Linux 4.0+); false when the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---------------------------------------------------------------------------------------------
// 5. Writing 100k rows: execute_batch vs psql \copy vs one sqlx UNNEST insert.

async fn write_bench(
    conn: &mut sqlx::PgConnection,
    db_name: &str,
    flowhost_url: &str,
    probe: &Path,
    dir: &Path,
) {
    let csv = dir.join("wide.csv");
    let mut text = String::with_capacity(WRITE_ROWS as usize * 40);
    for id in 0..WRITE_ROWS {
        let w = wide_row(id);
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            w.id,
            w.note,
            w.score,
            w.qty,
            if w.flag { "t" } else { "f" }
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let rows: Vec<Wide> = (0..WRITE_ROWS).map(wide_row).collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let notes: Vec<String> = rows.iter().map(|r| r.note.clone()).collect();
    let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
    let qtys: Vec<i32> = rows.iter().map(|r| r.qty).collect();
    let flags: Vec<bool> = rows.iter().map(|r| r.flag).collect();

    // What every peer must leave in the table: the same rows, summed by the server.
    let expected = Checksum {
        rows: WRITE_ROWS as u64,
        id_sum: rows
            .iter()
            .fold(0i64, |s, r| s + r.id + i64::from(r.qty) + i64::from(r.flag)),
        note_bytes: rows
            .iter()
            .map(|r| (r.note.len() + usize::from(r.score > 0.0)) as u64)
            .sum(),
    };

    let host = host_for(flowhost_url, dir, &[]);
    let mut native_conn =
        sqlx::PgConnection::connect(&flowhost_url.replace("postgresql://", "postgres://"))
            .await
            .unwrap();
    let copy = format!("\\copy wide FROM '{}' WITH (FORMAT csv)", csv.display());
    let (mut guest, mut psql, mut native) = (Vec::new(), Vec::new(), Vec::new());
    // One warm-up of each, then WRITE_RUNS interleaved rounds.
    for round in 0..=WRITE_RUNS {
        conn.execute("TRUNCATE wide").await.unwrap();
        let (elapsed, results) = run_ok(
            &host,
            probe,
            dir,
            json!([{ "op": "insert_wide", "db": "lab", "sql": WRITE_SQL, "rows": WRITE_ROWS }]),
        )
        .await;
        assert_eq!(
            results[0]["ok"]["affected"], WRITE_ROWS,
            "insert_wide: {}",
            results[0]
        );
        assert_eq!(
            sql_checksum(conn).await,
            expected,
            "flowhost wrote other rows"
        );
        if round > 0 {
            guest.push(elapsed);
        }

        conn.execute("TRUNCATE wide").await.unwrap();
        let started = Instant::now();
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                db_name,
                "-c",
                &copy,
            ])
            .output()
            .expect("run psql");
        let elapsed = started.elapsed();
        assert!(
            out.status.success(),
            "psql \\copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sql_checksum(conn).await, expected, "psql wrote other rows");
        if round > 0 {
            psql.push(elapsed);
        }

        conn.execute("TRUNCATE wide").await.unwrap();
        let started = Instant::now();
        let mut tx = native_conn.begin().await.unwrap();
        let affected = sqlx::query(
            "INSERT INTO wide (id, note, score, qty, flag) SELECT * FROM \
             UNNEST($1::int8[], $2::text[], $3::float8[], $4::int4[], $5::bool[])",
        )
        .bind(&ids)
        .bind(&notes)
        .bind(&scores)
        .bind(&qtys)
        .bind(&flags)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        tx.commit().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(affected, WRITE_ROWS as u64);
        assert_eq!(
            sql_checksum(conn).await,
            expected,
            "native wrote other rows"
        );
        if round > 0 {
            native.push(elapsed);
        }
    }
    host.shutdown().await;
    native_conn.close().await.unwrap();

    let (guest, psql, native) = (median(guest), median(psql), median(native));
    println!(
        "\n5. Write {WRITE_ROWS} rows x 5 columns into an empty table, median of {WRITE_RUNS} \
         after a warm-up\n"
    );
    print!(
        "{}",
        flowhost::migrate::table(
            &["peer", "median", "rows/s", "flowhost / peer"],
            [
                (
                    "flowhost probe insert_wide (execute_batch in a transaction), whole Host::run",
                    guest
                ),
                ("psql \\copy from a CSV file, whole process", psql),
                (
                    "sqlx, one UNNEST insert in a transaction, open connection",
                    native
                ),
            ]
            .into_iter()
            .map(|(peer, d)| vec![
                peer.to_owned(),
                ms(d),
                format!("{:.0}", WRITE_ROWS as f64 / d.as_secs_f64()),
                format!("{:.2}x", guest.as_secs_f64() / d.as_secs_f64()),
            ])
            .collect()
        )
    );
    let ratio = guest.as_secs_f64() / psql.as_secs_f64();
    println!(
        "  flowhost / psql \\copy: {ratio:.2}x (goal ≤ 2x: {}); flowhost / native UNNEST: {:.2}x",
        met(ratio <= 2.0),
        guest.as_secs_f64() / native.as_secs_f64()
    );
    println!("  every run checked: count(*) = {WRITE_ROWS} and the same column sums");
}

fn wide_row(id: i64) -> Wide {
    Wide {
        id,
        note: format!("row {id}"),
        score: id as f64 / 7.0,
        qty: (id % 1000) as i32,
        flag: id % 2 == 0,
    }
}

// ---------------------------------------------------------------------------------------------
// 6. 200 concurrent small runs on one Host, pool of 10.

async fn concurrent_bench(
    conn: &mut sqlx::PgConnection,
    flowhost_url: &str,
    probe: &Path,
    dir: &Path,
) {
    let pool = POOL_SIZE.to_string();
    let host = Arc::new(host_for(
        flowhost_url,
        dir,
        &[
            ("DEVELOPMENT_GLOBAL_LAB_CONNECTION_POOL_SIZE", &pool),
            ("DEVELOPMENT_GLOBAL_LAB_MAX_OVERFLOW", "0"),
        ],
    ));
    let manifest = Arc::new(Manifest::parse(MANIFEST, dir.join("scale.toml")).unwrap());
    let probe = Arc::new(probe.to_owned());
    // One untimed run: the component from the cache, the pool's first connection.
    run_small(&host, &manifest, &probe, 0).await;
    let baseline_rss = vm_status("VmRSS");
    let resettable = reset_peak_rss();

    println!(
        "\n6. {CONCURRENT_RUNS} concurrent runs of a small flow (a one-row query, one INSERT) in \
         one process, one Host, pool of {POOL_SIZE} (no overflow)\n"
    );
    let mut lines = Vec::new();
    for round in 1..=CONCURRENT_ROUNDS {
        conn.execute("TRUNCATE small_log").await.unwrap();
        reset_peak_rss();
        let rss_before = vm_status("VmRSS");
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONCURRENT_RUNS)
            .map(|i| {
                let (host, manifest, probe) = (host.clone(), manifest.clone(), probe.clone());
                tokio::spawn(async move { run_small(&host, &manifest, &probe, i).await })
            })
            .collect();
        let mut latencies = Vec::with_capacity(CONCURRENT_RUNS);
        for task in tasks {
            latencies.push(task.await.expect("every run succeeds"));
        }
        let wall = started.elapsed();
        let peak = vm_status("VmHWM");
        let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM small_log")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(logged, CONCURRENT_RUNS as i64, "every run wrote its row");
        latencies.sort();
        let pct = |p: usize| latencies[(p * latencies.len()).div_ceil(100) - 1];
        lines.push(vec![
            round.to_string(),
            format!("{CONCURRENT_RUNS}/{CONCURRENT_RUNS}"),
            ms(pct(50)),
            ms(pct(99)),
            ms(*latencies.last().unwrap()),
            ms(wall),
            format!("{:.0}", CONCURRENT_RUNS as f64 / wall.as_secs_f64()),
            mib(rss_before),
            mib(peak),
        ]);
    }
    host.shutdown().await;
    print!(
        "{}",
        flowhost::migrate::table(
            &[
                "round",
                "succeeded",
                "p50",
                "p99",
                "max",
                "wall",
                "runs/s",
                "RSS before",
                "peak RSS",
            ],
            lines
        )
    );
    println!(
        "  all runs succeeded and wrote their row; latency = one Host::run, all {CONCURRENT_RUNS} \
         started at once"
    );
    if resettable {
        println!(
            "  peak RSS = this process's VmHWM during the round (reset before each round); RSS \
             after the warm-up run was {}",
            mib(baseline_rss)
        );
    } else {
        println!(
            "  peak RSS = this process's VmHWM since it started (the kernel refused to reset it), \
             so it includes benchmark 5"
        );
    }
}

/// One small run; returns its latency after checking it succeeded with no error result.
async fn run_small(host: &Host, manifest: &Manifest, probe: &Path, i: usize) -> Duration {
    let id = (i as i64 * 499) % WRITE_ROWS;
    let request = RunRequest {
        component: probe.to_owned(),
        manifest: manifest.clone(),
        input: json!({ "steps": [
            { "op": "query", "db": "lab", "sql": "SELECT id, note FROM wide WHERE id = $1",
              "params": [{ "t": "int", "v": id }] },
            { "op": "execute", "db": "lab", "sql": "INSERT INTO small_log (run, note) VALUES ($1, $2)",
              "params": [{ "t": "int", "v": i }, { "t": "text", "v": format!("run {i}") }] },
        ] })
        .to_string(),
    };
    let started = Instant::now();
    let record = host.run(&request).await.expect("run starts");
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let results = record.output.as_ref().unwrap()["results"]
        .as_array()
        .unwrap();
    for result in results {
        assert!(result.get("ok").is_some(), "run {i}: {result}");
    }
    let rows = results[0]["ok"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "run {i}: {}", results[0]);
    assert_eq!(rows[0][1]["v"], format!("row {id}"), "run {i}");
    assert_eq!(results[1]["ok"]["affected"], 1, "run {i}");
    elapsed
}

// ---------------------------------------------------------------------------------------------
// Shared.

/// Runs the probe with `steps` through the scale manifest; returns the whole run's wall time and
/// its results, after checking the run succeeded and every step gave `ok`.
async fn run_ok(host: &Host, probe: &Path, dir: &Path, steps: Json) -> (Duration, Vec<Json>) {
    let manifest = Manifest::parse(MANIFEST, dir.join("scale.toml")).unwrap();
    let request = RunRequest {
        component: probe.to_owned(),
        manifest,
        input: json!({ "steps": steps }).to_string(),
    };
    let started = Instant::now();
    let record = host.run(&request).await.expect("run starts");
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let results = record.output.unwrap()["results"]
        .as_array()
        .unwrap()
        .clone();
    for result in &results {
        assert!(result.get("ok").is_some(), "{result}");
    }
    (elapsed, results)
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}
