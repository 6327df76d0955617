//! The flow's decisions, free of database calls so they can be unit-tested natively.

use flowhost_sdk::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::HashSet;

/// The ratings that make up the satisfaction score.
pub const QUESTIONS: [&str; 5] = [
    "question_1",
    "question_2",
    "question_3",
    "question_4",
    "question_5",
];

/// The valid rating range, inclusive.
pub const RATINGS: std::ops::RangeInclusive<i64> = 1..=5;

/// One completed response as read from SurveyHub.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Response {
    pub response_id: i64,
    pub survey_id: i64,
    pub respondent_email: Option<String>,
    /// A `TEXT` column arrives as a JSON string; a `json`/`jsonb` column (should SurveyHub
    /// ever use one) arrives parsed. [`score_response`] accepts both.
    pub response_data: Option<Json>,
}

/// Outcome of one response, as stored in `rpa1_processed_surveys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Processed,
    Failed,
}

/// One row of `rpa1_processed_surveys`; its fields are the insert's named parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessedRow {
    pub response_id: i64,
    pub survey_id: i64,
    pub respondent_email: Option<String>,
    /// `Decimal` binds as an exact `decimal`, so `4.20` never passes through a float.
    pub satisfaction_score: Option<Decimal>,
    pub status: Status,
    pub error: Option<String>,
}

/// The flow's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rows written with status `processed`.
    pub surveys_processed: u64,
    /// Completed responses read that were not processed before.
    pub responses_found: u64,
    /// Rows written with status `failed`.
    pub failed: u64,
}

/// Scores one response's data: the mean of [`QUESTIONS`] as a decimal with two places.
/// Every problem found is reported, separated by `; `.
pub fn score_response(data: Option<&Json>) -> Result<String, String> {
    let parsed;
    let object = match data {
        None | Some(Json::Null) => return Err("response_data is empty".to_owned()),
        Some(Json::String(text)) => {
            parsed = serde_json::from_str::<Json>(text)
                .map_err(|e| format!("response_data is not valid JSON: {e}"))?;
            &parsed
        }
        Some(other) => other,
    };
    let object = object.as_object().ok_or_else(|| {
        format!(
            "response_data is not a JSON object (got {})",
            json_kind(object)
        )
    })?;
    let ratings = ratings(object)?;
    Ok(format_mean(ratings.iter().sum(), ratings.len() as i64))
}

fn ratings(object: &Map<String, Json>) -> Result<Vec<i64>, String> {
    let mut ratings = Vec::with_capacity(QUESTIONS.len());
    let mut problems = Vec::new();
    for question in QUESTIONS {
        match object.get(question) {
            None => problems.push(format!("{question} is missing")),
            Some(value) if value.is_i64() || value.is_u64() => match value.as_i64() {
                Some(r) if RATINGS.contains(&r) => ratings.push(r),
                _ => problems.push(format!(
                    "{question} rating {value} is out of range {}-{}",
                    RATINGS.start(),
                    RATINGS.end()
                )),
            },
            Some(value) => problems.push(format!(
                "{question} is not an integer rating (got {})",
                describe(value)
            )),
        }
    }
    if problems.is_empty() {
        Ok(ratings)
    } else {
        Err(problems.join("; "))
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A value's kind, with the value itself when it is short enough to quote.
fn describe(value: &Json) -> String {
    match value {
        Json::Bool(_) | Json::Number(_) | Json::String(_) if value.to_string().len() <= 40 => {
            format!("{} {value}", json_kind(value))
        }
        _ => json_kind(value).to_owned(),
    }
}

/// `sum / count` rounded half up to two decimal places, in integer arithmetic so the text is
/// exact. `count` must be positive and `sum` non-negative (ratings are).
pub fn format_mean(sum: i64, count: i64) -> String {
    let hundredths = (sum * 200 + count) / (2 * count);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Turns one response into the row that records it: `processed` with its score, or `failed`
/// with what is wrong.
pub fn process(response: Response) -> ProcessedRow {
    let (satisfaction_score, status, error) = match score_response(response.response_data.as_ref())
    {
        Ok(score) => (Some(Decimal(score)), Status::Processed, None),
        Err(problem) => (None, Status::Failed, Some(problem)),
    };
    ProcessedRow {
        response_id: response.response_id,
        survey_id: response.survey_id,
        respondent_email: response.respondent_email,
        satisfaction_score,
        status,
        error,
    }
}

/// Rows for every response not already in `done`, in the order read. Stops at the first read
/// error (a database failure, not bad data: bad data becomes a `failed` row).
pub fn plan<E>(
    responses: impl IntoIterator<Item = Result<Response, E>>,
    done: &HashSet<i64>,
) -> Result<Vec<ProcessedRow>, E> {
    let mut rows = Vec::new();
    for response in responses {
        let response = response?;
        if !done.contains(&response.response_id) {
            rows.push(process(response));
        }
    }
    Ok(rows)
}

/// The output for `rows` of which the insert wrote `written`.
///
/// `ON CONFLICT DO NOTHING` skips rows that a concurrent run committed first, and a batch
/// reports only its total, so when `written < rows.len()` the split between processed and
/// failed is attributed processed-first. Totals stay exact, so counts summed over racing runs
/// still equal the rows in the table.
pub fn summarise(rows: &[ProcessedRow], written: u64) -> Summary {
    let processed = rows
        .iter()
        .filter(|r| r.status == Status::Processed)
        .count() as u64;
    let written = written.min(rows.len() as u64);
    let surveys_processed = processed.min(written);
    Summary {
        surveys_processed,
        responses_found: rows.len() as u64,
        failed: written - surveys_processed,
    }
}

#[cfg(test)]
#[path = "scoring_tests.rs"]
mod tests;
