//! Run history: every run, from `flowhost run` or `flowhost serve`, with its input, outcome and
//! log lines, kept in a state database.
//!
//! The state database is SQLite at `<data-dir>/history.db` unless
//! `<ENV>_GLOBAL_FLOWHOST_STATE_CONNECTION_STRING` names another (PostgreSQL, or another SQLite
//! file). It goes through the same [`Database`] layer as the flows' databases, so its errors are
//! scrubbed the same way and it needs no driver code of its own.
//!
//! A run is written twice: `running` before the flow starts, its outcome when it ends. A process
//! that dies in between leaves a `running` row with its host, pid and the pid's start time; the
//! next process that opens the history on that host finds the pid gone (or reused) and marks the
//! run `crashed`, so no run stays `running` forever.

pub mod capture;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::Backend;
use crate::bindings::types::Value;
use crate::config::{Config, DatabaseConfig, DatabaseTarget, PoolSettings};
use crate::db::{Conn, Database, DbError, HostRow};

pub use capture::LogLine;

/// How long finished runs are kept by default (`FLOWHOST_HISTORY_DAYS`).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Most log lines kept for one run; the rest are counted in a last line.
pub const MAX_LOG_LINES: usize = 10_000;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum RunState {
    Running,
    Completed,
    Failed,
    /// The process running it ended without recording an outcome (killed, crashed, power).
    Crashed,
    TimedOut,
    /// Stopped by SIGINT or SIGTERM, or by the server shutting down.
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Crashed => "crashed",
            RunState::TimedOut => "timed-out",
            RunState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "completed" => RunState::Completed,
            "crashed" => RunState::Crashed,
            "timed-out" => RunState::TimedOut,
            "cancelled" => RunState::Cancelled,
            _ => RunState::Failed,
        }
    }
}

/// One run as the history holds it.
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    pub run_id: String,
    pub flow: String,
    /// The component file as given.
    pub component: String,
    pub component_sha256: Option<String>,
    /// SHA-256 of the manifest file's bytes.
    pub manifest_sha256: Option<String>,
    pub environment: String,
    /// The flow's parameters as JSON text.
    pub input: String,
    pub state: RunState,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<f64>,
    /// The flow's result, when it completed.
    pub output: Option<serde_json::Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// `cli` or `serve`.
    pub origin: String,
    /// The machine and process that ran it.
    pub host: String,
    pub pid: i64,
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub flow: &'a str,
    pub component: &'a str,
    pub component_sha256: Option<&'a str>,
    pub manifest_sha256: Option<&'a str>,
    pub environment: &'a str,
    pub input: &'a str,
    pub origin: &'a str,
    pub started_at: &'a str,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: RunState,
    pub duration_ms: Option<f64>,
    pub output: Option<serde_json::Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

/// Which runs `list` returns.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub flow: Option<String>,
    pub state: Option<RunState>,
    pub limit: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("run history ({target}): {source}")]
    Database {
        target: String,
        source: Box<DbError>,
    },
    #[error(
        "the run history cannot be kept in {backend}: set {key} to a PostgreSQL or SQLite database"
    )]
    Unsupported { backend: &'static str, key: String },
    #[error("no run '{0}' in the history; `flowhost runs list` shows the runs kept")]
    NotFound(String),
    #[error("'{prefix}' matches {count} runs; give more of the run id")]
    Ambiguous { prefix: String, count: usize },
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS flowhost_runs (
        run_id TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        component TEXT NOT NULL,
        component_sha256 TEXT,
        manifest_sha256 TEXT,
        environment TEXT NOT NULL,
        input TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms DOUBLE PRECISION,
        output TEXT,
        error_kind TEXT,
        error_message TEXT,
        origin TEXT NOT NULL,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        process_start BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS flowhost_runs_started ON flowhost_runs (started_at)",
    "CREATE TABLE IF NOT EXISTS flowhost_run_logs (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        level TEXT NOT NULL,
        source TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    )",
    "CREATE INDEX IF NOT EXISTS flowhost_runs_state ON flowhost_runs (state)",
];

const COLUMNS: &str = "run_id, flow, component, component_sha256, manifest_sha256, environment, \
                       input, state, started_at, finished_at, duration_ms, output, error_kind, \
                       error_message, origin, host, pid";

/// The run history of one state database.
pub struct RunHistory {
    db: Database,
    /// This machine and process, written on every run it starts.
    me: Process,
}

