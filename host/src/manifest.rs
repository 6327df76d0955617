//! The per-flow manifest: what a flow is granted.
//!
//! A TOML file beside the component, `flows/rpa1.toml` for `flows/rpa1.wasm` (`--manifest`
//! points elsewhere):
//!
//! ```toml
//! [flow]
//! name = "rpa1"                      # required
//! description = "Scores survey responses"   # optional
//!
//! [limits]                           # optional, all keys optional
//! timeout-seconds = 300              # wall-clock limit of one run (default 300)
//! memory-mb = 256                    # linear memory cap (default 256)
//! max-rows = 100000                  # largest result a single `query` may return (default 100000)
//! max-result-mb = 64                 # largest result of one `query`, or one cursor fetch (default 64)
//! max-param-mb = 16                  # largest parameter set of one statement (default 16)
//! max-open-handles = 64              # connections, transactions and cursors open at once (default 64)
//! max-log-mb = 8                     # log bytes one run may write; the rest is dropped (default 8)
//! statement-timeout-seconds = 60     # per statement, enforced by the server (default: the run's
//!                                    # remaining time)
//! fuel = 1000000000                  # optional instruction budget; absent = unlimited
//!
//! [databases.rpa_db]
//! access = "read-write"              # "read-only" | "read-write", required
//! migrations = "../migrations/rpa_db"   # optional; relative to this file; present = this flow
//!                                       # owns the database's migrations
//!
//! [databases.SurveyHub]
//! access = "read-only"
//! ```
//!
//! A grant names a logical database; where it is comes from the configuration
//! (`{ENV}_GLOBAL_{NAME}_...` keys, see `config`). Rules: unknown keys are errors; limits must
//! be greater than 0; a read-only grant cannot own migrations (owning them means writing);
//! two names that differ only in case or punctuation (`rpa_db`, `RPA_DB`, `rpa-db`) are an
//! error because they map to the same configuration keys. Errors name the file, line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::key_name;

/// Default wall-clock limit of one run, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;
/// Default linear-memory cap, in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 256;
/// Default largest result of one `query`.
pub const DEFAULT_MAX_ROWS: u64 = 100_000;
/// Default largest result of one `query` (or one cursor fetch), in MiB.
pub const DEFAULT_MAX_RESULT_MB: u64 = 64;
/// Default largest parameter set of one statement, in MiB.
pub const DEFAULT_MAX_PARAM_MB: u64 = 16;
/// Default most connections, transactions and cursors a run may hold open at once.
pub const DEFAULT_MAX_OPEN_HANDLES: u32 = 64;
/// Default most log bytes one run may write, in MiB.
pub const DEFAULT_MAX_LOG_MB: u64 = 8;

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// No file where the manifest was looked for.
    #[error(
        "no manifest at {}: a flow's manifest lives beside its component (flows/rpa1.toml for \
         flows/rpa1.wasm); use --manifest to point elsewhere",
        path.display()
    )]
    NotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read manifest {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("{}: {message}", location(path, *line, *column))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column (in characters), when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

fn location(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    let at = |n: Option<usize>| n.map(|n| format!(":{n}")).unwrap_or_default();
    format!("{}{}{}", path.display(), at(line), at(column))
}

/// A flow's grants and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[flow]`
    pub flow: FlowInfo,
    /// `[limits]`, defaults filled in.
    pub limits: Limits,
    /// `[databases.<name>]`, by the name as written.
    pub databases: BTreeMap<String, Grant>,
}

/// `[flow]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// The flow's name, used in logs and run records.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
}

