//! `make bench-migrate`: what `flowhost migrate` costs, measured the way a user runs it (the
//! release binary, one whole process per command) on PostgreSQL at 127.0.0.1:5432.
//!
//! 1. Apply 100 generated migrations (each: a table with a few columns, an index, three rows)
//!    to an empty database with `flowhost migrate`, against `psql -X -q -v ON_ERROR_STOP=1
//!    -f f1 ... -f f100` of the same files on another empty database, in the same run.
//! 2. `flowhost migrate validate` and `flowhost migrate info` over 1,000, 5,000 and 10,000
//!    files whose history rows are real (applied by `flowhost migrate` first).
//! 3. The fixed cost of one process: connect and one query, with and without TLS, beside psql.
//!
//! Medians of several repetitions; every database is fresh, and all are dropped at the end
//! (also on a panic). Needs `psql` on the PATH and the release binary next to this example
//! (`make bench-migrate` builds it first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PG_HOST: &str = "127.0.0.1";
const PG_PORT: &str = "5432";
const PG_USER: &str = "postgres";
/// Files applied in part 1.
const APPLY_FILES: usize = 100;
/// Measured repetitions (after one warm-up) in part 1.
const APPLY_REPEAT: usize = 7;
/// File counts for part 2, and measured repetitions of each command.
const INSPECT_SIZES: &[usize] = &[1_000, 5_000, 10_000];
const INSPECT_REPEAT: usize = 5;

fn main() {
    let flowhost = flowhost_binary();
    check_psql();
    let mut dbs = Databases::default();
    let work = tempfile::tempdir().expect("create a temp dir");

    println!(
        "flowhost migrate benchmark: {} (PostgreSQL {})",
        flowhost.display(),
        psql_scalar("postgres", "SHOW server_version")
    );

    apply_bench(&flowhost, &mut dbs, work.path());
    inspect_bench(&flowhost, &mut dbs, work.path());
    fixed_cost_bench(&flowhost, &mut dbs, work.path());
    // `dbs` and `work` drop here: databases dropped, temp dirs removed.
}

// ---------------------------------------------------------------------------------------------
// Part 1: apply 100 migrations, flowhost vs psql.

fn apply_bench(flowhost: &Path, dbs: &mut Databases, work: &Path) {
    let project = work.join("apply");
    let dir = project.join("migrations").join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut bytes = 0;
    let mut statements = 0;
    for n in 1..=APPLY_FILES {
        let (name, sql, count) = table_migration(n);
        let path = dir.join(name);
        bytes += sql.len();
        statements += count;
        std::fs::write(&path, sql).unwrap();
        files.push(path);
    }

    let mut flowhost_times = Vec::new();
    let mut psql_times = Vec::new();
    // Round 0 is a warm-up (binary and files in the page cache, server caches); the order
    // alternates so neither side always runs on a just-warmed server.
    for round in 0..=APPLY_REPEAT {
        let fh_db = dbs.create();
        let psql_db = dbs.create();
        let run_flowhost = || {
            let started = Instant::now();
            let out = flowhost_cmd(flowhost, &project, &fh_db, &["migrate", "bench"]);
            let elapsed = started.elapsed();
            expect_ok("flowhost migrate", &out);
            elapsed
        };
        let run_psql = || {
            let mut cmd = psql_cmd(&psql_db);
            cmd.args(["-q", "-v", "ON_ERROR_STOP=1"]);
            for f in &files {
                cmd.arg("-f").arg(f);
            }
            let started = Instant::now();
            let out = cmd.output().expect("run psql");
            let elapsed = started.elapsed();
            expect_ok("psql -f ...", &out);
            elapsed
        };
        let (fh, ps) = if round % 2 == 0 {
            let fh = run_flowhost();
            (fh, run_psql())
        } else {
            let ps = run_psql();
            (run_flowhost(), ps)
        };
        // Both did the same work.
        for db in [&fh_db, &psql_db] {
            let tables = psql_scalar(
                db,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'customer_%'",
            );
            assert_eq!(tables, APPLY_FILES.to_string(), "{db}: tables");
            let rows = psql_scalar(db, &format!("SELECT count(*) FROM customer_{APPLY_FILES}"));
            assert_eq!(rows, "3", "{db}: rows");
        }
        assert_eq!(
            psql_scalar(
                &fh_db,
                "SELECT count(*) FROM flowhost_schema_history WHERE success"
            ),
            APPLY_FILES.to_string()
        );
        if round > 0 {
            flowhost_times.push(fh);
            psql_times.push(ps);
        }
        dbs.drop_now(&fh_db);
        dbs.drop_now(&psql_db);
    }

    let fh = median(&mut flowhost_times);
    let ps = median(&mut psql_times);
    println!(
        "\n1. Apply {APPLY_FILES} migrations ({statements} statements, {} KiB) to an empty database, \
         whole process, median of {APPLY_REPEAT} after a warm-up\n",
        bytes / 1024
    );
    let psql_args = "psql -X -q -v ON_ERROR_STOP=1 -f f1 ... -f f100".to_string();
    print!(
        "{}",
        flowhost::migrate::table(
            &["command", "median", "min", "max", "per file"],
            vec![
                timing_row(
                    "flowhost migrate (a transaction + history row per file)",
                    fh,
                    &flowhost_times
                ),
                timing_row(&format!("{psql_args} (autocommit)"), ps, &psql_times),
            ]
        )
    );
    println!(
        "\n  flowhost / psql: {:.2}x (goal: within 1.50x)",
        fh.as_secs_f64() / ps.as_secs_f64()
    );
}

