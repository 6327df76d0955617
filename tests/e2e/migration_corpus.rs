//! A realistic schema history (tests/e2e/fixtures/corpus: an RPA/survey app over twelve
//! files) applied by `flowhost migrate` to a fresh PostgreSQL database, then checked through
//! real queries: every object exists and works, every literal arrived intact, and each file
//! was split into exactly the statements it holds.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::support::*;

/// The fixture files in version order, with the number of statements each holds (comment-only
/// pieces do not count; a function, DO block or rule body is one statement).
const CORPUS: &[(&str, &str, usize)] = &[
    ("1", "V1__Types_and_domains.sql", 6),
    ("2", "V2__Create_surveys_and_questions.sql", 4),
    ("3", "V3__Create_responses.sql", 6),
    ("4", "V4__Audit_and_touch_triggers.sql", 5),
    ("5", "V5__Scoring_functions.sql", 3),
    ("6", "V6__Seed_surveys.sql", 2),
    ("7", "V7__Reporting_views.sql", 4),
    ("8", "V8__Processing_columns.sql", 6),
    ("9", "V9__Rpa_runs.sql", 4),
    ("9.1", "V9_1__Legacy_feedback_view.sql", 2),
    ("10", "V10__Seed_responses.sql", 3),
    ("11", "V11__Archive_procedure_and_settings.sql", 6),
];

fn fixtures() -> PathBuf {
    repo().join("tests/e2e/fixtures/corpus")
}

/// A project whose `migrations/corpus` folder holds the fixture files, configured for `pg`.
fn corpus_project(pg: &PgDatabase) -> Project {
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_CORPUS_CONNECTION_STRING={}\n", pg.url()),
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(_, f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "CORPUS lists every fixture file");
    for name in &on_disk {
        let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
        project.write(&format!("migrations/corpus/{name}"), &text);
    }
    project
}

/// The first column of a one-row query, as text.
fn one(pg: &PgDatabase, sql: &str) -> String {
    let rows = pg.column(sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

/// Runs `sql` and returns the database's error message (the statement must fail).
fn error_of(pg: &PgDatabase, sql: &str) -> String {
    block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg.sqlx_url()).await.unwrap();
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
        {
            Ok(_) => panic!("{sql}: succeeded, expected an error"),
            Err(e) => e.to_string(),
        }
    })
}

