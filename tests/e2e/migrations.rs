//! `flowhost migrate` end to end on both backends: order, history, re-runs, failures.

use crate::support::*;

/// V10 needs V2's table: applied in text order it would fail.
fn write_ordered_migrations(project: &Project) {
    project.write(
        "migrations/lab/V1__Create_base.sql",
        "CREATE TABLE base (id INTEGER PRIMARY KEY);\n",
    );
    project.write(
        "migrations/lab/V2__Create_child.sql",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, base_id INTEGER);\n",
    );
    project.write(
        "migrations/lab/V10__Fill_child.sql",
        "-- a comment; with a semicolon\nINSERT INTO base (id) VALUES (1);\nINSERT INTO child (id, base_id) VALUES (1, 1);\n",
    );
}

fn write_failing_migration(project: &Project) {
    project.write(
        "migrations/lab/V11__Broken.sql",
        "CREATE TABLE partial (id INTEGER);\nINSERT INTO partial VALUES (1);\n\nINSERT INTO no_such_table VALUES (1);\n",
    );
}

fn migrate(project: &Project) -> std::process::Output {
    project.flowhost(&["migrate", "lab"])
}

fn check_failure(out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(3), "{}", stderr(out));
    let err = stderr(out);
    assert!(err.contains("V11__Broken.sql"), "names the file: {err}");
    assert!(err.contains("line 4"), "names the statement's line: {err}");
    assert!(
        err.contains("no_such_table"),
        "carries the database's error: {err}"
    );
}

#[test]
fn migrations_apply_in_numeric_order_once_and_failures_leave_nothing_on_sqlite() {
    let project = Project::new();
    write_ordered_migrations(&project);
    let out = migrate(&project);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = project.path().join(".flowhost/lab.sqlite");
    let history = || {
        sqlite_rows(
            &db,
            "SELECT version, script, success FROM flowhost_schema_history ORDER BY installed_rank",
        )
    };
    assert_eq!(
        history()
            .iter()
            .map(|r| r[0].clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["1", "2", "10"]
    );
    assert_eq!(history()[2][1].as_deref(), Some("V10__Fill_child.sql"));

    let out = migrate(&project);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(history().len(), 3, "a re-run applies nothing");

    write_failing_migration(&project);
    check_failure(&migrate(&project));
    assert!(sqlite_rows(&db, "SELECT name FROM sqlite_master WHERE name = 'partial'").is_empty());
    assert_eq!(history().len(), 3);

    // Fixed, it applies.
    project.write(
        "migrations/lab/V11__Broken.sql",
        "CREATE TABLE partial (id INTEGER);\n",
    );
    assert!(migrate(&project).status.success());
    assert_eq!(history().len(), 4);
}

#[test]
fn migrations_apply_in_numeric_order_once_and_failures_leave_nothing_on_postgresql() {
    let pg = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", pg.url()),
    );
    write_ordered_migrations(&project);
    assert!(migrate(&project).status.success());
    assert_eq!(
        pg.column("SELECT version FROM flowhost_schema_history ORDER BY installed_rank"),
        vec![Some("1".into()), Some("2".into()), Some("10".into())]
    );
    assert!(migrate(&project).status.success());
    assert_eq!(pg.count("flowhost_schema_history"), 3);

    write_failing_migration(&project);
    check_failure(&migrate(&project));
    assert_eq!(pg.count("pg_tables WHERE tablename = 'partial'"), 0);
    assert_eq!(pg.count("flowhost_schema_history"), 3);
}

#[test]
fn migrate_new_info_and_validate_on_sqlite() {
    let project = Project::new();
    project.write(
        "migrations/lab/V001__Create_base.sql",
        "CREATE TABLE base (id INTEGER);\n",
    );
    let out = project.flowhost(&["migrate", "new", "lab", "Add", "child table"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "migrations/lab/V002__Add_child_table.sql"
    );
    project.write(
        "migrations/lab/V002__Add_child_table.sql",
        "CREATE TABLE child (id INTEGER);\n",
    );

    let info = json_ok(&project.flowhost(&["migrate", "info", "lab", "--json"]));
    assert_eq!(
        info["databases"][0]["pending"].as_array().unwrap().len(),
        2,
        "{info}"
    );
    assert!(migrate(&project).status.success());
    let info = json_ok(&project.flowhost(&["migrate", "status", "lab", "--json"]));
    assert_eq!(
        info["databases"][0]["pending"].as_array().unwrap().len(),
        0,
        "{info}"
    );
    assert_eq!(info["databases"][0]["current_version"], "002", "{info}");

    let valid = project.flowhost(&["migrate", "validate", "lab"]);
    assert!(valid.status.success(), "{}", stdout(&valid));
    // Editing an applied file is caught, with the file named.
    project.write(
        "migrations/lab/V001__Create_base.sql",
        "CREATE TABLE base (id INTEGER, extra TEXT);\n",
    );
    let invalid = project.flowhost(&["migrate", "validate", "lab"]);
    assert_eq!(invalid.status.code(), Some(3), "{}", stdout(&invalid));
    assert!(
        stdout(&invalid).contains("V001__Create_base.sql"),
        "{}",
        stdout(&invalid)
    );
}
