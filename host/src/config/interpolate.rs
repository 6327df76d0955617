//! `${VAR}` interpolation of `.env` values.
//!
//! Interpolation is lazy: only the values flowhost actually reads are expanded, so a `.env` that
//! also holds other environments' keys (whose secrets are absent on this machine) still loads.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use super::ConfigError;

/// Where a configuration value came from; shown in errors instead of the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `.env` file, with the line the key is on.
    File {
        /// The file as it was opened.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The process environment.
    Process,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Process => f.write_str("process environment"),
        }
    }
}

/// A value as written, before interpolation.
#[derive(Clone, Debug)]
pub struct RawValue {
    pub text: String,
    pub origin: Origin,
    /// Single-quoted file values and process-environment values are final: a `$` in a real
    /// password must not be mangled.
    pub literal: bool,
}

/// Everything `${VAR}` may refer to: the process environment first, then the files.
#[derive(Clone, Default)]
pub struct Vars {
    pub process: HashMap<String, String>,
    pub files: HashMap<String, RawValue>,
}

impl Vars {
    /// Expands `raw`, which is the value of `key`.
    pub fn resolve(&self, key: &str, raw: &RawValue) -> Result<String, ConfigError> {
        if raw.literal {
            return Ok(raw.text.clone());
        }
        let mut stack = vec![key.to_string()];
        self.expand(&raw.text, key, &raw.origin, &mut stack)
    }

    fn lookup(&self, var: &str, stack: &mut Vec<String>) -> Result<Option<String>, ConfigError> {
        if let Some(v) = self.process.get(var) {
            return Ok(Some(v.clone()));
        }
        let Some(raw) = self.files.get(var) else {
            return Ok(None);
        };
        if raw.literal {
            return Ok(Some(raw.text.clone()));
        }
        if stack.iter().any(|k| k == var) {
            return Err(ConfigError::InterpolationCycle {
                key: stack[0].clone(),
                var: var.to_string(),
            });
        }
        stack.push(var.to_string());
        let value = self.expand(&raw.text, var, &raw.origin, stack)?;
        stack.pop();
        Ok(Some(value))
    }

