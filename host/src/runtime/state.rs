//! The data one run's store holds: its sandboxed WASI context, its resource table, its grants
//! and every database session it opened (so they can all be cleaned up however the run ends).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::log::{RunLog, Stream};

use crate::bindings::types::DbError;
use crate::db::{Database, Session, SessionLimits, SessionStart, SharedSession};
use crate::manifest::{Access, Limits};

/// A database this run may open, resolved before the guest starts.
#[derive(Debug, Clone)]
pub struct Grant {
    pub database: Arc<Database>,
    pub access: Access,
}

/// The store's resource limiter: the manifest's caps, and a note of the memory growth it
/// refused, so a guest that dies of it is reported as out of memory even if it printed nothing.
pub struct Limiter {
    limits: StoreLimits,
    /// The size, in bytes, of the last memory growth refused.
    pub(crate) denied_memory: Option<usize>,
}

impl Limiter {
    pub fn new(limits: StoreLimits) -> Limiter {
        Limiter {
            limits,
            denied_memory: None,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.denied_memory = Some(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) sessions: Vec<SharedSession>,
    /// The manifest's limits for this run.
    pub(crate) limits: Limits,
    /// When the run's time is up.
    pub(crate) deadline: Instant,
    /// Connections, transactions and cursors the guest holds now (`max-open-handles`).
    pub(crate) open_handles: u32,
    pub(crate) flow: String,
    pub(crate) run_id: String,
    /// The run's log: guest records and captured stdout/stderr.
    pub(crate) log: RunLog,
    /// Whether a session is finished (reset for the pool) as soon as the flow drops its
    /// connection. `false` in a process that runs once: an idle session is left for the
    /// run's end, which closes its connection instead (see `database_host`).
    pub(crate) keep_connections: bool,
    /// Idle sessions whose connection handle the flow dropped, when connections are not kept.
    pub(crate) parked: Vec<SharedSession>,
    /// Sessions started with the run, by grant, for the flow's first `open` of each (see
    /// [`crate::db::Session::prestart`]).
    pub(crate) prestarted: HashMap<String, SharedSession>,
}

impl HostState {
    /// A state with no filesystem, no environment, no arguments, no network and closed stdin:
    /// the flow reaches the outside only through the grants.
    pub fn new(
        grants: HashMap<String, Grant>,
        store_limits: StoreLimits,
        limits: Limits,
        deadline: Instant,
        flow: &str,
        run_id: &str,
    ) -> HostState {
        let log = RunLog::new(flow, run_id, limits.max_log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(log.pipe(Stream::Stdout))
            .stderr(log.pipe(Stream::Stderr))
            // The builder's documented defaults disagree; deny explicitly.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(store_limits),
            grants,
            sessions: Vec::new(),
            limits,
            deadline,
            open_handles: 0,
            flow: flow.to_owned(),
            run_id: run_id.to_owned(),
            log,
            keep_connections: true,
            parked: Vec::new(),
            prestarted: HashMap::new(),
        }
    }
}

impl HostState {
    /// The limits every database session of this run works under.
    /// Starts a session for every grant at once (see [`crate::db::Session::prestart`]); the
    /// flow's first `open` of each takes it. Only where connections are not kept: in a host
    /// that serves many runs, a grant the flow does not open this time would hold a pooled
    /// connection for nothing.
    pub(crate) fn prestart_sessions(&mut self, mut started: HashMap<String, SessionStart>) {
        if self.keep_connections {
            return;
        }
        for (name, grant) in &self.grants {
            let session = Session::new(grant.database.clone(), grant.access, self.session_limits());
            session
                .try_lock()
                .expect("a session nobody else holds yet")
                .prestart(started.remove(name));
            self.sessions.push(session.clone());
            self.prestarted.insert(name.clone(), session);
        }
    }

    pub(crate) fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_rows: self.limits.max_rows,
            max_result_bytes: self.limits.max_result_bytes,
            max_param_bytes: self.limits.max_param_bytes,
            statement_timeout: self.limits.statement_timeout,
            deadline: self.deadline,
        }
    }

    /// Fails with `invalid-request` when one more connection, transaction or cursor would pass
    /// the run's `max-open-handles`. The caller counts the handle once it is made.
    pub(crate) fn check_handle_room(&self) -> Result<(), DbError> {
        if self.open_handles < self.limits.max_open_handles {
            return Ok(());
        }
        Err(DbError::InvalidRequest(format!(
            "this run already holds {} open connections, transactions and cursors, its limit \
             (manifest [limits] max-open-handles); drop one before opening another",
            self.open_handles
        )))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
