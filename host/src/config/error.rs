//! The configuration's error type.

use std::path::PathBuf;

use super::{Backend, Origin, UrlError};

/// Everything that can be wrong with the configuration. Messages name keys, files and lines;
/// they never contain a value that could be a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `.env` line that does not parse.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An environment name with odd characters.
    #[error("invalid environment name '{name}': use letters, digits, '_' or '-'")]
    InvalidEnvironment {
        /// The name as given.
        name: String,
    },
    /// `${VAR}` without a default, and VAR set nowhere; every such variable of the value, so
    /// one fix-and-retry settles them all.
    #[error(
        "{} in {key} ({origin}) {} not set in the process environment or any .env file \
         (write ${{{}:-default}} for a default)",
        vars.iter().map(|v| format!("${{{v}}}")).collect::<Vec<_>>().join(", "),
        if vars.len() == 1 { "is" } else { "are" },
        vars[0]
    )]
    UnresolvedVariable {
        /// The variables referred to, in the order written (at least one).
        vars: Vec<String>,
        /// The key whose value refers to it.
        key: String,
        /// Where that key was set.
        origin: Origin,
    },
    /// Malformed `${...}`.
    #[error("{key} ({origin}): {message}")]
    InvalidInterpolation {
        /// The key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// `A=${B}`, `B=${A}`.
    #[error("{key} cannot be resolved: ${{{var}}} refers back to itself (an interpolation cycle)")]
    InterpolationCycle {
        /// The key being resolved.
        key: String,
        /// The variable that closes the cycle.
        var: String,
    },
    /// A number or boolean that does not parse.
    #[error("{key} ({origin}) must be {expected}, not '{value}'")]
    InvalidNumber {
        /// The key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// The value (pool settings are not secrets).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A number out of range.
    #[error("{key} ({origin}) {message}")]
    InvalidSetting {
        /// The key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// `TYPE` names no supported backend.
    #[error(
        "{key} ({origin}): unknown database type '{value}' (expected postgresql, sqlite or mssql)"
    )]
    UnknownType {
        /// The key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// The value.
        value: String,
    },
    /// `TYPE` and the connection string disagree.
    #[error("{key} says {declared} but {connection_key} is a {found} connection string")]
    TypeMismatch {
        /// The `TYPE` key.
        key: String,
        /// What `TYPE` says.
        declared: Backend,
        /// The `CONNECTION_STRING` key.
        connection_key: String,
        /// What the connection string is.
        found: Backend,
    },
    /// Settings for a database but no connection string.
    #[error(
        "database '{name}' has settings in environment '{environment}' but no connection \
         string: set {key}"
    )]
    MissingConnectionString {
        /// The logical name.
        name: String,
        /// The environment.
        environment: String,
        /// The key to set.
        key: String,
    },
    /// A connection string that does not parse.
    #[error("{key} ({origin}): {source}")]
    InvalidConnectionString {
        /// The key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// Which part is wrong.
        #[source]
        source: UrlError,
    },
    /// A database nobody configured.
    #[error(
        "database '{name}' is not configured for environment '{environment}': set {type_key} \
         and {connection_key}"
    )]
    UnknownDatabase {
        /// The logical name as asked.
        name: String,
        /// The environment.
        environment: String,
        /// The `TYPE` key to set.
        type_key: String,
        /// The `CONNECTION_STRING` key to set.
        connection_key: String,
    },
    /// The selected environment configures no database, but others do: the user meant one
    /// of them, and the embedded default would run the flow on data nobody pointed it at.
    #[error(
        "database '{name}' is not configured for environment '{environment}', which has no \
         databases; configuration was found for: {}. Select one with --env NAME or \
         FLOWHOST_ENV=NAME (e.g. --env {example}), or configure '{environment}' \
         (`flowhost config` shows which files were read)",
        found.join("; ")
    )]
    EnvironmentNotConfigured {
        name: String,
        environment: String,
        /// Each environment found, with where.
        found: Vec<String>,
        example: String,
    },
    /// An `--env-file` configures databases only for environments other than the selected one.
    #[error(
        "{} configures {} but the environment is '{environment}': select it with --env {} \
         (or FLOWHOST_ENV), or pass the file for '{environment}'",
        path.display(),
        found.join(", "),
        found.first().map(String::as_str).unwrap_or_default()
    )]
    EnvFileForOtherEnvironment {
        path: PathBuf,
        environment: String,
        found: Vec<String>,
    },
    /// A name with no letter or digit, which cannot form a key.
    #[error("'{name}' is not a usable database name: it needs a letter or digit")]
    InvalidDatabaseName {
        /// The name.
        name: String,
    },
}
