//! `${name}` placeholders in migration files, replaced from configuration before a file is
//! split and run (its checksum is of the file as written, so changing a value does not make an
//! applied migration "changed").
//!
//! Off unless configured: with no placeholders configured, files run exactly as written, so a
//! `${...}` in an existing folder's PL/pgSQL string is not touched. Once on, every `${name}` in
//! a file must be known, or the migration is refused before anything runs.

use std::collections::BTreeMap;

use super::error::MigrateError;

/// Placeholder values by name (names compare case-insensitively), plus the built-ins
/// `flowhost:database`, `flowhost:table`, `flowhost:user` and `flowhost:filename`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    values: BTreeMap<String, String>,
}

impl Placeholders {
    /// Placeholders with these user values (names are lower-cased).
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        Placeholders {
            values: values
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    /// A copy with one more value (built-ins for one migration).
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut out = self.clone();
        out.values
            .insert(name.to_ascii_lowercase(), value.to_owned());
        out
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// `sql` with every `${name}` replaced. `Err((line, name))` for the first unknown name.
    pub fn replace(&self, sql: &str) -> Result<String, (usize, String)> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        let mut consumed = 0;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                break;
            };
            let name = &after[..end];
            if !is_name(name) {
                // Not a placeholder (`${` in text); keep it and look further on.
                out.push_str(&rest[..start + 2]);
                consumed += start + 2;
                rest = after;
                continue;
            }
            match self.values.get(&name.to_ascii_lowercase()) {
                Some(value) => {
                    out.push_str(&rest[..start]);
                    out.push_str(value);
                }
                None => {
                    let line = sql[..consumed + start].matches('\n').count() + 1;
                    return Err((line, name.to_owned()));
                }
            }
            consumed += start + 2 + end + 1;
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Replaces placeholders in one migration, with its built-ins.
    pub(crate) fn apply(
        &self,
        sql: &str,
        database: &str,
        script: &str,
    ) -> Result<String, MigrateError> {
        let file_name = script.rsplit('/').next().unwrap_or(script);
        let all = self.with("flowhost:filename", file_name);
        all.replace(sql).map_err(|(line, name)| {
            let mut known: Vec<&str> = all.names().collect();
            known.sort_unstable();
            MigrateError::UnknownPlaceholder {
                database: database.to_owned(),
                script: script.to_owned(),
                line,
                name,
                known: known.join(", "),
            }
        })
    }
}

/// Placeholder names: letters, digits, `_`, `.`, `-` and `:` (for the `flowhost:` built-ins).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Placeholders {
        Placeholders::new([
            ("Schema".to_owned(), "etl".to_owned()),
            ("owner".to_owned(), "rpa_owner".to_owned()),
        ])
    }

    #[test]
    fn replaces_known_names_case_insensitively() {
        let sql = "CREATE TABLE ${schema}.t (id int);\nALTER TABLE ${SCHEMA}.t OWNER TO ${owner};";
        assert_eq!(
            p().replace(sql).unwrap(),
            "CREATE TABLE etl.t (id int);\nALTER TABLE etl.t OWNER TO rpa_owner;"
        );
    }

    #[test]
    fn unknown_name_reports_its_line() {
        let sql = "SELECT 1;\n\nSELECT '${nope}';";
        assert_eq!(p().replace(sql), Err((3, "nope".to_owned())));
        let err = p().apply(sql, "rpa_db", "sub/V2__x.sql").unwrap_err();
        let text = err.to_string();
        for needle in [
            "V2__x.sql",
            "line 3",
            "${nope}",
            "flowhost:filename",
            "owner, schema",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }

    #[test]
    fn text_that_is_not_a_placeholder_is_kept() {
        for sql in [
            "SELECT '${'",
            "SELECT '${ not a name }'",
            "SELECT '$x {y}'",
            "${}",
        ] {
            assert_eq!(p().replace(sql).unwrap(), sql);
        }
        assert_eq!(p().replace("'${ x }' ${schema}").unwrap(), "'${ x }' etl");
    }

    #[test]
    fn built_ins_are_per_migration() {
        let out = p()
            .with("flowhost:database", "rpa_db")
            .apply(
                "-- ${flowhost:database} ${flowhost:filename}",
                "rpa_db",
                "a/V1__x.sql",
            )
            .unwrap();
        assert_eq!(out, "-- rpa_db V1__x.sql");
    }
}
