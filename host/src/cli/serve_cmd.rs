//! `flowhost serve`: the long-running host (see [`crate::server`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{GlobalArgs, cache_dir};
use crate::config::Config;
use crate::history::RunHistory;
use crate::manifest::Manifest;
use crate::run::Host;
use crate::runtime::RuntimeOptions;
use crate::server::{self, ServeOptions};
use crate::{Error, shutdown};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one; the address is printed).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "FLOWHOST_LISTEN"
    )]
    listen: SocketAddr,
    /// The folder `POST /runs` takes components from; no component outside it runs.
    #[arg(long, value_name = "DIR", default_value = "flows")]
    flows_dir: PathBuf,
    /// Folder holding one migrations folder per database: readiness requires each such
    /// database to be at its latest migration.
    #[arg(long, value_name = "DIR", default_value = "migrations")]
    migrations_dir: PathBuf,
    /// Runs executing at once; further `POST /runs` get 429 until one ends. Each run also
    /// waits for connections from its databases' pools.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_concurrent_runs: u32,
    /// Seconds a migration may hold its lock before /health/ready fails (PostgreSQL, where
    /// the lock holder is visible): a migrator stuck that long blocks every run that owns the
    /// database's migrations.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    migration_lock_limit: u64,
    /// Seconds between the samples of pools and response times behind
    /// /health/database/performance and flowhost_migrations_pending.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    sample_every: f64,
}

pub(super) async fn serve(
    config: Arc<Config>,
    global: &GlobalArgs,
    args: ServeArgs,
) -> Result<u8, Error> {
    if !(args.sample_every > 0.0 && args.sample_every.is_finite()) {
        return Err(Error::Usage(
            "--sample-every must be a positive number of seconds".into(),
        ));
    }
    // A server keeps history: without it `GET /runs/{id}` could not answer.
    let history = Arc::new(RunHistory::open(&config, super::retention(global)).await?);
    let host = Host::new(
        config,
        RuntimeOptions {
            cache_dir: Some(cache_dir(global)),
            // Fuel is an engine setting: on when any flow in the folder asks for a fuel limit.
            fuel: any_flow_uses_fuel(&args.flows_dir),
            max_concurrent_instances: Some(args.max_concurrent_runs),
            // Many runs share the process: a stuck one must be stopped where it is.
            interruptible: true,
        },
    )?
    .with_history(history, "serve");
    let options = ServeOptions {
        listen: args.listen,
        flows_dir: args.flows_dir,
        migrations_dir: args.migrations_dir,
        max_concurrent_runs: args.max_concurrent_runs as usize,
        sample_every: Duration::from_secs_f64(args.sample_every),
        migration_lock_limit: Duration::from_secs(args.migration_lock_limit),
    };
    let signal = server::serve(Arc::new(host), options, shutdown::wait()).await?;
    Ok(signal.exit_code())
}

fn any_flow_uses_fuel(flows_dir: &std::path::Path) -> bool {
    std::fs::read_dir(flows_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| Manifest::load(&p).ok())
        .any(|m| m.limits.fuel.is_some())
}
