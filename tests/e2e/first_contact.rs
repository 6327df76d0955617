//! What a new user meets first when something is wrong: a server that is not there, a login the
//! server refuses, a flow run from another folder, a missing component, a misspelt key. Each
//! must say what is wrong and where to fix it, at once.

use serde_json::Value;

use crate::support::*;

/// A project whose `.env` points the probe's `lab` database at `url`, with a connect timeout
/// long enough that a test still waiting for it would fail on its message, not pass by luck.
fn project_with(url: &str) -> (Project, std::path::PathBuf) {
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={url}\n\
             DEVELOPMENT_GLOBAL_CONNECT_TIMEOUT=60\n"
        ),
    );
    let manifest = project.write(
        "probe.toml",
        "[flow]\nname = \"probe\"\n[databases.lab]\naccess = \"read-write\"\n",
    );
    (project, manifest)
}

#[test]
fn a_server_that_is_not_there_is_named_at_once_not_after_the_timeout() {
    let port = closed_port();
    let (project, manifest) = project_with(&format!("postgresql://postgres@127.0.0.1:{port}/x"));
    let out = project.run_component(&probe_wasm(), &manifest, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "connection refused by 127.0.0.1:{port}: is the server running"
        )),
        "{err}"
    );
    // The driver's own answer after the timeout would be this instead.
    assert!(!err.contains("CONNECT_TIMEOUT"), "{err}");

    let health = project.flowhost(&["health", "lab"]);
    assert_eq!(health.status.code(), Some(3), "{}", stdout(&health));
    assert!(
        stdout(&health).contains(&format!("connection refused by 127.0.0.1:{port}")),
        "{}",
        stdout(&health)
    );
}

#[test]
fn a_refused_login_is_not_called_a_rejected_statement() {
    let (project, manifest) =
        project_with("postgresql://flowhost_no_such_role@127.0.0.1:5432/postgres");
    let out = project.run_component(&probe_wasm(), &manifest, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "the server refused the login (28000): role \"flowhost_no_such_role\" does not exist"
        ),
        "{err}"
    );
    assert!(
        err.contains("check the user in DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING (")
            && err.contains(".env:1)"),
        "{err}"
    );
    assert!(!err.contains("rejected the statement"), "{err}");

    let (project, manifest) =
        project_with("postgresql://postgres@127.0.0.1:5432/flowhost_no_such_database");
    let err = stderr(&project.run_component(&probe_wasm(), &manifest, &[]));
    assert!(
        err.contains("database \"flowhost_no_such_database\" does not exist; check the database name in DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING"),
        "{err}"
    );
}