/// What a run may consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit of one run.
    pub timeout: Duration,
    /// Linear-memory cap.
    pub memory_bytes: usize,
    /// Largest result a single `query` may return.
    pub max_rows: u64,
    /// Largest result, in bytes of values, one `query` or one cursor fetch may return.
    pub max_result_bytes: u64,
    /// Largest parameter set, in bytes of values, one statement may bind.
    pub max_param_bytes: u64,
    /// Most connections, transactions and cursors open at once.
    pub max_open_handles: u32,
    /// Most log bytes (guest log records and captured output) one run may write.
    pub max_log_bytes: u64,
    /// Per-statement limit enforced by the database server; `None`: the run's remaining time.
    pub statement_timeout: Option<Duration>,
    /// Instruction budget; `None` is unlimited.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            memory_bytes: (DEFAULT_MEMORY_MB as usize) << 20,
            max_rows: DEFAULT_MAX_ROWS,
            max_result_bytes: DEFAULT_MAX_RESULT_MB << 20,
            max_param_bytes: DEFAULT_MAX_PARAM_MB << 20,
            max_open_handles: DEFAULT_MAX_OPEN_HANDLES,
            max_log_bytes: DEFAULT_MAX_LOG_MB << 20,
            statement_timeout: None,
            fuel: None,
        }
    }
}

/// Access to one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Read-only or read-write.
    pub access: Access,
    /// The migrations folder this flow owns for the database: absolute, or joined to the
    /// manifest's directory (so relative to the working directory when the manifest path is).
    pub migrations: Option<PathBuf>,
}

/// What a grant allows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Reads only; enforced by the host.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

impl Access {
    /// Whether writes are allowed.
    pub fn allows_writes(self) -> bool {
        self == Access::ReadWrite
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    flow: RawFlow,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    databases: BTreeMap<Spanned<String>, RawGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: Spanned<String>,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    timeout_seconds: Option<Spanned<u64>>,
    memory_mb: Option<Spanned<u64>>,
    max_rows: Option<Spanned<u64>>,
    max_result_mb: Option<Spanned<u64>>,
    max_param_mb: Option<Spanned<u64>>,
    max_open_handles: Option<Spanned<u64>>,
    max_log_mb: Option<Spanned<u64>>,
    statement_timeout_seconds: Option<Spanned<u64>>,
    fuel: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    access: Access,
    migrations: Option<Spanned<String>>,
}

impl Manifest {
    /// The manifest path for a component: the same name with `.toml`.
    pub fn path_beside(wasm: &Path) -> PathBuf {
        wasm.with_extension("toml")
    }

    /// Reads and checks the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ManifestError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                ManifestError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Manifest::parse(&text, path)
    }

