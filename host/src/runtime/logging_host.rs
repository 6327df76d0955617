//! `wasi:logging/logging`: a flow's log records go to the host's `tracing` subscriber, tagged
//! with the flow name and run id so interleaved runs stay readable, through the run's log (see
//! `log.rs`: escaped, cut to 64 KiB a record, capped per run).

use super::state::HostState;
use crate::bindings::logging::{self, Level};

impl logging::Host for HostState {
    async fn log(
        &mut self,
        level: Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        self.log.record(level, &context, &message);
        Ok(())
    }
}
