//! The one `--json` contract: every command prints exactly one JSON object on stdout, success
//! or failure, with `ok`, `error` (`{kind, message}` or null) and `exit_code` equal to the
//! process's, and reports what it got done before a failure.

use serde_json::{Value, json};

use crate::support::*;

/// The command's one document, checked against the envelope and the exit code.
fn document(out: &std::process::Output) -> Value {
    let text = stdout(out);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{text}\nstderr:\n{}",
            stderr(out)
        )
    });
    let code = out.status.code().expect("exited");
    assert_eq!(doc["exit_code"], code, "{doc}");
    assert_eq!(doc["ok"], code == 0, "{doc}");
    if code == 0 {
        assert!(doc["error"].is_null(), "{doc}");
    } else {
        assert!(doc["error"]["kind"].is_string(), "{doc}");
        assert!(doc["error"]["message"].is_string(), "{doc}");
    }
    doc
}

#[test]
fn a_failed_migration_reports_what_was_applied_before_it() {
    let project = Project::new();
    project.write(
        "migrations/lab/V001__Create.sql",
        "CREATE TABLE kept (id INTEGER);\n",
    );
    project.write(
        "migrations/lab/V002__Broken.sql",
        "CREATE TABLE broken (;\n",
    );
    let doc = document(&project.flowhost(&["migrate", "lab", "--json"]));
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["error"]["kind"], "migration", "{doc}");
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("V002"),
        "{doc}"
    );
    let applied = &doc["databases"][0]["applied"];
    assert_eq!(applied.as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(applied[0]["script"], "V001__Create.sql", "{doc}");

    // validate says whether the history is valid: V002 rolled back whole, so it is; then
    // V001 is edited after it ran, and it is not.
    let doc = document(&project.flowhost(&["migrate", "validate", "lab", "--json"]));
    assert_eq!(doc["valid"], true, "{doc}");
    project.write(
        "migrations/lab/V001__Create.sql",
        "CREATE TABLE kept (id BIGINT);\n",
    );
    let doc = document(&project.flowhost(&["migrate", "validate", "lab", "--json"]));
    assert_eq!(doc["valid"], false, "{doc}");
    assert_eq!(doc["error"]["kind"], "migration", "{doc}");
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("V001"),
        "{doc}"
    );
    let doc = document(&project.flowhost(&["migrate", "info", "lab", "--json"]));
    assert_eq!(doc["databases"][0]["database"], "lab", "{doc}");

    // A refused baseline is a document too, not `[]`.
    let doc =
        document(&project.flowhost(&["migrate", "baseline", "lab", "--version", "5", "--json"]));
    assert!(!doc["error"].is_null(), "{doc}");

    let doc = document(&project.flowhost(&["migrate", "new", "lab", "Add", "index", "--json"]));
    assert!(
        doc["path"]
            .as_str()
            .unwrap()
            .ends_with("V003__Add_index.sql"),
        "{doc}"
    );
}

#[test]
fn run_prints_a_document_for_every_outcome() {
    let project = Project::new();
    let manifest = project.write(
        "probe.toml",
        "[flow]\nname = \"probe\"\n[databases.lab]\naccess = \"read-write\"\n",
    );
    let wasm = probe_wasm();
    let run = |steps: Value| {
        let input = project.write("input.json", &json!({ "steps": steps }).to_string());
        let extra = ["--json", "--input-file", input.to_str().unwrap()];
        document(&project.run_component(&wasm, &manifest, &extra))
    };

    let doc = run(json!([{ "op": "query", "db": "lab", "sql": "SELECT 1 AS one" }]));
    assert_eq!(doc["status"], "succeeded", "{doc}");
    assert!(doc["run_id"].is_string(), "{doc}");
    assert!(doc["output"]["results"].is_array(), "{doc}");

    let doc = run(json!([{ "op": "fail", "message": "no such customer" }]));
    assert_eq!(doc["exit_code"], 1, "{doc}");
    assert_eq!(doc["error"]["kind"], "flow-error", "{doc}");
    assert!(doc["run_id"].is_string(), "the run happened: {doc}");

    // Failures before the flow starts: the configuration, then the database.
    project.write(
        "core/envs/.env.production",
        "PRODUCTION_GLOBAL_LAB_CONNECTION_STRING=sqlite:///x.db\n",
    );
    let doc = run(json!([]));
    assert_eq!(
        (doc["exit_code"].as_u64(), doc["error"]["kind"].as_str()),
        (Some(2), Some("config")),
        "{doc}"
    );
    let health = document(&project.flowhost(&["health", "lab", "--json"]));
    assert_eq!(
        health["exit_code"], 2,
        "the same configuration error, the same code: {health}"
    );
    assert_eq!(health["databases"][0]["error_kind"], "config", "{health}");

    let port = closed_port();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING=postgresql://postgres@127.0.0.1:{port}/x\n"
        ),
    );
    let doc = run(json!([]));
    assert_eq!(
        (doc["exit_code"].as_u64(), doc["error"]["kind"].as_str()),
        (Some(3), Some("database")),
        "{doc}"
    );
    let health = document(&project.flowhost(&["health", "lab", "--json"]));
    assert_eq!(health["exit_code"], 3, "{health}");

    let config = document(&project.flowhost(&["config", "--json"]));
    assert_eq!(config["environment"], "development", "{config}");
}
