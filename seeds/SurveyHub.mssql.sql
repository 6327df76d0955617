-- The T-SQL variant of SurveyHub.sql for SQL Server (the users' SurveyHub is SQL Server): the same
-- 25 responses, typed as the production schema types them. Tests load it into a SQL Server (or
-- Babelfish) database when FLOWHOST_TEST_MSSQL_URL is set; rpa1 finds 22 completed responses:
-- 19 processed, 3 failed (5 is not valid JSON, 13 lacks question_4, 21 rates question_2 as 7).

CREATE TABLE survey_responses (
    response_id INT NOT NULL PRIMARY KEY,
    survey_id INT NOT NULL,
    respondent_email NVARCHAR(320) NULL,
    response_data NVARCHAR(MAX) NOT NULL,
    submitted_at DATETIME2(0) NOT NULL,
    status NVARCHAR(20) NOT NULL CONSTRAINT df_survey_responses_status DEFAULT N'completed'
);

INSERT INTO survey_responses (response_id, survey_id, respondent_email, response_data, submitted_at, status) VALUES
    (1, 101, 'alice@example.com', '{"question_1": 4, "question_2": 5, "question_3": 3, "question_4": 4, "question_5": 5, "comments": "Great service"}', '2024-03-01 09:15:00', 'completed'),
    (2, 101, 'bob@example.com', '{"question_1": 5, "question_2": 5, "question_3": 5, "question_4": 5, "question_5": 5, "comments": "Perfect, thank you!"}', '2024-03-01 10:02:00', 'completed'),
    (3, 101, 'carol@example.com', '{"question_1": 3, "question_2": 3, "question_3": 4, "question_4": 2, "question_5": 3, "comments": "Average experience"}', '2024-03-01 11:47:00', 'completed'),
    (4, 101, NULL, '{"question_1": 2, "question_2": 1, "question_3": 2, "question_4": 3, "question_5": 2, "comments": "Long wait on the phone"}', '2024-03-02 08:30:00', 'completed'),
    (5, 101, 'dave@example.com', '{"question_1": 4, "question_2": 5, "question_3": 3,', '2024-03-02 13:05:00', 'completed'),
    (6, 101, 'erin@example.com', '{"question_1": 4, "question_2": 4, "question_3": 4, "question_4": 4, "question_5": 5, "comments": "Friendly staff"}', '2024-03-02 16:20:00', 'completed'),
    (7, 101, 'frank@example.com', '{"question_1": 1, "question_2": 2, "question_3": 1, "question_4": 1, "question_5": 2, "comments": "Order arrived broken"}', '2024-03-03 09:00:00', 'completed'),
    (8, 101, 'grace@example.com', '{"question_1": 3}', '2024-03-03 09:45:00', 'pending'),
    (9, 101, 'heidi@example.com', '{"question_1": 5, "question_2": 4, "question_3": 5, "question_4": 4, "question_5": 5, "comments": "I''d recommend it"}', '2024-03-03 14:10:00', 'completed'),
    (10, 101, 'ivan@example.com', '{"question_1": 3, "question_2": 4, "question_3": 3, "question_4": 4, "question_5": 3, "comments": ""}', '2024-03-04 10:30:00', 'completed'),
    (11, 102, 'judy@example.com', '{"question_1": 4, "question_2": 4, "question_3": 5, "question_4": 5, "question_5": 4, "comments": "Quick delivery"}', '2024-03-05 08:05:00', 'completed'),
    (12, 102, 'mallory@example.com', '{"question_1": 2, "question_2": 3, "question_3": 2, "question_4": 3, "question_5": 2, "comments": "Website is confusing"}', '2024-03-05 09:40:00', 'completed'),
    (13, 102, 'niaj@example.com', '{"question_1": 4, "question_2": 4, "question_3": 5, "question_5": 4, "comments": "Skipped a question"}', '2024-03-05 12:00:00', 'completed'),
    (14, 102, 'olivia@example.com', '{"question_1": 5, "question_2": 5, "question_3": 4, "question_4": 5, "question_5": 5, "comments": "Excellent support"}', '2024-03-06 15:25:00', 'completed'),
    (15, 102, 'peggy@example.com', '{"question_1": 5, "question_2": 4}', '2024-03-06 16:00:00', 'pending'),
    (16, 102, 'rupert@example.com', '{"question_1": 3, "question_2": 3, "question_3": 3, "question_4": 3, "question_5": 3, "comments": "It was fine"}', '2024-03-07 10:10:00', 'completed'),
    (17, 102, NULL, '{"question_1": 4, "question_2": 5, "question_3": 4, "question_4": 5, "question_5": 4, "comments": "Anonymous but happy"}', '2024-03-07 11:55:00', 'completed'),
    (18, 102, 'sybil@example.com', '{"question_1": 1, "question_2": 1, "question_3": 1, "question_4": 1, "question_5": 1, "comments": "Never again"}', '2024-03-07 18:30:00', 'completed'),
    (19, 103, 'trent@example.com', '{"question_1": 4, "question_2": 3, "question_3": 4, "question_4": 3, "question_5": 4, "comments": "Good value"}', '2024-03-08 09:20:00', 'completed'),
    (20, 103, 'uma@example.com', '{"question_1": 5, "question_2": 5, "question_3": 5, "question_4": 4, "question_5": 5, "comments": "Loved the new features"}', '2024-03-08 10:45:00', 'completed'),
    (21, 103, 'victor@example.com', '{"question_1": 4, "question_2": 7, "question_3": 4, "question_4": 4, "question_5": 4, "comments": "Typo in the rating"}', '2024-03-08 13:30:00', 'completed'),
    (22, 103, 'wendy@example.com', '{"question_1": 2, "question_2": 2, "question_3": 3, "question_4": 2, "question_5": 2, "comments": "Checkout kept failing"}', '2024-03-09 08:15:00', 'completed'),
    (23, 103, 'xavier@example.com', '{}', '2024-03-09 09:00:00', 'pending'),
    (24, 103, 'yvonne@example.com', '{"question_1": 4, "question_2": 4, "question_3": 4, "question_4": 4, "question_5": 4, "comments": "Solid"}', '2024-03-09 17:40:00', 'completed');

-- Left to the column default, which must be 'completed'.
INSERT INTO survey_responses (response_id, survey_id, respondent_email, response_data, submitted_at) VALUES
    (25, 103, 'zoe@example.com', '{"question_1": 5, "question_2": 4, "question_3": 5, "question_4": 5, "question_5": 4, "comments": "Will come back"}', '2024-03-10 12:00:00');
