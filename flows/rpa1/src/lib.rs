//! rpa1: scores unprocessed survey responses from SurveyHub into `rpa_db`.
//!
//! Input (all optional): `{"survey_id": 101, "batch_size": 500}`. Output:
//! `{"surveys_processed": n, "responses_found": n, "failed": n}`.
//!
//! Each completed response is recorded once in `rpa1_processed_surveys`, scored (`processed`)
//! or with what is wrong with its data (`failed`); however often the flow runs, and even when
//! two runs race, the insert's `ON CONFLICT DO NOTHING` keeps one row per response.

pub mod scoring;

use flowhost_sdk::{Db, Error, Params, flow, info, params, warn};
use scoring::{ProcessedRow, Response, Summary, plan, summarise};
use serde::Deserialize;
use std::collections::HashSet;

/// How many rows each cursor fetch asks for unless the input says otherwise.
const DEFAULT_BATCH_SIZE: u32 = 1000;

const INSERT_SQL: &str = "INSERT INTO rpa1_processed_surveys \
     (response_id, survey_id, respondent_email, satisfaction_score, status, error) \
     VALUES (:response_id, :survey_id, :respondent_email, :satisfaction_score, :status, :error) \
     ON CONFLICT (response_id) DO NOTHING";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Only this survey's responses.
    pub survey_id: Option<i64>,
    /// Rows per cursor fetch.
    pub batch_size: Option<u32>,
}

fn run(input: Input) -> Result<Summary, Error> {
    let batch_size = input.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if batch_size == 0 {
        return Err(Error::msg("batch_size must be at least 1"));
    }
    let rpa = Db::open("rpa_db")?;
    let hub = Db::open("SurveyHub")?;

    let done = processed_ids(&rpa, input.survey_id, batch_size)?;
    let rows = new_rows(&hub, input.survey_id, batch_size, &done)?;
    if rows.is_empty() {
        info!("no new survey responses ({} already processed)", done.len());
        return Ok(Summary::default());
    }

    // One transaction, one host call: either every row lands or none does.
    let written = rpa.transaction(|tx| tx.execute_batch(INSERT_SQL, &rows))?;
    let summary = summarise(&rows, written);
    if written < rows.len() as u64 {
        warn!(
            "{} of {} rows were already written by a concurrent run",
            rows.len() as u64 - written,
            rows.len()
        );
    }
    info!(
        "found {} new responses: {} processed, {} failed",
        summary.responses_found, summary.surveys_processed, summary.failed
    );
    Ok(summary)
}

/// The response ids already recorded, streamed so the table's size never meets a row limit.
fn processed_ids(rpa: &Db, survey_id: Option<i64>, batch_size: u32) -> Result<HashSet<i64>, Error> {
    let (sql, params) = match survey_id {
        Some(id) => (
            "SELECT response_id FROM rpa1_processed_surveys WHERE survey_id = :survey_id",
            params! { "survey_id" => id },
        ),
        None => (
            "SELECT response_id FROM rpa1_processed_surveys",
            Params::new(),
        ),
    };
    rpa.cursor(sql, params)?
        .batch_size(batch_size)
        .rows_as::<i64>()
        .collect()
}

/// Reads completed responses in id order and turns the unprocessed ones into rows.
fn new_rows(
    hub: &Db,
    survey_id: Option<i64>,
    batch_size: u32,
    done: &HashSet<i64>,
) -> Result<Vec<ProcessedRow>, Error> {
    const SELECT: &str = "SELECT response_id, survey_id, respondent_email, response_data \
         FROM survey_responses WHERE status = 'completed'";
    let (sql, params) = match survey_id {
        Some(id) => (
            format!("{SELECT} AND survey_id = :survey_id ORDER BY response_id"),
            params! { "survey_id" => id },
        ),
        None => (format!("{SELECT} ORDER BY response_id"), Params::new()),
    };
    let responses = hub
        .cursor(&sql, params)?
        .batch_size(batch_size)
        .rows_as::<Response>();
    plan(responses, done)
}

flow!(run);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_optional_and_strict() {
        let ok = flowhost_sdk::run_json("", |i: Input| Ok::<_, Error>(i.batch_size));
        assert_eq!(ok.unwrap(), "null");
        let ok = flowhost_sdk::run_json(r#"{"survey_id": 101, "batch_size": 5}"#, |i: Input| {
            Ok::<_, Error>((i.survey_id, i.batch_size))
        });
        assert_eq!(ok.unwrap(), "[101,5]");
        let err = flowhost_sdk::run_json(r#"{"surveyid": 1}"#, |_: Input| Ok::<_, Error>(()));
        assert!(err.unwrap_err().contains("unknown field `surveyid`"));
        let err = flowhost_sdk::run_json(r#"{"batch_size": -1}"#, |_: Input| Ok::<_, Error>(()));
        assert!(err.unwrap_err().contains("field `batch_size`"));
    }

    #[test]
    fn zero_batch_size_is_refused_before_any_database_call() {
        let input = Input {
            survey_id: None,
            batch_size: Some(0),
        };
        assert_eq!(
            run(input).unwrap_err().to_string(),
            "batch_size must be at least 1"
        );
    }

    #[test]
    fn insert_is_one_idempotent_statement() {
        assert!(!INSERT_SQL.contains(';'));
        assert!(INSERT_SQL.ends_with("ON CONFLICT (response_id) DO NOTHING"));
    }
}
