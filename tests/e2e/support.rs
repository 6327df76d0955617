//! Shared test support: real guest components, real databases, the real `flowhost` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Builds the guest components once per test binary and returns the folder holding them.
///
/// Guests build into their own target dir (target/guests) so this never waits on the lock of
/// the build that is running these tests.
pub fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = repo().join("target").join("guests");
        let status = Command::new(env!("CARGO"))
            .current_dir(repo())
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "rpa1",
                "-p",
                "probe",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run cargo to build the guest components");
        assert!(
            status.success(),
            "building the guest components failed; is the wasm32-wasip2 target installed? \
             (rustup target add wasm32-wasip2)"
        );
        target.join("wasm32-wasip2").join("release")
    })
}

/// A loopback port nothing listens on (bound, noted, closed).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn probe_wasm() -> PathBuf {
    guests().join("probe.wasm")
}

pub fn rpa1_wasm() -> PathBuf {
    guests().join("rpa1.wasm")
}

/// A scratch project directory: the working directory of one `flowhost` invocation.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// The configuration an in-process host gets from this project's `.env`, with no process
    /// environment: what `flowhost run` in this directory would load.
    pub fn load_config(&self) -> flowhost::config::Config {
        flowhost::config::Config::load(&flowhost::config::LoadOptions {
            dotenv_dir: Some(self.path().to_owned()),
            process_env: std::collections::HashMap::new(),
            data_dir: self.path().join(".flowhost"),
            ..flowhost::config::LoadOptions::default()
        })
        .unwrap()
    }

    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Copies a file or folder of the repository into the project.
    pub fn copy_from_repo(&self, relative: &str) {
        copy_tree(&repo().join(relative), &self.path().join(relative));
    }

    /// Runs `flowhost` with `args` in this project, with a clean environment (no FLOWHOST_*
    /// or *_GLOBAL_* variables from the machine leak in).
    pub fn flowhost(&self, args: &[&str]) -> Output {
        self.flowhost_with(args, &[])
    }

    /// [`Project::flowhost`] with extra environment variables.
    pub fn flowhost_with(&self, args: &[&str], envs: &[(&str, &Path)]) -> Output {
        self.command(args, envs)
            .output()
            .expect("run the flowhost binary")
    }

    /// The `flowhost` command [`Project::flowhost_with`] runs, to spawn it instead.
    pub fn command(&self, args: &[&str], envs: &[(&str, &Path)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowhost"));
        cmd.envs(envs.iter().copied());
        cmd.current_dir(self.path()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("FLOWHOST") || key.contains("_GLOBAL_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env(
            "FLOWHOST_CACHE_DIR",
            repo().join("target").join("flowhost-test-cache"),
        );
        cmd.env("RUST_BACKTRACE", "0");
        cmd
    }

    /// `flowhost run <wasm> --manifest <manifest> <extra...>`.
    pub fn run_component(&self, wasm: &Path, manifest: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "run",
            wasm.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.flowhost(&args)
    }

    /// Writes a manifest granting `grants` (name, access) to the probe and runs it with `steps`.
    pub fn run_probe(&self, grants: &[(&str, &str)], steps: Value) -> Output {
        self.run_probe_with("timeout-seconds = 20\nmemory-mb = 64", grants, steps)
    }

    /// Like [`Project::run_probe`], with the manifest's `[limits]` body given.
    pub fn run_probe_with(&self, limits: &str, grants: &[(&str, &str)], steps: Value) -> Output {
        let mut manifest = format!("[flow]\nname = \"probe\"\n\n[limits]\n{limits}\n");
        for (name, access) in grants {
            manifest.push_str(&format!("\n[databases.{name}]\naccess = \"{access}\"\n"));
        }
        let manifest = self.write("probe.toml", &manifest);
        // A file, not an argument: batches of thousands of rows exceed the argv limit.
        let input = self.write("input.json", &json!({ "steps": steps }).to_string());
        self.run_component(
            &probe_wasm(),
            &manifest,
            &["--input-file", input.to_str().unwrap()],
        )
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses stdout as JSON, failing with both streams shown when the run did not succeed.
pub fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "flowhost failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(out)))
}

/// The probe's per-step results.
pub fn probe_results(out: &Output) -> Vec<Value> {
    json_ok(out)["results"]
        .as_array()
        .expect("results array")
        .clone()
}

/// A typed value in the probe's JSON form.
pub fn v(t: &str, value: Value) -> Value {
    if t == "null" {
        json!({ "t": "null" })
    } else {
        json!({ "t": t, "v": value })
    }
}

/// A fresh PostgreSQL database on 127.0.0.1:5432, dropped when this value is.
pub struct PgDatabase {
    pub name: String,
}

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let name = format!("fh_test_{}", uuid::Uuid::new_v4().simple());
        pg_admin(&format!("CREATE DATABASE {name}"));
        PgDatabase { name }
    }

    /// The SQLAlchemy-style URL the seed configuration used.
    pub fn url(&self) -> String {
        format!(
            "postgresql+psycopg2://postgres@127.0.0.1:5432/{}",
            self.name
        )
    }

    pub fn sqlx_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Runs a script (several statements allowed).
    pub fn exec(&self, sql: &str) {
        block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.sqlx_url())
                .await
                .expect("connect to the test database");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    }

    /// The first column of every row, as text.
    pub fn column(&self, sql: &str) -> Vec<Option<String>> {
        block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(&self.sqlx_url())
                .await
                .expect("connect");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter()
                .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
                .collect()
        })
    }

    pub fn count(&self, table: &str) -> i64 {
        self.column(&format!("SELECT count(*)::text FROM {table}"))[0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        pg_admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn pg_admin(sql: &str) {
    block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL must answer on 127.0.0.1:5432 (user postgres, trust auth)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

/// Runs a future to completion on a private runtime (tests are synchronous; Drop may run
/// inside none).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Rows of a SQLite file's query, each column as text.
pub fn sqlite_rows(path: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    block_on(async {
        use sqlx::{Connection, Row};
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .expect("open sqlite");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get_unchecked::<Option<String>, _>(i).ok().flatten())
                    .collect()
            })
            .collect()
    })
}
