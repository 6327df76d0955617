//! Finding migration files in `migrations/<db>/` and reading them.
//!
//! Every `.sql` file in the folder (and its sub-folders, as Flyway scans a location) is meant to
//! run, so one whose name does not parse is an error that names it rather than a file silently
//! skipped. Other files (README.md, .gitkeep) are ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use super::checksum::{self, Checksum};
use super::error::{FileProblem, MigrateError};
use super::version::{Version, VersionError};

/// The file suffix of SQL migrations.
pub const SQL_SUFFIX: &str = ".sql";

/// What kind of migration a file name declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationKind {
    /// `V<version>__<description>.sql`: runs once, in version order.
    Versioned(Version),
    /// `R__<description>.sql`: (re-)applied whenever its checksum changes, after every
    /// versioned migration. Identified by its description.
    Repeatable,
    /// `U<version>__<description>.sql`: undoes version `<version>` (`flowhost migrate undo`).
    Undo(Version),
}

impl MigrationKind {
    pub fn version(&self) -> Option<&Version> {
        match self {
            MigrationKind::Versioned(v) | MigrationKind::Undo(v) => Some(v),
            MigrationKind::Repeatable => None,
        }
    }

    /// How the kind is named in messages.
    pub fn label(&self) -> &'static str {
        match self {
            MigrationKind::Versioned(_) => "versioned migration (V)",
            MigrationKind::Repeatable => "repeatable migration (R__)",
            MigrationKind::Undo(_) => "undo migration (U)",
        }
    }
}

/// A parsed migration file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationName {
    pub kind: MigrationKind,
    /// The description with `_` written as spaces: `Create_index` → `Create index`.
    pub description: String,
}

/// Parses a file name. `Ok(None)`: not a SQL file, not a migration. `Err`: a SQL file whose
/// name is not a valid migration name, with the reason.
pub fn parse_file_name(name: &str) -> Result<Option<MigrationName>, String> {
    let Some(stem) = name.strip_suffix(SQL_SUFFIX) else {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(SQL_SUFFIX) {
            return Err(format!("write the suffix in lowercase ('{SQL_SUFFIX}')"));
        }
        return Ok(None);
    };
    let expected = "expected V<version>__<description>.sql (like V1__Create_table.sql)";
    let mut chars = stem.chars();
    let prefix = chars
        .next()
        .ok_or_else(|| format!("the name is empty; {expected}"))?;
    let rest = chars.as_str();
    match prefix {
        'V' | 'U' => {
            let Some((version, description)) = rest.split_once("__") else {
                return Err(format!(
                    "no '__' (two underscores) between the version and the description; {expected}"
                ));
            };
            let version = Version::parse(version).map_err(|e| match e {
                VersionError::Empty => format!("no version after '{prefix}'; {expected}"),
                e @ VersionError::Invalid(_) => format!("{e}; {expected}"),
            })?;
            let kind = if prefix == 'V' {
                MigrationKind::Versioned(version)
            } else {
                MigrationKind::Undo(version)
            };
            Ok(Some(MigrationName {
                kind,
                description: describe(description),
            }))
        }
        'R' => match rest.strip_prefix("__") {
            Some(description) => Ok(Some(MigrationName {
                kind: MigrationKind::Repeatable,
                description: describe(description),
            })),
            None => Err(
                "repeatable migrations have no version and are named R__<description>.sql".into(),
            ),
        },
        'v' | 'u' | 'r' => Err(format!(
            "the prefix must be an uppercase '{}'; {expected}",
            prefix.to_ascii_uppercase()
        )),
        _ => Err(format!(
            "not a migration name; {expected}, or move the file out of the migrations folder"
        )),
    }
}

fn describe(raw: &str) -> String {
    raw.replace('_', " ")
}

/// One migration file, read and checksummed.
#[derive(Debug, Clone)]
pub struct Migration {
    pub name: MigrationName,
    /// The path relative to the migrations folder, `/`-separated: what the history records.
    pub script: String,
    /// Where the file is.
    pub path: PathBuf,
    /// The file's bytes as read (other tools' checksums are computed over these).
    pub raw: Vec<u8>,
    /// The normalised text that runs (BOM stripped, CRLF as LF).
    pub sql: String,
    /// flowhost's checksum of the file.
    pub checksum: Checksum,
}

impl Migration {
    pub fn version(&self) -> Option<&Version> {
        self.name.kind.version()
    }

    pub fn description(&self) -> &str {
        &self.name.description
    }

    /// The checksum under another algorithm (for histories written by other tools).
    pub fn checksum_with(&self, algorithm: checksum::ChecksumAlgorithm) -> Checksum {
        if algorithm == self.checksum.algorithm {
            self.checksum.clone()
        } else {
            algorithm.compute(&self.raw)
        }
    }
}

impl fmt::Display for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.script)
    }
}

