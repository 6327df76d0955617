//! Process-wide metrics, with OpenTelemetry's semantic-convention names for database clients
//! (`db_client_*`) and flowhost's own (`flowhost_*`), served as OpenMetrics text by
//! `flowhost serve` at `/metrics`.
//!
//! One registry per process, as there is one pool per database per process. A [`Database`]
//! resolves its label set once, when it opens ([`PoolMetrics`]), so counting a statement is an
//! atomic add, not a map lookup.
//!
//! [`Database`]: crate::db::Database

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabel {
    pool_name: String,
    /// `idle` or `used`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    pool_name: String,
    /// `query`, `execute`, `batch`.
    db_operation_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    pool_name: String,
    /// See [`crate::db::DbError::pool_error_kind`].
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabel {
    flow: String,
    /// The run's history state: `completed`, `failed`, `timed-out`, `cancelled`.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabel {
    flow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabel {
    db: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Statement and wait times: 100 µs to about 26 s.
fn short_times() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Run times: 1 ms to about 9 minutes.
fn run_times() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    connection_count: Family<PoolStateLabel, Gauge>,
    connection_max: Family<PoolLabel, Gauge>,
    pending_requests: Family<PoolLabel, Gauge>,
    timeouts: Family<PoolLabel, Counter>,
    wait_time: Histograms<PoolLabel>,
    create_time: Histograms<PoolLabel>,
    operation_duration: Histograms<OperationLabel>,
    errors: Family<ErrorLabel, Counter>,
    runs: Family<RunLabel, Counter>,
    run_duration: Histograms<FlowLabel>,
    migrations_pending: Family<DbLabel, Gauge>,
    /// The slowest statements seen, slowest first.
    slowest: Mutex<Vec<SlowStatement>>,
}

/// One of the slowest statements this process ran.
#[derive(Debug, Clone, Serialize)]
pub struct SlowStatement {
    pub database: String,
    pub operation: String,
    /// The statement's text, cut to [`SLOW_SQL_CHARS`] characters.
    pub sql: String,
    pub duration_ms: f64,
    pub at: String,
}

/// How many slow statements are kept, and how much of each one's text.
const SLOWEST_KEPT: usize = 10;
const SLOW_SQL_CHARS: usize = 200;

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            connection_count: Family::default(),
            connection_max: Family::default(),
            pending_requests: Family::default(),
            timeouts: Family::default(),
            wait_time: Family::new_with_constructor(short_times),
            create_time: Family::new_with_constructor(short_times),
            operation_duration: Family::new_with_constructor(short_times),
            errors: Family::default(),
            runs: Family::default(),
            run_duration: Family::new_with_constructor(run_times),
            migrations_pending: Family::default(),
            slowest: Mutex::new(Vec::new()),
        };
        let mut registry = Registry::default();
        registry.register(
            "db_client_connection_count",
            "Connections open in the pool, by state (idle, used)",
            m.connection_count.clone(),
        );
        registry.register(
            "db_client_connection_max",
            "The most connections the pool opens",
            m.connection_max.clone(),
        );
        registry.register(
            "db_client_connection_pending_requests",
            "Callers waiting for a connection",
            m.pending_requests.clone(),
        );
        registry.register(
            "db_client_connection_timeouts",
            "Waits for a connection that ran out of time (POOL_TIMEOUT)",
            m.timeouts.clone(),
        );
        registry.register_with_unit(
            "db_client_connection_wait_time",
            "Time to take a connection from a pool that had one open (dialling a new one is \
             db_client_connection_create_time)",
            Unit::Seconds,
            m.wait_time.clone(),
        );
        registry.register_with_unit(
            "db_client_connection_create_time",
            "Time to take a connection from a pool that had none open: dial, TLS, login",
            Unit::Seconds,
            m.create_time.clone(),
        );
        registry.register_with_unit(
            "db_client_operation_duration",
            "Statement time, from sending it to its last row",
            Unit::Seconds,
            m.operation_duration.clone(),
        );
        registry.register(
            "flowhost_db_errors",
            "Database errors by kind: pool-exhausted, connection-refused, \
             authentication-failed, network-timeout, connection-lost, statement",
            m.errors.clone(),
        );
        registry.register(
            "flowhost_runs",
            "Runs by flow and final state",
            m.runs.clone(),
        );
        registry.register_with_unit(
            "flowhost_run_duration",
            "Run time, from the flow's start to its result",
            Unit::Seconds,
            m.run_duration.clone(),
        );
        registry.register(
            "flowhost_migrations_pending",
            "Migrations on disk not yet applied, per database (as of the last readiness check)",
            m.migrations_pending.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The handles of pool `name`.
    pub fn pool(&self, name: &str) -> PoolMetrics {
        let pool = PoolLabel {
            pool_name: name.to_owned(),
        };
        let op = |operation: &str| {
            self.operation_duration
                .get_or_create(&OperationLabel {
                    pool_name: name.to_owned(),
                    db_operation_name: operation.to_owned(),
                })
                .clone()
        };
        PoolMetrics {
            name: name.to_owned(),
            pending: self.pending_requests.get_or_create(&pool).clone(),
            timeouts: self.timeouts.get_or_create(&pool).clone(),
            wait_time: self.wait_time.get_or_create(&pool).clone(),
            create_time: self.create_time.get_or_create(&pool).clone(),
            query: op("query"),
            execute: op("execute"),
            batch: op("batch"),
        }
    }

    /// Sets the pool occupancy gauges (read from the pools when metrics are asked for).
    pub fn set_pool_occupancy(&self, name: &str, idle: u32, used: u32, max: u32) {
        for (state, value) in [("idle", idle), ("used", used)] {
            self.connection_count
                .get_or_create(&PoolStateLabel {
                    pool_name: name.to_owned(),
                    state: state.to_owned(),
                })
                .set(i64::from(value));
        }
        self.connection_max
            .get_or_create(&PoolLabel {
                pool_name: name.to_owned(),
            })
            .set(i64::from(max));
    }

    pub fn set_migrations_pending(&self, db: &str, pending: usize) {
        self.migrations_pending
            .get_or_create(&DbLabel { db: db.to_owned() })
            .set(pending as i64);
    }

    /// Counts a finished run.
    pub fn run_finished(&self, flow: &str, status: &str, elapsed: Duration) {
        self.runs
            .get_or_create(&RunLabel {
                flow: flow.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        self.run_duration
            .get_or_create(&FlowLabel {
                flow: flow.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a database error of `kind` on pool `name`.
    pub fn db_error(&self, name: &str, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabel {
                pool_name: name.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The slowest statements so far, slowest first.
    pub fn slowest(&self) -> Vec<SlowStatement> {
        self.slowest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn offer_slow(&self, database: &str, operation: &str, sql: &str, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let mut slowest = self.slowest.lock().unwrap_or_else(|e| e.into_inner());
        if slowest.len() >= SLOWEST_KEPT && slowest.last().is_some_and(|s| s.duration_ms >= ms) {
            return;
        }
        slowest.push(SlowStatement {
            database: database.to_owned(),
            operation: operation.to_owned(),
            sql: sql.chars().take(SLOW_SQL_CHARS).collect(),
            duration_ms: (ms * 100.0).round() / 100.0,
            at: crate::history::now(),
        });
        slowest.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
        slowest.truncate(SLOWEST_KEPT);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One pool's metric handles.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    name: String,
    pending: Gauge,
    timeouts: Counter,
    wait_time: Histogram,
    create_time: Histogram,
    query: Histogram,
    execute: Histogram,
    batch: Histogram,
}

/// What a timed statement was.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    Query,
    Execute,
    Batch,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Execute => "execute",
            Operation::Batch => "batch",
        }
    }
}

impl PoolMetrics {
    /// A caller starts waiting for a connection; the guard ends the wait.
    pub fn waiting(&self) -> PendingGuard {
        self.pending.inc();
        PendingGuard(self.pending.clone())
    }

    /// A connection was had after `elapsed`; `dialled` when the pool had none open.
    pub fn acquired(&self, elapsed: Duration, dialled: bool) {
        let histogram = if dialled {
            &self.create_time
        } else {
            &self.wait_time
        };
        histogram.observe(elapsed.as_secs_f64());
    }

    pub fn timed_out(&self) {
        self.timeouts.inc();
    }

    pub fn error(&self, kind: &str) {
        metrics().db_error(&self.name, kind);
    }

    /// A statement took `elapsed`; a flow's statement (`sql` given) may join the slowest.
    pub fn statement(&self, operation: Operation, sql: Option<&str>, elapsed: Duration) {
        let histogram = match operation {
            Operation::Query => &self.query,
            Operation::Execute => &self.execute,
            Operation::Batch => &self.batch,
        };
        histogram.observe(elapsed.as_secs_f64());
        if let Some(sql) = sql {
            metrics().offer_slow(&self.name, operation.as_str(), sql, elapsed);
        }
    }
}

/// Ends one pending wait when dropped (the wait may end by error or cancellation).
pub struct PendingGuard(Gauge);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_semantic_conventions_and_values_show_after_work() {
        let pool = metrics().pool("metrics_unit_test");
        {
            let _waiting = pool.waiting();
            pool.acquired(Duration::from_millis(3), false);
        }
        pool.timed_out();
        pool.statement(Operation::Query, Some("SELECT 1"), Duration::from_millis(2));
        pool.error("pool-exhausted");
        metrics().set_pool_occupancy("metrics_unit_test", 1, 2, 10);
        metrics().run_finished("unit_flow", "completed", Duration::from_millis(5));
        let text = metrics().encode();
        for expected in [
            "db_client_connection_count{pool_name=\"metrics_unit_test\",state=\"idle\"} 1",
            "db_client_connection_count{pool_name=\"metrics_unit_test\",state=\"used\"} 2",
            "db_client_connection_max{pool_name=\"metrics_unit_test\"} 10",
            "db_client_connection_pending_requests{pool_name=\"metrics_unit_test\"} 0",
            "db_client_connection_timeouts_total{pool_name=\"metrics_unit_test\"} 1",
            "db_client_connection_wait_time_seconds_count{pool_name=\"metrics_unit_test\"} 1",
            "db_client_operation_duration_seconds_count{pool_name=\"metrics_unit_test\",db_operation_name=\"query\"} 1",
            "flowhost_db_errors_total{pool_name=\"metrics_unit_test\",kind=\"pool-exhausted\"} 1",
            "flowhost_runs_total{flow=\"unit_flow\",status=\"completed\"} 1",
            "flowhost_run_duration_seconds_count{flow=\"unit_flow\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn only_the_slowest_statements_are_kept_slowest_first() {
        let m = Metrics::new();
        for ms in [5u64, 50, 1, 20, 7, 9, 11, 13, 15, 17, 19, 2] {
            m.offer_slow(
                "db",
                "query",
                &format!("SELECT {ms}"),
                Duration::from_millis(ms),
            );
        }
        let kept: Vec<f64> = m.slowest().iter().map(|s| s.duration_ms).collect();
        assert_eq!(kept.len(), SLOWEST_KEPT);
        assert_eq!(kept[0], 50.0);
        assert!(kept.windows(2).all(|w| w[0] >= w[1]), "{kept:?}");
        assert!(!kept.contains(&1.0) && !kept.contains(&2.0));
    }
}
