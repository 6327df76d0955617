//! Configuration: which databases an environment has, and how to reach them.
//!
//! ## Where values come from
//!
//! Highest precedence first:
//!
//! 1. the process environment (so CI and production can override anything);
//! 2. files passed with `--env-file` (a later file wins over an earlier one);
//! 3. `$FLOWHOST_ENV_DIR/.env.<environment>` (the folder must exist, and the file in it);
//! 4. `core/envs/.env.<environment>` (the Python system's layout), when present;
//! 5. `.env.<environment>` in the current directory, when present;
//! 6. `.env` in the current directory (optional).
//!
//! Only 1, 2 and 6 can select the environment; 3-5 are found by its name (see `files`).
//!
//! `.env` files use python-dotenv syntax: `KEY=VALUE`, an optional `export ` prefix, `#`
//! comments, `'single-quoted'` values (literal) and `"double-quoted"` values (with `\n`, `\"`,
//! `\\` escapes; they may span lines).
//!
//! Values from files may use `${VAR}` and `${VAR:-default}` (the default also applies when VAR
//! is empty; `${VAR-default}` only when it is unset); VAR is looked up in the process environment
//! first, then in the files. `$$` is a literal `$`. Single-quoted values and values from the
//! process environment are never interpolated. Only the keys of the selected environment are
//! interpolated, so other environments' secrets need not exist. A `${VAR}` that resolves
//! nowhere is an error naming VAR and the key.
//!
//! ## The environment
//!
//! `--env NAME`, else `FLOWHOST_ENV` (process environment, then files), else `development`.
//! Names are case-insensitive; keys start with the name in upper case, e.g. `PRODUCTION_GLOBAL_`.
//!
//! ## Keys
//!
//! `{ENV}_GLOBAL_{NAME}_{SETTING}` configures database NAME; `{ENV}_GLOBAL_{SETTING}` sets a
//! default for every database of the environment (pool and timeout settings only; a
//! per-database value wins). NAME is the logical name used in flow manifests, upper-cased with
//! every character other than a letter or digit written as `_`: `rpa_db` → `RPA_DB`,
//! `SurveyHub` → `SURVEYHUB`.
//!
//! | SETTING | meaning | default |
//! |---|---|---|
//! | `TYPE` | `postgresql`/`postgres`, `sqlite`, `mssql`/`sqlserver`; optional when the connection string says it, an error when it contradicts it | from the URL |
//! | `CONNECTION_STRING` | where the database is (below); required | — |
//! | `CONNECTION_POOL_SIZE` (or `POOL_SIZE`) | connections kept for reuse | 5 |
//! | `MAX_OVERFLOW` | extra connections allowed under load; the pool's maximum is size + overflow | 5 |
//! | `POOL_TIMEOUT` | seconds to wait for a free connection | 30 |
//! | `POOL_RECYCLE` | seconds after which a connection is replaced; `-1` or `0`: never | never |
//! | `POOL_IDLE_TIMEOUT` | seconds an idle connection is kept; `-1` or `0`: forever | 600 |
//! | `POOL_PRE_PING` | check a connection before use: `true`/`false`/`1`/`0`/`yes`/`no` | false |
//! | `DATABASE_TIMEOUT` | statement timeout in seconds; `-1` or `0`: none | none |
//! | `CONNECT_TIMEOUT` | seconds to open a connection | 10 |
//!
//! Seconds may be fractional. A key is split at the longest known setting suffix, so a database
//! name should not end in `_CONNECTION`, `_POOL` or the like (`X_CONNECTION_POOL_SIZE` is X's
//! pool size, never `X_CONNECTION`'s `POOL_SIZE`), nor be exactly a setting's name. Other keys under `{ENV}_GLOBAL_` are reported as warnings (with a suggestion
//! for typos such as `_CONECTION_STRING`), never silently ignored.
//!
//! ```text
//! FLOWHOST_ENV=production
//! PRODUCTION_GLOBAL_RPA_DB_TYPE=postgresql
//! PRODUCTION_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql+psycopg2://rpa:${RPA_DB_PASSWORD}@db:5432/rpa
//! PRODUCTION_GLOBAL_SURVEYHUB_CONNECTION_STRING="Server=tcp:sql,1433;Database=Surveys;User Id=ro;Password=${SURVEY_PW}"
//! PRODUCTION_GLOBAL_CONNECTION_POOL_SIZE=10
//! PRODUCTION_GLOBAL_DATABASE_TIMEOUT=30
//! ```
//!
//! ## Connection strings
//!
//! - PostgreSQL: `postgresql://user:password@host:port/database?sslmode=require`, also
//!   `postgres://` and SQLAlchemy's `postgresql+psycopg2://`, `+psycopg`, `+asyncpg`, `+pg8000`.
//!   Default port 5432. `?host=/var/run/postgresql` selects a socket directory.
//! - SQLite: `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:`,
//!   `sqlite://` (memory), `sqlite+pysqlite:///...`, and sqlx's `sqlite:relative.db` /
//!   `sqlite://relative.db`. Relative paths are relative to the directory of the `.env` file
//!   that set the key (the current directory for the process environment). With `TYPE=sqlite`
//!   a bare path works too. The file is created if missing (as SQLAlchemy does) unless the URL
//!   says `?mode=ro` or `?mode=rw`.
//! - SQL Server: `mssql+pyodbc://user:password@host:1433/db?driver=...&TrustServerCertificate=yes`,
//!   `mssql+pymssql://`, `mssql://`, JDBC `sqlserver://host:1433;databaseName=db;user=u;password=p`,
//!   and ADO.NET `Server=tcp:host,1433;Database=db;User Id=u;Password=p;Encrypt=true`.
//!   Default port 1433.
//!
//! Percent-encode special characters of a password in URLs (`@` is `%40`).
//!
//! ## With no configuration
//!
//! When the environment is `development` and no environment has database keys at all (in the
//! process environment, the files read, or other `.env.<name>` files beside them; global pool
//! defaults do not count), every database is an SQLite file `.flowhost/<name>.sqlite`, created on first
//! use, so a fresh clone runs its example flow without any setup. Anywhere else an unconfigured
//! database is an error that names the keys to set.

