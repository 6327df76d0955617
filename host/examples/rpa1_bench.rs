//! `make bench` part 2: a whole rpa1 run, whole processes, as users run it (TLS on with
//! `sslmode=prefer`), against the same work done natively and the Python way, in one run.
//!
//! Peers, each on a fresh target database with the schema already applied (untimed) and the
//! same SurveyHub of N completed responses (1% malformed):
//! - `flowhost run flows/rpa1.wasm` (release binary, warm component cache);
//! - `rpa1-native` (bench/rpa1-native: sqlx, the flow's own scoring, one UNNEST insert);
//! - bench/python/rpa1_sqlalchemy.py: SQLAlchemy 2 + psycopg2, a DatabaseManager per database,
//!   `execute_query` per row as the seed system does, and its one-transaction variant.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 and the venv `make bench` sets up in target/bench-venv.
//!
//! Besides wall times, each peer's median CPU time (user and system, of its own process): on a
//! shared machine whose drift moves wall medians by 10-30% between runs, it says what each
//! process itself costs. The servers' CPU is not in it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

struct Peer {
    name: &'static str,
    /// Repetitions at 10k rows; 100k gets fewer where a run takes minutes. A 10k run of
    /// flowhost or native takes about 0.1 s, where the shared machine's drift is 30-50 ms:
    /// 21 runs each give a median that a few slow runs do not move.
    reps: [usize; 2],
}

