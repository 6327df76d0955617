//! `flowhost migrate new`: the next correctly numbered, empty migration file.

use std::path::{Path, PathBuf};

use super::{MigrateError, MigrationKind, discover};

/// Writes `V<next>__<Description>.sql` into `dir` (created if missing) and returns its path.
///
/// The next version is one more than the highest existing major version, keeping the existing
/// zero padding (`V001` is followed by `V002`), so files sort the same by name and by version.
pub fn new_migration(dir: &Path, description: &str) -> Result<PathBuf, MigrateError> {
    let words: Vec<String> = description
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(MigrateError::InvalidOption(
            "a new migration needs a description, e.g. flowhost migrate new rpa_db \"Add index on survey_id\"".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|source| MigrateError::Io {
        action: "create the migrations folder",
        path: dir.to_owned(),
        source,
    })?;
    let highest = discover(dir)?
        .versioned
        .into_iter()
        .rev()
        .find_map(|m| match m.name.kind {
            MigrationKind::Versioned(v) => Some(v.as_str().to_owned()),
            _ => None,
        });
    let path = dir.join(format!(
        "V{}__{}.sql",
        next_version(highest.as_deref()),
        words.join("_")
    ));
    let content = format!(
        "-- {}\n-- Each migration runs in its own transaction; statements end with ';'.\n\n",
        description.trim()
    );
    std::fs::write(&path, content).map_err(|source| MigrateError::Io {
        action: "write the new migration",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The major version after `highest` (`001` → `002`, `1.4` → `2`, none → `1`).
fn next_version(highest: Option<&str>) -> String {
    let Some(highest) = highest else {
        return "1".into();
    };
    let major: String = highest.chars().take_while(char::is_ascii_digit).collect();
    let next = major.parse::<u128>().map(|n| n + 1).unwrap_or(1);
    let width = if major.starts_with('0') {
        major.len()
    } else {
        0
    };
    format!("{next:0width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_version_keeps_padding_and_bumps_the_major() {
        assert_eq!(next_version(None), "1");
        assert_eq!(next_version(Some("001")), "002");
        assert_eq!(next_version(Some("099")), "100");
        assert_eq!(next_version(Some("9")), "10");
        assert_eq!(next_version(Some("1.4")), "2");
        assert_eq!(next_version(Some("2_1")), "3");
    }

    #[test]
    fn new_migration_writes_the_next_file_after_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("V001__Create.sql"),
            "CREATE TABLE a (id INTEGER);",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("V002__More.sql"),
            "CREATE TABLE b (id INTEGER);",
        )
        .unwrap();
        let path = new_migration(dir.path(), "Add index on survey_id!").unwrap();
        assert_eq!(
            path.file_name().unwrap(),
            "V003__Add_index_on_survey_id.sql"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-- Add index on survey_id!"));
        // The scaffold itself is a valid, discoverable migration.
        assert_eq!(discover(dir.path()).unwrap().versioned.len(), 3);
        assert!(new_migration(dir.path(), "   ").is_err());
    }
}
