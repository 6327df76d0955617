"""rpa1 the way the Python/Prefect system runs it, for `make bench`.

A DatabaseManager per database (SQLAlchemy 2 engine with its QueuePool on psycopg2), and the
seed system's `execute_query` for every statement: each call takes a pooled connection, runs,
commits and gives it back. `--one-transaction` is the faster variant some users wrote: every
insert inside one `engine.begin()`. The scoring is rpa1's (mean of five 1-5 ratings, two
places). Usage: rpa1_sqlalchemy.py [--one-transaction] RPA_DB_URL SURVEYHUB_URL
"""

import json
import sys
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

QUESTIONS = [f"question_{i}" for i in range(1, 6)]
INSERT = text(
    "INSERT INTO rpa1_processed_surveys "
    "(response_id, survey_id, respondent_email, satisfaction_score, status, error) "
    "VALUES (:response_id, :survey_id, :respondent_email, :satisfaction_score, :status, :error) "
    "ON CONFLICT (response_id) DO NOTHING"
)


class DatabaseManager:
    def __init__(self, url):
        self.engine = create_engine(
            url, poolclass=QueuePool, pool_size=5, max_overflow=10, pool_pre_ping=True
        )

    def execute_query(self, sql, params=None):
        with self.engine.begin() as conn:
            result = conn.execute(sql, params or {})
            return result.fetchall() if result.returns_rows else result.rowcount


def score(data):
    if data is None:
        raise ValueError("response_data is empty")
    try:
        answers = json.loads(data)
    except ValueError as e:
        raise ValueError(f"response_data is not valid JSON: {e}")
    total = 0
    for q in QUESTIONS:
        v = answers.get(q)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 5:
            raise ValueError(f"{q} is missing or not a rating from 1 to 5")
        total += v
    return (Decimal(total) / 5).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def main(argv):
    one_tx = "--one-transaction" in argv
    rpa_url, hub_url = [a for a in argv if not a.startswith("--")]
    rpa, hub = DatabaseManager(rpa_url), DatabaseManager(hub_url)
    done = {r[0] for r in rpa.execute_query(text("SELECT response_id FROM rpa1_processed_surveys"))}
    responses = hub.execute_query(
        text(
            "SELECT response_id, survey_id, respondent_email, response_data FROM survey_responses "
            "WHERE status = 'completed' ORDER BY response_id"
        )
    )
    rows = []
    for response_id, survey_id, email, data in responses:
        if response_id in done:
            continue
        try:
            row = dict(satisfaction_score=score(data), status="processed", error=None)
        except ValueError as e:
            row = dict(satisfaction_score=None, status="failed", error=str(e))
        rows.append(dict(row, response_id=response_id, survey_id=survey_id, respondent_email=email))
    written = 0
    if one_tx:
        with rpa.engine.begin() as conn:
            for row in rows:
                written += conn.execute(INSERT, row).rowcount
    else:
        for row in rows:
            written += rpa.execute_query(INSERT, row)
    processed = sum(1 for r in rows if r["status"] == "processed")
    print(json.dumps({"surveys_processed": min(processed, written), "responses_found": len(rows),
                      "failed": written - min(processed, written)}))


if __name__ == "__main__":
    main(sys.argv[1:])
