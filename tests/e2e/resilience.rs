//! A database restarted under a running `flowhost serve`: readiness goes 503 while it is down
//! and 200 when it is back, without restarting flowhost; a run in between sees a connection
//! error that says what is wrong; every run is recorded once; failures are counted by kind.
//!
//! The restart is of a real PostgreSQL server: a private cluster of the machine's own
//! PostgreSQL (initdb in a temporary folder, its own port), so stopping it disturbs no other
//! test.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::serve_support::*;
use crate::support::*;

/// A PostgreSQL cluster of its own, removed when dropped.
struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// `None` when the machine has no PostgreSQL server binaries (the test says it skipped).
    fn create() -> Option<PrivateCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").is_file())?;
        let dir = tempfile::tempdir().unwrap();
        let cluster = PrivateCluster {
            dir,
            bin,
            port: closed_port(),
        };
        // The server refuses to run as root: the folder goes to the postgres user then.
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres", cluster.dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        cluster.pg(&[
            "initdb",
            "-D",
            &cluster.data(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
            "start",
        ]);
    }

    fn stop(&self) {
        self.pg(&["pg_ctl", "-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Runs one of the server's programs as the user that owns the cluster.
    fn pg(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        if is_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

fn is_root() -> bool {
    // The owner of /proc/self is the process's user.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_database_restarted_under_serve_is_reconnected_without_restarting_flowhost() {
    let Some(cluster) = PrivateCluster::create() else {
        eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
        return;
    };
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\nDEVELOPMENT_GLOBAL_CONNECT_TIMEOUT=5\n",
            cluster.url()
        ),
    );
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write(
        "flows/probe.toml",
        "[flow]\nname = \"probe\"\n\n[databases.rpa_db]\naccess = \"read-write\"\n",
    );
    let steps = json!({"steps": [{"op": "query", "db": "rpa_db", "sql": "SELECT 1 AS one"}]});
    let mut server = Server::start(&project, &["--sample-every", "0.2"], &[]);
    let run = |server: &Server| {
        let started = server.post("/runs", &json!({"flow": "probe", "input": steps}));
        assert_eq!(started.status, 202, "{}", started.body);
        server.finished_run(started.json()["run_id"].as_str().unwrap())
    };

    server.get_until("/health/ready", |a| a.status == 200);
    assert_eq!(run(&server)["state"], "completed");

    // Down: not ready, and the check says why.
    cluster.stop();
    let ready = server.get_until("/health/ready", |a| a.status == 503);
    let doc = ready.json();
    assert_eq!(
        doc["checks"]["rpa_db:connections"][0]["status"], "fail",
        "{doc}"
    );
    let output = doc["checks"]["rpa_db:connections"][0]["output"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(output.contains("connection refused"), "{doc}");
    // The flow's statement fails with a connection error it can see (the probe reports it
    // and ends normally), saying at once what is wrong.
    let during = run(&server);
    let error = &during["output"]["results"][0]["error"];
    assert_eq!(error["kind"], "connection", "{during}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{during}"
    );

    // Back: ready again and runs work, with the same process and pools.
    cluster.start();
    server.get_until("/health/ready", |a| a.status == 200);
    assert_eq!(run(&server)["state"], "completed");
    assert_eq!(run(&server)["state"], "completed");

    let metrics = server.get("/metrics").body;
    assert!(
        sample(
            &metrics,
            "flowhost_db_errors_total{pool_name=\"rpa_db\",kind=\"connection-refused\"}"
        ) >= 1.0,
        "{metrics}"
    );
    // Every run recorded exactly once.
    let runs = server.get("/runs?flow=probe").json();
    let states: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 4, "{runs}");
    assert!(states.iter().all(|s| *s == "completed"), "{runs}");

    let (status, stderr) = server.stop("TERM");
    assert_eq!(status.code(), Some(143), "{stderr}");
}