#[derive(Debug, Clone)]
struct Process {
    host: String,
    pid: u32,
    /// When the process started, in clock ticks since boot: a pid reused after a crash has
    /// another start time, so its runs are still seen as crashed.
    start: u64,
}

impl RunHistory {
    /// Opens (creating when needed) the history of `config`'s environment, marks runs whose
    /// process is gone as crashed, and drops finished runs older than `retention`.
    pub async fn open(config: &Config, retention: Duration) -> Result<RunHistory, HistoryError> {
        let db_config = match config.state_database() {
            Ok(Some(configured)) => configured,
            Ok(None) => embedded(config)?,
            // A state key that does not parse is reported as what it is by `flowhost config`;
            // the history says which key.
            Err(e) => {
                return Err(HistoryError::Database {
                    target: config.connection_key(crate::config::STATE_DATABASE_KEY),
                    source: Box::new(DbError::invalid("flowhost_state", e.to_string())),
                });
            }
        };
        let target = db_config.target.to_string();
        let wrap = |source| HistoryError::Database {
            target: target.clone(),
            source: Box::new(source),
        };
        let db = Database::open(&db_config).await.map_err(wrap)?;
        if db.backend() == Backend::SqlServer {
            return Err(HistoryError::Unsupported {
                backend: "SQL Server",
                key: config.connection_key(crate::config::STATE_DATABASE_KEY),
            });
        }
        let history = RunHistory {
            db,
            me: Process::current(),
        };
        history.prepare(retention).await.map_err(wrap)?;
        Ok(history)
    }

    /// Where the history is (`sqlite at .flowhost/history.db`), never a secret.
    pub fn target(&self) -> &str {
        self.db.target()
    }

