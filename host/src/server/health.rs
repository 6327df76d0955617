//! Health endpoints. The probes (`live`, `ready`, `startup`) answer in the IETF health-check
//! format (draft-inadarei-api-health-check, `application/health+json`): `status` pass, warn
//! or fail, and `checks` keyed `<db>:connections`, `<db>:responseTime`, `<db>:schemaVersion`;
//! 200 unless the status is fail (503). The `/health/database*` paths answer as the system
//! flowhost replaces did, so its probes keep working. No answer holds a connection string.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use crate::health::{self, DatabaseHealth, HealthReport, Status};

const HEALTH_JSON: &str = "application/health+json";

/// Every configured database checked at once (connect, `SELECT 1`, migrations, pool).
pub(super) async fn check_all(state: &AppState) -> HealthReport {
    let databases = state.host.databases();
    // The names people wrote (`SurveyHub`), so the pools and metrics are the ones runs use.
    let names = crate::cli::health_cmd::names_as_written(
        databases.config(),
        &state.options.flows_dir,
        &state.options.migrations_dir,
    );
    health::check(databases, &names, &state.options.migrations_dir).await
}

/// `pass`, `warn` or `fail`, as the draft spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

fn answer(verdict: Verdict, body: Value) -> Response {
    let status = if verdict == Verdict::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, HEALTH_JSON)],
        axum::Json(body),
    )
        .into_response()
}

fn document(verdict: Verdict, description: &str, checks: Map<String, Value>) -> Value {
    json!({
        "status": verdict.as_str(),
        "version": env!("CARGO_PKG_VERSION"),
        "serviceId": "flowhost",
        "description": description,
        "checks": checks,
    })
}

/// `/health/live`: the process answers. Never checks a database: a database that is down must
/// not get the host restarted.
pub(super) async fn live() -> Response {
    answer(
        Verdict::Pass,
        document(Verdict::Pass, "flowhost is running", Map::new()),
    )
}

/// `/health/startup`: the first checks ran and the pools are open.
pub(super) async fn startup(State(state): State<Arc<AppState>>) -> Response {
    let verdict = if state.started.load(Ordering::SeqCst) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    answer(
        verdict,
        document(verdict, "flowhost startup checks", Map::new()),
    )
}

/// `/health/ready`: every configured database connects and answers, and every migrated one is
/// at its latest version with no failed migration. Fails while shutting down.
pub(super) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let report = check_all(&state).await;
    let (mut verdict, checks) = readiness(
        &report,
        &state.options.migrations_dir,
        state.options.migration_lock_limit,
    );
    let mut description = "flowhost readiness: databases connect, answer and are migrated";
    if state.stopping.load(Ordering::SeqCst) {
        verdict = Verdict::Fail;
        description = "flowhost is shutting down";
    }
    answer(verdict, document(verdict, description, checks))
}

