//! Which `.env` files configuration comes from, and which environments they configure.
//!
//! Teams keep one file per environment (`.env.production`), often in the Python system's
//! layout (`core/envs/.env.production`). Those are found without flags once the environment is
//! known; what selects the environment can only come from `.env`, `--env-file` files and the
//! process environment, which are read first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::interpolate::{Origin, RawValue, Vars};
use super::{ConfigError, LoadOptions, key_name};

/// The process-environment (or `.env`) setting naming one more folder to look in for
/// `.env.<environment>`.
pub const ENV_DIR_VAR: &str = "FLOWHOST_ENV_DIR";

/// The Python system's folder of per-environment files, relative to the project.
pub const SEED_LAYOUT_DIR: &str = "core/envs";

/// One file configuration was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFile {
    pub path: PathBuf,
    /// Why it was read.
    pub found_as: FoundAs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundAs {
    /// `.env` in the current directory.
    Dotenv,
    /// `.env.<environment>` in the current directory.
    EnvironmentFile,
    /// `core/envs/.env.<environment>`.
    SeedLayout,
    /// `.env.<environment>` in `FLOWHOST_ENV_DIR`.
    EnvDir,
    /// `--env-file`.
    Flag,
}

impl FoundAs {
    pub fn describe(self) -> &'static str {
        match self {
            FoundAs::Dotenv => ".env in the current directory",
            FoundAs::EnvironmentFile => ".env.<environment> in the current directory",
            FoundAs::SeedLayout => "core/envs/.env.<environment>",
            FoundAs::EnvDir => "FLOWHOST_ENV_DIR",
            FoundAs::Flag => "--env-file",
        }
    }
}

/// A file's parsed lines.
pub(super) struct Parsed {
    pub file: EnvFile,
    pub values: Vec<(String, RawValue)>,
}

/// Reads `path` if it exists (`required`: it must).
pub(super) fn read(
    path: PathBuf,
    found_as: FoundAs,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<Parsed>, ConfigError> {
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(path = %path.display(), "no such env file");
            return Ok(None);
        }
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    let entries = super::dotenv::parse(&text, &path)?;
    tracing::debug!(path = %path.display(), keys = entries.len(), "read env file");
    let mut values = Vec::with_capacity(entries.len());
    for e in entries {
        let origin = Origin::File {
            path: path.clone(),
            line: e.line,
        };
        match e.value {
            Some(text) => values.push((
                e.key,
                RawValue {
                    text,
                    origin,
                    literal: e.literal,
                },
            )),
            None => warnings.push(format!("{origin}: {} has no '=' and is ignored", e.key)),
        }
    }
    Ok(Some(Parsed {
        file: EnvFile { path, found_as },
        values,
    }))
}

/// The per-environment files for `environment`, in the order they are applied (a later one
/// wins): `./.env.<env>`, `core/envs/.env.<env>`, then `$FLOWHOST_ENV_DIR/.env.<env>`.
pub(super) fn environment_files(
    opts: &LoadOptions,
    early: &Vars,
    environment: &str,
) -> Result<Vec<(PathBuf, FoundAs, bool)>, ConfigError> {
    let name = format!(".env.{environment}");
    let mut found = Vec::new();
    if let Some(dir) = &opts.dotenv_dir {
        found.push((dir.join(&name), FoundAs::EnvironmentFile, false));
        found.push((
            dir.join(SEED_LAYOUT_DIR).join(&name),
            FoundAs::SeedLayout,
            false,
        ));
    }
    let env_dir = match opts.process_env.get(ENV_DIR_VAR) {
        Some(dir) => Some(dir.clone()),
        None => early
            .files
            .get(ENV_DIR_VAR)
            .map(|raw| early.resolve(ENV_DIR_VAR, raw))
            .transpose()?,
    };
    if let Some(dir) = env_dir.filter(|d| !d.trim().is_empty()) {
        let dir = opts.dotenv_dir.clone().unwrap_or_default().join(dir.trim());
        if !dir.is_dir() {
            return Err(ConfigError::Io {
                path: dir,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{ENV_DIR_VAR} names a folder that does not exist"),
                ),
            });
        }
        // Named on purpose: its file for this environment must be there.
        found.push((dir.join(&name), FoundAs::EnvDir, true));
    }
    Ok(found)
}

/// The environments keys configure a database for (`PRODUCTION_GLOBAL_X_CONNECTION_STRING`
/// configures `production`), each with where: file paths, or "the process environment".
pub(super) fn environments_configured<'a>(
    keys: impl Iterator<Item = (&'a String, Option<&'a Path>)>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, file) in keys {
        let Some((environment, rest)) = key.split_once("_GLOBAL_") else {
            continue;
        };
        let defines_database = rest
            .strip_suffix("CONNECTION_STRING")
            .is_some_and(|name| name.len() > 1 && name.ends_with('_'));
        if environment.is_empty() || !defines_database || key_name(environment) != environment {
            continue;
        }
        let place = file.map_or_else(
            || "the process environment".to_owned(),
            |p| p.display().to_string(),
        );
        found
            .entry(environment.to_ascii_lowercase())
            .or_default()
            .insert(place);
    }
    found
}

/// The environments configured anywhere: in any file read, and in the process environment.
pub(super) fn survey(
    parsed: &[Parsed],
    process: &HashMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let from_files = parsed.iter().flat_map(|p| {
        p.values
            .iter()
            .map(move |(key, _)| (key, Some(p.file.path.as_path())))
    });
    let from_process = process.keys().map(|k| (k, None));
    environments_configured(from_files.chain(from_process))
}

/// Other environments' files beside the ones read (`.env.<name>` in the same folders), parsed
/// only to see what they configure: a project whose only file is `.env.production` has
/// configuration, just not for the environment selected. A file that does not parse is left
/// to the run that selects its environment to report.
pub(super) fn siblings(by_name: &[(PathBuf, FoundAs, bool)], environment: &str) -> Vec<Parsed> {
    let own = format!(".env.{environment}");
    let mut folders: Vec<&Path> = by_name
        .iter()
        .filter_map(|(path, _, _)| path.parent())
        .collect();
    folders.dedup();
    let mut found = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if !name.starts_with(".env.") || name == own || name.ends_with(".example") {
                continue;
            }
            let mut ignored = Vec::new();
            if let Ok(Some(parsed)) =
                read(entry.path(), FoundAs::EnvironmentFile, false, &mut ignored)
            {
                found.push(parsed);
            }
        }
    }
    found
}
