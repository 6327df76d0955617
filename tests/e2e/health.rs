//! `flowhost health`: per-database status, and never a secret in the output.

use serde_json::Value;

use crate::support::*;

const SECRET: &str = "S3cret-Passw0rd";

#[test]
fn healthy_and_unreachable_databases_are_reported_without_secrets() {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_WAREHOUSE_CONNECTION_STRING=postgresql://postgres:{SECRET}@127.0.0.1:5432/{}\n\
             DEVELOPMENT_GLOBAL_ARCHIVE_CONNECTION_STRING=postgresql+psycopg2://etl:${{ARCHIVE_PASSWORD}}@127.0.0.1:1/archive\n\
             DEVELOPMENT_GLOBAL_ARCHIVE_POOL_TIMEOUT=2\n\
             DEVELOPMENT_GLOBAL_ARCHIVE_CONNECT_TIMEOUT=2\n\
             ARCHIVE_PASSWORD={SECRET}-2\n",
            db.name
        ),
    );

    let out = project.flowhost(&["health", "--json"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(SECRET), "a secret leaked:\n{all}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unhealthy database makes the exit code 3:\n{all}"
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["status"], "unhealthy");
    let by_name = |name: &str| {
        report["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"].as_str().unwrap().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{name} missing from {report}"))
            .clone()
    };
    let warehouse = by_name("warehouse");
    assert_eq!(warehouse["status"], "healthy", "{warehouse}");
    assert_eq!(warehouse["connected"], true);
    assert_eq!(warehouse["query_ok"], true);
    assert!(warehouse["response_time_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(warehouse["backend"], "postgresql");
    let version = warehouse["server_version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("PostgreSQL 1"),
        "the server's own version: {warehouse}"
    );
    assert!(warehouse["pool"]["max"].as_u64().unwrap() >= 1);
    let archive = by_name("archive");
    assert!(archive["server_version"].is_null(), "{archive}");
    assert_eq!(archive["status"], "unhealthy", "{archive}");
    assert_eq!(archive["connected"], false);
    assert!(!archive["error"].as_str().unwrap().is_empty());

    // The human table says the same, also without secrets.
    let out = project.flowhost(&["health"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(SECRET), "a secret leaked:\n{all}");
    assert!(stdout(&out).contains("unhealthy"), "{all}");
    assert!(stdout(&out).contains("healthy"), "{all}");
}

#[test]
fn health_reports_migration_status_of_the_embedded_default() {
    let project = Project::new();
    project.write(
        "migrations/rpa_db/V1__Create.sql",
        "CREATE TABLE a (id INTEGER);\n",
    );
    project.write(
        "migrations/rpa_db/V2__More.sql",
        "CREATE TABLE b (id INTEGER);\n",
    );

    let before: Value = json_ok(&project.flowhost(&["health", "rpa_db", "--json"]));
    let db = &before["databases"][0];
    assert_eq!(db["status"], "degraded", "pending migrations degrade: {db}");
    assert_eq!(db["migrations"]["pending"], 2, "{db}");

    json_ok_status(&project.flowhost(&["migrate", "rpa_db"]));
    let after: Value = json_ok(&project.flowhost(&["health", "rpa_db", "--json"]));
    let db = &after["databases"][0];
    assert_eq!(db["status"], "healthy", "{db}");
    assert_eq!(db["migrations"]["pending"], 0);
    assert_eq!(db["migrations"]["current_version"], "2");
}

fn json_ok_status(out: &std::process::Output) {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
}