fn timing_row(label: &str, median: Duration, all: &[Duration]) -> Vec<String> {
    vec![
        label.to_owned(),
        ms(median),
        ms(*all.iter().min().unwrap()),
        ms(*all.iter().max().unwrap()),
        format!(
            "{:.2} ms",
            median.as_secs_f64() * 1000.0 / APPLY_FILES as f64
        ),
    ]
}

/// Migration `n` of part 1: a table with a few columns, an expression index, three rows.
fn table_migration(n: usize) -> (String, String, usize) {
    let name = format!("V{n}__Create_customer_{n}.sql");
    let sql = format!(
        "-- Customers imported from source system {n}; one table per source.\n\
         CREATE TABLE customer_{n} (\n    \
             id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    \
             external_id text NOT NULL UNIQUE,\n    \
             name        text NOT NULL,\n    \
             email       text,\n    \
             balance     numeric(12, 2) NOT NULL DEFAULT 0,\n    \
             active      boolean NOT NULL DEFAULT true,\n    \
             created_at  timestamptz NOT NULL DEFAULT now()\n\
         );\n\n\
         CREATE INDEX customer_{n}_email_idx ON customer_{n} (lower(email)) WHERE active;\n\n\
         INSERT INTO customer_{n} (external_id, name, email, balance) VALUES\n    \
             ('S{n}-001', 'Ana Lima', 'ana.{n}@example.com', 120.50),\n    \
             ('S{n}-002', 'Bob O''Neil', 'bob.{n}@example.com', 0),\n    \
             ('S{n}-003', 'Chen Wei; Ltd.', NULL, 9999.99);\n"
    );
    (name, sql, 3)
}

// ---------------------------------------------------------------------------------------------
// Part 2: validate and info over many files and history rows.