/// The migrations of one folder, by kind.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// Versioned migrations, in version order, versions unique.
    pub versioned: Vec<Migration>,
    /// Repeatable migrations, ordered by description (the order they are applied in, as
    /// Flyway does), descriptions unique.
    pub repeatable: Vec<Migration>,
    /// Undo migrations, in version order, versions unique.
    pub undo: Vec<Migration>,
}

impl Discovered {
    /// The undo migration for `version`, if there is one.
    pub fn undo_for(&self, version: &Version) -> Option<&Migration> {
        self.undo.iter().find(|m| m.version() == Some(version))
    }
}

/// Reads every migration in `dir`. All problems with the files are reported together.
pub fn discover(dir: &Path) -> Result<Discovered, MigrateError> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut problems = Vec::new();
    let mut found = Discovered::default();
    for (script, path) in files {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let name = match parse_file_name(file_name) {
            Ok(Some(name)) => name,
            Ok(None) => continue,
            Err(reason) => {
                problems.push(FileProblem::BadName { file: path, reason });
                continue;
            }
        };
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                problems.push(FileProblem::Unreadable {
                    file: path,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let sql = match String::from_utf8(checksum::normalise(&raw).into_owned()) {
            Ok(sql) => sql,
            Err(e) => {
                problems.push(FileProblem::NotUtf8 {
                    file: path,
                    offset: e.utf8_error().valid_up_to(),
                });
                continue;
            }
        };
        let checksum = Checksum::of(&raw);
        let list = match name.kind {
            MigrationKind::Versioned(_) => &mut found.versioned,
            MigrationKind::Repeatable => &mut found.repeatable,
            MigrationKind::Undo(_) => &mut found.undo,
        };
        list.push(Migration {
            name,
            script,
            path,
            raw,
            sql,
            checksum,
        });
    }
    let by_version =
        |a: &Migration, b: &Migration| a.version().cmp(&b.version()).then(a.script.cmp(&b.script));
    found.versioned.sort_by(by_version);
    found.undo.sort_by(by_version);
    found.repeatable.sort_by(|a, b| {
        a.description()
            .cmp(b.description())
            .then(a.script.cmp(&b.script))
    });
    for (list, what) in [(&found.versioned, "version"), (&found.undo, "undo version")] {
        for pair in list.windows(2) {
            if pair[0].version() == pair[1].version() {
                problems.push(FileProblem::Duplicate {
                    key: format!("{what} {}", pair[1].version().expect("has a version")),
                    first: pair[0].path.clone(),
                    second: pair[1].path.clone(),
                });
            }
        }
    }
    for pair in found.repeatable.windows(2) {
        if pair[0].description() == pair[1].description() {
            problems.push(FileProblem::Duplicate {
                key: format!("the repeatable description '{}'", pair[1].description()),
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(MigrateError::InvalidFiles {
            dir: dir.to_owned(),
            problems,
        })
    }
}

/// Every regular file under `dir` (hidden entries skipped), with its `/`-separated path relative
/// to `root`.
fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), MigrateError> {
    let io_error = |path: &Path, source| MigrateError::Io {
        action: "read the migrations folder",
        path: path.to_owned(),
        source,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a linked file or folder counts as what it points at.
        let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
        if meta.is_dir() {
            collect_files(root, &path, out)?;
        } else if meta.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let script = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((script, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versioned(name: &str) -> (Version, String) {
        match parse_file_name(name).unwrap().unwrap() {
            MigrationName {
                kind: MigrationKind::Versioned(v),
                description,
            } => (v, description),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn parses_versions_and_descriptions() {
        let (v, d) = versioned("V001__Create_processed_surveys.sql");
        assert_eq!(v, Version::parse("1").unwrap());
        assert_eq!(v.as_str(), "001");
        assert_eq!(d, "Create processed surveys");
        let (v, d) = versioned("V1_2__Add_index.sql");
        assert_eq!(v.as_str(), "1.2");
        assert_eq!(d, "Add index");
        let (v, d) = versioned("V1.10__x.sql");
        assert_eq!(v.as_str(), "1.10");
        assert_eq!(d, "x");
        // The first `__` ends the version; the rest is description.
        let (v, d) = versioned("V3__a__b.sql");
        assert_eq!(v.as_str(), "3");
        assert_eq!(d, "a  b");
    }

    #[test]
    fn other_kinds_are_recognised() {
        let r = parse_file_name("R__Refresh_views.sql").unwrap().unwrap();
        assert_eq!(r.kind, MigrationKind::Repeatable);
        assert_eq!(r.description, "Refresh views");
        let u = parse_file_name("U2__Drop_index.sql").unwrap().unwrap();
        assert_eq!(u.kind, MigrationKind::Undo(Version::parse("2").unwrap()));
    }

    #[test]
    fn non_sql_files_are_not_migrations() {
        for name in ["README.md", "V1__x.sql.bak", "notes.txt", "V1__x"] {
            assert_eq!(parse_file_name(name), Ok(None), "{name}");
        }
    }

    #[test]
    fn malformed_names_are_errors_with_reasons() {
        let cases = [
            ("V1_x.sql", "no '__'"),
            ("v2__a.sql", "uppercase 'V'"),
            ("V__a.sql", "no version"),
            ("V1a__x.sql", "not a version"),
            ("V1..2__x.sql", "not a version"),
            ("R1__x.sql", "repeatable migrations have no version"),
            ("create_tables.sql", "not a migration name"),
            ("V1__x.SQL", "lowercase"),
            (".sql", "empty"),
        ];
        for (name, reason) in cases {
            match parse_file_name(name) {
                Err(r) => assert!(r.contains(reason), "{name}: {r}"),
                other => panic!("{name} should be refused, got {other:?}"),
            }
        }
    }

    fn write(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    #[test]
    fn discovers_in_numeric_order_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V10__ten.sql", "select 10;");
        write(dir.path(), "V2__two.sql", "select 2;");
        write(dir.path(), "V1.10__one_ten.sql", "select 1.10;");
        write(dir.path(), "V1.2__one_two.sql", "\u{feff}select 1.2;\r\n");
        write(dir.path(), "sub/V3__three.sql", "select 3;");
        write(dir.path(), "README.md", "docs");
        write(dir.path(), ".hidden/V9__x.sql", "ignored");
        let found = discover(dir.path()).unwrap();
        let scripts: Vec<&str> = found.versioned.iter().map(|m| m.script.as_str()).collect();
        assert_eq!(
            scripts,
            [
                "V1.2__one_two.sql",
                "V1.10__one_ten.sql",
                "V2__two.sql",
                "sub/V3__three.sql",
                "V10__ten.sql"
            ]
        );
        let first = &found.versioned[0];
        assert_eq!(first.sql, "select 1.2;\n");
        assert_eq!(first.checksum, Checksum::of(b"select 1.2;\n"));
        assert_eq!(first.description(), "one two");
    }

    #[test]
    fn reports_every_bad_name_and_duplicate_together() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1__a.sql", "select 1;");
        write(dir.path(), "V001__b.sql", "select 1;");
        write(dir.path(), "V1_x.sql", "");
        write(dir.path(), "v2__a.sql", "");
        write(dir.path(), "R__views.sql", "");
        write(dir.path(), "sub/R__views.sql", "");
        write(dir.path(), "U1__a.sql", "");
        write(dir.path(), "U01__b.sql", "");
        let err = discover(dir.path()).unwrap_err();
        let MigrateError::InvalidFiles { problems, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(problems.len(), 5, "{err}");
        let text = err.to_string();
        for needle in [
            "V1_x.sql",
            "v2__a.sql",
            "V001__b.sql",
            "V1__a.sql",
            "both have version 1",
            "both have undo version 1",
            "both have the repeatable description 'views'",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in: {text}");
        }
        assert!(problems.iter().any(|p| matches!(
            p,
            FileProblem::Duplicate { first, second, .. }
                if first.ends_with("V001__b.sql") && second.ends_with("V1__a.sql")
        )));
    }

    #[test]
    fn sorts_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V2__b.sql", "select 2;");
        write(dir.path(), "V1__a.sql", "select 1;");
        write(dir.path(), "R__b_views.sql", "select 'r';");
        write(dir.path(), "R__a_functions.sql", "select 'r';");
        write(dir.path(), "U2__b.sql", "select -2;");
        write(dir.path(), "U1__a.sql", "select -1;");
        let found = discover(dir.path()).unwrap();
        let scripts =
            |list: &[Migration]| -> Vec<String> { list.iter().map(|m| m.script.clone()).collect() };
        assert_eq!(scripts(&found.versioned), ["V1__a.sql", "V2__b.sql"]);
        assert_eq!(
            scripts(&found.repeatable),
            ["R__a_functions.sql", "R__b_views.sql"]
        );
        assert_eq!(scripts(&found.undo), ["U1__a.sql", "U2__b.sql"]);
        let two = Version::parse("002").unwrap();
        assert_eq!(found.undo_for(&two).unwrap().script, "U2__b.sql");
        assert!(found.undo_for(&Version::parse("3").unwrap()).is_none());
        assert_eq!(found.repeatable[0].version(), None);
    }

    #[test]
    fn missing_folder_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = discover(&missing).unwrap_err();
        assert!(matches!(err, MigrateError::Io { .. }));
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn non_utf8_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("V1__bin.sql"), b"select '\xff';").unwrap();
        let err = discover(dir.path()).unwrap_err();
        assert!(err.to_string().contains("V1__bin.sql"), "{err}");
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }
}
