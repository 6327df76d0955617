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
        )
        .is_some_and(|n| n >= 1.0),
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

/// A fresh PostgreSQL database on the shared server, configured as `rpa_db` with a pool of one
/// connection and a 1 s POOL_TIMEOUT, plus `badlogin` (a role that does not exist), and the
/// probe granted `rpa_db`.
fn small_pool_project(db: &PgDatabase) -> Project {
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\n\
             DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_POOL_SIZE=1\n\
             DEVELOPMENT_GLOBAL_RPA_DB_MAX_OVERFLOW=0\n\
             DEVELOPMENT_GLOBAL_RPA_DB_POOL_TIMEOUT=1\n\
             DEVELOPMENT_GLOBAL_BADLOGIN_CONNECTION_STRING=postgresql://no_such_role_here@127.0.0.1:5432/{}\n",
            db.sqlx_url(),
            db.name
        ),
    );
    std::fs::create_dir_all(project.path().join("flows")).unwrap();
    std::fs::copy(probe_wasm(), project.path().join("flows/probe.wasm")).unwrap();
    project.write(
        "flows/probe.toml",
        "[flow]\nname = \"probe\"\n\n[databases.rpa_db]\naccess = \"read-write\"\n",
    );
    project
}

#[test]
fn an_exhausted_pool_and_a_refused_login_are_told_apart_and_counted() {
    let db = PgDatabase::create();
    let project = small_pool_project(&db);
    let server = Server::start(&project, &["--sample-every", "60"], &[]);
    server.get_until("/health/startup", |a| a.status == 200);

    // One run holds the pool's only connection for 3 s; another needs one meanwhile.
    let holder = server.post(
        "/runs",
        &json!({"flow": "probe", "input": {"steps": [
            {"op": "begin", "db": "rpa_db"},
            {"op": "query", "db": "rpa_db", "tx": true, "sql": "SELECT pg_sleep(3)"},
            {"op": "commit", "db": "rpa_db"},
        ]}}),
    );
    let holder = holder.json()["run_id"].as_str().unwrap().to_owned();
    wait_for_statement(&db, "pg_sleep(3)");
    let waiter = server.post(
        "/runs",
        &json!({"flow": "probe", "input": {"steps": [
            {"op": "query", "db": "rpa_db", "sql": "SELECT 1 AS one"},
        ]}}),
    );
    let waiter = server.finished_run(waiter.json()["run_id"].as_str().unwrap());
    let error = &waiter["output"]["results"][0]["error"];
    assert_eq!(error["kind"], "timeout", "{waiter}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("timed out waiting for a pooled connection"),
        "{waiter}"
    );
    assert_eq!(server.finished_run(&holder)["state"], "completed");

    // The refused login is named as such, not as a timeout or a rejected statement.
    let ready = server.get("/health/ready");
    assert_eq!(ready.status, 503);
    let doc = ready.json();
    let output = doc["checks"]["badlogin:connections"][0]["output"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(output.contains("refused the login"), "{doc}");

    let metrics = server.get("/metrics").body;
    for series in [
        "db_client_connection_timeouts_total{pool_name=\"rpa_db\"}",
        "flowhost_db_errors_total{pool_name=\"rpa_db\",kind=\"pool-exhausted\"}",
        "flowhost_db_errors_total{pool_name=\"badlogin\",kind=\"authentication-failed\"}",
        "db_client_connection_wait_time_seconds_count{pool_name=\"rpa_db\"}",
    ] {
        assert!(
            sample(&metrics, series).is_some_and(|n| n >= 1.0),
            "{series} in\n{metrics}"
        );
    }
}

#[test]
fn a_migration_lock_held_too_long_makes_the_server_unready() {
    let db = PgDatabase::create();
    let project = small_pool_project(&db);
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\n",
            db.sqlx_url()
        ),
    );
    // A migrator that took its lock and hangs: a session named as flowhost's migrator names
    // itself, holding an advisory lock.
    let mut stuck = Command::new("psql")
        .args([
            &db.sqlx_url(),
            "-c",
            "SELECT pg_advisory_lock(42)",
            "-c",
            "SELECT pg_sleep(120)",
        ])
        .env("PGAPPNAME", "flowhost-migrate")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let server = Server::start(
        &project,
        &["--sample-every", "60", "--migration-lock-limit", "0"],
        &[],
    );
    let ready = server.get_until("/health/ready", |a| {
        a.status == 503 && a.body.contains("migrationLock")
    });
    let doc = ready.json();
    let check = &doc["checks"]["rpa_db:migrationLock"][0];
    assert_eq!(check["status"], "fail", "{doc}");
    assert!(
        check["output"]
            .as_str()
            .unwrap()
            .contains("application 'flowhost-migrate'"),
        "{doc}"
    );
    // Released (the server ends the stuck session, as an operator would): ready again.
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'flowhost-migrate' AND datname = current_database()",
    );
    let _ = stuck.wait();
    server.get_until("/health/ready", |a| a.status == 200);
}
