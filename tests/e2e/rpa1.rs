//! The example flow, end to end: demo data in SurveyHub, scores into rpa_db, idempotent.

use serde_json::Value;

use crate::support::*;

/// seeds/SurveyHub.sql holds three malformed completed responses (bad JSON, a missing
/// question, a rating of 7).
pub(crate) const MALFORMED: i64 = 3;

pub(crate) fn run_rpa1(project: &Project) -> std::process::Output {
    project.run_component(&rpa1_wasm(), &repo().join("flows/rpa1.toml"), &[])
}

pub(crate) fn assert_counts(output: &Value, found: i64, processed: i64, failed: i64) {
    assert_eq!(output["responses_found"], found, "{output}");
    assert_eq!(output["surveys_processed"], processed, "{output}");
    assert_eq!(output["failed"], failed, "{output}");
}

#[test]
fn rpa1_on_the_embedded_sqlite_default_scores_every_survey_once() {
    let project = Project::new();
    project.copy_from_repo("seeds");

    let first = json_ok(&run_rpa1(&project));
    let survey_hub = project.path().join(".flowhost/surveyhub.sqlite");
    let completed: i64 = sqlite_rows(
        &survey_hub,
        "SELECT count(*) FROM survey_responses WHERE status = 'completed'",
    )[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let malformed = MALFORMED;
    assert_counts(&first, completed, completed - malformed, malformed);

    let db = project.path().join(".flowhost/rpa_db.sqlite");
    let rows = sqlite_rows(
        &db,
        "SELECT status, count(*) FROM rpa1_processed_surveys GROUP BY status ORDER BY status",
    );
    assert_eq!(
        rows,
        vec![
            vec![Some("failed".into()), Some(malformed.to_string())],
            vec![
                Some("processed".into()),
                Some((completed - malformed).to_string())
            ],
        ]
    );
    let failed_errors = sqlite_rows(
        &db,
        "SELECT error FROM rpa1_processed_surveys WHERE status = 'failed'",
    );
    assert!(
        failed_errors
            .iter()
            .all(|r| r[0].as_deref().is_some_and(|e| !e.is_empty())),
        "{failed_errors:?}"
    );

    let second = json_ok(&run_rpa1(&project));
    assert_counts(&second, 0, 0, 0);
    let total = sqlite_rows(&db, "SELECT count(*) FROM rpa1_processed_surveys");
    assert_eq!(total[0][0].as_deref(), Some(completed.to_string().as_str()));
}

#[test]
fn rpa1_on_postgresql_writes_scores_and_is_idempotent() {
    let rpa_db = PgDatabase::create();
    let survey_hub = PgDatabase::create();
    survey_hub.exec(&std::fs::read_to_string(repo().join("seeds/SurveyHub.sql")).unwrap());
    let completed = survey_hub.count("survey_responses WHERE status = 'completed'");

    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_TYPE=postgresql\n\
             DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\n\
             DEVELOPMENT_GLOBAL_SURVEYHUB_TYPE=postgresql\n\
             DEVELOPMENT_GLOBAL_SURVEYHUB_CONNECTION_STRING={}\n",
            rpa_db.url(),
            survey_hub.url()
        ),
    );
    let first = json_ok(&run_rpa1(&project));
    assert_counts(&first, completed, completed - MALFORMED, MALFORMED);

    // Scores are exact averages of the five ratings, checked independently in SQL.
    let mismatches = rpa_db
        .count("rpa1_processed_surveys WHERE status = 'processed' AND satisfaction_score IS NULL");
    assert_eq!(mismatches, 0);
    let expected = survey_hub.column(
        "SELECT response_id::text || '=' || round(((response_data::json->>'question_1')::numeric + \
         (response_data::json->>'question_2')::numeric + (response_data::json->>'question_3')::numeric + \
         (response_data::json->>'question_4')::numeric + (response_data::json->>'question_5')::numeric) / 5, 2)::text \
         FROM survey_responses WHERE response_id IN (1, 2, 3) ORDER BY response_id",
    );
    let actual = rpa_db.column(
        "SELECT response_id::text || '=' || satisfaction_score::text FROM rpa1_processed_surveys \
         WHERE response_id IN (1, 2, 3) ORDER BY response_id",
    );
    assert_eq!(actual, expected);
    let failed = rpa_db.column(
        "SELECT error FROM rpa1_processed_surveys WHERE status = 'failed' ORDER BY response_id",
    );
    assert_eq!(failed.len() as i64, MALFORMED);
    assert!(
        failed
            .iter()
            .all(|e| e.as_deref().is_some_and(|e| !e.is_empty()))
    );

    let second = json_ok(&run_rpa1(&project));
    assert_counts(&second, 0, 0, 0);
    assert_eq!(rpa_db.count("rpa1_processed_surveys"), completed);
    // The migration ran exactly once.
    assert_eq!(rpa_db.count("flowhost_schema_history WHERE success"), 1);
}
