use super::*;
use serde_json::json;

fn text(s: &str) -> Json {
    Json::String(s.to_owned())
}

fn score_text(s: &str) -> Result<String, String> {
    score_response(Some(&text(s)))
}

const GOOD: &str = r#"{"question_1": 4, "question_2": 5, "question_3": 3, "question_4": 4,
    "question_5": 5, "comments": "Great service"}"#;

#[test]
fn valid_response_scores_the_mean_with_two_places() {
    assert_eq!(score_text(GOOD).unwrap(), "4.20");
    let all = |r: i64| {
        json!({"question_1": r, "question_2": r, "question_3": r,
        "question_4": r, "question_5": r})
    };
    assert_eq!(score_response(Some(&all(1))).unwrap(), "1.00");
    assert_eq!(score_response(Some(&all(5))).unwrap(), "5.00");
}

#[test]
fn already_parsed_json_is_accepted() {
    let data = json!({"question_1": 1, "question_2": 2, "question_3": 3, "question_4": 4,
        "question_5": 5});
    assert_eq!(score_response(Some(&data)).unwrap(), "3.00");
}

#[test]
fn extra_keys_are_ignored() {
    let data = r#"{"question_1": 2, "question_2": 2, "question_3": 2, "question_4": 2,
        "question_5": 3, "question_6": 99, "comments": null}"#;
    assert_eq!(score_text(data).unwrap(), "2.20");
}

#[test]
fn mean_rounds_half_up_exactly() {
    assert_eq!(format_mean(21, 5), "4.20");
    assert_eq!(format_mean(5, 5), "1.00");
    assert_eq!(format_mean(10, 3), "3.33");
    assert_eq!(format_mean(20, 3), "6.67");
    assert_eq!(format_mean(1, 8), "0.13");
}

#[test]
fn invalid_json_fails() {
    let err = score_text(r#"{"question_1": 4, "question_2": 5,"#).unwrap_err();
    assert!(
        err.starts_with("response_data is not valid JSON: "),
        "{err}"
    );
    let err = score_text("").unwrap_err();
    assert!(
        err.starts_with("response_data is not valid JSON: "),
        "{err}"
    );
}

#[test]
fn null_data_fails() {
    assert_eq!(score_response(None).unwrap_err(), "response_data is empty");
    assert_eq!(
        score_response(Some(&Json::Null)).unwrap_err(),
        "response_data is empty"
    );
}

#[test]
fn non_object_json_fails() {
    assert_eq!(
        score_text("[4, 5, 3, 4, 5]").unwrap_err(),
        "response_data is not a JSON object (got an array)"
    );
    assert_eq!(
        score_text("\"4,5,3,4,5\"").unwrap_err(),
        "response_data is not a JSON object (got a string)"
    );
    assert_eq!(
        score_text("null").unwrap_err(),
        "response_data is not a JSON object (got null)"
    );
}

#[test]
fn missing_question_fails() {
    let err = score_text(r#"{"question_1": 4, "question_2": 5, "question_3": 3, "question_5": 5}"#)
        .unwrap_err();
    assert_eq!(err, "question_4 is missing");
    assert_eq!(
        score_text("{}").unwrap_err(),
        "question_1 is missing; question_2 is missing; question_3 is missing; \
         question_4 is missing; question_5 is missing"
    );
}

fn with_q3(rating: &str) -> String {
    format!(
        r#"{{"question_1": 4, "question_2": 5, "question_3": {rating}, "question_4": 4,
        "question_5": 5}}"#
    )
}

#[test]
fn out_of_range_ratings_fail() {
    for (rating, shown) in [("7", "7"), ("0", "0"), ("6", "6"), ("-1", "-1")] {
        assert_eq!(
            score_text(&with_q3(rating)).unwrap_err(),
            format!("question_3 rating {shown} is out of range 1-5")
        );
    }
    assert_eq!(
        score_text(&with_q3("18446744073709551615")).unwrap_err(),
        "question_3 rating 18446744073709551615 is out of range 1-5"
    );
}