mod display;
mod dotenv;
mod error;
mod files;
mod interpolate;
mod keys;
mod mssql;
mod pool;
mod secret;
mod url;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

pub use error::ConfigError;
pub use files::{ENV_DIR_VAR, EnvFile, FoundAs, SEED_LAYOUT_DIR};
pub use interpolate::Origin;
pub use pool::{PoolSettings, defaults};
pub use secret::Secret;
pub use url::{Backend, DatabaseTarget, UrlError};

use interpolate::{RawValue, Vars};

/// The private `.env`, interpolation and SQL Server key=value parsers, re-exported only for
/// the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::dotenv::{Entry, parse as parse_dotenv};
    pub use super::interpolate::{RawValue, Vars};
    pub use super::mssql::parse_key_value;
}
use keys::{Assignment, EnvKeys, Setting};

/// The environment used when neither `--env` nor `FLOWHOST_ENV` names one.
pub const DEFAULT_ENVIRONMENT: &str = "development";

/// The process-environment variable that selects the environment.
pub const ENV_VAR: &str = "FLOWHOST_ENV";

/// How [`Config::load`] finds its inputs.
#[derive(Clone)]
pub struct LoadOptions {
    /// The CLI's `--env`; wins over `FLOWHOST_ENV`.
    pub env_override: Option<String>,
    /// Directory whose `.env` is read if it exists (the CLI passes the current directory).
    pub dotenv_dir: Option<PathBuf>,
    /// `--env-file` files, which must exist; a later one wins over an earlier one.
    pub extra_env_files: Vec<PathBuf>,
    /// The process environment; injected so tests do not depend on the real one.
    pub process_env: HashMap<String, String>,
    /// Where embedded SQLite databases live; relative to the working directory.
    pub data_dir: PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            env_override: None,
            dotenv_dir: None,
            extra_env_files: Vec::new(),
            process_env: HashMap::new(),
            data_dir: PathBuf::from(".flowhost"),
        }
    }
}

