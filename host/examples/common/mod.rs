//! What the in-process benchmarks share: the probe component, a host configured with one
//! database `lab`, and the five-column row the probe's `read_wide`/`insert_wide` move.
//! Included by `#[path]` from each example (cargo builds examples one file each).

#![allow(dead_code)] // each example uses its own part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowhost::config::{Config, LoadOptions};
use flowhost::run::Host;
use flowhost::runtime::RuntimeOptions;

/// The probe's `read_wide` row, decoded natively the same way.
pub struct Wide {
    pub id: i64,
    pub note: String,
    pub score: f64,
    pub qty: i32,
    pub flag: bool,
}

/// Builds the probe test flow for wasm32-wasip2 and returns the component's path.
pub fn build_probe() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = repo.join("target/guests");
    let status = std::process::Command::new(env!("CARGO"))
        .current_dir(repo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "probe",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the probe component failed");
    target.join("wasm32-wasip2/release/probe.wasm")
}

/// A host whose database `lab` is at `url`, with `extra` configuration keys, caching compiled
/// components under `dir`.
pub fn host_for(url: &str, dir: &Path, extra: &[(&str, &str)]) -> Host {
    let mut env = HashMap::new();
    env.insert(
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING".to_owned(),
        url.to_owned(),
    );
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::load(&LoadOptions {
        process_env: env,
        data_dir: dir.join(".flowhost"),
        ..LoadOptions::default()
    })
    .unwrap();
    Host::new(
        Arc::new(config),
        RuntimeOptions {
            cache_dir: Some(dir.join("cache")),
            ..RuntimeOptions::default()
        },
    )
    .unwrap()
}