    fn expand(
        &self,
        text: &str,
        key: &str,
        origin: &Origin,
        stack: &mut Vec<String>,
    ) -> Result<String, ConfigError> {
        let invalid = |message: &str| ConfigError::InvalidInterpolation {
            key: key.to_string(),
            origin: origin.clone(),
            message: message.to_string(),
        };
        let mut out = String::with_capacity(text.len());
        let mut unset: Vec<String> = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body_and_tail) = after.strip_prefix('{') {
                let end = matching_brace(body_and_tail)
                    .ok_or_else(|| invalid("unterminated '${' (missing '}')"))?;
                let body = &body_and_tail[..end];
                rest = &body_and_tail[end + 1..];
                let (var, default) = split_default(body);
                if var.is_empty()
                    || var.starts_with(|c: char| c.is_ascii_digit())
                    || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(invalid(
                        "invalid variable name in '${...}' (letters, digits and '_' only; \
                         write '$$' for a literal '$')",
                    ));
                }
                let value = self.lookup(var, stack)?;
                let use_default = match (&value, default) {
                    (None, Some(_)) => true,
                    (Some(v), Some(Fallback::WhenUnsetOrEmpty(_))) => v.is_empty(),
                    _ => false,
                };
                match (value, default) {
                    (_, Some(d)) if use_default => {
                        out.push_str(&self.expand(d.text(), key, origin, stack)?);
                    }
                    (Some(v), _) => out.push_str(&v),
                    (None, _) => {
                        if !unset.iter().any(|v| v == var) {
                            unset.push(var.to_string());
                        }
                    }
                }
            } else {
                // A lone `$` (as in an unquoted `pa$word`) is kept.
                out.push('$');
                rest = after;
            }
        }
        if !unset.is_empty() {
            return Err(ConfigError::UnresolvedVariable {
                vars: unset,
                key: key.to_string(),
                origin: origin.clone(),
            });
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Fallback<'a> {
    /// `${VAR:-x}`: shell semantics, also used when VAR is set but empty.
    WhenUnsetOrEmpty(&'a str),
    /// `${VAR-x}`
    WhenUnset(&'a str),
}

impl<'a> Fallback<'a> {
    fn text(&self) -> &'a str {
        match self {
            Fallback::WhenUnsetOrEmpty(t) | Fallback::WhenUnset(t) => t,
        }
    }
}

fn split_default(body: &str) -> (&str, Option<Fallback<'_>>) {
    if let Some((var, d)) = body.split_once(":-")
        && !var.contains('-')
    {
        return (var, Some(Fallback::WhenUnsetOrEmpty(d)));
    }
    match body.split_once('-') {
        Some((var, d)) => (var, Some(Fallback::WhenUnset(d))),
        None => (body, None),
    }
}

/// Index of the `}` closing a `${`, allowing `${...}` nested in a default.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_value(text: &str, literal: bool) -> RawValue {
        RawValue {
            text: text.to_string(),
            origin: Origin::File {
                path: PathBuf::from(".env"),
                line: 7,
            },
            literal,
        }
    }

    fn vars(process: &[(&str, &str)], files: &[(&str, &str, bool)]) -> Vars {
        Vars {
            process: process
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: files
                .iter()
                .map(|(k, v, lit)| (k.to_string(), file_value(v, *lit)))
                .collect(),
        }
    }

    fn expand(v: &Vars, text: &str) -> Result<String, ConfigError> {
        v.resolve("THE_KEY", &file_value(text, false))
    }

    #[test]
    fn process_env_wins_over_files() {
        let v = vars(&[("PW", "from-env")], &[("PW", "from-file", false)]);
        assert_eq!(expand(&v, "u:${PW}@h").unwrap(), "u:from-env@h");
        let v = vars(&[], &[("PW", "from-file", false)]);
        assert_eq!(expand(&v, "u:${PW}@h").unwrap(), "u:from-file@h");
    }

    #[test]
    fn defaults_nest() {
        let v = vars(&[("B", "bee"), ("EMPTY", "")], &[]);
        assert_eq!(expand(&v, "${A:-${B:-x}}").unwrap(), "bee");
        assert_eq!(expand(&v, "${A:-${C:-deep}}!").unwrap(), "deep!");
        assert_eq!(expand(&v, "${EMPTY:-d}|${EMPTY-d}").unwrap(), "d|");
        assert_eq!(expand(&v, "${A:-}").unwrap(), "");
    }

    #[test]
    fn dollars() {
        let v = vars(&[], &[]);
        assert_eq!(expand(&v, "pa$$word $x $").unwrap(), "pa$word $x $");
    }

    #[test]
    fn file_vars_expand_recursively_unless_literal() {
        let v = vars(
            &[("HOST", "db")],
            &[("URL", "pg://${HOST}/x", false), ("RAW", "${HOST}", true)],
        );
        assert_eq!(expand(&v, "${URL}").unwrap(), "pg://db/x");
        assert_eq!(expand(&v, "${RAW}").unwrap(), "${HOST}");
        let lit = file_value("${HOST}", true);
        assert_eq!(v.resolve("K", &lit).unwrap(), "${HOST}");
    }

    #[test]
    fn missing_variable_names_var_and_key_but_no_value() {
        let v = vars(&[("OTHER", "s3cr3t-value")], &[]);
        let e = expand(&v, "postgresql://u:${DB_PASSWORD}@h/${OTHER}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DB_PASSWORD"), "{e}");
        assert!(e.contains("THE_KEY"), "{e}");
        assert!(e.contains(".env:7"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(!e.contains("postgresql://"), "{e}");
    }

    #[test]
    fn every_unset_variable_of_a_value_is_reported_at_once() {
        let v = vars(&[("PGHOST", "db")], &[]);
        let e = expand(
            &v,
            "postgresql://${PGUSER}:${PGPASSWORD}@${PGHOST}/${PGUSER}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("${PGUSER}, ${PGPASSWORD} in THE_KEY (.env:7) are not set"),
            "{e}"
        );
        assert!(!e.contains("PGHOST"), "{e}");
    }

    #[test]
    fn cycles_and_bad_syntax_are_errors() {
        let v = vars(&[], &[("A", "${B}", false), ("B", "${A}", false)]);
        let e = expand(&v, "${A}").unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        assert!(expand(&v, "${UNCLOSED").is_err());
        assert!(expand(&v, "${bad name}").is_err());
        assert!(expand(&v, "${}").is_err());
    }
}
