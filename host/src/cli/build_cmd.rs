//! `flowhost build`: flow crates to components beside their manifests, precompiled.
//!
//! cargo does the compiling (its errors reach the terminal as they are); this command adds the
//! target when it is missing, places `flows/NAME.wasm` (moved in whole, so a run never sees half
//! a file) and compiles it into the component cache, so the first run starts warm.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use super::scaffold::{check_name, project_root};
use crate::Error;
use crate::runtime::{Runtime, RuntimeOptions};

const TARGET: &str = "wasm32-wasip2";

/// `flowhost build` flags.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Flows to build, by name (default: every crate under flows/).
    names: Vec<String>,
    /// Build with cargo's dev profile (faster to compile, slower to run).
    #[arg(long)]
    debug: bool,
}

/// Builds the flows and returns the exit code.
pub(super) fn build(args: &BuildArgs, cache_dir: PathBuf) -> Result<u8, Error> {
    let root = project_root()?;
    let flows = root.join("flows");
    let names = if args.names.is_empty() {
        flow_crates(&flows)?
    } else {
        args.names.clone()
    };
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "no flow crates under {}: create one with `flowhost new NAME`",
            flows.display()
        )));
    }
    for name in &names {
        check_name(name)?;
        if !flows.join(name).join("Cargo.toml").is_file() {
            return Err(Error::Usage(format!(
                "no flow crate at {}: create it with `flowhost new {name}`",
                flows.join(name).display()
            )));
        }
    }
    ensure_target()?;

    // Guests build in their own target folder, so building them never waits for (or
    // invalidates) the host's build; CARGO_TARGET_DIR overrides it as cargo's users expect.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("guests"));
    let profile = if args.debug { "debug" } else { "release" };
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&root)
        .args(["build", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    if !args.debug {
        cargo.arg("--release");
    }
    for name in &names {
        cargo.args(["-p", name]);
    }
    let status = cargo.status().map_err(|e| Error::Io {
        action: "run cargo (is Rust installed? https://rustup.rs)".into(),
        source: e,
    })?;
    if !status.success() {
        return Err(Error::Build(format!(
            "cargo could not build {} (its errors are above); nothing was replaced",
            names.join(", ")
        )));
    }

    for name in &names {
        let built = target_dir
            .join(TARGET)
            .join(profile)
            .join(format!("{name}.wasm"));
        let placed = flows.join(format!("{name}.wasm"));
        place(&built, &placed)?;
        // Loading compiles into the cache, with the engine settings `flowhost run` will use
        // (fuel counting changes the code); it also proves the file is a component this host
        // can run (the contract's version, its imports).
        let manifest = crate::manifest::Manifest::path_beside(&placed);
        let fuel = manifest.is_file()
            && crate::manifest::Manifest::load(&manifest)?
                .limits
                .fuel
                .is_some();
        // As `flowhost run` compiles it, so that its first run finds it in the cache.
        Runtime::new(RuntimeOptions::single_run(cache_dir.clone(), fuel))?.load(&placed)?;
        let size = std::fs::metadata(&placed).map(|m| m.len()).unwrap_or(0);
        let shown = placed.strip_prefix(&root).unwrap_or(&placed).display();
        println!("built {shown} ({} KiB, precompiled)", size.div_ceil(1024));
    }
    Ok(crate::exit::OK)
}

/// The folders under `flows/` that hold a crate.
fn flow_crates(flows: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(flows).map_err(|e| Error::Io {
        action: format!("read {}", flows.display()),
        source: e,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Adds the wasm target through rustup when it is not installed.
fn ensure_target() -> Result<(), Error> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("adding the {TARGET} target (rustup target add {TARGET})");
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .map_err(|e| Error::Io {
                    action: format!("run rustup target add {TARGET}"),
                    source: e,
                })?;
            if status.success() {
                Ok(())
            } else {
                Err(Error::Build(format!(
                    "rustup could not add the {TARGET} target; run `rustup target add {TARGET}`"
                )))
            }
        }
        // No rustup: a toolchain installed another way may still have the target; cargo
        // will say if it does not.
        Err(_) => Ok(()),
    }
}

/// Copies `built` to `placed` through a temporary file renamed into place.
fn place(built: &Path, placed: &Path) -> Result<(), Error> {
    let temp = placed.with_extension(format!("wasm.partial-{}", std::process::id()));
    std::fs::copy(built, &temp)
        .and_then(|_| std::fs::rename(&temp, placed))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Error::Io {
                action: format!("copy {} to {}", built.display(), placed.display()),
                source: e,
            }
        })
}
