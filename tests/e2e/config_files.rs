//! First contact with a project laid out like the Python system's: per-environment files in
//! `core/envs/`, found without flags, and never a silent run on the embedded demo databases
//! when the user configured another environment.

use serde_json::{Value, json};

use crate::support::*;

const PRODUCTION: &str = "core/envs/.env.production";

/// A project whose only configuration is a production file; the probe is granted `lab`.
fn production_only(db_url: &str) -> (Project, std::path::PathBuf) {
    let project = Project::new();
    project.write(
        PRODUCTION,
        &format!(
            "PRODUCTION_GLOBAL_LAB_CONNECTION_STRING={}\n",
            db_url.replace("postgres@", "postgres:${LAB_PASSWORD:-}@")
        ),
    );
    let manifest = project.write(
        "probe.toml",
        "[flow]\nname = \"probe\"\n[databases.lab]\naccess = \"read-write\"\n",
    );
    (project, manifest)
}

fn steps() -> String {
    json!({ "steps": [{ "op": "query", "db": "lab", "sql": "SELECT current_database()" }] })
        .to_string()
}

#[test]
fn a_production_file_is_never_run_as_the_development_default() {
    let db = PgDatabase::create();
    let (project, manifest) = production_only(&db.url());
    let input = project.write("input.json", &steps());
    let input = input.to_str().unwrap();

    // The report: the production file passed, no environment selected.
    let out = project.run_component(
        &probe_wasm(),
        &manifest,
        &["--env-file", PRODUCTION, "--input-file", input],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--env production"), "{err}");
    assert!(
        !project.path().join(".flowhost/lab.sqlite").exists(),
        "no embedded database was created"
    );

    // Without the flag the file is still seen, and still not run as development.
    let out = project.run_component(&probe_wasm(), &manifest, &["--input-file", input]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not configured for environment 'development'")
            && err.contains("production (in ")
            && err.contains(".env.production"),
        "{err}"
    );
    assert!(!project.path().join(".flowhost/lab.sqlite").exists());

    // Selecting production finds core/envs/.env.production by name and runs there.
    let out = project.run_component(
        &probe_wasm(),
        &manifest,
        &["--env", "production", "--input-file", input],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = probe_results(&out);
    assert_eq!(
        results[0]["ok"]["rows"][0][0]["v"],
        json!(db.name),
        "{results:?}"
    );
}

#[test]
fn flowhost_config_shows_files_databases_and_other_environments_without_secrets() {
    let project = Project::new();
    project.write(".env", "FLOWHOST_ENV=staging\nDB_PASSWORD=Hunter2-secret\n");
    project.write(
        ".env.staging",
        "STAGING_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://etl:${DB_PASSWORD}@db.internal:5432/rpa\n",
    );
    project.write(
        "core/envs/.env.staging",
        "STAGING_GLOBAL_SURVEYHUB_CONNECTION_STRING=sqlite:///survey.db\n",
    );
    project.write(
        "core/envs/.env.production",
        "PRODUCTION_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://etl:x@prod:5432/rpa\n",
    );
    let out = project.flowhost(&["config", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("Hunter2-secret"), "{all}");
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["error"], Value::Null);
    assert_eq!(report["environment"], json!("staging"));
    assert_eq!(report["selected_by"], json!("FLOWHOST_ENV in a file"));
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        vec![".env", ".env.staging", "core/envs/.env.staging"]
    );
    assert_eq!(report["databases"][0]["name"], json!("rpa_db"));
    assert_eq!(
        report["databases"][0]["target"],
        json!("postgresql at db.internal:5432/rpa")
    );
    assert_eq!(report["databases"][1]["name"], json!("surveyhub"));
    assert_eq!(
        report["databases"][1]["connection_string_from"],
        json!("core/envs/.env.staging")
    );
    assert_eq!(
        report["other_environments"],
        json!({ "production": ["core/envs/.env.production"] })
    );

    // A broken configuration is reported the same way, and exits 2.
    project.write(
        ".env.staging",
        "STAGING_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://etl:${NOPE}@db/rpa\n",
    );
    let out = project.flowhost(&["config", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(report["ok"], json!(false));
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("${NOPE}"),
        "{report}"
    );
}