    /// Parses manifest text; `path` is used in errors and to resolve `migrations`.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
            ManifestError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let message = describe(e.message(), text, e.span().map(|s| s.start));
            invalid(e.span(), message)
        })?;

        let name = raw.flow.name.get_ref().trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(invalid(
                Some(raw.flow.name.span()),
                "flow name must be a non-empty single line".into(),
            ));
        }
        let flow = FlowInfo {
            name: name.to_string(),
            description: raw.flow.description,
        };

        let positive =
            |value: &Option<Spanned<u64>>, key: &str| -> Result<Option<u64>, ManifestError> {
                match value {
                    Some(v) if *v.get_ref() == 0 => Err(invalid(
                        Some(v.span()),
                        format!("{key} in [limits] must be greater than 0"),
                    )),
                    Some(v) => Ok(Some(*v.get_ref())),
                    None => Ok(None),
                }
            };
        let l = &raw.limits;
        let defaults = Limits::default();
        let mebibytes =
            |value: &Option<Spanned<u64>>, key: &str| -> Result<Option<u64>, ManifestError> {
                match positive(value, key)? {
                    None => Ok(None),
                    Some(mb) => mb.checked_mul(1 << 20).map(Some).ok_or_else(|| {
                        invalid(
                            value.as_ref().map(Spanned::span),
                            format!("{key} in [limits] is too large"),
                        )
                    }),
                }
            };
        let memory_bytes = match positive(&l.memory_mb, "memory-mb")? {
            None => defaults.memory_bytes,
            Some(mb) => usize::try_from(mb)
                .ok()
                .and_then(|mb| mb.checked_mul(1 << 20))
                .ok_or_else(|| {
                    invalid(
                        l.memory_mb.as_ref().map(Spanned::span),
                        "memory-mb in [limits] is too large for this machine".into(),
                    )
                })?,
        };
        let limits = Limits {
            timeout: positive(&l.timeout_seconds, "timeout-seconds")?
                .map_or(defaults.timeout, Duration::from_secs),
            memory_bytes,
            max_rows: positive(&l.max_rows, "max-rows")?.unwrap_or(defaults.max_rows),
            max_result_bytes: mebibytes(&l.max_result_mb, "max-result-mb")?
                .unwrap_or(defaults.max_result_bytes),
            max_param_bytes: mebibytes(&l.max_param_mb, "max-param-mb")?
                .unwrap_or(defaults.max_param_bytes),
            max_open_handles: match positive(&l.max_open_handles, "max-open-handles")? {
                None => defaults.max_open_handles,
                Some(n) => u32::try_from(n).map_err(|_| {
                    invalid(
                        l.max_open_handles.as_ref().map(Spanned::span),
                        "max-open-handles in [limits] is too large".into(),
                    )
                })?,
            },
            max_log_bytes: mebibytes(&l.max_log_mb, "max-log-mb")?
                .unwrap_or(defaults.max_log_bytes),
            statement_timeout: positive(&l.statement_timeout_seconds, "statement-timeout-seconds")?
                .map(Duration::from_secs),
            fuel: positive(&l.fuel, "fuel")?,
        };

        let base = path.parent().unwrap_or(Path::new(""));
        let mut databases = BTreeMap::new();
        let mut by_key: BTreeMap<String, String> = BTreeMap::new();
        // In file order, so a clash is reported at the second of the two names.
        let mut entries: Vec<_> = raw.databases.into_iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, grant) in entries {
            let key = key_name(name.get_ref());
            if !key.chars().any(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid(
                    Some(name.span()),
                    format!("database name '{}' needs a letter or digit", name.get_ref()),
                ));
            }
            if let Some(first) = by_key.get(&key) {
                return Err(invalid(
                    Some(name.span()),
                    format!(
                        "databases '{first}' and '{}' are the same database (both are \
                         configured by {{ENV}}_GLOBAL_{key}_* keys); keep one",
                        name.get_ref()
                    ),
                ));
            }
            by_key.insert(key, name.get_ref().clone());
            let migrations = match grant.migrations {
                None => None,
                Some(m) if grant.access == Access::ReadOnly => {
                    return Err(invalid(
                        Some(m.span()),
                        format!(
                            "[databases.{}] is read-only but owns migrations; owning \
                             migrations means writing, so use access = \"read-write\" or drop \
                             migrations",
                            name.get_ref()
                        ),
                    ));
                }
                Some(m) if m.get_ref().trim().is_empty() => {
                    return Err(invalid(
                        Some(m.span()),
                        format!("migrations of [databases.{}] is empty", name.get_ref()),
                    ));
                }
                Some(m) => Some(base.join(m.get_ref())),
            };
            databases.insert(
                name.into_inner(),
                Grant {
                    access: grant.access,
                    migrations,
                },
            );
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            flow,
            limits,
            databases,
        })
    }

    /// The grant for `name`, matched exactly as written in the manifest.
    pub fn grant(&self, name: &str) -> Option<&Grant> {
        self.databases.get(name)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where `offset` is, for messages: " in [table]" or " at the top level".
fn table_at(text: &str, offset: usize) -> String {
    let mut table = None;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if start > offset {
            break;
        }
        let t = line.trim();
        if t.starts_with('[')
            && let Some(end) = t.find(']')
        {
            table = Some(t[..=end].to_string());
        }
        start += line.len();
    }
    table.map_or_else(|| " at the top level".to_string(), |t| format!(" in {t}"))
}

/// The key assigned on the line containing `offset`, if that line is `key = value`.
fn key_at(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then_some(key)
}