impl LoadOptions {
    /// The real process environment and `.env` in the current directory.
    pub fn from_process() -> Self {
        LoadOptions {
            dotenv_dir: Some(std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))),
            // Variables that are not UTF-8 cannot be flowhost keys; skip rather than panic.
            process_env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            ..LoadOptions::default()
        }
    }
}

impl fmt::Debug for LoadOptions {
    // The process environment holds secrets: show only its size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadOptions")
            .field("env_override", &self.env_override)
            .field("dotenv_dir", &self.dotenv_dir)
            .field("extra_env_files", &self.extra_env_files)
            .field(
                "process_env",
                &format_args!("<{} variables>", self.process_env.len()),
            )
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// One database, ready for the backend to build a pool from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The logical name as asked (`rpa_db`, `SurveyHub`).
    pub name: String,
    /// Where it is.
    pub target: DatabaseTarget,
    /// How its pool behaves.
    pub pool: PoolSettings,
    /// `READONLY_CONNECTION_STRING`: where read-only grants connect instead (a role that can
    /// only read), so the database itself enforces the grant.
    pub readonly_target: Option<DatabaseTarget>,
    /// An embedded SQLite default rather than configured.
    pub embedded: bool,
    /// The setting the connection string came from (`DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING`,
    /// and the file that set it), so a refused login can say where to fix it.
    pub source: Option<String>,
    /// The same for `readonly_target`.
    pub readonly_source: Option<String>,
}

impl DatabaseConfig {
    /// A database configured in code rather than from the environment: no read-only target,
    /// not the embedded default, no setting to name in errors.
    pub fn new(name: &str, target: DatabaseTarget, pool: PoolSettings) -> DatabaseConfig {
        DatabaseConfig {
            name: name.to_owned(),
            target,
            pool,
            readonly_target: None,
            embedded: false,
            source: None,
            readonly_source: None,
        }
    }
}

/// The configuration of one environment.
#[derive(Clone)]
pub struct Config {
    /// The selected environment, lower-case (`development`, `production`).
    pub environment: String,
    prefix: String,
    keys: EnvKeys,
    vars: Vars,
    warnings: Vec<String>,
    embedded_default: bool,
    data_dir: PathBuf,
    /// Relative SQLite paths from the process environment are relative to this.
    process_base: PathBuf,
    /// The files read, in the order applied (a later one wins).
    files: Vec<EnvFile>,
    /// What selected the environment.
    selected_by: &'static str,
    /// Every environment some key configures a database for, with where.
    environments: BTreeMap<String, BTreeSet<String>>,
}

/// The key form of a logical name: upper case, anything but a letter or digit as `_`
/// (`SurveyHub` → `SURVEYHUB`, `rpa-db` → `RPA_DB`). Names with the same key form are the same
/// database.
/// The database key of the run-history database (see [`Config::state_database`]).
pub const STATE_DATABASE_KEY: &str = "FLOWHOST_STATE";

