//! TEMPORARY stand-in until the migrate module lands (replaced, not committed).
use crate::db::{Database, DbError};
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct MigrateOptions {
    pub dry_run: bool,
    pub target: Option<Version>,
}
impl MigrateOptions {
    pub fn for_current_user() -> Self {
        Self::default()
    }
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct Version(String);
impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Version(s.into()))
    }
}
impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
}
#[derive(Debug, serde::Serialize)]
pub struct Applied {
    pub script: String,
}
#[derive(Debug, serde::Serialize)]
pub struct MigrateReport {
    pub applied: Vec<Applied>,
}
impl std::fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} applied", self.applied.len())
    }
}
pub struct MigrationStatus {
    pub current_version: Option<Version>,
    pub applied: Vec<Applied>,
    pub pending: Vec<Applied>,
}
impl MigrationStatus {
    pub fn problems(&self) -> Vec<String> {
        vec![]
    }
}
pub async fn migrate(
    _db: &Database,
    _dir: &Path,
    _o: &MigrateOptions,
) -> Result<MigrateReport, MigrateError> {
    Ok(MigrateReport { applied: vec![] })
}
pub async fn status(
    _db: &Database,
    _dir: Option<&Path>,
    _o: &MigrateOptions,
) -> Result<MigrationStatus, MigrateError> {
    Ok(MigrationStatus {
        current_version: None,
        applied: vec![],
        pending: vec![],
    })
}
