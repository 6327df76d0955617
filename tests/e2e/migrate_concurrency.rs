//! Eight `flowhost migrate` processes started at the same moment against one fresh PostgreSQL
//! database: every migration runs exactly once, every process succeeds, and the ones that
//! wait say so on stderr without reporting errors.

use std::sync::Barrier;

use crate::support::*;

const PROCESSES: usize = 8;

/// Ten migrations. Several would fail if run a second time (plain CREATEs, ALTER ... ADD
/// COLUMN, INSERTs into a table with unique keys); some are slow, so the migrators overlap.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "V1__Create_ledger.sql",
        "CREATE TABLE ledger (\n  id integer PRIMARY KEY,\n  note text NOT NULL UNIQUE,\n  \
         backend_pid integer NOT NULL DEFAULT pg_backend_pid()\n);\n",
    ),
    (
        "V2__Slow_first_entry.sql",
        "SELECT pg_sleep(0.2);\nINSERT INTO ledger (id, note) VALUES (1, 'v2');\n",
    ),
    (
        "V3__Create_events.sql",
        "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL);\n\
         CREATE INDEX events_kind_idx ON events (kind);\n",
    ),
    (
        "V4__Slow_second_entry.sql",
        "SELECT pg_sleep(0.2);\nINSERT INTO ledger (id, note) VALUES (2, 'v4');\n\
         INSERT INTO events (kind) VALUES ('v4');\n",
    ),
    (
        "V5__Add_amount.sql",
        "ALTER TABLE ledger ADD COLUMN amount numeric(10, 2);\n",
    ),
    (
        "V6__Entries.sql",
        "INSERT INTO ledger (id, note, amount) VALUES (3, 'v6', 10.50);\n\
         INSERT INTO events (kind) VALUES ('v6');\n",
    ),
    (
        "V7__Slow_type.sql",
        "SELECT pg_sleep(0.3);\nCREATE TYPE entry_kind AS ENUM ('credit', 'debit');\n",
    ),
    (
        "V8__Function.sql",
        "CREATE FUNCTION ledger_total() RETURNS numeric LANGUAGE sql STABLE\n\
         AS $$ SELECT coalesce(sum(amount), 0) FROM ledger; $$;\n",
    ),
    (
        "V9__More_entries.sql",
        "INSERT INTO ledger (id, note, amount) SELECT n, 'v9-' || n, n FROM generate_series(4, 6) AS n;\n",
    ),
    (
        "V10__View_and_last_entry.sql",
        "CREATE VIEW ledger_summary AS SELECT count(*) AS entries, ledger_total() AS total FROM ledger;\n\
         INSERT INTO ledger (id, note) VALUES (7, 'v10');\nINSERT INTO events (kind) VALUES ('v10');\n",
    ),
];

/// What a waiting or working migrator may print on stderr; anything else is a finding.
const EXPECTED_LOG_LINES: &[&str] = &[
    "applied migration",
    "another migrator holds the migration lock; waiting",
    "took the migration lock after waiting for another migrator",
];

#[test]
fn eight_concurrent_migrators_apply_each_migration_exactly_once_on_postgresql() {
    let pg = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LEDGER_CONNECTION_STRING={}\n", pg.url()),
    );
    for (name, sql) in MIGRATIONS {
        project.write(&format!("migrations/ledger/{name}"), sql);
    }

    let start = Barrier::new(PROCESSES);
    let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PROCESSES)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    project.flowhost(&["migrate", "ledger", "--json"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut applied = Vec::new();
    let mut waited = 0;
    for (i, out) in outputs.iter().enumerate() {
        let report = json_ok(out);
        for step in report["databases"][0]["applied"].as_array().unwrap() {
            applied.push(step["version"].as_str().unwrap().to_owned());
        }
        let err = stderr(out);
        assert!(
            !err.to_ascii_lowercase().contains("error"),
            "process {i}: {err}"
        );
        for line in err.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.contains("INFO") && EXPECTED_LOG_LINES.iter().any(|m| line.contains(m)),
                "process {i} printed an unexpected line: {line}\nall of stderr:\n{err}"
            );
        }
        if err.contains("another migrator holds the migration lock; waiting") {
            waited += 1;
        }
    }
    applied.sort_by_key(|v| v.parse::<u32>().unwrap());
    let all: Vec<String> = (1..=MIGRATIONS.len()).map(|n| n.to_string()).collect();
    assert_eq!(
        applied, all,
        "across all processes each migration was applied by exactly one"
    );
    assert!(
        waited > 0,
        "the processes overlapped (at least one waited for the lock); otherwise this test \
         proved nothing about concurrency"
    );

    // The history: one successful row per version, ranks 1..=10 in version order.
    assert_eq!(
        pg.column(
            "SELECT version || ':' || count(*) || ':' || bool_and(success) \
             FROM flowhost_schema_history GROUP BY version \
             ORDER BY version::int"
        ),
        all.iter()
            .map(|v| Some(format!("{v}:1:true")))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        pg.column(
            "SELECT installed_rank || '=' || version FROM flowhost_schema_history \
             ORDER BY installed_rank"
        ),
        all.iter()
            .enumerate()
            .map(|(i, v)| Some(format!("{}={v}", i + 1)))
            .collect::<Vec<_>>()
    );

    // Side effects happened exactly once.
    assert_eq!(
        pg.column("SELECT note FROM ledger ORDER BY id"),
        ["v2", "v4", "v6", "v9-4", "v9-5", "v9-6", "v10"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        pg.column("SELECT kind FROM events ORDER BY id"),
        vec![Some("v4".into()), Some("v6".into()), Some("v10".into())]
    );
    assert_eq!(
        pg.column("SELECT entries || '|' || total FROM ledger_summary"),
        vec![Some("7|25.50".into())]
    );
    assert_eq!(pg.count("pg_type WHERE typname = 'entry_kind'"), 1);
    // One session applied them all: the lock is held for the whole run.
    assert_eq!(pg.count("(SELECT DISTINCT backend_pid FROM ledger) p"), 1);
}