pub fn key_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Config {
    /// Loads configuration; `opts.env_override` is the CLI's `--env`.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let mut parsed = Vec::new();
        if let Some(dir) = &opts.dotenv_dir {
            parsed.extend(files::read(
                dir.join(".env"),
                FoundAs::Dotenv,
                false,
                &mut warnings,
            )?);
        }
        let mut flagged = Vec::new();
        for path in &opts.extra_env_files {
            flagged.extend(files::read(
                path.clone(),
                FoundAs::Flag,
                true,
                &mut warnings,
            )?);
        }
        // Only `.env`, `--env-file` files and the process environment can select the
        // environment: the other files are found by its name.
        let early = Vars {
            process: opts.process_env.clone(),
            files: merged(parsed.iter().chain(&flagged)),
        };
        let (environment, selected_by) = select_environment(opts, &early)?;
        let same_file = |a: &Path, b: &Path| {
            a == b
                || a.canonicalize()
                    .is_ok_and(|a| b.canonicalize().is_ok_and(|b| a == b))
        };
        let by_name = files::environment_files(opts, &early, &environment)?;
        let siblings = files::siblings(&by_name, &environment);
        for (path, found_as, required) in by_name {
            if flagged.iter().any(|f| same_file(&f.file.path, &path)) {
                continue;
            }
            parsed.extend(files::read(path, found_as, required, &mut warnings)?);
        }
        // A file named on the command line for an environment other than the selected one is
        // a mistake: running the default environment's databases instead would be worse.
        for file in &flagged {
            let configures = files::survey(std::slice::from_ref(file), &HashMap::new());
            if !configures.is_empty() && !configures.contains_key(&environment) {
                return Err(ConfigError::EnvFileForOtherEnvironment {
                    path: file.file.path.clone(),
                    environment: environment.clone(),
                    found: configures.into_keys().collect(),
                });
            }
        }
        // `--env-file` files win over the files found by name.
        parsed.extend(flagged);
        let mut environments = files::survey(&parsed, &opts.process_env);
        for (environment, places) in files::survey(&siblings, &HashMap::new()) {
            environments.entry(environment).or_default().extend(places);
        }
        let vars = Vars {
            process: opts.process_env.clone(),
            files: merged(parsed.iter()),
        };
        let files = parsed.into_iter().map(|p| p.file).collect();
        let prefix = format!("{}_GLOBAL_", key_name(&environment));

        let mut selected = BTreeMap::new();
        let mut miscased = BTreeSet::new();
        for (key, value) in &vars.files {
            if key.starts_with(&prefix) {
                selected.insert(key.clone(), value.clone());
            } else if key.to_ascii_uppercase().starts_with(&prefix) {
                miscased.insert(key.clone());
            }
        }
        for (key, text) in &opts.process_env {
            if key.starts_with(&prefix) {
                let value = RawValue {
                    text: text.clone(),
                    origin: Origin::Process,
                    literal: true,
                };
                selected.insert(key.clone(), value);
            } else if key.to_ascii_uppercase().starts_with(&prefix) {
                miscased.insert(key.clone());
            }
        }
        let mut keys = keys::collect(&prefix, selected);
        warnings.append(&mut keys.warnings);
        for key in miscased {
            warnings.push(format!(
                "{key} is ignored: keys are case-sensitive, write {}",
                key.to_ascii_uppercase()
            ));
        }
        let all_keys = vars
            .files
            .iter()
            .map(|(k, v)| (k, v.origin.clone()))
            .chain(opts.process_env.keys().map(|k| (k, Origin::Process)));
        warnings.extend(misspelt_environments(all_keys, &environment, &environments));
        // A typo'd key means someone tried to configure something, and configuration for
        // another environment means the user meant that one: falling back to SQLite would
        // run the flow on data nobody pointed it at.
        let embedded_default = environment == DEFAULT_ENVIRONMENT
            && keys.databases.is_empty()
            && keys.unknown.is_empty()
            && environments.is_empty();
        tracing::debug!(
            %environment,
            databases = keys.databases.len(),
            embedded_default,
            "configuration loaded"
        );
        Ok(Config {
            environment,
            prefix,
            keys,
            vars,
            warnings,
            embedded_default,
            data_dir: opts.data_dir.clone(),
            process_base: opts.dotenv_dir.clone().unwrap_or_default(),
            files,
            selected_by,
            environments,
        })
    }

    /// The files read, in the order applied (a later one wins; the process environment wins
    /// over all of them).
    pub fn files(&self) -> &[EnvFile] {
        &self.files
    }

    /// What selected the environment: `--env`, `FLOWHOST_ENV` or the default.
    pub fn selected_by(&self) -> &'static str {
        self.selected_by
    }

    /// Every environment some key configures a database for, with the files (or "the process
    /// environment") that do.
    pub fn environments(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.environments
    }

    /// The databases configured for the selected environment, by key form (`SURVEYHUB`), each
    /// with the file (or `None`: the process environment) its connection string came from.
    pub fn configured_databases(&self) -> Vec<(String, Option<PathBuf>)> {
        self.keys
            .databases
            .iter()
            .map(|(key, settings)| {
                let file =
                    settings
                        .get(&Setting::ConnectionString)
                        .and_then(|a| match &a.value.origin {
                            Origin::File { path, .. } => Some(path.clone()),
                            Origin::Process => None,
                        });
                (key.clone(), file)
            })
            .collect()
    }

    /// Migration placeholder values, by lower-case name: `FLOWHOST_PLACEHOLDER_<NAME>` keys
    /// from the `.env` files and the process environment (which wins), with `${VAR}`
    /// interpolation. `None` means placeholders are off: there are no such keys and
    /// `FLOWHOST_PLACEHOLDERS` is not `on` (`FLOWHOST_PLACEHOLDERS=off` turns them off even
    /// with keys; `on` with none makes every `${name}` in a migration an error).
    pub fn placeholders(&self) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        const PREFIX: &str = "FLOWHOST_PLACEHOLDER_";
        const SWITCH: &str = "FLOWHOST_PLACEHOLDERS";
        let mut values = BTreeMap::new();
        let file_keys = self.vars.files.iter().map(|(k, v)| (k, v.clone()));
        let process_keys = self.vars.process.iter().map(|(k, v)| {
            let raw = RawValue {
                text: v.clone(),
                origin: Origin::Process,
                literal: true,
            };
            (k, raw)
        });
        // Files first, so process values overwrite them.
        for (key, raw) in file_keys.chain(process_keys) {
            if let Some(name) = key.strip_prefix(PREFIX).filter(|n| !n.is_empty()) {
                values.insert(name.to_ascii_lowercase(), self.vars.resolve(key, &raw)?);
            }
        }
        let switch = match self.vars.process.get(SWITCH) {
            Some(v) => Some((v.clone(), Origin::Process)),
            None => self
                .vars
                .files
                .get(SWITCH)
                .map(|raw| (raw.text.clone(), raw.origin.clone())),
        };
        let on = match switch {
            None => !values.is_empty(),
            Some((value, origin)) => match value.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError::InvalidNumber {
                        key: SWITCH.to_owned(),
                        origin,
                        value,
                        expected: "on or off",
                    });
                }
            },
        };
        Ok(on.then_some(values))
    }

    /// The configuration of the database the manifest calls `name`.
    /// The setting that configures `name`'s connection string in the selected environment.
    pub fn connection_key(&self, name: &str) -> String {
        format!("{}{}_CONNECTION_STRING", self.prefix, key_name(name))
    }

    pub fn database(&self, name: &str) -> Result<DatabaseConfig, ConfigError> {
        let key = key_name(name);
        if !key.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::InvalidDatabaseName {
                name: name.to_string(),
            });
        }
        if let Some(settings) = self.keys.databases.get(&key) {
            return self.configured(name, &key, settings);
        }
        if self.embedded_default {
            return Ok(DatabaseConfig {
                name: name.to_string(),
                target: DatabaseTarget::Sqlite {
                    path: self
                        .data_dir
                        .join(format!("{}.sqlite", key.to_ascii_lowercase())),
                    in_memory: false,
                    create_if_missing: true,
                },
                pool: self.pool(None)?,
                readonly_target: None,
                embedded: true,
                source: None,
                readonly_source: None,
            });
        }
        if self.keys.databases.is_empty() && !self.environments.is_empty() {
            return Err(ConfigError::EnvironmentNotConfigured {
                name: name.to_string(),
                environment: self.environment.clone(),
                found: self
                    .environments
                    .iter()
                    .map(|(env, places)| {
                        let places: Vec<&str> = places.iter().map(String::as_str).collect();
                        format!("{env} (in {})", places.join(", "))
                    })
                    .collect(),
                example: self.environments.keys().next().cloned().unwrap_or_default(),
            });
        }
        Err(ConfigError::UnknownDatabase {
            name: name.to_string(),
            environment: self.environment.clone(),
            type_key: format!("{}{key}_TYPE", self.prefix),
            connection_key: format!("{}{key}_CONNECTION_STRING", self.prefix),
        })
    }

    /// The configured state database (`<ENV>_GLOBAL_FLOWHOST_STATE_CONNECTION_STRING`), where
    /// run history is kept; `None` keeps it in SQLite under the data directory.
    pub fn state_database(&self) -> Result<Option<DatabaseConfig>, ConfigError> {
        match self.keys.databases.get(STATE_DATABASE_KEY) {
            Some(settings) => self
                .configured(
                    &STATE_DATABASE_KEY.to_ascii_lowercase(),
                    STATE_DATABASE_KEY,
                    settings,
                )
                .map(Some),
            None => Ok(None),
        }
    }

    /// Databases to check when none are named (`flowhost health`), lower-case key form
    /// (`rpa_db`). With the embedded default these are the `*.sqlite` files already in the data
    /// directory; otherwise the configured ones.
    pub fn database_names(&self) -> Vec<String> {
        if !self.embedded_default {
            return self
                .keys
                .databases
                .keys()
                .map(|k| k.to_ascii_lowercase())
                .collect();
        }
        let Ok(dir) = std::fs::read_dir(&self.data_dir) else {
            return Vec::new();
        };
        let names: BTreeSet<String> = dir
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                if path.extension()? != "sqlite" {
                    return None;
                }
                Some(path.file_stem()?.to_str()?.to_ascii_lowercase())
            })
            .collect();
        names.into_iter().collect()
    }

    /// Problems worth logging that did not stop loading: unknown keys, ignored lines.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether databases resolve to embedded SQLite files (development with no database keys).
    pub fn is_embedded_default(&self) -> bool {
        self.embedded_default
    }

    /// Where embedded SQLite databases live.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn resolve(&self, a: &Assignment) -> Result<pool::Found, ConfigError> {
        Ok(pool::Found {
            key: a.key.clone(),
            text: self.vars.resolve(&a.key, &a.value)?,
            origin: a.value.origin.clone(),
        })
    }

    fn pool(
        &self,
        settings: Option<&BTreeMap<Setting, Assignment>>,
    ) -> Result<PoolSettings, ConfigError> {
        pool::build(|setting| {
            settings
                .and_then(|s| s.get(&setting))
                .or_else(|| self.keys.globals.get(&setting))
                .map(|a| self.resolve(a))
                .transpose()
        })
    }

    fn configured(
        &self,
        name: &str,
        key: &str,
        settings: &BTreeMap<Setting, Assignment>,
    ) -> Result<DatabaseConfig, ConfigError> {
        let declared = match settings.get(&Setting::Type) {
            Some(a) => {
                let f = self.resolve(a)?;
                let kind = Backend::parse(&f.text).ok_or_else(|| ConfigError::UnknownType {
                    key: f.key.clone(),
                    origin: f.origin.clone(),
                    value: f.text.chars().take(40).collect(),
                })?;
                Some((kind, f.key))
            }
            None => None,
        };
        let connection_key = format!("{}{key}_CONNECTION_STRING", self.prefix);
        let conn = settings.get(&Setting::ConnectionString).ok_or_else(|| {
            ConfigError::MissingConnectionString {
                name: name.to_string(),
                environment: self.environment.clone(),
                key: connection_key.clone(),
            }
        })?;
        let f = self.resolve(conn)?;
        let target = self.target_of(&f, declared.as_ref().map(|d| d.0))?;
        let source = describe_source(&f);
        let mut readonly_source = None;
        let readonly_target = match settings.get(&Setting::ReadonlyConnectionString) {
            None => None,
            Some(a) => {
                let ro = self.resolve(a)?;
                readonly_source = Some(describe_source(&ro));
                let ro_target = self.target_of(&ro, Some(target.kind()))?;
                if ro_target.kind() != target.kind() {
                    return Err(ConfigError::TypeMismatch {
                        key: f.key.clone(),
                        declared: target.kind(),
                        connection_key: ro.key,
                        found: ro_target.kind(),
                    });
                }
                Some(ro_target)
            }
        };
        if let Some((kind, type_key)) = declared
            && kind != target.kind()
        {
            return Err(ConfigError::TypeMismatch {
                key: type_key,
                declared: kind,
                connection_key: f.key,
                found: target.kind(),
            });
        }
        Ok(DatabaseConfig {
            name: name.to_string(),
            target,
            pool: self.pool(Some(settings))?,
            readonly_target,
            embedded: false,
            source: Some(source),
            readonly_source,
        })
    }

    /// Parses a connection string found in `f`; relative SQLite paths are relative to the
    /// file that set it.
    fn target_of(
        &self,
        f: &pool::Found,
        declared: Option<Backend>,
    ) -> Result<DatabaseTarget, ConfigError> {
        let base = match &f.origin {
            Origin::File { path, .. } => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Process => self.process_base.clone(),
        };
        DatabaseTarget::parse(&f.text, declared, &base).map_err(|source| {
            ConfigError::InvalidConnectionString {
                key: f.key.clone(),
                origin: f.origin.clone(),
                source,
            }
        })
    }
}

