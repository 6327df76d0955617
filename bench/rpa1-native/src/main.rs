//! rpa1 as a native Rust program on sqlx, for `make bench`: read the processed ids, read the
//! completed responses, score them with the flow's own `scoring` module, and write every row
//! with one `UNNEST` insert in one transaction. What a hand-written program would do; no
//! sandbox, no migrations check, no manifest.
//!
//! Usage: rpa1-native RPA_DB_URL SURVEYHUB_URL (PostgreSQL URLs); prints the summary as JSON.

use std::collections::HashSet;

use rpa1::scoring::{Response, plan, summarise};
use sqlx::{Connection, PgConnection, Row};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), sqlx::Error> {
    let mut args = std::env::args().skip(1);
    let (Some(rpa_url), Some(hub_url)) = (args.next(), args.next()) else {
        eprintln!("usage: rpa1-native RPA_DB_URL SURVEYHUB_URL");
        std::process::exit(2);
    };
    // Both connections open at once, as a program that knows it needs both would.
    let (rpa, hub) = tokio::join!(
        PgConnection::connect(&rpa_url),
        PgConnection::connect(&hub_url)
    );
    let (mut rpa, mut hub) = (rpa?, hub?);
    let done: HashSet<i64> = sqlx::query_scalar("SELECT response_id FROM rpa1_processed_surveys")
        .fetch_all(&mut rpa)
        .await?
        .into_iter()
        .collect();
    let responses = sqlx::query(
        "SELECT response_id, survey_id, respondent_email, response_data \
         FROM survey_responses WHERE status = 'completed' ORDER BY response_id",
    )
    .fetch_all(&mut hub)
    .await?
    .into_iter()
    .map(|r| {
        Ok::<_, sqlx::Error>(Response {
            response_id: r.try_get::<i32, _>(0)?.into(),
            survey_id: r.try_get::<i32, _>(1)?.into(),
            respondent_email: r.try_get(2)?,
            response_data: r
                .try_get::<Option<String>, _>(3)?
                .map(serde_json::Value::String),
        })
    });
    let rows = plan(responses, &done)?;
    let mut written = 0;
    if !rows.is_empty() {
        let mut tx = rpa.begin().await?;
        written = sqlx::query(
            "INSERT INTO rpa1_processed_surveys \
             (response_id, survey_id, respondent_email, satisfaction_score, status, error) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::numeric[], \
             $5::text[], $6::text[]) ON CONFLICT (response_id) DO NOTHING",
        )
        .bind(rows.iter().map(|r| r.response_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.survey_id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.respondent_email.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.satisfaction_score.as_ref().map(|d| d.0.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| {
                    serde_json::to_value(r.status)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    println!(
        "{}",
        serde_json::to_string(&summarise(&rows, written)).unwrap()
    );
    Ok(())
}
