-- rpa1 records every SurveyHub response it has handled, once: the primary key is what makes
-- re-runs and racing runs idempotent. Portable PostgreSQL/SQLite SQL.
CREATE TABLE rpa1_processed_surveys (
    response_id BIGINT PRIMARY KEY,
    survey_id BIGINT NOT NULL,
    respondent_email TEXT,
    satisfaction_score NUMERIC(4,2),
    status TEXT NOT NULL CHECK (status IN ('processed', 'failed')),
    error TEXT,
    processed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- rpa1 reads the processed ids of one survey when its input names a survey_id.
CREATE INDEX rpa1_processed_surveys_survey_id ON rpa1_processed_surveys (survey_id);
