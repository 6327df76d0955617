//! `flowhost config`: where configuration comes from, so "which database will this run
//! touch?" has an answer before anything runs. Targets print as `DatabaseTarget`'s `Display`,
//! which carries no user, password or option.

use std::path::Path;
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};

use crate::config::{Config, EnvFile};
use crate::{Error, exit};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the report as one JSON document.
    #[arg(long)]
    pub(super) json: bool,
}

/// Prints the report and returns the exit code: 2 when the configuration cannot be loaded
/// or a database in it is not usable.
pub fn show(loaded: Result<Arc<Config>, Error>, args: &ConfigArgs) -> u8 {
    let report = match loaded {
        Ok(config) => report(&config),
        Err(e) => json!({
            "ok": false,
            "error": { "kind": "config", "message": e.to_string() },
        }),
    };
    let ok = report["ok"].as_bool() == Some(true);
    let code = if ok { exit::OK } else { exit::USAGE };
    if args.json {
        let error = report["error"]
            .as_object()
            .map(|e| super::envelope::ErrorBody {
                kind: e["kind"].as_str().unwrap_or("config").to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            });
        super::envelope::print(error, code, &report);
    } else {
        print_text(&report);
    }
    code
}

fn report(config: &Config) -> Value {
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown = |path: &Path| {
        path.strip_prefix(&cwd)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let files: Vec<Value> = config
        .files()
        .iter()
        .map(|EnvFile { path, found_as }| json!({ "path": shown(path), "found_as": found_as.describe() }))
        .collect();
    let mut failed = None;
    let databases: Vec<Value> = config
        .configured_databases()
        .into_iter()
        .map(|(key, file)| {
            let name = key.to_ascii_lowercase();
            let from = file
                .as_deref()
                .map_or_else(|| "the process environment".to_owned(), shown);
            match config.database(&name) {
                Ok(db) => json!({
                    "name": name,
                    "backend": db.target.kind().to_string(),
                    "target": db.target.to_string(),
                    "connection_string_from": from,
                    "error": null,
                }),
                Err(e) => {
                    failed.get_or_insert_with(|| e.to_string());
                    json!({
                        "name": name,
                        "connection_string_from": from,
                        "error": e.to_string(),
                    })
                }
            }
        })
        .collect();
    let others: serde_json::Map<String, Value> = config
        .environments()
        .iter()
        .filter(|(env, _)| **env != config.environment)
        .map(|(env, places)| {
            let places: Vec<String> = places.iter().map(|p| shown(Path::new(p))).collect();
            (env.clone(), json!(places))
        })
        .collect();
    json!({
        "ok": failed.is_none(),
        "error": failed.map(|message| json!({ "kind": "config", "message": message })),
        "environment": config.environment,
        "selected_by": config.selected_by(),
        "files": files,
        "databases": databases,
        "embedded_default": config.is_embedded_default(),
        "data_dir": config.data_dir().display().to_string(),
        "other_environments": others,
        "warnings": config.warnings(),
    })
}

fn print_text(report: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if report.get("environment").is_none() {
        println!("error: {}", text(&report["error"]["message"]));
        return;
    }
    println!(
        "environment: {} (selected by {})",
        text(&report["environment"]),
        text(&report["selected_by"])
    );
    let files = report["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        println!("files read: none");
    } else {
        println!("files read (a later one wins; the process environment wins over all):");
        for f in &files {
            println!("  {:<40} {}", text(&f["path"]), text(&f["found_as"]));
        }
    }
    let databases = report["databases"].as_array().cloned().unwrap_or_default();
    if report["embedded_default"].as_bool() == Some(true) {
        println!(
            "databases: none configured, for any environment; each database a flow names is an \
             embedded SQLite file under {}/",
            text(&report["data_dir"])
        );
    } else if databases.is_empty() {
        println!(
            "databases: none configured for {}",
            text(&report["environment"])
        );
    } else {
        println!("databases:");
        for db in &databases {
            let what = if db["error"].is_null() {
                text(&db["target"])
            } else {
                format!("error: {}", text(&db["error"]))
            };
            println!(
                "  {:<16} {}  (connection string from {})",
                text(&db["name"]),
                what,
                text(&db["connection_string_from"])
            );
        }
    }
    if let Some(others) = report["other_environments"].as_object()
        && !others.is_empty()
    {
        println!("other environments configured (select one with --env NAME or FLOWHOST_ENV):");
        for (env, places) in others {
            let places: Vec<String> = places
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            println!("  {env:<16} in {}", places.join(", "));
        }
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", text(warning));
    }
}