#[test]
fn non_integer_ratings_fail() {
    let cases = [
        (
            "4.5",
            "question_3 is not an integer rating (got a number 4.5)",
        ),
        (
            "4.0",
            "question_3 is not an integer rating (got a number 4.0)",
        ),
        (
            "\"4\"",
            "question_3 is not an integer rating (got a string \"4\")",
        ),
        (
            "true",
            "question_3 is not an integer rating (got a boolean true)",
        ),
        ("null", "question_3 is not an integer rating (got null)"),
        ("[4]", "question_3 is not an integer rating (got an array)"),
        (
            "{\"v\": 4}",
            "question_3 is not an integer rating (got an object)",
        ),
    ];
    for (rating, expected) in cases {
        assert_eq!(
            score_text(&with_q3(rating)).unwrap_err(),
            expected,
            "{rating}"
        );
    }
    let long = format!("\"{}\"", "x".repeat(60));
    assert_eq!(
        score_text(&with_q3(&long)).unwrap_err(),
        "question_3 is not an integer rating (got a string)"
    );
}

#[test]
fn every_problem_is_reported() {
    let err =
        score_text(r#"{"question_1": 9, "question_2": "x", "question_4": 4, "question_5": 1}"#)
            .unwrap_err();
    assert_eq!(
        err,
        "question_1 rating 9 is out of range 1-5; \
         question_2 is not an integer rating (got a string \"x\"); question_3 is missing"
    );
}

fn response(id: i64, data: &str) -> Response {
    Response {
        response_id: id,
        survey_id: 101,
        respondent_email: Some(format!("user{id}@example.com")),
        response_data: Some(text(data)),
    }
}

#[test]
fn process_records_score_or_error() {
    let ok = process(response(1, GOOD));
    assert_eq!(
        ok,
        ProcessedRow {
            response_id: 1,
            survey_id: 101,
            respondent_email: Some("user1@example.com".into()),
            satisfaction_score: Some(Decimal("4.20".into())),
            status: Status::Processed,
            error: None,
        }
    );
    let bad = process(response(2, "not json"));
    assert_eq!(bad.status, Status::Failed);
    assert_eq!(bad.satisfaction_score, None);
    assert!(
        bad.error
            .unwrap()
            .starts_with("response_data is not valid JSON")
    );
}

#[test]
fn rows_serialise_to_the_insert_parameters() {
    let params = serde_json::to_value(process(response(1, GOOD))).unwrap();
    assert_eq!(
        params,
        json!({"response_id": 1, "survey_id": 101, "respondent_email": "user1@example.com",
            "satisfaction_score": "4.20", "status": "processed", "error": null})
    );
}

#[test]
fn plan_skips_processed_responses_and_keeps_order() {
    let done: HashSet<i64> = [2, 4].into_iter().collect();
    let read = (1..=5).map(|id| Ok::<_, String>(response(id, GOOD)));
    let rows = plan(read, &done).unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.response_id).collect();
    assert_eq!(ids, [1, 3, 5]);
}

#[test]
fn plan_stops_at_a_read_error() {
    let read = vec![
        Ok(response(1, GOOD)),
        Err("connection lost"),
        Ok(response(3, GOOD)),
    ];
    assert_eq!(plan(read, &HashSet::new()).unwrap_err(), "connection lost");
}

#[test]
fn second_run_plans_nothing() {
    let read = || (1..=3).map(|id| Ok::<_, String>(response(id, GOOD)));
    let first = plan(read(), &HashSet::new()).unwrap();
    let done: HashSet<i64> = first.iter().map(|r| r.response_id).collect();
    assert!(plan(read(), &done).unwrap().is_empty());
    assert_eq!(summarise(&[], 0), Summary::default());
}

#[test]
fn summary_counts_written_rows_by_status() {
    let rows = vec![
        process(response(1, GOOD)),
        process(response(2, "{}")),
        process(response(3, GOOD)),
    ];
    let all = Summary {
        surveys_processed: 2,
        responses_found: 3,
        failed: 1,
    };
    assert_eq!(summarise(&rows, 3), all);
    let none = Summary {
        surveys_processed: 0,
        responses_found: 3,
        failed: 0,
    };
    assert_eq!(summarise(&rows, 0), none);
    let some = summarise(&rows, 2);
    assert_eq!(some.surveys_processed + some.failed, 2);
    assert_eq!(
        serde_json::to_value(all).unwrap(),
        json!({"surveys_processed": 2, "responses_found": 3, "failed": 1})
    );
}