/// The checks of `report` and the worst of their verdicts.
fn readiness(
    report: &HealthReport,
    migrations_dir: &std::path::Path,
    lock_limit: std::time::Duration,
) -> (Verdict, Map<String, Value>) {
    let mut checks = Map::new();
    let mut worst = Verdict::Pass;
    let time = report.checked_at.clone();
    for db in &report.databases {
        let mut add = |key: &str, verdict: Verdict, mut entry: Map<String, Value>| {
            worst = worst.max(verdict);
            entry.insert("componentId".into(), json!(db.name));
            entry.insert("componentType".into(), json!("datastore"));
            entry.insert("status".into(), json!(verdict.as_str()));
            entry.insert("time".into(), json!(time));
            checks.insert(format!("{}:{key}", db.name), json!([entry]));
        };
        let pool = db.pool.unwrap_or_default();
        let mut connections = Map::new();
        connections.insert("observedValue".into(), json!(pool.in_use));
        connections.insert("observedUnit".into(), json!("connections"));
        connections.insert(
            "affectedEndpoints".into(),
            json!([db.target.clone().unwrap_or_default()]),
        );
        if let Some(error) = &db.error
            && !db.connected
        {
            connections.insert("output".into(), json!(error));
        }
        add(
            "connections",
            if db.connected {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            connections,
        );

        let mut response = Map::new();
        response.insert("observedValue".into(), json!(db.response_time_ms));
        response.insert("observedUnit".into(), json!("ms"));
        let verdict = match db.response_time_ms {
            _ if !db.query_ok => Verdict::Fail,
            Some(ms) if ms > health::SLOW.as_secs_f64() * 1000.0 => Verdict::Warn,
            _ => Verdict::Pass,
        };
        if !db.query_ok
            && let Some(error) = &db.error
        {
            response.insert("output".into(), json!(error));
        }
        add("responseTime", verdict, response);

        // Only databases with a migrations folder have a version to be at.
        if migrations_dir.join(&db.name).is_dir() {
            add_schema(db, &mut add);
        }
        // A migrator holding its lock this long is stuck, and every run that owns the
        // database's migrations waits behind it.
        if let Some(lock) = &db.migration_lock {
            let mut held = Map::new();
            held.insert("observedValue".into(), json!(lock.held_seconds));
            held.insert("observedUnit".into(), json!("s"));
            let verdict = if lock.held_seconds > lock_limit.as_secs_f64() {
                held.insert(
                    "output".into(),
                    json!(format!(
                        "the migration lock has been held for {:.0} s by {} (limit {} s, --migration-lock-limit): a migration is stuck or very slow",
                        lock.held_seconds,
                        lock.holder,
                        lock_limit.as_secs()
                    )),
                );
                Verdict::Fail
            } else {
                Verdict::Pass
            };
            add("migrationLock", verdict, held);
        }
    }
    (worst, checks)
}

fn add_schema(db: &DatabaseHealth, add: &mut impl FnMut(&str, Verdict, Map<String, Value>)) {
    let mut schema = Map::new();
    let verdict = match &db.migrations {
        Some(m) => {
            schema.insert("observedValue".into(), json!(m.current_version));
            let mut output = m.problems.clone();
            if m.pending > 0 {
                output.insert(
                    0,
                    format!(
                        "{} pending migration(s): run `flowhost migrate {}`",
                        m.pending, db.name
                    ),
                );
            }
            if output.is_empty() {
                Verdict::Pass
            } else {
                schema.insert("output".into(), json!(output.join("; ")));
                Verdict::Fail
            }
        }
        // Not reachable, so its version is unknown: the connection check already failed.
        None => Verdict::Fail,
    };
    add("schemaVersion", verdict, schema);
}

/// `/health/database`: the `flowhost health --json` report; 503 when a database is unhealthy.
pub(super) async fn database(State(state): State<Arc<AppState>>) -> Response {
    let report = check_all(&state).await;
    let status = if report.status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(report)).into_response()
}

