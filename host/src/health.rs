//! Health of the configured databases: can we connect, does `SELECT 1` answer, how fast, are
//! migrations current, how full is the pool. Output never holds a connection string: targets
//! are described as `backend at host:port/db`, errors are scrubbed by the db layer.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::db::{DatabaseSet, DbError, PoolStatus};
use crate::migrate::{self, MigrateOptions};

/// A response slower than this makes a database `degraded`.
pub const SLOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The worst status of any database (healthy when there are none).
    pub status: Status,
    pub environment: String,
    pub checked_at: String,
    pub databases: Vec<DatabaseHealth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseHealth {
    pub name: String,
    pub backend: Option<String>,
    /// Safe description of where the database is (`postgresql at host:5432/db`).
    pub target: Option<String>,
    pub status: Status,
    /// A connection was had.
    pub connected: bool,
    /// `SELECT 1` answered.
    pub query_ok: bool,
    pub response_time_ms: Option<f64>,
    /// What the server says it is (`PostgreSQL 15.8`, `Microsoft SQL Server 2022 ...`).
    pub server_version: Option<String>,
    pub migrations: Option<MigrationHealth>,
    pub pool: Option<PoolStatus>,
    /// Why the database is not healthy; never holds a secret.
    pub error: Option<String>,
    /// What kind of failure `error` is ([`crate::Error::kind`]): `config` when the database
    /// is not usably configured, `database` when it could not be reached or did not answer.
    pub error_kind: Option<String>,
    /// Softer findings (pending migrations, slowness).
    pub warnings: Vec<String>,
    /// The migration lock held longest now, if any (PostgreSQL).
    pub migration_lock: Option<LockHeld>,
}

