//! `flowhost run` fails cleanly: a non-zero exit code that says what kind of failure, and one
//! human line on stderr that says what went wrong.

use serde_json::json;

use crate::support::*;

/// The last line of stderr (logs come first), which is the error.
fn error_line(out: &std::process::Output) -> String {
    stderr(out).lines().last().unwrap_or_default().to_owned()
}

fn probe_manifest(project: &Project, body: &str) -> std::path::PathBuf {
    project.write("flow.toml", &format!("[flow]\nname = \"probe\"\n{body}"))
}

#[test]
fn a_file_that_is_not_a_component_exits_2() {
    let project = Project::new();
    let wasm = project.write("flow.wasm", "this is not wasm");
    probe_manifest(&project, "");
    let out = project.flowhost(&["run", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(error_line(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(error_line(&out).contains("flow.wasm"), "{}", stderr(&out));

    // A core module (not a component) gets told how to build a component.
    let core = project.path().join("core.wasm");
    std::fs::write(&core, [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).unwrap();
    std::fs::copy(
        project.path().join("flow.toml"),
        project.path().join("core.toml"),
    )
    .unwrap();
    let out = project.flowhost(&["run", core.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        error_line(&out).contains("wasm32-wasip2"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_or_invalid_manifest_exits_2_and_says_where() {
    let project = Project::new();
    let wasm = project.path().join("probe.wasm");
    std::fs::copy(probe_wasm(), &wasm).unwrap();
    let out = project.flowhost(&["run", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        error_line(&out).contains("probe.toml"),
        "names the manifest it looked for: {}",
        stderr(&out)
    );

    project.write(
        "probe.toml",
        "[flow]\nname = \"probe\"\n\n[databases.rpa_db]\nacces = \"read-write\"\n",
    );
    let out = project.flowhost(&["run", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains("acces") && line.contains("probe.toml:5"),
        "{line}"
    );
}

#[test]
fn an_unconfigured_database_exits_2_and_names_the_keys_to_set() {
    let project = Project::new();
    let manifest = probe_manifest(&project, "[databases.SurveyHub]\naccess = \"read-only\"\n");
    let out = project.run_component(&probe_wasm(), &manifest, &["--env", "production"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains("PRODUCTION_GLOBAL_SURVEYHUB_CONNECTION_STRING"),
        "{line}"
    );
}

#[test]
fn a_database_that_is_down_exits_3_without_leaking_the_password() {
    let project = Project::new();
    project.write(
        ".env",
        "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://etl:Hunter2-secret@127.0.0.1:1/rpa\n\
         DEVELOPMENT_GLOBAL_RPA_DB_CONNECT_TIMEOUT=2\n",
    );
    let manifest = probe_manifest(&project, "[databases.rpa_db]\naccess = \"read-write\"\n");
    let out = project.run_component(&probe_wasm(), &manifest, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("Hunter2-secret"), "{all}");
    let line = error_line(&out);
    assert!(
        line.contains("rpa_db") && line.contains("127.0.0.1:1"),
        "{line}"
    );
}

#[test]
fn input_that_is_not_json_exits_2() {
    let project = Project::new();
    let manifest = probe_manifest(&project, "");
    let out = project.run_component(&probe_wasm(), &manifest, &["--input", "{steps"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        error_line(&out).contains("not valid JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_output_is_the_run_record() {
    let project = Project::new();
    let manifest = probe_manifest(&project, "");
    let input = json!({ "steps": [{ "op": "log", "level": "info", "message": "hi" }] }).to_string();
    let out = project.run_component(&probe_wasm(), &manifest, &["--input", &input, "--json"]);
    let record = json_ok(&out);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["flow"], "probe");
    assert_eq!(
        record["output"]["results"][0]["ok"],
        serde_json::Value::Null
    );
    assert_eq!(record["component_sha256"].as_str().unwrap().len(), 64);
}
