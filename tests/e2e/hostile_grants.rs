//! Grant names, least-privilege roles and result-size limits, tried as a hostile flow would.

use serde_json::{Value, json};

use crate::hostile_pg::Lab;
use crate::support::*;

/// Opens `name` with only `SurveyHub` granted (embedded default: no server needed).
fn open_as(name: &str) -> Value {
    let project = Project::new();
    // A read-only embedded database is created only from a seed.
    project.write("seeds/SurveyHub.sql", "CREATE TABLE t (x INTEGER);\n");
    let results = probe_results(&project.run_probe(
        &[("SurveyHub", "read-only")],
        json!([{ "op": "open", "db": name }, { "op": "open", "db": "SurveyHub" }]),
    ));
    assert_eq!(results[1]["ok"]["name"], "SurveyHub", "{results:?}");
    assert!(
        !project
            .path()
            .join(".flowhost")
            .join(format!("{}.sqlite", name.to_lowercase()))
            .exists()
            || name.eq_ignore_ascii_case("surveyhub"),
        "nothing was created for {name:?}"
    );
    results[0].clone()
}

macro_rules! not_granted {
    ($($test:ident: $name:expr;)*) => {
        $(
            #[test]
            fn $test() {
                let result = open_as($name);
                assert_eq!(result["error"]["kind"], "not-granted", "{:?}: {result}", $name);
            }
        )*
    };
}

not_granted! {
    grant_name_differing_in_case: "surveyhub";
    grant_name_in_upper_case: "SURVEYHUB";
    grant_name_with_padding: " SurveyHub ";
    grant_name_with_a_nul: "SurveyHub\u{0}";
    grant_name_with_a_path: "../SurveyHub";
    grant_name_with_a_cyrillic_look_alike: "Surv\u{0435}yHub";
    grant_name_with_a_zero_width_space: "Survey\u{200b}Hub";
    grant_name_spelled_as_its_config_key: "SURVEYHUB_CONNECTION_STRING";
}

#[test]
fn dropping_a_connection_with_an_open_transaction_rolls_it_back() {
    let lab = Lab::new();
    let results = lab.run(json!([
        { "op": "begin", "db": "scratch" },
        { "op": "commit", "db": "scratch" },
        { "op": "begin", "db": "scratch" },
        { "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = 'x'", "tx": true },
        { "op": "drop", "db": "scratch" },
        { "op": "query", "db": "scratch", "sql": "SELECT note FROM secrets" },
    ]));
    assert!(results[3].get("ok").is_some(), "{results:?}");
    assert_eq!(
        results[5]["ok"]["rows"][0][0]["v"], "original",
        "a dropped connection rolled back its transaction: {results:?}"
    );
    lab.assert_untouched();
}

#[test]
fn stale_handles_reach_nothing() {
    // Through the raw bindings, as a flow that skips the SDK would.
    let lab = Lab::new();
    let results = lab.run(json!([{ "op": "stale_handles", "db": "scratch",
        "sql": "UPDATE secrets SET note = 'stale'" }]));
    let r = &results[0]["ok"];
    assert_eq!(r["after_commit"]["error"], "invalid-request", "{results:?}");
    assert_eq!(r["commit_twice"]["error"], "invalid-request", "{results:?}");
    assert_eq!(
        r["tx_after_connection_dropped"]["error"], "invalid-request",
        "dropping the connection rolled its transaction back: {results:?}"
    );
    // A cursor owns its session until it is dropped, so it reads on.
    assert_eq!(
        r["cursor_after_connection_dropped"]["ok"], 10,
        "{results:?}"
    );
    lab.assert_untouched();
}

/// A project whose `reader` database is granted through a role that can only read.
fn with_reader_role(lab: &Lab, refuse: bool) {
    lab.db.exec(
        "DO $$ BEGIN CREATE ROLE fh_reader LOGIN;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
         GRANT SELECT ON secrets TO fh_reader;
         GRANT EXECUTE ON FUNCTION sneaky() TO fh_reader;",
    );
    let url = lab.db.url();
    let reader = url.replace("postgres@", "fh_reader@");
    lab.project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_VICTIM_CONNECTION_STRING={url}\n\
             DEVELOPMENT_GLOBAL_VICTIM_READONLY_CONNECTION_STRING={reader}\n\
             DEVELOPMENT_GLOBAL_SCRATCH_CONNECTION_STRING={url}\n\
             DEVELOPMENT_GLOBAL_REFUSE_PRIVILEGED_ROLE={refuse}\n"
        ),
    );
}