impl fmt::Debug for Config {
    // Raw values may hold passwords: show names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("environment", &self.environment)
            .field("databases", &self.keys.databases.keys().collect::<Vec<_>>())
            .field("globals", &self.keys.globals.keys().collect::<Vec<_>>())
            .field("warnings", &self.warnings)
            .field("embedded_default", &self.embedded_default)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// The values of `parsed` files, a later file's value winning.
fn merged<'a>(parsed: impl Iterator<Item = &'a files::Parsed>) -> HashMap<String, RawValue> {
    let mut values = HashMap::new();
    for file in parsed {
        for (key, value) in &file.values {
            values.insert(key.clone(), value.clone());
        }
    }
    values
}

fn select_environment(
    opts: &LoadOptions,
    vars: &Vars,
) -> Result<(String, &'static str), ConfigError> {
    let non_empty = |s: &str| !s.trim().is_empty();
    let (name, selected_by) = if let Some(e) = opts.env_override.as_deref().filter(|s| non_empty(s))
    {
        (e.to_string(), "--env")
    } else if let Some(e) = opts.process_env.get(ENV_VAR).filter(|s| non_empty(s)) {
        (e.clone(), "FLOWHOST_ENV in the process environment")
    } else if let Some(raw) = vars.files.get(ENV_VAR) {
        let e = vars.resolve(ENV_VAR, raw)?;
        if non_empty(&e) {
            (e, "FLOWHOST_ENV in a file")
        } else {
            (DEFAULT_ENVIRONMENT.to_string(), "the default")
        }
    } else {
        (DEFAULT_ENVIRONMENT.to_string(), "the default")
    };
    let name = name.trim().to_ascii_lowercase();
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ConfigError::InvalidEnvironment { name });
    }
    Ok((name, selected_by))
}