#[test]
fn corpus_applies_once_with_every_object_working_on_postgresql() {
    let pg = PgDatabase::create();
    let project = corpus_project(&pg);

    let report = json_ok(&project.flowhost(&["migrate", "corpus", "--json"]));
    let applied = report["databases"][0]["applied"]
        .as_array()
        .expect("applied list");
    let got: Vec<(String, String, u64)> = applied
        .iter()
        .map(|a| {
            (
                a["version"].as_str().unwrap().to_owned(),
                a["script"].as_str().unwrap().to_owned(),
                a["statements"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> = CORPUS
        .iter()
        .map(|(v, f, n)| (v.to_string(), f.to_string(), *n as u64))
        .collect();
    assert_eq!(
        got, want,
        "applied in version order, each split into its statements"
    );
    assert_eq!(report["databases"][0]["version_after"], "11", "{report}");

    // History: one successful row per file, in order, with the file's SHA-256.
    let history = pg.column(
        "SELECT concat_ws('|', installed_rank, version, script, checksum, checksum_algorithm, \
         type, success::text) FROM flowhost_schema_history ORDER BY installed_rank",
    );
    let expected: Vec<Option<String>> = CORPUS
        .iter()
        .enumerate()
        .map(|(i, (v, f, _))| {
            let raw = std::fs::read(fixtures().join(f)).unwrap();
            let sum = hex::encode(Sha256::digest(&raw));
            Some(format!("{}|{v}|{f}|{sum}|sha256|SQL|true", i + 1))
        })
        .collect();
    assert_eq!(history, expected);

    check_schema_objects(&pg);
    check_seeded_data(&pg);
    check_behaviour(&pg);

    // A second run applies nothing and changes nothing; validate agrees.
    let again = json_ok(&project.flowhost(&["migrate", "corpus", "--json"]));
    assert_eq!(
        again["databases"][0]["applied"],
        serde_json::json!([]),
        "{again}"
    );
    assert_eq!(again["databases"][0]["version_before"], "11", "{again}");
    assert_eq!(pg.count("flowhost_schema_history"), CORPUS.len() as i64);
    let valid = project.flowhost(&["migrate", "validate", "corpus"]);
    assert!(
        valid.status.success(),
        "{}\n{}",
        stdout(&valid),
        stderr(&valid)
    );
}

fn check_schema_objects(pg: &PgDatabase) {
    // Nothing from inside the nested block comment of V1 ran.
    assert_eq!(
        one(pg, "SELECT (to_regclass('not_created') IS NULL)::text"),
        "true"
    );
    assert_eq!(
        one(
            pg,
            "SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e \
             WHERE e.enumtypid = 'response_status'::regtype"
        ),
        "new,processing,processed,failed,archived"
    );
    assert_eq!(
        one(
            pg,
            "SELECT string_agg(typname, ',' ORDER BY typname) FROM pg_type \
             WHERE typtype = 'd' AND typnamespace = 'public'::regnamespace"
        ),
        "email_address,score_value"
    );
    // Partial and expression indexes, as PostgreSQL prints them back.
    let partial = one(
        pg,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'responses_new_idx'",
    );
    assert!(
        partial.ends_with("WHERE (status = 'new'::response_status)"),
        "{partial}"
    );
    let expression = one(
        pg,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'responses_day_idx'",
    );
    assert!(
        expression.contains("AT TIME ZONE 'UTC'::text"),
        "{expression}"
    );
    assert_eq!(
        one(
            pg,
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'rpa_runs_one_running'"
        ),
        "CREATE UNIQUE INDEX rpa_runs_one_running ON public.rpa_runs USING btree (flow) \
         WHERE (status = 'running'::text)"
    );
    assert_eq!(
        pg.count(
            "pg_indexes WHERE schemaname = 'public' AND indexname IN ('surveys_code_lower_idx', \
             'questions_survey_idx', 'respondents_email_idx', 'responses_answers_gin', \
             'daily_scores_key')"
        ),
        5
    );
    assert_eq!(
        one(
            pg,
            "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal"
        ),
        "responses_audit,responses_score,surveys_touch"
    );
    assert_eq!(
        one(
            pg,
            "SELECT string_agg(proname || ':' || prokind::text, ',' ORDER BY proname) FROM pg_proc \
             WHERE pronamespace = 'public'::regnamespace"
        ),
        "archive_responses:p,audit_row:f,compute_score:f,grade:f,score_answers:f,touch_updated_at:f"
    );
    assert_eq!(
        pg.count("pg_matviews WHERE matviewname = 'daily_scores' AND ispopulated"),
        1
    );
    assert_eq!(
        pg.count("pg_rules WHERE rulename = 'survey_feedback_insert'"),
        1
    );
    // COMMENT ON with quotes, semicolons and an E'' string.
    assert_eq!(
        one(pg, "SELECT obj_description('response_status'::regtype)"),
        "new -> processing -> processed | failed; set by the rpa1 flow"
    );
    assert_eq!(
        one(pg, "SELECT obj_description('email_address'::regtype)"),
        "An address; \"quoted\" local parts aren't accepted -- keep it simple"
    );
    assert_eq!(
        one(
            pg,
            "SELECT obj_description('score_answers(integer, jsonb)'::regprocedure)"
        ),
        "Weighted 0..100 score; free-text answers don't count; raises on bad scale answers"
    );
    assert_eq!(
        one(
            pg,
            "SELECT obj_description('survey_overview'::regclass, 'pg_class')"
        ),
        "One row per survey; \"question_count\" counts every kind; weights summed"
    );
    assert_eq!(
        one(
            pg,
            "SELECT col_description('responses'::regclass, \
             (SELECT attnum FROM pg_attribute WHERE attrelid = 'responses'::regclass \
              AND attname = 'note')::int)"
        ),
        "Free text from the operator.\nMay contain ; and -- and 'quotes'."
    );
    // Written by the DO block's dynamic SQL.
    assert_eq!(
        one(
            pg,
            "SELECT obj_description('processed_surveys'::regclass, 'pg_class')"
        ),
        "Written by the rpa1 flow; don't edit by hand"
    );
}

fn check_seeded_data(pg: &PgDatabase) {
    assert_eq!(
        pg.column("SELECT title FROM surveys ORDER BY survey_id"),
        vec![
            Some("Net promoter score; 2024 -- all customers".to_owned()),
            Some("Onboarding\tfeedback: it's \"day one\";\n".to_owned()),
            Some("Store kiosk /* not a comment */ survey".to_owned()),
        ]
    );
    assert_eq!(
        one(
            pg,
            "SELECT owner_email::text FROM surveys WHERE code = 'KIOSK_Q2'"
        ),
        "o'brien@example.com"
    );
    assert_eq!(
        one(
            pg,
            "SELECT display_name FROM respondents WHERE email = 'bob@example.com'"
        ),
        "Bob \\ \"the builder\""
    );
    assert_eq!(
        one(pg, "SELECT prompt FROM questions WHERE kind = 'free_text'"),
        "Anything else? -- free text"
    );
    // The view over the seeded surveys and questions.
    assert_eq!(
        pg.column(
            "SELECT concat_ws('|', code, channel, question_count, total_weight) \
             FROM survey_overview ORDER BY survey_id"
        ),
        vec![
            Some("NPS-2024|email|3|4.00".to_owned()),
            Some("ONBOARD|web|1|1.00".to_owned()),
            Some("KIOSK_Q2|kiosk|1|1.00".to_owned()),
        ]
    );
    // Scores computed by the BEFORE trigger while V10 inserted; the generated column follows.
    assert_eq!(
        pg.column(
            "SELECT concat_ws('|', status, score, score_grade, note) FROM responses \
             ORDER BY response_id"
        ),
        vec![
            Some("processed|100.00|promoter|note; with semicolon".to_owned()),
            Some("processed|33.33|detractor".to_owned()),
            Some("new|n/a|first line\nsecond -- line".to_owned()),
            Some("new|n/a".to_owned()),
            Some("failed|n/a|bad answer; kept for review".to_owned()),
        ]
    );
    // The AFTER trigger logged each insert, with its $$-quoted format string intact.
    assert_eq!(
        one(pg, "SELECT detail FROM audit_log WHERE row_key = '1'"),
        "INSERT on responses: status none -> processed; it's done"
    );
    assert_eq!(pg.count("audit_log"), 5);
    // The materialized view was refreshed over the seeded rows (failed ones excluded).
    assert_eq!(
        pg.column(
            "SELECT concat_ws('|', s.code, d.day, d.responses, d.avg_score) \
             FROM daily_scores d JOIN surveys s USING (survey_id) ORDER BY s.code, d.day"
        ),
        vec![
            Some("NPS-2024|2024-05-01|2|66.67".to_owned()),
            Some("NPS-2024|2024-05-02|1|83.33".to_owned()),
            Some("ONBOARD|2024-05-02|1|25.00".to_owned()),
        ]
    );
    assert_eq!(
        one(
            pg,
            "SELECT settings::text FROM surveys WHERE code = 'ONBOARD'"
        ),
        r#"{"reminder": "none; never"}"#
    );
    assert_eq!(
        one(
            pg,
            "SELECT settings ->> 'reminder' FROM surveys WHERE code = 'NPS-2024'"
        ),
        "weekly"
    );
    // A standard string ending in a backslash, a U&'' string and doubled quotes around ; --.
    assert_eq!(
        pg.column("SELECT key || '=' || value FROM rpa_settings ORDER BY key"),
        vec![
            Some("export_sql=SELECT * FROM responses WHERE note <> '; -- '".to_owned()),
            Some("greeting=Olá; bem-vindo".to_owned()),
            Some("inbox_dir=C:\\RPA\\inbox\\".to_owned()),
        ]
    );
}

fn check_behaviour(pg: &PgDatabase) {
    // Functions: the plpgsql scorer and the BEGIN ATOMIC one.
    assert_eq!(
        one(
            pg,
            "SELECT score_answers(survey_id, '{\"q1\": \"4\", \"q2\": \"no\"}')::text \
             FROM surveys WHERE code = 'NPS-2024'"
        ),
        "50.00"
    );
    assert_eq!(
        one(
            pg,
            "SELECT concat_ws(',', grade(85), grade(60), grade(10), grade(NULL))"
        ),
        "promoter,passive,detractor,n/a"
    );
    let err = error_of(
        pg,
        "SELECT score_answers(survey_id, '{\"q1\": \"9\"}') FROM surveys WHERE code = 'ONBOARD'",
    );
    assert!(
        err.contains("answer q1 = '9' is not on the 1..5 scale; response rejected"),
        "{err}"
    );
    // Domains and constraints hold.
    let err = error_of(
        pg,
        "INSERT INTO respondents (email) VALUES ('not an address')",
    );
    assert!(err.contains("email_address_format"), "{err}");
    let err = error_of(
        pg,
        "INSERT INTO rpa_runs (flow) VALUES ('rpa1'); INSERT INTO rpa_runs (flow) VALUES ('rpa1')",
    );
    assert!(err.contains("rpa_runs_one_running"), "{err}");

    // Triggers fire on later writes: processing a response scores and audits it.
    pg.exec("UPDATE responses SET status = 'processed' WHERE note LIKE 'first line%'");
    assert_eq!(
        one(
            pg,
            "SELECT concat_ws('|', score, score_grade, (processed_at IS NOT NULL)::text) FROM responses \
             WHERE note LIKE 'first line%'"
        ),
        "83.33|promoter|true"
    );
    assert_eq!(
        one(
            pg,
            "SELECT detail FROM audit_log WHERE operation = 'UPDATE' ORDER BY audit_id DESC LIMIT 1"
        ),
        "UPDATE on responses: status new -> processed; it's done"
    );
    let before = one(
        pg,
        "SELECT updated_at::text FROM surveys WHERE code = 'ONBOARD'",
    );
    pg.exec("UPDATE surveys SET title = 'Onboarding' WHERE code = 'ONBOARD'");
    let after = one(
        pg,
        "SELECT updated_at::text FROM surveys WHERE code = 'ONBOARD'",
    );
    assert_ne!(before, after, "surveys_touch moved updated_at");

    // The rule's two actions both run for an insert into the legacy view.
    pg.exec(
        "INSERT INTO survey_feedback (survey_id, comment) \
         SELECT survey_id, 'from the old tool; ok' FROM surveys WHERE code = 'ONBOARD'",
    );
    assert_eq!(
        one(
            pg,
            "SELECT concat_ws('|', answers ->> 'comment', note) FROM responses \
             WHERE note = 'via legacy view; rule'"
        ),
        "from the old tool; ok|via legacy view; rule"
    );
    assert_eq!(
        pg.count("audit_log WHERE detail = 'legacy insert -- rewritten'"),
        1
    );

    // The procedure uses the enum value V8 added, and reports its row count.
    let archived = block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&pg.sqlx_url()).await.unwrap();
        // The cut-off date means midnight UTC, whatever the server's time zone.
        sqlx::raw_sql("SET TIME ZONE 'UTC'")
            .execute(&mut conn)
            .await
            .unwrap();
        let row = sqlx::query("CALL archive_responses('2024-05-02')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        row.get::<i32, _>("archived")
    });
    assert_eq!(
        archived, 2,
        "the two responses processed before 2024-05-02 are archived"
    );
    assert_eq!(pg.count("responses WHERE status = 'archived'"), 2);
}

/// `begin` is a non-reserved word in PostgreSQL, so it can name a routine's parameter. The
/// splitter once counted it as the start of a `BEGIN ... END` body, so everything after it
/// became one "statement": the `COMMIT` below was not refused and committed the migration
/// half-way. It must be refused, with nothing left behind.
#[test]
fn a_parameter_named_begin_does_not_hide_later_statements_on_postgresql() {
    let pg = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", pg.url()),
    );
    project.write(
        "migrations/lab/V1__Periods.sql",
        "CREATE FUNCTION in_period(begin date, finish date, d date) RETURNS boolean\n\
         LANGUAGE sql IMMUTABLE AS $$ SELECT d BETWEEN begin AND finish $$;\n\
         CREATE TABLE periods (id int PRIMARY KEY);\n\
         COMMIT;\n\
         INSERT INTO no_such_table VALUES (1);\n",
    );
    let out = project.flowhost(&["migrate", "lab"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 4") && err.contains("`COMMIT`"),
        "the COMMIT on line 4 is refused before anything runs: {err}"
    );
    assert_eq!(
        one(&pg, "SELECT (to_regclass('periods') IS NULL)::text"),
        "true",
        "nothing from the refused migration was committed"
    );
}
