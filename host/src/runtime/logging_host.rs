//! `wasi:logging/logging`: a flow's log records go to the host's `tracing` subscriber, tagged
//! with the flow name and run id so interleaved runs stay readable.

use super::state::HostState;
use crate::bindings::logging::{self, Level};

impl logging::Host for HostState {
    async fn log(
        &mut self,
        level: Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        let (flow, run) = (&self.flow, &self.run_id);
        match level {
            Level::Trace => {
                tracing::trace!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Error | Level::Critical => {
                tracing::error!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
        }
        Ok(())
    }
}