    async fn prepare(&self, retention: Duration) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        for ddl in SCHEMA {
            conn.run_raw(&self.db, ddl).await?;
        }
        drop(conn);
        self.mark_crashed().await?;
        self.prune(retention).await?;
        Ok(())
    }

    /// Marks this host's `running` runs whose process is gone as crashed.
    async fn mark_crashed(&self) -> Result<u64, DbError> {
        let rows = self
            .query(
                "SELECT run_id, pid, process_start, started_at FROM flowhost_runs \
                 WHERE state = 'running' AND host = $1",
                &[Value::Text(self.me.host.clone())],
            )
            .await?;
        let mut marked = 0;
        for row in rows {
            let run_id: String = row.get("run_id").map_err(|e| self.bad(e))?;
            let pid: i64 = row.get("pid").map_err(|e| self.bad(e))?;
            let start: i64 = row.get("process_start").map_err(|e| self.bad(e))?;
            let started_at: String = row.get("started_at").map_err(|e| self.bad(e))?;
            if process_alive(pid, start) {
                continue;
            }
            let duration = elapsed_ms_since(&started_at);
            marked += self
                .execute(
                    "UPDATE flowhost_runs SET state = 'crashed', finished_at = $1, \
                     duration_ms = $2, error_kind = 'crashed', error_message = $3 \
                     WHERE run_id = $4 AND state = 'running'",
                    &[
                        Value::Text(now()),
                        duration.map_or(Value::Null, Value::Float),
                        Value::Text(format!(
                            "the process running it (pid {pid} on {}) ended without recording \
                             an outcome: killed, crashed or the machine stopped",
                            self.me.host
                        )),
                        Value::Text(run_id.clone()),
                    ],
                )
                .await?;
            tracing::warn!(run = %run_id, pid, "run marked crashed: its process is gone");
        }
        Ok(marked)
    }

    /// Deletes finished runs that started more than `retention` ago, and their logs.
    pub async fn prune(&self, retention: Duration) -> Result<u64, DbError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = Value::Text(stamp(cutoff));
        self.execute(
            "DELETE FROM flowhost_run_logs WHERE run_id IN (SELECT run_id FROM flowhost_runs \
             WHERE started_at < $1 AND state <> 'running')",
            std::slice::from_ref(&cutoff),
        )
        .await?;
        self.execute(
            "DELETE FROM flowhost_runs WHERE started_at < $1 AND state <> 'running'",
            &[cutoff],
        )
        .await
    }

    /// Records a run as `running`.
    pub async fn start(&self, run: &NewRun<'_>) -> Result<(), DbError> {
        let opt = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
        self.execute(
            "INSERT INTO flowhost_runs (run_id, flow, component, component_sha256, \
             manifest_sha256, environment, input, state, started_at, origin, host, pid, \
             process_start) VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $10, $11, $12)",
            &[
                Value::Text(run.run_id.to_owned()),
                Value::Text(run.flow.to_owned()),
                Value::Text(run.component.to_owned()),
                opt(run.component_sha256),
                opt(run.manifest_sha256),
                Value::Text(run.environment.to_owned()),
                Value::Text(run.input.to_owned()),
                Value::Text(run.started_at.to_owned()),
                Value::Text(run.origin.to_owned()),
                Value::Text(self.me.host.clone()),
                Value::Int(i64::from(self.me.pid)),
                Value::Int(self.me.start as i64),
            ],
        )
        .await
        .map(drop)
    }

    /// Records how a `running` run ended, with its log lines, in one transaction: a run is
    /// never finished without its log or logged without its outcome.
    pub async fn finish(
        &self,
        run_id: &str,
        outcome: &Outcome,
        logs: &[LogLine],
    ) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        conn.run_raw(&self.db, "BEGIN").await?;
        let result = async {
            let output = outcome
                .output
                .as_ref()
                .map_or(Value::Null, |v| Value::Text(v.to_string()));
            let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
            conn.host_execute(
                &self.db,
                &self.sql(
                    "UPDATE flowhost_runs SET state = $1, finished_at = $2, duration_ms = $3, \
                     output = $4, error_kind = $5, error_message = $6 \
                     WHERE run_id = $7 AND state = 'running'",
                ),
                &[
                    Value::Text(outcome.state.as_str().to_owned()),
                    Value::Text(now()),
                    outcome.duration_ms.map_or(Value::Null, Value::Float),
                    output,
                    opt(&outcome.error_kind),
                    opt(&outcome.error_message),
                    Value::Text(run_id.to_owned()),
                ],
            )
            .await?;
            let insert = self.sql(
                "INSERT INTO flowhost_run_logs (run_id, seq, at, level, source, message) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            );
            for (seq, line) in logs.iter().enumerate() {
                conn.host_execute(
                    &self.db,
                    &insert,
                    &[
                        Value::Text(run_id.to_owned()),
                        Value::Int(seq as i64),
                        Value::Text(line.at.clone()),
                        Value::Text(line.level.clone()),
                        Value::Text(line.source.clone()),
                        Value::Text(line.message.clone()),
                    ],
                )
                .await?;
            }
            Ok::<_, DbError>(())
        }
        .await;
        match result {
            Ok(()) => conn.run_raw(&self.db, "COMMIT").await,
            Err(e) => {
                let _ = conn.run_raw(&self.db, "ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// Runs, newest first.
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<RunEntry>, DbError> {
        let mut sql = format!("SELECT {COLUMNS} FROM flowhost_runs WHERE 1 = 1");
        let mut params = Vec::new();
        if let Some(flow) = &filter.flow {
            params.push(Value::Text(flow.clone()));
            sql.push_str(&format!(" AND flow = ${}", params.len()));
        }
        if let Some(state) = filter.state {
            params.push(Value::Text(state.as_str().to_owned()));
            sql.push_str(&format!(" AND state = ${}", params.len()));
        }
        sql.push_str(" ORDER BY started_at DESC, run_id");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let rows = self.query(&sql, &params).await?;
        rows.iter()
            .map(|r| entry(r).map_err(|e| self.bad(e)))
            .collect()
    }

    /// The run whose id is `id`, or starts with it (as `git` takes a short hash).
    pub async fn get(&self, id: &str) -> Result<RunEntry, HistoryError> {
        let wrap = |source| HistoryError::Database {
            target: self.target().to_owned(),
            source: Box::new(source),
        };
        // Only id characters go into the LIKE pattern: `%` and `_` would widen it.
        let prefix: String = id
            .chars()
            .filter(|c| c.is_ascii_hexdigit() || *c == '-')
            .collect();
        if prefix.is_empty() || prefix != id {
            return Err(HistoryError::NotFound(id.to_owned()));
        }
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM flowhost_runs WHERE run_id LIKE $1 ORDER BY run_id LIMIT 2"
                ),
                &[Value::Text(format!("{prefix}%"))],
            )
            .await
            .map_err(wrap)?;
        match rows.as_slice() {
            [] => Err(HistoryError::NotFound(id.to_owned())),
            [one] => entry(one).map_err(|e| wrap(self.bad(e))),
            many => Err(HistoryError::Ambiguous {
                prefix: id.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// A run's log lines in order.
    pub async fn logs(&self, run_id: &str) -> Result<Vec<LogLine>, DbError> {
        let rows = self
            .query(
                "SELECT at, level, source, message FROM flowhost_run_logs WHERE run_id = $1 \
                 ORDER BY seq",
                &[Value::Text(run_id.to_owned())],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    at: r.get("at")?,
                    level: r.get("level")?,
                    source: r.get("source")?,
                    message: r.get("message")?,
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|e| self.bad(e))
    }

    /// Closes the state database's pool.
    pub async fn close(&self) {
        self.db.close().await
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<HostRow>, DbError> {
        let mut conn = self.conn().await?;
        conn.host_query(&self.db, &self.sql(sql), params).await
    }

    /// A connection to the history. On SQLite, commits wait for the write-ahead log to reach
    /// the OS, not the disk (`synchronous = NORMAL`): each run commits twice, and on the
    /// calling thread two `fsync`s cost a `flowhost run` milliseconds before and after its
    /// flow. WAL keeps the file consistent either way; what a power cut can lose is the last
    /// runs' records, never the flows' own data (their databases keep SQLite's default).
    async fn conn(&self) -> Result<Conn, DbError> {
        let mut conn = self.db.acquire().await?;
        if self.db.backend() == Backend::Sqlite {
            conn.run_raw(&self.db, "PRAGMA synchronous = NORMAL")
                .await?;
        }
        Ok(conn)
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut conn = self.conn().await?;
        let result = conn.host_execute(&self.db, &self.sql(sql), params).await;
        // Back in the pool before this returns, not later on a task of the caller's runtime:
        // a run stuck in guest code holds that runtime's thread, and its record is then
        // finished from another thread (see `Host::on_stuck`), which needs this connection.
        conn.release().await;
        result
    }

    /// `$n` parameters in the backend's syntax (SQLite takes `?n`).
    fn sql(&self, sql: &str) -> String {
        match self.db.backend() {
            Backend::Sqlite => sql.replace('$', "?"),
            _ => sql.to_owned(),
        }
    }

    fn bad(&self, message: String) -> DbError {
        DbError::conversion(self.db.name(), message)
    }
}

/// SQLite under the data directory, one connection: the history is written a few times per run.
fn embedded(config: &Config) -> Result<DatabaseConfig, HistoryError> {
    let dir = config.data_dir();
    std::fs::create_dir_all(dir).map_err(|source| HistoryError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    Ok(DatabaseConfig {
        name: "flowhost_state".into(),
        target: DatabaseTarget::Sqlite {
            path: dir.join("history.db"),
            in_memory: false,
            create_if_missing: true,
        },
        pool: PoolSettings {
            max_connections: 1,
            keep_wal_on_close: true,
            ..PoolSettings::default()
        },
        readonly_target: None,
        embedded: true,
        source: None,
        readonly_source: None,
    })
}

fn entry(row: &HostRow) -> Result<RunEntry, String> {
    let output: Option<String> = row.get("output")?;
    Ok(RunEntry {
        run_id: row.get("run_id")?,
        flow: row.get("flow")?,
        component: row.get("component")?,
        component_sha256: row.get("component_sha256")?,
        manifest_sha256: row.get("manifest_sha256")?,
        environment: row.get("environment")?,
        input: row.get("input")?,
        state: RunState::parse(&row.get::<String>("state")?),
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        duration_ms: row.get("duration_ms")?,
        output: output
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        error_kind: row.get("error_kind")?,
        error_message: row.get("error_message")?,
        origin: row.get("origin")?,
        host: row.get("host")?,
        pid: row.get("pid")?,
    })
}

/// Now, as the history writes times: RFC 3339 UTC with milliseconds, which sorts as text.
pub fn now() -> String {
    stamp(chrono::Utc::now())
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn elapsed_ms_since(started_at: &str) -> Option<f64> {
    let started = chrono::DateTime::parse_from_rfc3339(started_at).ok()?;
    let ms = (chrono::Utc::now() - started.with_timezone(&chrono::Utc)).num_milliseconds();
    Some(ms as f64)
}

impl Process {
    fn current() -> Process {
        let pid = std::process::id();
        Process {
            host: hostname(),
            pid,
            start: process_start(i64::from(pid)).unwrap_or(0),
        }
    }
}

/// The machine's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else `localhost`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn process_start(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` still runs and is the one that started at `start`. Without `/proc`
/// (not Linux) a process is taken as alive: a run is never marked crashed on a guess.
fn process_alive(pid: i64, start: i64) -> bool {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    match process_start(pid) {
        Some(now) => start == 0 || now as i64 == start,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Process::current();
        assert!(me.start > 0, "/proc/self/stat gives a start time");
        assert!(process_alive(i64::from(me.pid), me.start as i64));
        // The same pid with another start time is a different process.
        assert!(!process_alive(i64::from(me.pid), me.start as i64 + 1));
        // A pid above the kernel's limit never exists.
        assert!(!process_alive(i64::from(u32::MAX), 1));
    }

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for state in [
            RunState::Running,
            RunState::Completed,
            RunState::Failed,
            RunState::Crashed,
            RunState::TimedOut,
            RunState::Cancelled,
        ] {
            assert_eq!(RunState::parse(state.as_str()), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().into())
            );
        }
    }

    /// A configuration whose history is the embedded one under `dir`, and a runtime to use it.
    fn embedded_in(dir: &std::path::Path) -> (Config, tokio::runtime::Runtime) {
        let config = Config::load(&crate::config::LoadOptions {
            dotenv_dir: Some(dir.to_path_buf()),
            data_dir: dir.join(".flowhost"),
            ..Default::default()
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (config, rt)
    }

    #[test]
    fn embedded_history_commits_without_waiting_for_the_disk_and_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (config, rt) = embedded_in(dir.path());
        rt.block_on(async {
            let history = RunHistory::open(&config, Duration::from_secs(86_400))
                .await
                .unwrap();
            let mut conn = history.conn().await.unwrap();
            // 1 is NORMAL (SQLite's default, FULL, is 2); WAL is what makes NORMAL safe.
            let sync: i64 = conn
                .host_scalar(&history.db, "PRAGMA synchronous", &[])
                .await
                .unwrap();
            let mode: String = conn
                .host_scalar(&history.db, "PRAGMA journal_mode", &[])
                .await
                .unwrap();
            drop(conn);
            history.close().await;
            assert_eq!((sync, mode.as_str()), (1, "wal"));
        });
    }

    /// Closing leaves the write-ahead log (no checkpoint, no delete: no `fsync` per run), and
    /// the next process to open the history reads every run back from it.
    #[test]
    fn embedded_history_keeps_its_log_on_close_and_the_next_open_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let (config, rt) = embedded_in(dir.path());
        let wal = dir.path().join(".flowhost").join("history.db-wal");
        let ids: Vec<String> = (0..3).map(|i| format!("run-{i}")).collect();
        for id in &ids {
            rt.block_on(async {
                let history = RunHistory::open(&config, Duration::from_secs(86_400))
                    .await
                    .unwrap();
                history
                    .start(&NewRun {
                        run_id: id,
                        flow: "kept",
                        component: "flows/kept.wasm",
                        component_sha256: None,
                        manifest_sha256: None,
                        environment: "development",
                        input: "{}",
                        origin: "cli",
                        started_at: &now(),
                    })
                    .await
                    .unwrap();
                history.close().await;
            });
            let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            assert!(size > 0, "the log is left in place after {id}");
        }
        let listed = rt.block_on(async {
            let history = RunHistory::open(&config, Duration::from_secs(86_400))
                .await
                .unwrap();
            let runs = history.list(&RunFilter::default()).await.unwrap();
            history.close().await;
            runs
        });
        let mut found: Vec<&str> = listed.iter().map(|r| r.run_id.as_str()).collect();
        found.sort();
        assert_eq!(found, ["run-0", "run-1", "run-2"]);
    }

    #[test]
    fn stamps_sort_as_text_in_time_order() {
        let early = chrono::DateTime::parse_from_rfc3339("2026-12-07T09:59:59.999Z").unwrap();
        let late = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap();
        let (a, b) = (stamp(early.into()), stamp(late.into()));
        assert!(a < b, "{a} < {b}");
        assert_eq!(b, "2026-12-07T10:00:00.000Z");
    }
}