/// The repository's rpa1 run from a folder that is not the repository: its demo data is found
/// beside its manifest, as its migrations are.
#[test]
fn the_demo_seed_is_found_from_any_folder() {
    let elsewhere = Project::new();
    let out = elsewhere.flowhost(&[
        "run",
        rpa1_wasm().to_str().unwrap(),
        "--manifest",
        repo().join("flows/rpa1.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let output: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(output["responses_found"].as_u64().unwrap() > 0, "{output}");
}

/// Without a seed anywhere, a database a flow may only read would be created empty and stay
/// so: the run is refused, nothing is created, and the next run (seed in place) seeds it.
#[test]
fn an_embedded_database_without_its_seed_is_not_created_empty() {
    let project = Project::new();
    let manifest = project.write(
        "flows/reader.toml",
        "[flow]\nname = \"reader\"\n[databases.SurveyHub]\naccess = \"read-only\"\n",
    );
    let steps = r#"{"steps": [{"op": "query", "db": "SurveyHub", "sql": "SELECT count(*) AS n FROM surveys"}]}"#;
    let input = project.write("input.json", steps);
    let args = ["--input-file", input.to_str().unwrap()];
    let out = project.run_component(&probe_wasm(), &manifest, &args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the embedded database 'SurveyHub' would be created empty: there is no seed file SurveyHub.sql in"),
        "{err}"
    );
    assert!(
        err.contains("DEVELOPMENT_GLOBAL_SURVEYHUB_CONNECTION_STRING"),
        "{err}"
    );
    let file = project.path().join(".flowhost/surveyhub.sqlite");
    assert!(!file.exists(), "an empty database was kept");

    // The project's seeds folder (the manifest's folder's parent) is where it is looked for.
    project.write(
        "seeds/SurveyHub.sql",
        "CREATE TABLE surveys (id INTEGER PRIMARY KEY);\nINSERT INTO surveys VALUES (1), (2);\n",
    );
    let out = project.run_component(&probe_wasm(), &manifest, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        probe_results(&out)[0]["ok"]["rows"][0][0]["v"],
        2,
        "{}",
        stdout(&out)
    );
    assert!(file.exists());
}

#[test]
fn a_missing_component_is_called_missing_not_its_manifest() {
    let project = Project::new();
    project.write("flows/other.wasm", "");
    let out = project.flowhost(&["run", "flows/nope.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no component at flows/nope.wasm"), "{err}");
    assert!(err.contains("flows/other.wasm"), "{err}");
    assert!(!err.contains("manifest"), "{err}");
}

#[test]
fn misspelt_keys_are_pointed_out_with_the_key_meant() {
    let project = Project::new();
    project.write(
        ".env",
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING=sqlite:///lab.sqlite\n\
         DEVELOPMENT_GLOBAL_CONECTION_POOL_SIZE=5\n\
         DEVELOPMNET_GLOBAL_POOL_TIMEOUT=9\n\
         DB_URL=${FH_NO_USER}:${FH_NO_PASSWORD}@${FH_NO_HOST}\n\
         DEVELOPMENT_GLOBAL_OTHER_CONNECTION_STRING=postgresql://${DB_URL}/x\n",
    );
    let out = project.flowhost(&["config", "--json"]);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("config --json prints JSON");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("did you mean DEVELOPMENT_GLOBAL_CONNECTION_POOL_SIZE?"),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "no environment is called 'developmnet'; did you mean DEVELOPMENT_GLOBAL_POOL_TIMEOUT?"
        ),
        "{warnings}"
    );
    // The typo is not a database of its own.
    let databases = report["databases"].to_string();
    assert!(
        !databases.to_lowercase().contains("conection"),
        "{databases}"
    );

    // Every unset variable of a value at once, not one per attempt.
    let out = project.flowhost(&["health", "other"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("${FH_NO_USER}, ${FH_NO_PASSWORD}, ${FH_NO_HOST} in DB_URL"),
        "{text}"
    );
}

/// `flowhost check` reports every check, passing or not, without running the flow.
#[test]
fn check_reports_every_problem_with_its_fix_without_running_the_flow() {
    let project = Project::new();
    let rpa1 = rpa1_wasm();
    let manifest = repo().join("flows/rpa1.toml");
    let args = |json: bool| {
        let mut a = vec![
            "check",
            rpa1.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ];
        if json {
            a.push("--json");
        }
        project.flowhost(&a)
    };
    let out = args(false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("all checks passed"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("rpa_db migrations:"),
        "{}",
        stdout(&out)
    );
    // Checking ran nothing: the migrations are still pending.
    let doc: Value = serde_json::from_str(&stdout(&args(true))).unwrap();
    let checks = doc["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{doc}");
    let migrations = checks
        .iter()
        .find(|c| c["subject"] == "rpa_db migrations")
        .unwrap();
    assert!(
        migrations["message"]
            .as_str()
            .unwrap()
            .contains("1 pending"),
        "{doc}"
    );

    // Two problems at once: one database not configured, the other not answering.
    let port = closed_port();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://postgres@127.0.0.1:{port}/x\n"
        ),
    );
    let out = args(true);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let failed: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["SurveyHub", "rpa_db"], "{doc}");
    assert_eq!(doc["error"]["kind"], "config", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DEVELOPMENT_GLOBAL_SURVEYHUB_CONNECTION_STRING"),
        "{doc}"
    );
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{doc}"
    );
}
