//! `flowhost db`: looking inside the configured databases. `db stats` reports table and index
//! statistics, the slowest statements and what to do about them (see [`crate::dbstats`]), as
//! tables or one `--json` document.

use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::envelope;
use crate::Error;
use crate::config::{Config, DatabaseTarget};
use crate::db::DatabaseSet;
use crate::dbstats::{self, DbStats, human_bytes};

#[derive(Debug, Args)]
pub(super) struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Table statistics (rows, live and dead tuples, last vacuum and analyze, size), unused and
    /// duplicate indexes, foreign keys without an index, the slowest statements (PostgreSQL
    /// with pg_stat_statements, SQL Server with VIEW SERVER STATE) and recommendations. What a
    /// backend cannot tell is listed as a note. Exit 3 when a database cannot be read.
    Stats {
        /// The database to inspect (default: every configured database).
        db: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl DbArgs {
    pub(super) fn json(&self) -> bool {
        match &self.command {
            DbCommand::Stats { json, .. } => *json,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    environment: String,
    collected_at: String,
    databases: Vec<DatabaseStats>,
}

#[derive(Debug, Serialize)]
struct DatabaseStats {
    name: String,
    backend: Option<String>,
    /// Where the database is, without credentials.
    target: Option<String>,
    /// Why there are no statistics; never holds a secret.
    error: Option<String>,
    /// `config` when the database is not usably configured, `database` when it could not be
    /// read.
    error_kind: Option<String>,
    #[serde(flatten)]
    stats: Option<DbStats>,
}

pub(super) async fn db(config: Arc<Config>, args: DbArgs) -> Result<u8, Error> {
    let DbCommand::Stats { db, json } = args.command;
    let names = match db {
        Some(name) => vec![name],
        // As `health` names them: the spelling of the manifests and migration folders.
        None => super::health_cmd::names_as_written(
            &config,
            std::path::Path::new("flows"),
            std::path::Path::new("migrations"),
        ),
    };
    let databases = DatabaseSet::new(config.clone());
    let results = futures_util::future::join_all(
        names.iter().map(|name| stats_of(&config, &databases, name)),
    )
    .await;
    databases.close_all().await;
    let failing: Vec<_> = results
        .iter()
        .filter(|d| d.error.is_some())
        .map(|d| (d.name.as_str(), d.error_kind.as_deref(), d.error.as_deref()))
        .collect();
    let (code, error) = envelope::per_database_failure(&failing);
    let report = Report {
        environment: config.environment.clone(),
        collected_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        databases: results,
    };
    if json {
        envelope::print(error, code, &report);
    } else {
        print!("{}", render(&report));
    }
    Ok(code)
}

async fn stats_of(config: &Config, databases: &DatabaseSet, name: &str) -> DatabaseStats {
    let mut out = DatabaseStats {
        name: name.to_owned(),
        backend: None,
        target: None,
        error: None,
        error_kind: None,
        stats: None,
    };
    // Statistics of an embedded database that does not exist would be of one made for them.
    if let Ok(cfg) = config.database(name)
        && cfg.embedded
        && let DatabaseTarget::Sqlite { path, .. } = &cfg.target
        && !path.exists()
    {
        out.error = Some(format!(
            "there is no database '{name}': the embedded default has no {} (databases here: \
             {}); a run or `flowhost migrate {name}` creates it",
            path.display(),
            list(&config.database_names())
        ));
        out.error_kind = Some("config".into());
        return out;
    }
    let db = match databases.get(name).await {
        Ok(db) => db,
        Err(e) => {
            out.error = Some(e.to_string());
            out.error_kind = Some(e.kind());
            return out;
        }
    };
    out.backend = Some(db.backend().as_str().to_owned());
    out.target = Some(db.target().to_owned());
    match dbstats::collect(&db).await {
        Ok(stats) => out.stats = Some(stats),
        Err(e) => {
            out.error = Some(e.to_string());
            out.error_kind = Some("database".into());
        }
    }
    out
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The human report: per database a table of tables, one of indexes worth a look, the slow
/// statements, then recommendations and notes.
fn render(report: &Report) -> String {
    let mut out = format!("environment: {}\n", report.environment);
    if report.databases.is_empty() {
        out.push_str("\nno databases are configured for this environment\n");
    }
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let size = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), human_bytes);
    // The newer of the manual and automatic times; `otherwise` when neither is known.
    let when = |a: &Option<String>, b: &Option<String>, otherwise: &str| {
        let newest = a.iter().chain(b).max().cloned();
        newest.map_or_else(|| otherwise.to_owned(), |t| t.chars().take(19).collect())
    };
    for d in &report.databases {
        out.push_str(&format!("\n== {}", d.name));
        if let Some(target) = &d.target {
            out.push_str(&format!(" ({target})"));
        }
        let Some(stats) = &d.stats else {
            out.push_str(&format!(
                "\n  error: {}\n",
                d.error.as_deref().unwrap_or_default()
            ));
            continue;
        };
        if let Some(bytes) = stats.database_bytes {
            out.push_str(&format!(", {}", human_bytes(bytes)));
        }
        out.push_str("\n\n");
        let header = [
            "TABLE",
            "ROWS",
            "DEAD",
            "LAST VACUUM",
            "LAST ANALYZE",
            "SIZE",
        ];
        let rows = stats
            .tables
            .iter()
            .map(|t| {
                vec![
                    format!("{}.{}", t.schema, t.name),
                    opt(t.rows),
                    opt(t.dead_tuples),
                    // Only PostgreSQL keeps vacuum times (and tuple counts with them).
                    when(
                        &t.last_vacuum,
                        &t.last_autovacuum,
                        if t.dead_tuples.is_some() {
                            "never"
                        } else {
                            "-"
                        },
                    ),
                    when(
                        &t.last_analyze,
                        &t.last_autoanalyze,
                        match t.analyzed {
                            Some(true) => "yes",
                            Some(false) => "never",
                            None => "-",
                        },
                    ),
                    size(t.total_bytes),
                ]
            })
            .collect();
        out.push_str(&crate::migrate::table(&header, rows));
        let rows: Vec<Vec<String>> = stats
            .indexes
            .iter()
            .filter(|i| i.unused || i.duplicate_of.is_some())
            .map(|i| {
                let finding = match &i.duplicate_of {
                    Some(keep) => format!("duplicates {keep}"),
                    None => "unused".into(),
                };
                vec![
                    format!("{}.{}", i.schema, i.name),
                    i.table.clone(),
                    i.columns.join(", "),
                    size(i.size_bytes),
                    opt(i.scans),
                    finding,
                ]
            })
            .collect();
        if !rows.is_empty() {
            out.push('\n');
            let header = ["INDEX", "TABLE", "COLUMNS", "SIZE", "SCANS", "FINDING"];
            out.push_str(&crate::migrate::table(&header, rows));
        }
        if let Some(slow) = stats.slow_statements.as_ref().filter(|s| !s.is_empty()) {
            out.push('\n');
            let header = ["MEAN ms", "CALLS", "TOTAL ms", "STATEMENT"];
            let rows = slow
                .iter()
                .map(|s| {
                    vec![
                        format!("{:.2}", s.mean_ms),
                        s.calls.to_string(),
                        format!("{:.1}", s.total_ms),
                        s.query.chars().take(80).collect(),
                    ]
                })
                .collect();
            out.push_str(&crate::migrate::table(&header, rows));
        }
        if stats.recommendations.is_empty() {
            out.push_str("\nrecommendations: none\n");
        } else {
            out.push_str("\nrecommendations:\n");
            for r in &stats.recommendations {
                out.push_str(&format!("  {r}\n"));
            }
        }
        if !stats.notes.is_empty() {
            out.push_str("notes:\n");
        }
        for note in &stats.notes {
            out.push_str(&format!("  {note}\n"));
        }
    }
    out
}
