//! flowhost: runs data flows as sandboxed WebAssembly components and gives each flow pooled,
//! migrated, health-checked access to exactly the databases its manifest grants.
//!
//! The pieces, in the order a run uses them: [`config`] (which databases exist and how to reach
//! them), [`manifest`] (what a flow is granted), [`db`] (pools, grant checks, statements),
//! [`migrate`] (schema migrations), [`runtime`] (the wasm sandbox), [`run`] (the pipeline),
//! [`health`], and [`cli`].

pub mod backend;
pub mod bindings;
pub mod cli;
pub mod config;
pub mod db;
pub mod dbstats;
pub mod health;
pub mod history;
pub mod manifest;
pub mod metrics;
pub mod migrate;
pub mod run;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod sql;

use std::path::PathBuf;

pub use backend::Backend;

/// Everything that can stop flowhost before or around a run. Each message names what failed
/// and what to do; none holds a connection string or password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    History(#[from] history::HistoryError),
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("seeding the embedded database '{database}' from {} failed: {message}", file.display())]
    Seed {
        database: String,
        file: PathBuf,
        message: String,
    },
    #[error(
        "the embedded database '{database}' would be created empty: there is no seed file \
         {database}.sql in {}, and a read-only grant can never fill it; put the seed there, or \
         configure the database ({key})",
        looked_in.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Unseeded {
        database: String,
        looked_in: Vec<PathBuf>,
        key: String,
    },
    #[error("{0}")]
    Usage(String),
    /// `flowhost build`: the toolchain failed (its own errors went to the terminal).
    #[error("{0}")]
    Build(String),
}

/// Process exit codes, documented in `flowhost --help` and the README.
pub mod exit {
    /// The flow ran and succeeded.
    pub const OK: u8 = 0;
    /// The flow ran and returned an error (or output that is not JSON).
    pub const FLOW_FAILED: u8 = 1;
    /// Bad invocation, configuration, manifest or component.
    pub const USAGE: u8 = 2;
    /// A database could not be reached, or a migration failed.
    pub const DATABASE: u8 = 3;
    /// The flow was stopped: panic, trap, time, memory or fuel limit.
    pub const TRAPPED: u8 = 4;
    /// Stopped by SIGINT (Ctrl-C): 128 + 2, as shells report it.
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM: 128 + 15.
    pub const TERMINATED: u8 = 143;
}

impl Error {
    /// A stable, machine-readable name for what went wrong, as `--json` reports it: `usage`,
    /// `config`, `manifest`, `component`, `build`, `io`, `database`, `migration`, `seed`,
    /// `flow-error`, `bad-output`, or how the flow was stopped (`panic`, `timeout`,
    /// `out-of-memory`, `out-of-fuel`, `stack-overflow`, `trap`).
    pub fn kind(&self) -> String {
        match self {
            Error::Config(_) => "config".into(),
            Error::Manifest(_) => "manifest".into(),
            Error::Database(_) => "database".into(),
            Error::Migrate(_) => "migration".into(),
            Error::Runtime(e) => run::failure_kind(e),
            Error::Io { .. } => "io".into(),
            Error::Seed { .. } | Error::Unseeded { .. } => "seed".into(),
            Error::Usage(_) => "usage".into(),
            Error::Build(_) => "build".into(),
            Error::History(
                history::HistoryError::NotFound(_) | history::HistoryError::Ambiguous { .. },
            ) => "usage".into(),
            Error::History(_) => "history".into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Database(_)
            | Error::Migrate(_)
            | Error::Seed { .. }
            | Error::Unseeded { .. } => exit::DATABASE,
            Error::History(
                history::HistoryError::Database { .. } | history::HistoryError::Unsupported { .. },
            ) => exit::DATABASE,
            Error::Runtime(runtime::RuntimeError::Trapped { .. }) => exit::TRAPPED,
            Error::Runtime(
                runtime::RuntimeError::FlowFailed { .. } | runtime::RuntimeError::BadOutput { .. },
            ) => exit::FLOW_FAILED,
            _ => exit::USAGE,
        }
    }
}
