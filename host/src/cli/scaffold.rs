//! `flowhost new`: a new flow that builds and runs as generated, without knowing cargo.
//!
//! A flow is a crate under `flows/NAME/` (a workspace member through the `flows/*` glob), its
//! manifest `flows/NAME.toml`, and, for the default template, the migrations folder of the
//! database it owns. Everything is written under temporary names and moved into place at the
//! end, so a failure leaves nothing half-made behind.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::Error;

/// `flowhost new` flags.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The flow's name: lower-case letters, digits and `_`, starting with a letter. It names
    /// the crate (flows/NAME/), the manifest (flows/NAME.toml) and the component
    /// (flows/NAME.wasm).
    name: String,
    /// Copy an existing flow (its crate and manifest) instead of the starter template, e.g.
    /// `--from rpa1`.
    #[arg(long, value_name = "FLOW")]
    from: Option<String>,
}

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const MANIFEST: &str = include_str!("templates/manifest.toml.tmpl");
const MIGRATION: &str = include_str!("templates/migration.sql.tmpl");

/// Crates of this repository a flow must not be named like.
const TAKEN: &[&str] = &[
    "flowhost",
    "flowhost_sdk",
    "probe",
    "rpa1_native",
    "guest_sdk",
];

/// The project a command works in: the nearest folder, from the working directory up, with a
/// workspace `Cargo.toml` and a `flows/` folder.
pub(super) fn project_root() -> Result<PathBuf, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::Io {
        action: "read the current directory".into(),
        source: e,
    })?;
    cwd.ancestors()
        .find(|dir| {
            dir.join("flows").is_dir()
                && std::fs::read_to_string(dir.join("Cargo.toml"))
                    .is_ok_and(|text| text.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::Usage(format!(
                "no flowhost project in {} or above it: run this inside a clone of flowhost \
                 (the folder with Cargo.toml and flows/)",
                cwd.display()
            ))
        })
}

/// Checks a flow name; the message says what a good one looks like.
pub(super) fn check_name(name: &str) -> Result<(), Error> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        let suggestion: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        return Err(Error::Usage(format!(
            "'{name}' is not a usable flow name: use lower-case letters, digits and '_', \
             starting with a letter (e.g. {})",
            suggestion.trim_start_matches(|c: char| !c.is_ascii_lowercase())
        )));
    }
    if TAKEN.contains(&name) {
        return Err(Error::Usage(format!(
            "'{name}' is the name of one of flowhost's own crates; choose another"
        )));
    }
    Ok(())
}

pub(super) fn new(args: &NewArgs) -> Result<u8, Error> {
    check_name(&args.name)?;
    let root = project_root()?;
    let name = args.name.as_str();
    let flows = root.join("flows");
    let crate_dir = flows.join(name);
    let manifest = flows.join(format!("{name}.toml"));
    for existing in [&crate_dir, &manifest] {
        if existing.exists() {
            return Err(Error::Usage(format!(
                "{} already exists: choose another name, or remove it first",
                existing.display()
            )));
        }
    }
    let migrations = root.join("migrations").join(format!("{name}_db"));
    let mut plan = Plan::default();
    match &args.from {
        None => {
            if migrations.exists() {
                return Err(Error::Usage(format!(
                    "{} already exists: choose another name, or remove it first",
                    migrations.display()
                )));
            }
            let fill = |template: &str| {
                template
                    .replace("__UPPER__", &name.to_ascii_uppercase())
                    .replace("__NAME__", name)
            };
            plan.file(crate_dir.join("Cargo.toml"), fill(CARGO_TOML));
            plan.file(crate_dir.join("src/lib.rs"), fill(LIB_RS));
            plan.file(manifest.clone(), fill(MANIFEST));
            plan.file(
                migrations.join(format!("V001__Create_{name}_greetings.sql")),
                fill(MIGRATION),
            );
        }
        Some(from) => copy_flow(&flows, from, name, &mut plan)?,
    }
    plan.write()?;
    register(&root, name)?;
    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    println!("created flow '{name}':");
    for path in &plan.created {
        println!("  {}", rel(path));
    }
    println!(
        "next:\n  flowhost build {name}\n  flowhost run flows/{name}.wasm\n  cargo test -p {name}    (its unit tests, natively)"
    );
    Ok(crate::exit::OK)
}