/// Warnings for keys shaped like flowhost settings (`<ENV>_GLOBAL_...`) whose environment part
/// is a near miss of the selected or a configured environment (`DEVELOPMNET_GLOBAL_...`):
/// such a key is otherwise ignored without a word.
fn misspelt_environments<'k>(
    keys: impl Iterator<Item = (&'k String, Origin)>,
    environment: &str,
    environments: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut known: Vec<String> = environments.keys().map(|e| key_name(e)).collect();
    known.push(key_name(environment));
    let mut warnings = Vec::new();
    for (key, origin) in keys {
        let Some(at) = key.find("_GLOBAL_") else {
            continue;
        };
        let (env_part, rest) = (&key[..at], &key[at..]);
        if env_part.is_empty() || known.iter().any(|k| k == env_part) {
            continue;
        }
        let near = known
            .iter()
            .map(|k| (keys::distance(env_part, k), k))
            .filter(|(d, k)| *d <= 2 && *d < k.len() / 2)
            .min_by_key(|(d, _)| *d);
        if let Some((_, meant)) = near {
            warnings.push(format!(
                "{key} ({origin}) is ignored: no environment is called '{}'; did you mean \
                 {meant}{rest}?",
                env_part.to_ascii_lowercase()
            ));
        }
    }
    warnings
}

/// Where a setting came from, as a user would look for it: `KEY (path:line)` or `KEY (process
/// environment)`.
fn describe_source(f: &pool::Found) -> String {
    format!("{} ({})", f.key, f.origin)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod files_tests;
