//! The path a new user takes to a flow of their own: `flowhost new`, edit nothing,
//! `flowhost build`, `flowhost run` — and it works, with no cargo knowledge and no workspace
//! edits.

use serde_json::Value;

use crate::support::*;

/// A project laid out like a clone of this repository: the workspace manifest (its `flows/*`
/// glob included), the SDK and the contract, and the lock file, so the guest build resolves
/// the same versions the repository's guests were built with.
fn clone_like() -> Project {
    let project = Project::new();
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = workspace
        .lines()
        .find(|l| l.starts_with("members = "))
        .expect("the workspace lists its members");
    assert!(members.contains("\"flows/*\""), "{members}");
    let workspace = workspace
        .replace(members, "members = [\"guest-sdk\", \"flows/*\"]")
        .replace("default-members = [\"host\"]\n", "");
    project.write("Cargo.toml", &workspace);
    std::fs::copy(repo().join("Cargo.lock"), project.path().join("Cargo.lock")).unwrap();
    for shared in ["guest-sdk", "wit"] {
        std::os::unix::fs::symlink(repo().join(shared), project.path().join(shared)).unwrap();
    }
    std::fs::create_dir(project.path().join("flows")).unwrap();
    project
}

#[test]
fn new_build_run_with_nothing_edited() {
    let project = clone_like();
    let out = project.flowhost(&["new", "greeter"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for file in [
        "flows/greeter/Cargo.toml",
        "flows/greeter/src/lib.rs",
        "flows/greeter.toml",
        "migrations/greeter_db/V001__Create_greeter_greetings.sql",
    ] {
        assert!(
            project.path().join(file).is_file(),
            "{file} was not created"
        );
    }
    assert!(
        stdout(&out).contains("flowhost build greeter"),
        "{}",
        stdout(&out)
    );

    // A second `new` of the same name changes nothing.
    let again = project.flowhost(&["new", "greeter"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // Shares the repository's guest build folder, as `make test` builds the probe there.
    let target = repo().join("target").join("guests");
    let out = project.flowhost_with(&["build", "greeter"], &[("CARGO_TARGET_DIR", &target)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("built flows/greeter.wasm"),
        "{}",
        stdout(&out)
    );

    for expected in [1, 2] {
        let out = project.flowhost(&["run", "flows/greeter.wasm", "--input", r#"{"name": "Ada"}"#]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let output: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(output["greeting"], "Hello, Ada!", "{output}");
        assert_eq!(output["greetings_stored"], expected, "{output}");
    }

    // The flow's own validation reaches the user as a failed run.
    let out = project.flowhost(&["run", "flows/greeter.wasm", "--input", r#"{"name": " "}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("name must not be blank"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn new_from_an_existing_flow_renames_it_and_refuses_bad_names() {
    let project = clone_like();
    assert_eq!(project.flowhost(&["new", "first"]).status.code(), Some(0));
    let out = project.flowhost(&["new", "second", "--from", "first"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cargo = std::fs::read_to_string(project.path().join("flows/second/Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"second\""), "{cargo}");
    let manifest = std::fs::read_to_string(project.path().join("flows/second.toml")).unwrap();
    assert!(manifest.contains("name = \"second\""), "{manifest}");

    let out = project.flowhost(&["new", "Bad-Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("e.g. bad_name"), "{}", stderr(&out));
    assert!(!project.path().join("flows/Bad-Name").exists());

    let out = project.flowhost(&["new", "third", "--from", "nothere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!project.path().join("flows/third").exists());
    assert!(!project.path().join("flows/third.toml").exists());
}