/// The files of `flows/<from>/` and `flows/<from>.toml`, renamed to `name`.
fn copy_flow(flows: &Path, from: &str, name: &str, plan: &mut Plan) -> Result<(), Error> {
    let source = flows.join(from);
    let source_manifest = flows.join(format!("{from}.toml"));
    if !source.join("Cargo.toml").is_file() {
        return Err(Error::Usage(format!(
            "--from {from}: there is no flow crate at {}",
            source.display()
        )));
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| Error::Io {
            action: format!("read {}", path.display()),
            source: e,
        })
    };
    for file in walk(&source)? {
        let relative = file.strip_prefix(&source).expect("walked from source");
        let mut text = read(&file)?;
        if relative == Path::new("Cargo.toml") {
            text = text.replacen(
                &format!("name = \"{from}\""),
                &format!("name = \"{name}\""),
                1,
            );
        }
        plan.file(flows.join(name).join(relative), text);
    }
    if source_manifest.is_file() {
        let text = read(&source_manifest)?.replacen(
            &format!("name = \"{from}\""),
            &format!("name = \"{name}\""),
            1,
        );
        plan.file(flows.join(format!("{name}.toml")), text);
    }
    Ok(())
}

/// Every file under `dir`, skipping build output.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        action: format!("read {}", dir.display()),
        source: e,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "target" {
                files.extend(walk(&path)?);
            }
        } else {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Makes `flows/<name>` a workspace member, unless a `flows/*` glob already does.
fn register(root: &Path, name: &str) -> Result<(), Error> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
        action: format!("read {}", path.display()),
        source: e,
    })?;
    if text.contains("\"flows/*\"") {
        return Ok(());
    }
    let Some(at) = text.find("members = [").map(|i| i + "members = [".len()) else {
        return Err(Error::Usage(format!(
            "created the flow, but could not add it to the workspace: add \"flows/{name}\" to \
             `members` in {}",
            path.display()
        )));
    };
    let updated = format!("{}\"flows/{name}\", {}", &text[..at], &text[at..]);
    std::fs::write(&path, updated).map_err(|e| Error::Io {
        action: format!("add flows/{name} to the workspace in {}", path.display()),
        source: e,
    })
}

/// Files to create, written all or nothing.
#[derive(Default)]
struct Plan {
    files: Vec<(PathBuf, String)>,
    created: Vec<PathBuf>,
}

impl Plan {
    fn file(&mut self, path: PathBuf, content: String) {
        self.files.push((path, content));
    }

    /// Writes every file; on the first failure removes what it wrote (and the folders it
    /// made) and says which file failed.
    fn write(&mut self) -> Result<(), Error> {
        let mut made_dirs: Vec<PathBuf> = Vec::new();
        for (path, content) in &self.files {
            let result = (|| {
                let dir = path.parent().expect("files live in folders");
                let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
                std::fs::create_dir_all(dir)?;
                missing.reverse();
                made_dirs.extend(missing.into_iter().map(Path::to_path_buf));
                std::fs::write(path, content)
            })();
            if let Err(e) = result {
                for written in &self.created {
                    let _ = std::fs::remove_file(written);
                }
                for dir in made_dirs.iter().rev() {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(Error::Io {
                    action: format!("write {} (nothing was kept)", path.display()),
                    source: e,
                });
            }
            self.created.push(path.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_and_file_safe() {
        assert!(check_name("daily_totals").is_ok());
        assert!(check_name("etl2").is_ok());
        let err = check_name("Daily-Totals").unwrap_err().to_string();
        assert!(err.contains("e.g. daily_totals"), "{err}");
        assert!(check_name("2fast").is_err());
        assert!(check_name("probe").is_err());
    }

    #[test]
    fn templates_name_every_placeholder() {
        for template in [CARGO_TOML, LIB_RS, MANIFEST, MIGRATION] {
            let filled = template.replace("__UPPER__", "X").replace("__NAME__", "x");
            assert!(!filled.contains("__"), "{filled}");
        }
        // The manifest's configuration example names the key the database is configured by.
        let manifest = MANIFEST
            .replace("__UPPER__", "SALES")
            .replace("__NAME__", "sales");
        assert!(manifest.contains("DEVELOPMENT_GLOBAL_SALES_DB_CONNECTION_STRING="));
        assert!(manifest.contains("[databases.sales_db]"));
    }
}