fn inspect_bench(flowhost: &Path, dbs: &mut Databases, work: &Path) {
    let mut rows = Vec::new();
    let mut apply_rows = Vec::new();
    for &n in INSPECT_SIZES {
        let project = work.join(format!("inspect_{n}"));
        let dir = project.join("migrations").join("bench");
        std::fs::create_dir_all(&dir).unwrap();
        for v in 1..=n {
            std::fs::write(
                dir.join(format!("V{v}__Record_import_batch_{v}.sql")),
                format!(
                    "-- Import batch {v}: bookkeeping row written by the nightly loader.\n\
                     -- Kept as a migration so every environment has the same batch ids.\n\
                     INSERT INTO import_batches (batch_id, source, note)\n\
                     VALUES ({v}, 'loader', 'batch {v}; generated');\n"
                ),
            )
            .unwrap();
        }
        let db = dbs.create();
        psql_ok(
            &db,
            "CREATE TABLE import_batches (batch_id integer PRIMARY KEY, source text NOT NULL, note text)",
        );
        // Real history rows: flowhost applies the files once.
        let started = Instant::now();
        let out = flowhost_cmd(flowhost, &project, &db, &["migrate", "bench"]);
        let apply = started.elapsed();
        expect_ok("flowhost migrate", &out);
        assert_eq!(
            psql_scalar(
                &db,
                "SELECT count(*) FROM flowhost_schema_history WHERE success"
            ),
            n.to_string()
        );
        apply_rows.push(vec![
            n.to_string(),
            ms(apply),
            format!("{:.2} ms", apply.as_secs_f64() * 1000.0 / n as f64),
        ]);

        for (label, args) in [
            ("migrate validate", &["migrate", "validate", "bench"][..]),
            ("migrate info", &["migrate", "info", "bench"][..]),
            ("migrate (nothing pending)", &["migrate", "bench"][..]),
        ] {
            // One warm-up, then the measured runs.
            expect_ok(label, &flowhost_cmd(flowhost, &project, &db, args));
            let mut times: Vec<Duration> = (0..INSPECT_REPEAT)
                .map(|_| {
                    let started = Instant::now();
                    let out = flowhost_cmd(flowhost, &project, &db, args);
                    let elapsed = started.elapsed();
                    expect_ok(label, &out);
                    elapsed
                })
                .collect();
            let med = median(&mut times);
            rows.push(vec![
                format!("flowhost {label}"),
                n.to_string(),
                ms(med),
                ms(*times.iter().min().unwrap()),
                ms(*times.iter().max().unwrap()),
                format!("{:.2} ms", med.as_secs_f64() * 1000.0 / (n as f64 / 1000.0)),
            ]);
        }
        dbs.drop_now(&db);
        std::fs::remove_dir_all(&project).unwrap();
    }
    // Group by command so growth reads down a column; the marginal cost between sizes is the
    // slope, free of the fixed cost of starting a process and connecting (part 3).
    rows.sort_by_key(|r| (r[0].clone(), r[1].parse::<usize>().unwrap()));
    let parse_ms = |cell: &str| cell.trim_end_matches(" ms").parse::<f64>().unwrap();
    let files = |r: &[String]| r[1].parse::<f64>().unwrap();
    for i in 0..rows.len() {
        let marginal = if i > 0 && rows[i - 1][0] == rows[i][0] {
            let slope = (parse_ms(&rows[i][2]) - parse_ms(&rows[i - 1][2]))
                / (files(&rows[i]) - files(&rows[i - 1]))
                * 1000.0;
            format!("{slope:.1} ms")
        } else {
            "-".to_owned()
        };
        rows[i].push(marginal);
    }
    println!(
        "\n2. Inspecting N files against N history rows, whole process, median of {INSPECT_REPEAT} \
         after a warm-up\n"
    );
    print!(
        "{}",
        flowhost::migrate::table(
            &[
                "command",
                "files",
                "median",
                "min",
                "max",
                "per 1,000 files",
                "marginal per 1,000"
            ],
            rows
        )
    );
    println!("\n   (setup, measured once: flowhost migrate applying the N one-INSERT files)\n");
    print!(
        "{}",
        flowhost::migrate::table(&["files", "total", "per file"], apply_rows)
    );
}

// ---------------------------------------------------------------------------------------------
// Part 3: the fixed cost of one process (what part 2's small sizes are made of).