const PEERS: [Peer; 4] = [
    Peer {
        name: "flowhost run flows/rpa1.wasm",
        reps: [21, 5],
    },
    Peer {
        name: "native sqlx (rpa1-native)",
        reps: [21, 5],
    },
    Peer {
        name: "Python, execute_query per row",
        reps: [3, 1],
    },
    Peer {
        name: "Python, one transaction",
        reps: [3, 1],
    },
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    // `-- quick`: 10,000 rows, flowhost and native only (no Python peers, no venv needed), to
    // compare a change in a minute; the full run is what the README's figures come from.
    let quick = std::env::args().any(|a| a == "quick");
    let python = root.join("target/bench-venv/bin/python");
    assert!(
        quick || python.exists(),
        "{} is missing: run `make bench`",
        python.display()
    );
    let (sizes, peers): (&[u64], usize) = if quick {
        (&[10_000], 2)
    } else {
        (&[10_000, 100_000], PEERS.len())
    };
    let pid = std::process::id();
    println!(
        "rpa1 end to end, whole processes, PostgreSQL with TLS (sslmode=prefer), median of the runs\n"
    );
    println!(
        "  {:<32} {:>7} {:>5} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "peer", "rows", "runs", "median", "min", "max", "CPU", "vs native"
    );
    for (size_index, &rows) in sizes.iter().enumerate() {
        let hub = format!("fh_rpa1_hub_{pid}_{rows}");
        make_hub(&hub, rows);
        // One untimed run fills flowhost's component cache, as on any machine after the first.
        timed(&root, &python, 0, &hub, rows, pid);
        // Peers take turns, one run each per round, so a shared machine's drift (a neighbour's
        // load, the server's checkpoints) falls on every peer alike, not on whichever ran last.
        let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); peers];
        let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); peers];
        let rounds = PEERS.iter().map(|p| p.reps[size_index]).max().unwrap_or(0);
        for round in 0..rounds {
            for (peer, spec) in PEERS.iter().enumerate().take(peers) {
                if round < spec.reps[size_index] {
                    let (wall, used) = timed(&root, &python, peer, &hub, rows, pid);
                    runs[peer].push(wall);
                    cpu[peer].push(used);
                }
            }
        }
        let mut medians = Vec::new();
        for (peer, spec) in PEERS.iter().enumerate().take(peers) {
            let mut times = std::mem::take(&mut runs[peer]);
            times.sort();
            let mut used = std::mem::take(&mut cpu[peer]);
            used.sort();
            let median = times[times.len() / 2];
            medians.push(median);
            let ratio = median.as_secs_f64() / medians.get(1).unwrap_or(&median).as_secs_f64();
            println!(
                "  {:<32} {:>7} {:>5} {:>10} {:>10} {:>10} {:>10} {:>11}",
                spec.name,
                rows,
                times.len(),
                ms(median),
                ms(times[0]),
                ms(*times.last().unwrap()),
                ms(used[used.len() / 2]),
                if peer == 0 {
                    "(below)".to_owned()
                } else {
                    format!("{ratio:.2}x")
                }
            );
        }
        let flowhost = medians[0].as_secs_f64();
        if quick {
            println!(
                "  at {rows} rows: flowhost / native {:.2}x (goal <= 1.15x)\n",
                flowhost / medians[1].as_secs_f64()
            );
            psql(ADMIN, &format!("DROP DATABASE {hub}"));
            continue;
        }
        println!(
            "  at {rows} rows: flowhost / native {:.2}x (goal <= 1.15x); Python per row / flowhost \
             {:.1}x (goal >= 50x); Python one transaction / flowhost {:.1}x (goal >= 15x)\n",
            flowhost / medians[1].as_secs_f64(),
            medians[2].as_secs_f64() / flowhost,
            medians[3].as_secs_f64() / flowhost,
        );
        psql(ADMIN, &format!("DROP DATABASE {hub}"));
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A SurveyHub of `rows` completed responses; every hundredth is not valid JSON.
fn make_hub(name: &str, rows: u64) {
    psql(ADMIN, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(ADMIN, &format!("CREATE DATABASE {name}"));
    psql(
        &url(name),
        &format!(
            "CREATE TABLE survey_responses (response_id INTEGER PRIMARY KEY, survey_id INTEGER \
             NOT NULL, respondent_email TEXT, response_data TEXT NOT NULL, submitted_at TIMESTAMP \
             NOT NULL, status TEXT NOT NULL DEFAULT 'completed'); \
             INSERT INTO survey_responses SELECT g, 100 + g % 3, 'user' || g || '@example.com', \
             CASE WHEN g % 100 = 0 THEN '{{\"question_1\": 4,' ELSE '{{\"question_1\": ' || \
             (1 + g % 5) || ', \"question_2\": 5, \"question_3\": 3, \"question_4\": 4, \
             \"question_5\": ' || (1 + g % 4) || ', \"comments\": \"ok\"}}' END, \
             timestamp '2024-03-01' + g * interval '1 second', 'completed' \
             FROM generate_series(1, {rows}) g"
        ),
    );
}

fn url(db: &str) -> String {
    format!("postgresql://postgres@127.0.0.1:5432/{db}?sslmode=prefer")
}

/// One run of peer `peer` on a fresh target database; checks it wrote every row. Returns its
/// wall time and the CPU time (user and system) its process used.
fn timed(
    root: &Path,
    python: &Path,
    peer: usize,
    hub: &str,
    rows: u64,
    pid: u32,
) -> (Duration, Duration) {
    let target = format!("fh_rpa1_target_{pid}");
    psql(ADMIN, &format!("DROP DATABASE IF EXISTS {target}"));
    psql(ADMIN, &format!("CREATE DATABASE {target}"));
    let flowhost = root.join("target/release/flowhost");
    let env = [
        ("DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING", url(&target)),
        ("DEVELOPMENT_GLOBAL_SURVEYHUB_CONNECTION_STRING", url(hub)),
    ];
    let mut migrate = Command::new(&flowhost);
    migrate
        .current_dir(root)
        .args(["migrate", "rpa_db", "-q"])
        .envs(env.clone());
    run(migrate, "flowhost migrate");
    let sqlalchemy = |u: String| u.replace("postgresql://", "postgresql+psycopg2://");
    let script: PathBuf = root.join("bench/python/rpa1_sqlalchemy.py");
    let mut cmd = match peer {
        0 => {
            let mut c = Command::new(&flowhost);
            c.args(["run", "flows/rpa1.wasm", "-q"]).envs(env);
            c
        }
        1 => {
            let mut c = Command::new(root.join("target/release/rpa1-native"));
            c.args([url(&target), url(hub)]);
            c
        }
        _ => {
            let mut c = Command::new(python);
            c.arg(&script);
            if peer == 3 {
                c.arg("--one-transaction");
            }
            c.args([sqlalchemy(url(&target)), sqlalchemy(url(hub))]);
            c
        }
    };
    cmd.current_dir(root);
    let cpu_before = children_cpu();
    let start = Instant::now();
    let out = run(cmd, PEERS[peer].name);
    let elapsed = start.elapsed();
    let used = children_cpu().saturating_sub(cpu_before);
    let summary: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{}: not a JSON summary ({e}): {}",
            PEERS[peer].name,
            String::from_utf8_lossy(&out)
        )
    });
    let written =
        summary["surveys_processed"].as_u64().unwrap() + summary["failed"].as_u64().unwrap();
    assert_eq!(
        written, rows,
        "{} wrote every row: {summary}",
        PEERS[peer].name
    );
    psql(ADMIN, &format!("DROP DATABASE {target}"));
    (elapsed, used)
}

/// CPU time (user and system) of every child process waited for so far: its growth across one
/// run is that run's own, since no other child runs meanwhile.
fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn run(mut cmd: Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn psql(url: &str, sql: &str) {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]);
    run(c, "psql");
}
