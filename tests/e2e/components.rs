//! Files that are not usable flow components: each is refused before anything runs, with one
//! line that names the file and says what to do, and exit code 2.
//!
//! The broken components are written here in WAT and assembled with the `wat` crate rather than
//! built as extra guest crates: a flow crate cannot be made to import a `wasi:http` interface,
//! another version of `flowhost:flow` or a `run` of another type without its own copy of the WIT
//! and its own cargo build, while a few lines of WAT state exactly the one thing each test breaks
//! (next to a control component that differs only in that thing and loads fine).

use std::path::{Path, PathBuf};

use crate::support::*;

/// A core module that implements `run: func(input: string) -> result<string, string>` by
/// returning `ok("{}")`, and the canonical lift that exports it. Result layout: discriminant
/// at 2048, the string's pointer and length at 2052 and 2056; the text `{}` at 4096.
const RUN_OK: &str = r#"
  (core module $m
    (memory (export "memory") 1)
    (data (i32.const 2048) "\00\00\00\00\00\10\00\00\02\00\00\00")
    (data (i32.const 4096) "{}")
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 8192)
    (func (export "run") (param i32 i32) (result i32) i32.const 2048))
  (core instance $i (instantiate $m))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $i "run") (memory $i "memory") (realloc (func $i "realloc"))))
"#;

fn component(project: &Project, name: &str, imports: &str, body: &str) -> PathBuf {
    let wat = format!("(component {imports} {body})");
    let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}\n{wat}"));
    let path = project.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn manifest(project: &Project) -> PathBuf {
    project.write("flow.toml", "[flow]\nname = \"broken\"\n")
}

/// Runs `wasm` and checks it was refused as unusable: exit 2, one line naming the file and
/// containing every one of `says`.
fn assert_refused(project: &Project, wasm: &Path, says: &[&str]) -> String {
    let out = project.run_component(wasm, &manifest(project), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(wasm.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no line names {}:\n{err}", wasm.display()));
    for needle in says {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
    assert!(
        !err.contains("wasm backtrace") && !err.contains("out of bounds"),
        "engine internals leaked: {err}"
    );
    line.to_owned()
}

#[test]
fn the_control_component_loads_and_runs() {
    // Every broken component below differs from this one in one thing only.
    let project = Project::new();
    let wasm = component(&project, "ok.wasm", "", RUN_OK);
    let out = project.run_component(&wasm, &manifest(&project), &[]);
    assert_eq!(json_ok(&out), serde_json::json!({}));
}

#[test]
fn a_core_module_is_refused_with_how_to_build_a_component() {
    let project = Project::new();
    let path = project.path().join("core.wasm");
    std::fs::write(
        &path,
        wat::parse_str("(module (func (export \"run\")))").unwrap(),
    )
    .unwrap();
    assert_refused(
        &project,
        &path,
        &[
            "core WebAssembly module, not a component",
            "--target wasm32-wasip2",
        ],
    );
}

#[test]
fn a_truncated_component_is_refused_as_incomplete() {
    let project = Project::new();
    let bytes = std::fs::read(probe_wasm()).unwrap();
    let path = project.path().join("truncated.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(
        &project,
        &path,
        &[
            "not a complete component",
            "rebuild",
            "--target wasm32-wasip2",
        ],
    );
}

#[test]
fn a_component_importing_what_the_host_does_not_provide_is_refused() {
    let project = Project::new();
    let wasm = component(
        &project,
        "http.wasm",
        r#"(import "wasi:http/outgoing-handler@0.2.0"
             (instance (export "handle" (func (param "request" u32) (result u32)))))"#,
        RUN_OK,
    );
    assert_refused(
        &project,
        &wasm,
        &["wasi:http/outgoing-handler@0.2.0", "does not provide"],
    );
}

#[test]
fn a_component_built_against_another_flowhost_flow_version_is_refused() {
    let project = Project::new();
    let wasm = component(
        &project,
        "future.wasm",
        r#"(import "flowhost:flow/database@9.9.9"
             (instance (export "open" (func (param "name" string)))))"#,
        RUN_OK,
    );
    assert_refused(
        &project,
        &wasm,
        &["flowhost:flow@9.9.9", "flowhost:flow@0.1.0", "rebuild"],
    );
}

#[test]
fn a_component_whose_database_functions_have_other_types_is_refused() {
    let project = Project::new();
    let wasm = component(
        &project,
        "retyped.wasm",
        r#"(import "flowhost:flow/database@0.1.0"
             (instance (export "open" (func (param "name" u32)))))"#,
        RUN_OK,
    );
    assert_refused(
        &project,
        &wasm,
        &["flowhost:flow/database@0.1.0", "does not match", "rebuild"],
    );
}

#[test]
fn a_component_whose_run_has_the_wrong_type_is_refused() {
    let project = Project::new();
    let wasm = component(
        &project,
        "wrong-run.wasm",
        "",
        r#"(core module $m (func (export "run") (param i32) (result i32) local.get 0))
           (core instance $i (instantiate $m))
           (func (export "run") (param "input" u32) (result u32)
             (canon lift (core func $i "run")))"#,
    );
    assert_refused(
        &project,
        &wasm,
        &[
            "`run` export has the wrong type",
            "func(input: string) -> result<string, string>",
        ],
    );
}

#[test]
fn a_component_without_run_is_refused() {
    let project = Project::new();
    let wasm = component(&project, "no-run.wasm", "", "");
    assert_refused(&project, &wasm, &["does not export", "flowhost_sdk::flow!"]);
}
