//! The data one run's store holds: its sandboxed WASI context, its resource table, its grants
//! and every database session it opened (so they can all be cleaned up however the run ends).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::types::DbError;
use crate::db::{Database, SessionLimits, SharedSession};
use crate::manifest::{Access, Limits};

/// A database this run may open, resolved before the guest starts.
#[derive(Debug, Clone)]
pub struct Grant {
    pub database: Arc<Database>,
    pub access: Access,
}

/// Most bytes of guest stdout/stderr kept per run; output past it is dropped (and says so).
pub const CAPTURE_LIMIT: usize = 1 << 20;

pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) store_limits: StoreLimits,
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
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
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
        let stdout = MemoryOutputPipe::new(CAPTURE_LIMIT);
        let stderr = MemoryOutputPipe::new(CAPTURE_LIMIT);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            // The builder's documented defaults disagree; deny explicitly.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            store_limits,
            grants,
            sessions: Vec::new(),
            limits,
            deadline,
            open_handles: 0,
            flow: flow.to_owned(),
            run_id: run_id.to_owned(),
            stdout,
            stderr,
        }
    }
}

impl HostState {
    /// The limits every database session of this run works under.
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