#[test]
fn read_only_grants_use_the_read_only_role_when_one_is_configured() {
    let lab = Lab::new();
    with_reader_role(&lab, false);
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql": "SELECT current_user::text" },
        { "op": "query", "db": "scratch", "sql": "SELECT current_user::text" },
        // Past the host's check (STABLE), then the session's read-only mode and the role.
        { "op": "query", "db": "victim", "sql": "SELECT sneaky()" },
    ]));
    assert_eq!(
        results[0]["ok"]["rows"][0][0]["v"], "fh_reader",
        "{results:?}"
    );
    assert_eq!(
        results[1]["ok"]["rows"][0][0]["v"], "postgres",
        "{results:?}"
    );
    let code = results[2]["error"]["code"].as_str().unwrap_or_default();
    assert!(matches!(code, "25006" | "42501"), "{results:?}");
    lab.assert_untouched();
}

#[test]
fn refuse_privileged_role_refuses_a_superuser_and_allows_the_reader() {
    let lab = Lab::new();
    with_reader_role(&lab, true);
    let results = lab.run(json!([
        { "op": "query", "db": "victim", "sql": "SELECT count(*) FROM secrets" },
        { "op": "query", "db": "scratch", "sql": "SELECT count(*) FROM secrets" },
    ]));
    assert_eq!(results[0]["ok"]["rows"][0][0]["v"], 1, "{results:?}");
    assert_eq!(results[1]["error"]["kind"], "connection", "{results:?}");
    let message = results[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("superuser") && message.contains("REFUSE_PRIVILEGED_ROLE"),
        "{message}"
    );
}

#[test]
fn flows_connecting_as_a_superuser_are_warned_about_once() {
    let lab = Lab::new();
    let out = lab.project.run_probe(
        &[("scratch", "read-write")],
        json!([
            { "op": "query", "db": "scratch", "sql": "SELECT 1" },
            { "op": "drop", "db": "scratch" },
            { "op": "query", "db": "scratch", "sql": "SELECT 2" },
        ]),
    );
    let err = stderr(&out);
    assert_eq!(err.matches("is a superuser").count(), 1, "{err}");
    assert!(err.contains("REFUSE_PRIVILEGED_ROLE"), "{err}");
}

#[test]
fn a_result_larger_than_max_result_mb_fails_and_the_connection_goes_on() {
    let lab = Lab::new();
    let results = probe_results(&lab.project.run_probe_with(
        "timeout-seconds = 20\nmax-result-mb = 2",
        &[("victim", "read-only")],
        json!([
            { "op": "query", "db": "victim", "sql":
              "SELECT repeat('x', 1048576) FROM generate_series(1, 5)" },
            { "op": "query", "db": "victim", "sql": "SELECT 1 AS after" },
            // A cursor hands the same rows over in fetches that fit.
            { "op": "cursor", "db": "victim", "batch": 100, "sql":
              "SELECT repeat('x', 1048576) FROM generate_series(1, 5)" },
            { "op": "cursor", "db": "victim", "sql": "SELECT repeat('x', 3145728)" },
            { "op": "query", "db": "victim", "sql": "SELECT 2 AS after" },
        ]),
    ));
    assert_eq!(
        results[0]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert!(
        results[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max-result-mb")
    );
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 1);
    assert_eq!(results[2]["ok"]["rows"], 5, "{:?}", results[2]);
    assert!(
        results[2]["ok"]["batches"].as_u64().unwrap() >= 3,
        "{:?}",
        results[2]
    );
    assert_eq!(
        results[3]["error"]["kind"], "invalid-request",
        "one row over the limit"
    );
    assert_eq!(results[4]["ok"]["rows"][0][0]["v"], 2);
}

#[test]
fn a_parameter_set_larger_than_max_param_mb_is_refused_before_it_is_sent() {
    let lab = Lab::new();
    let big = "x".repeat(3 << 20);
    let results = probe_results(&lab.project.run_probe_with(
        "timeout-seconds = 20\nmax-param-mb = 1",
        &[("scratch", "read-write")],
        json!([
            { "op": "execute", "db": "scratch", "sql": "UPDATE secrets SET note = $1",
              "params": [v("text", json!(big))] },
            { "op": "batch", "db": "scratch", "sql": "UPDATE secrets SET note = :n",
              "param_sets": [{ "n": v("text", json!("small")) }, { "n": v("text", json!(big)) }] },
        ]),
    ));
    assert_eq!(
        results[0]["error"]["kind"], "invalid-request",
        "{results:?}"
    );
    assert!(
        results[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max-param-mb")
    );
    let message = results[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("parameter set 1") && message.contains("max-param-mb"),
        "{message}"
    );
    lab.assert_untouched();
}