/// A migration lock held now.
#[derive(Debug, Clone, Serialize)]
pub struct LockHeld {
    pub held_seconds: f64,
    /// Who holds it (`pid 4242 (application 'flowhost-migrate')`).
    pub holder: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationHealth {
    pub current_version: Option<String>,
    pub applied: usize,
    pub pending: usize,
    /// What stops the history being current apart from pending files: failed or half-applied
    /// migrations, edited files, files missing from disk.
    pub problems: Vec<String>,
}

/// Checks `names` (or every configured database when empty) concurrently.
/// `migrations_root` holds one folder per database (`migrations/rpa_db`).
pub async fn check(
    databases: &DatabaseSet,
    names: &[String],
    migrations_root: &Path,
) -> HealthReport {
    let names: Vec<String> = if names.is_empty() {
        databases.config().database_names()
    } else {
        names.to_vec()
    };
    let checks = names
        .iter()
        .map(|name| check_one(databases, name, migrations_root));
    let results = futures_util::future::join_all(checks).await;
    let status = results
        .iter()
        .map(|d| d.status)
        .max()
        .unwrap_or(Status::Healthy);
    HealthReport {
        status,
        environment: databases.config().environment.clone(),
        checked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        databases: results,
    }
}

async fn check_one(databases: &DatabaseSet, name: &str, migrations_root: &Path) -> DatabaseHealth {
    let mut health = DatabaseHealth {
        name: name.to_owned(),
        backend: None,
        target: None,
        status: Status::Unhealthy,
        connected: false,
        query_ok: false,
        response_time_ms: None,
        server_version: None,
        migrations: None,
        pool: None,
        error: None,
        error_kind: None,
        warnings: Vec::new(),
        migration_lock: None,
    };
    let db = match databases.get(name).await {
        Ok(db) => db,
        Err(e) => {
            health.error = Some(e.to_string());
            health.error_kind = Some(e.kind());
            return health;
        }
    };
    health.backend = Some(db.backend().as_str().to_owned());
    health.target = Some(db.target().to_owned());
    // Idle connections the server ended (a restart) say so on their first statement and are
    // then evicted: the check goes on until a connection answers or none can be had, which
    // tells whether the server is back.
    let mut stale_left = db.pool_status().idle;
    let acquired = loop {
        let mut acquired = db.acquire().await;
        if let Ok(conn) = &mut acquired
            && stale_left > 0
            && let Err(DbError::Connection { .. }) = conn.run_raw(&db, "SELECT 1").await
        {
            stale_left -= 1;
            drop(acquired);
            continue;
        }
        break acquired;
    };
    match acquired {
        Ok(mut conn) => {
            health.connected = true;
            let started = std::time::Instant::now();
            match conn.run_raw(&db, "SELECT 1").await {
                Ok(()) => {
                    health.query_ok = true;
                    let elapsed = started.elapsed();
                    health.response_time_ms = Some(elapsed.as_secs_f64() * 1000.0);
                    if elapsed > SLOW {
                        health
                            .warnings
                            .push(format!("SELECT 1 took {} ms", elapsed.as_millis()));
                    }
                }
                Err(e) => {
                    health.error = Some(e.to_string());
                    health.error_kind = Some("database".into());
                }
            }
            if health.query_ok {
                match migrate::oldest_lock(&mut conn, &db).await {
                    Ok(lock) => {
                        health.migration_lock = lock.map(|(held_seconds, holder)| LockHeld {
                            held_seconds,
                            holder,
                        })
                    }
                    Err(e) => health.warnings.push(format!("migration lock unknown: {e}")),
                }
                let sql = db.backend().server_version_sql();
                match conn.host_scalar::<String>(&db, sql, &[]).await {
                    Ok(v) => health.server_version = Some(v.trim().to_owned()),
                    Err(e) => health
                        .warnings
                        .push(format!("server version unavailable: {e}")),
                }
            }
        }
        Err(e) => {
            health.error = Some(describe_unreachable(&e));
            health.error_kind = Some("database".into());
        }
    }
    health.pool = Some(db.pool_status());
    if !health.query_ok {
        return health;
    }
    let dir = migrations_root.join(name);
    let dir = dir.is_dir().then_some(dir);
    match migrate::status(&db, dir.as_deref(), &MigrateOptions::default()).await {
        Ok(status) => {
            if !status.pending.is_empty() {
                health
                    .warnings
                    .push(format!("{} pending migration(s)", status.pending.len()));
            }
            let problems = status.problems();
            health.warnings.extend(problems.iter().cloned());
            health.migrations = Some(MigrationHealth {
                current_version: status.current_version.as_ref().map(|v| v.to_string()),
                applied: status.applied.len(),
                pending: status.pending.len(),
                problems,
            });
        }
        Err(e) => health
            .warnings
            .push(format!("migration status unavailable: {e}")),
    }
    health.status = if health.warnings.is_empty() {
        Status::Healthy
    } else {
        Status::Degraded
    };
    health
}

fn describe_unreachable(e: &DbError) -> String {
    e.to_string()
}

/// The human table `flowhost health` prints.
pub fn render(report: &HealthReport) -> String {
    let mut out = format!(
        "environment: {}    overall: {}\n\n",
        report.environment,
        report.status.as_str()
    );
    let header = [
        "DATABASE",
        "BACKEND",
        "STATUS",
        "CONNECT",
        "SELECT 1",
        "TIME",
        "MIGRATIONS",
        "POOL size/idle/used/max",
    ];
    let ok = |b: bool| if b { "ok" } else { "FAILED" }.to_owned();
    let rows = report
        .databases
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.backend.clone().unwrap_or_else(|| "-".into()),
                d.status.as_str().to_owned(),
                ok(d.connected),
                ok(d.query_ok),
                d.response_time_ms
                    .map(|ms| format!("{ms:.1} ms"))
                    .unwrap_or_else(|| "-".into()),
                d.migrations
                    .as_ref()
                    .map(|m| {
                        let version = m.current_version.as_deref().map(|v| format!("version {v}"));
                        format!(
                            "{}, {} pending",
                            version.unwrap_or_else(|| "none".into()),
                            m.pending
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
                d.pool
                    .map(|p| format!("{}/{}/{}/{}", p.size, p.idle, p.in_use, p.max))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&crate::migrate::table(&header, rows));
    for d in &report.databases {
        if let Some(target) = &d.target {
            out.push_str(&format!("\n{}: {}", d.name, target));
            if let Some(version) = &d.server_version {
                out.push_str(&format!(" ({version})"));
            }
        }
        if let Some(e) = &d.error {
            out.push_str(&format!("\n  error: {e}"));
        }
        for w in &d.warnings {
            out.push_str(&format!("\n  warning: {w}"));
        }
    }
    if report.databases.is_empty() {
        out.push_str("\nno databases are configured for this environment\n");
    } else {
        out.push('\n');
    }
    out
}