/// Rewrites serde's messages in the manifest's vocabulary ("key", not "field"; no Rust types).
fn describe(message: &str, text: &str, offset: Option<usize>) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let within = offset.map(|o| table_at(text, o)).unwrap_or_default();
    if message.starts_with("unknown field") && !quoted.is_empty() {
        let expected = if quoted.len() > 1 {
            format!(", expected one of {}", quoted[1..].join(", "))
        } else {
            String::new()
        };
        return format!("unknown key '{}'{within}{expected}", quoted[0]);
    }
    if message.starts_with("missing field") && !quoted.is_empty() {
        return format!("missing key '{}'{within}", quoted[0]);
    }
    let message = message
        .trim_end()
        .replace('`', "'")
        .replace("expected u64", "expected a whole number greater than 0");
    match offset.and_then(|o| key_at(text, o)) {
        Some(key) => format!("{key}{within}: {message}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[flow]
name = "rpa1"
description = "Scores survey responses"

[limits]
timeout-seconds = 60
memory-mb = 64
max-rows = 500
max-result-mb = 2
max-param-mb = 1
max-open-handles = 5
max-log-mb = 3
statement-timeout-seconds = 7
fuel = 1000000000

[databases.rpa_db]
access = "read-write"
migrations = "../migrations/rpa_db"

[databases.SurveyHub]
access = "read-only"
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("flows/rpa1.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn full_manifest() {
        let m = parse(FULL).unwrap();
        assert_eq!(m.path, PathBuf::from("flows/rpa1.toml"));
        assert_eq!(m.flow.name, "rpa1");
        assert_eq!(
            m.flow.description.as_deref(),
            Some("Scores survey responses")
        );
        assert_eq!(
            m.limits,
            Limits {
                timeout: Duration::from_secs(60),
                memory_bytes: 64 << 20,
                max_rows: 500,
                max_result_bytes: 2 << 20,
                max_param_bytes: 1 << 20,
                max_open_handles: 5,
                max_log_bytes: 3 << 20,
                statement_timeout: Some(Duration::from_secs(7)),
                fuel: Some(1_000_000_000),
            }
        );
        let rpa = m.grant("rpa_db").unwrap();
        assert_eq!(rpa.access, Access::ReadWrite);
        assert_eq!(
            rpa.migrations,
            Some(PathBuf::from("flows/../migrations/rpa_db"))
        );
        let hub = m.grant("SurveyHub").unwrap();
        assert_eq!((hub.access, &hub.migrations), (Access::ReadOnly, &None));
        let abs = "[flow]\nname='x'\n[databases.a]\naccess='read-write'\nmigrations='/m/a'\n";
        let m2 = parse(abs).unwrap();
        assert_eq!(
            m2.grant("a").unwrap().migrations,
            Some(PathBuf::from("/m/a"))
        );
        // Exact names only; the config does the case-insensitive part.
        assert!(m.grant("surveyhub").is_none());
        assert!(m.grant("other").is_none());
    }

    #[test]
    fn defaults() {
        let m = parse("[flow]\nname = \"tiny\"\n").unwrap();
        let expected = Limits {
            timeout: Duration::from_secs(300),
            memory_bytes: 256 * 1024 * 1024,
            max_rows: 100_000,
            max_result_bytes: 64 << 20,
            max_param_bytes: 16 << 20,
            max_open_handles: 64,
            max_log_bytes: 8 << 20,
            statement_timeout: None,
            fuel: None,
        };
        assert_eq!((m.limits, Limits::default()), (expected, expected));
        assert!(m.databases.is_empty() && m.flow.description.is_none());
    }

    #[test]
    fn unknown_key_names_key_table_and_line() {
        let text = FULL.replace("access = \"read-write\"", "acces = \"read-write\"");
        let e = error(&text);
        assert!(
            e.contains(
                "unknown key 'acces' in [databases.rpa_db], expected one of access, migrations"
            ),
            "{e}"
        );
        assert!(e.starts_with("flows/rpa1.toml:18:1: "), "{e}");

        let e = error("[flow]\nname = \"x\"\nnmae = \"y\"\n");
        assert!(e.starts_with("flows/rpa1.toml:3:"), "{e}");
        assert!(e.contains("unknown key 'nmae' in [flow]"), "{e}");

        let e = error("[flow]\nname = \"x\"\n[limit]\n");
        assert!(e.contains("unknown key 'limit'"), "{e}");

        let e = error("[flow]\nname = \"x\"\n[limits]\ntimeout = 5\n");
        assert!(e.contains("unknown key 'timeout' in [limits]"), "{e}");
        assert!(e.contains("timeout-seconds"), "{e}");
    }

    /// (manifest after a valid `[flow]`, or whole when it starts with '!'; expected text)
    #[rustfmt::skip]
    const ERRORS: &[(&str, &str)] = &[
        ("[databases.a]\naccess = 'write'", ":4:10: access in [databases.a]: unknown variant 'write'"),
        ("!\n[databases.a]\naccess = 'read-only'", "missing key 'flow'"),
        ("!\n[flow]\ndescription = 'no'", "missing key 'name' in [flow]"),
        ("[databases.a]\nmigrations = 'm'", ":3:1: missing key 'access' in [databases.a]"),
        ("[limits]\nmax-rows = -1", ":4:12: max-rows in [limits]: invalid value"),
        ("!\n[flow\nname = 1", "flows/rpa1.toml:2:6: "),
        ("!\n[flow]\nname = '  '", ":3:8: flow name must be"),
        ("[databases.S]\naccess = 'read-only'\nmigrations = 'm'", ":5:14: [databases.S] is read-only"),
        ("[databases.\"--\"]\naccess = 'read-only'", "needs a letter or digit"),
        ("[databases.rpa-db]\naccess = 'read-only'\n[databases.rpa_db]\naccess = 'read-only'",
         ":5:12: databases 'rpa-db' and 'rpa_db' are the same database"),
    ];

    #[test]
    fn type_and_value_errors() {
        for (text, wanted) in ERRORS {
            let text = match text.strip_prefix('!') {
                Some(whole) => whole.to_string(),
                None => format!("[flow]\nname = 'x'\n{text}\n"),
            };
            let e = error(&text);
            assert!(e.contains(wanted), "{e}");
        }
    }

    #[test]
    fn names_that_share_config_keys_are_rejected() {
        let e = error(
            "[flow]\nname = \"x\"\n[databases.rpa_db]\naccess = \"read-only\"\n\
             [databases.RPA_DB]\naccess = \"read-write\"\n",
        );
        assert!(e.starts_with("flows/rpa1.toml:5:"), "{e}");
        assert!(
            e.contains("'rpa_db' and 'RPA_DB'") && e.contains("RPA_DB_*"),
            "{e}"
        );
    }

    #[test]
    fn limits_must_be_positive() {
        for key in [
            "timeout-seconds",
            "memory-mb",
            "max-rows",
            "max-result-mb",
            "max-param-mb",
            "max-open-handles",
            "max-log-mb",
            "statement-timeout-seconds",
            "fuel",
        ] {
            let e = error(&format!("[flow]\nname = \"x\"\n[limits]\n{key} = 0\n"));
            assert!(e.starts_with("flows/rpa1.toml:4:"), "{e}");
            assert!(
                e.contains(&format!("{key} in [limits] must be greater than 0")),
                "{e}"
            );
        }
    }

    #[test]
    fn files() {
        assert_eq!(
            Manifest::path_beside(Path::new("flows/rpa1.wasm")),
            PathBuf::from("flows/rpa1.toml")
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = Manifest::load(&missing).unwrap_err();
        assert!(matches!(e, ManifestError::NotFound { .. }));
        let e = e.to_string();
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("--manifest"),
            "{e}"
        );
        let path = dir.path().join("rpa1.toml");
        std::fs::write(&path, FULL).unwrap();
        let m = Manifest::load(&path).unwrap();
        assert_eq!(m.path, path);
        assert_eq!(
            m.grant("rpa_db").unwrap().migrations,
            Some(dir.path().join("../migrations/rpa_db"))
        );
    }
}