/// `/health/database/pool`: every open pool's occupancy, without connecting anything.
pub(super) async fn pool(State(state): State<Arc<AppState>>) -> Response {
    let mut pools: Vec<Value> = state
        .host
        .databases()
        .open_databases()
        .iter()
        .map(|db| {
            let pool = db.pool_status();
            json!({
                "name": db.name(),
                "backend": db.backend().as_str(),
                "target": db.target(),
                "size": pool.size,
                "idle": pool.idle,
                "in_use": pool.in_use,
                "max": pool.max,
                "utilization": if pool.max == 0 { 0.0 } else { f64::from(pool.in_use) / f64::from(pool.max) },
            })
        })
        .collect();
    pools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let body = json!({
        "status": "healthy",
        "checked_at": crate::history::now(),
        "pools": pools,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `/health/database/performance`: response times and pool use over the last samples, and the
/// slowest statements this process ran.
pub(super) async fn performance(State(state): State<Arc<AppState>>) -> Response {
    let samples = state
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut databases: Vec<Value> = samples
        .iter()
        .map(|(name, kept)| {
            let times: Vec<f64> = kept.iter().filter_map(|s| s.response_time_ms).collect();
            let average =
                (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64);
            let max = times
                .iter()
                .copied()
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
            json!({
                "name": name,
                "response_time_ms": {
                    "last": kept.back().and_then(|s| s.response_time_ms),
                    "average": average,
                    "max": max,
                    "samples": times.len(),
                },
                "pool_samples": kept,
            })
        })
        .collect();
    databases.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let body = json!({
        "checked_at": crate::history::now(),
        "sample_every_seconds": state.options.sample_every.as_secs_f64(),
        "databases": databases,
        "slow_statements": crate::metrics::metrics().slowest(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::PoolStatus;
    use crate::health::MigrationHealth;

    fn db(name: &str, connected: bool, ms: Option<f64>, pending: usize) -> DatabaseHealth {
        DatabaseHealth {
            name: name.into(),
            backend: Some("postgresql".into()),
            target: Some("postgresql at h:5432/d".into()),
            status: Status::Healthy,
            connected,
            query_ok: connected,
            response_time_ms: ms,
            server_version: None,
            migrations: connected.then(|| MigrationHealth {
                current_version: Some("002".into()),
                applied: 2,
                pending,
                problems: Vec::new(),
            }),
            pool: Some(PoolStatus {
                size: 1,
                idle: 1,
                in_use: 0,
                max: 10,
            }),
            error: (!connected).then(|| "connection refused by h:5432".to_owned()),
            error_kind: None,
            warnings: Vec::new(),
            migration_lock: None,
        }
    }

    fn readiness_of(report: &HealthReport, dir: &std::path::Path) -> (Verdict, Map<String, Value>) {
        readiness(report, dir, std::time::Duration::from_secs(600))
    }

    fn report(databases: Vec<DatabaseHealth>) -> HealthReport {
        HealthReport {
            status: Status::Healthy,
            environment: "test".into(),
            checked_at: "2026-12-07T10:00:00.000Z".into(),
            databases,
        }
    }

    #[test]
    fn readiness_passes_warns_and_fails_per_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();

        let (verdict, checks) =
            readiness_of(&report(vec![db("a", true, Some(2.0), 0)]), dir.path());
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(checks["a:schemaVersion"][0]["observedValue"], "002");
        assert_eq!(checks["a:responseTime"][0]["observedUnit"], "ms");
        assert_eq!(checks["a:connections"][0]["componentType"], "datastore");

        // Slow is a warning, not unready.
        let (verdict, checks) =
            readiness_of(&report(vec![db("a", true, Some(1500.0), 0)]), dir.path());
        assert_eq!(verdict, Verdict::Warn);
        assert_eq!(checks["a:responseTime"][0]["status"], "warn");

        // A pending migration and a database that is down are both unready.
        let (verdict, checks) = readiness_of(
            &report(vec![db("a", true, Some(2.0), 1), db("b", false, None, 0)]),
            dir.path(),
        );
        assert_eq!(verdict, Verdict::Fail);
        assert!(
            checks["a:schemaVersion"][0]["output"]
                .as_str()
                .unwrap()
                .contains("1 pending migration(s)")
        );
        assert_eq!(checks["b:connections"][0]["status"], "fail");
        assert!(
            checks["b:connections"][0]["output"]
                .as_str()
                .unwrap()
                .contains("connection refused")
        );

        // A lock held past the limit makes the database unready.
        let mut stuck = db("a", true, Some(2.0), 0);
        stuck.migration_lock = Some(crate::health::LockHeld {
            held_seconds: 900.0,
            holder: "pid 7".into(),
        });
        let (verdict, checks) = readiness_of(&report(vec![stuck]), dir.path());
        assert_eq!(verdict, Verdict::Fail);
        assert!(
            checks["a:migrationLock"][0]["output"]
                .as_str()
                .unwrap()
                .contains("held for 900 s by pid 7")
        );

        // Without a migrations folder there is no version to be at.
        let (_, checks) = readiness_of(&report(vec![db("c", true, Some(1.0), 0)]), dir.path());
        assert!(checks.get("c:schemaVersion").is_none());
    }
}