fn fixed_cost_bench(flowhost: &Path, dbs: &mut Databases, work: &Path) {
    let project = work.join("fixed");
    let dir = project.join("migrations").join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("V1__One.sql"), "CREATE TABLE one (id integer);\n").unwrap();
    let db = dbs.create();
    expect_ok(
        "flowhost migrate",
        &flowhost_cmd(flowhost, &project, &db, &["migrate", "bench"]),
    );
    let ssl = psql_scalar(&db, "SHOW ssl");
    let time = |label: &str, run: &dyn Fn() -> Output| {
        expect_ok(label, &run()); // warm-up
        let mut times: Vec<Duration> = (0..INSPECT_REPEAT)
            .map(|_| {
                let started = Instant::now();
                let out = run();
                let elapsed = started.elapsed();
                expect_ok(label, &out);
                elapsed
            })
            .collect();
        median(&mut times)
    };
    let mut rows = Vec::new();
    for (mode, query) in [("prefer", ""), ("disable", "?sslmode=disable")] {
        let connection = format!("sslmode={mode}");
        let fh = time("flowhost migrate validate", &|| {
            flowhost_cmd_with(
                flowhost,
                &project,
                &db,
                query,
                &["migrate", "validate", "bench"],
            )
        });
        let ps = time("psql", &|| {
            psql_cmd(&db)
                .env("PGSSLMODE", mode)
                .args(["-q", "-c", "SELECT 1"])
                .output()
                .expect("run psql")
        });
        rows.push(vec![
            "flowhost migrate validate (1 file)".to_owned(),
            connection.clone(),
            ms(fh),
        ]);
        rows.push(vec!["psql -c 'SELECT 1'".to_owned(), connection, ms(ps)]);
    }
    dbs.drop_now(&db);
    println!(
        "\n3. Fixed cost of one process (start, connect, a query or two), server ssl = {ssl}, \
         median of {INSPECT_REPEAT} after a warm-up\n"
    );
    print!(
        "{}",
        flowhost::migrate::table(&["command", "connection", "median"], rows)
    );
}

// ---------------------------------------------------------------------------------------------
// Processes and databases.

/// The release `flowhost` binary: `FLOWHOST_BIN`, or the one beside this example's folder
/// (target/release/flowhost when this runs as target/release/examples/migrate_bench).
fn flowhost_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOWHOST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the example's own path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release/examples/migrate_bench");
    let bin = release.join(format!("flowhost{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it first (make bench-migrate does: cargo build --release -p \
         flowhost), or set FLOWHOST_BIN",
        bin.display()
    );
    bin
}

/// `flowhost <args>` in `project`, configured for database `db` through the environment, as a
/// user would run it (machine FLOWHOST_* and *_GLOBAL_* settings removed).
fn flowhost_cmd(flowhost: &Path, project: &Path, db: &str, args: &[&str]) -> Output {
    flowhost_cmd_with(flowhost, project, db, "", args)
}

/// [`flowhost_cmd`] with `query` appended to the connection URL (e.g. `?sslmode=disable`).
fn flowhost_cmd_with(
    flowhost: &Path,
    project: &Path,
    db: &str,
    query: &str,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(flowhost);
    cmd.current_dir(project).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLOWHOST") || key.contains("_GLOBAL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env(
        "DEVELOPMENT_GLOBAL_BENCH_CONNECTION_STRING",
        format!("postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}{query}"),
    )
    .env("RUST_BACKTRACE", "0")
    .stdin(Stdio::null())
    .output()
    .expect("run flowhost")
}

fn psql_cmd(db: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", db])
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .stdin(Stdio::null());
    cmd
}

fn psql_ok(db: &str, sql: &str) {
    let out = psql_cmd(db)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    expect_ok(sql, &out);
}

fn psql_scalar(db: &str, sql: &str) -> String {
    let out = psql_cmd(db)
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    expect_ok(sql, &out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn check_psql() {
    let ok = Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "psql is needed on the PATH (the baseline and the setup use it)"
    );
}

fn expect_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The databases this run created; whatever is left is dropped on drop (panics included).
#[derive(Default)]
struct Databases {
    live: Vec<String>,
    next: usize,
}

impl Databases {
    fn create(&mut self) -> String {
        self.next += 1;
        let name = format!("fh_mbench_{}_{}", std::process::id(), self.next);
        psql_ok("postgres", &format!("CREATE DATABASE {name}"));
        self.live.push(name.clone());
        name
    }

    fn drop_now(&mut self, name: &str) {
        psql_ok(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        self.live.retain(|n| n != name);
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.live) {
            let _ = psql_cmd("postgres")
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
