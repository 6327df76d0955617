//! Leaks between runs on one pooled connection: a run changes its session in every way a flow
//! can reach (directly where a grant allows it, otherwise through trusted functions the way a
//! migration would have created them), and the next run on the same pool of one — in the same
//! process, as a long-lived host runs flows — must find none of it.

use std::sync::Arc;

use flowhost::config::Config;
use flowhost::manifest::{Access, Manifest};
use flowhost::run::{Host, RunRecord, RunRequest, RunStatus};
use flowhost::runtime::RuntimeOptions;
use serde_json::{Value, json};

use crate::support::*;

/// Functions a hostile run calls. STABLE ones pass a read-only grant's check (they only call
/// set_config and friends through PERFORM, which PostgreSQL allows in a non-volatile function).
const TRUSTED_FUNCTIONS: &str = "
    CREATE TABLE t (id int PRIMARY KEY);
    INSERT INTO t VALUES (1);
    CREATE FUNCTION leak_settings() RETURNS int STABLE LANGUAGE plpgsql AS $$ BEGIN
        PERFORM set_config('search_path', 'evil, public', false);
        PERFORM set_config('work_mem', '77MB', false);
        PERFORM set_config('default_transaction_read_only', 'off', false);
        RETURN 1; END $$;
    CREATE FUNCTION leak_role() RETURNS int STABLE LANGUAGE plpgsql AS $$ BEGIN
        PERFORM set_config('role', 'fh_lowly', false); RETURN 1; END $$;
    CREATE FUNCTION leak_lock() RETURNS int STABLE LANGUAGE plpgsql AS $$ BEGIN
        PERFORM pg_advisory_lock(4242); PERFORM pg_advisory_lock_shared(4343); RETURN 1; END $$;
    CREATE FUNCTION leak_authorization() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
        EXECUTE 'SET SESSION AUTHORIZATION fh_lowly'; RETURN 1; END $$;
    CREATE FUNCTION leak_listen() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
        EXECUTE 'LISTEN leak'; RETURN 1; END $$;
    CREATE FUNCTION leak_prepared() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
        EXECUTE 'PREPARE leak AS SELECT 1'; RETURN 1; END $$;
    CREATE FUNCTION drop_driver_statements() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
        EXECUTE 'DEALLOCATE ALL'; RETURN 1; END $$;
";

/// What the next run sees of its session.
const INSPECT: &str = "SELECT pg_backend_pid() AS pid, current_user::text AS role, \
    session_user::text AS session_role, current_setting('search_path') AS search_path, \
    current_setting('work_mem') AS work_mem, \
    (SELECT count(*) FROM pg_listening_channels()) AS listening, \
    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared, \
    (SELECT count(*) FROM pg_cursors) AS cursors, \
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory, \
    (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS temp_tables, \
    current_setting('default_transaction_read_only') AS read_only, \
    (SELECT count(*) FROM t) AS rows";

struct PoolOfOne {
    db: PgDatabase,
    _project: Project,
    config: Arc<Config>,
    manifest: Manifest,
}

impl PoolOfOne {
    fn new() -> PoolOfOne {
        let db = PgDatabase::create();
        // Roles are cluster-wide; tests running side by side may race to create it.
        db.exec(
            "DO $$ BEGIN CREATE ROLE fh_lowly NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        );
        db.exec(TRUSTED_FUNCTIONS);
        db.exec("GRANT SELECT ON t TO fh_lowly");
        let project = Project::new();
        let mut env = String::new();
        for name in ["VICTIM", "SCRATCH"] {
            env.push_str(&format!(
                "DEVELOPMENT_GLOBAL_{name}_CONNECTION_STRING={}\n\
                 DEVELOPMENT_GLOBAL_{name}_CONNECTION_POOL_SIZE=1\n\
                 DEVELOPMENT_GLOBAL_{name}_MAX_OVERFLOW=0\n",
                db.url()
            ));
        }
        project.write(".env", &env);
        let config = project.load_config();
        let manifest = Manifest::parse(
            "[flow]\nname = \"leaky\"\n[limits]\ntimeout-seconds = 20\n\
             [databases.victim]\naccess = \"read-only\"\n\
             [databases.scratch]\naccess = \"read-write\"\n",
            project.path().join("leaky.toml"),
        )
        .unwrap();
        PoolOfOne {
            db,
            _project: project,
            config: Arc::new(config),
            manifest,
        }
    }

    /// Runs `hostile`, then inspects both grants' sessions in a second run on the same host.
    fn after(&self, hostile: Value) -> (RunRecord, [Value; 2], [Value; 2]) {
        block_on(async {
            let host = Host::new(self.config.clone(), RuntimeOptions::default()).unwrap();
            let inspect = json!([
                { "op": "query", "db": "victim", "sql": INSPECT },
                { "op": "query", "db": "scratch", "sql": INSPECT },
            ]);
            let before = self.run(&host, inspect.clone()).await;
            let attack = self.run(&host, hostile).await;
            let after = self.run(&host, inspect).await;
            host.shutdown().await;
            let rows = |r: &RunRecord| -> [Value; 2] {
                assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
                let results = &r.output.as_ref().unwrap()["results"];
                [0, 1].map(|i| {
                    let row = &results[i]["ok"]["rows"][0];
                    assert!(row.is_array(), "inspection {i} failed: {results}");
                    row.clone()
                })
            };
            (attack, rows(&before), rows(&after))
        })
    }

    async fn run(&self, host: &Host, steps: Value) -> RunRecord {
        let request = RunRequest {
            component: probe_wasm(),
            manifest: self.manifest.clone(),
            input: json!({ "steps": steps }).to_string(),
        };
        host.run(&request).await.expect("the run starts")
    }
}

/// Every inspected column but the backend pid is as it was before the hostile run.
fn assert_clean(before: &[Value; 2], after: &[Value; 2]) {
    for (grant, (b, a)) in ["victim", "scratch"].iter().zip(before.iter().zip(after)) {
        let names = [
            "pid",
            "role",
            "session_role",
            "search_path",
            "work_mem",
            "listening",
            "prepared",
            "cursors",
            "advisory",
            "temp_tables",
            "read_only",
            "rows",
        ];
        for (i, name) in names.iter().enumerate().skip(1) {
            assert_eq!(
                a[i]["v"], b[i]["v"],
                "{grant}: {name} leaked into the next run: {a}"
            );
        }
    }
    assert_eq!(
        before[0][10]["v"], "on",
        "the read-only grant's session is read-only"
    );
    assert_eq!(
        before[1][10]["v"], "off",
        "the read-write grant's session is not"
    );
}

fn steps_ok(record: &RunRecord, expect_ok: &[usize]) {
    let results = &record.output.as_ref().expect("the hostile run finished")["results"];
    for &i in expect_ok {
        assert!(results[i].get("ok").is_some(), "step {i}: {results}");
    }
}

#[test]
fn settings_changed_by_a_trusted_function_do_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "query", "db": "victim", "sql": "SELECT leak_settings()" },
        { "op": "query", "db": "scratch", "sql": "SELECT leak_settings()" },
    ]));
    steps_ok(&attack, &[0, 1]);
    assert_clean(&before, &after);
}

#[test]
fn a_role_set_by_a_trusted_function_does_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "query", "db": "victim", "sql": "SELECT leak_role()" },
        { "op": "query", "db": "victim", "sql": "SELECT current_user::text" },
        { "op": "query", "db": "scratch", "sql": "SELECT leak_role()" },
    ]));
    steps_ok(&attack, &[0, 1, 2]);
    let results = &attack.output.as_ref().unwrap()["results"];
    assert_eq!(
        results[1]["ok"]["rows"][0][0]["v"], "fh_lowly",
        "the role did change: {results}"
    );
    assert_clean(&before, &after);
}

#[test]
fn session_authorization_set_by_a_trusted_function_does_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "query", "db": "scratch", "sql": "SELECT leak_authorization()" },
        { "op": "query", "db": "scratch", "sql": "SELECT session_user::text" },
    ]));
    steps_ok(&attack, &[0, 1]);
    assert_clean(&before, &after);
}

#[test]
fn advisory_locks_taken_by_a_trusted_function_do_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "query", "db": "victim", "sql": "SELECT leak_lock()" },
        { "op": "query", "db": "scratch", "sql": "SELECT leak_lock()" },
    ]));
    steps_ok(&attack, &[0]);
    assert_clean(&before, &after);
    let held = lab
        .db
        // This database's only: other tests' migrators hold advisory locks of their own.
        .column(
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
    assert_eq!(held[0].as_deref(), Some("0"));
}

#[test]
fn temp_tables_do_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "execute", "db": "scratch", "sql": "CREATE TEMP TABLE leak (a int)" },
        { "op": "execute", "db": "scratch", "sql": "INSERT INTO leak VALUES (1)" },
        { "op": "execute", "db": "victim", "sql": "CREATE TEMP TABLE leak (a int)" },
    ]));
    steps_ok(&attack, &[0, 1]);
    assert_clean(&before, &after);
}

#[test]
fn listen_registered_by_a_trusted_function_does_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "execute", "db": "scratch", "sql": "SELECT leak_listen()" },
        { "op": "execute", "db": "scratch", "sql": "LISTEN direct" },
    ]));
    steps_ok(&attack, &[0]);
    assert_clean(&before, &after);
}

#[test]
fn prepared_statements_made_by_a_trusted_function_do_not_leak() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "execute", "db": "scratch", "sql": "SELECT leak_prepared()" },
        { "op": "execute", "db": "scratch", "sql": "PREPARE direct AS SELECT 1" },
    ]));
    steps_ok(&attack, &[0]);
    assert_clean(&before, &after);
}

#[test]
fn the_drivers_statements_deallocated_by_a_flow_do_not_break_the_next_run() {
    // Regression: after DEALLOCATE ALL the next run on the connection failed with
    // `prepared statement "sqlx_s_1" does not exist`.
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "query", "db": "scratch", "sql": INSPECT },
        { "op": "execute", "db": "scratch", "sql": "SELECT drop_driver_statements()" },
        { "op": "execute", "db": "scratch", "sql": "DEALLOCATE ALL" },
    ]));
    steps_ok(&attack, &[0, 1]);
    assert_clean(&before, &after);
}

#[test]
fn with_hold_cursors_and_prepared_transactions_are_refused_and_leave_nothing() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "execute", "db": "scratch", "sql": "DECLARE c CURSOR WITH HOLD FOR SELECT 1" },
        { "op": "begin", "db": "scratch" },
        { "op": "execute", "db": "scratch", "sql": "PREPARE TRANSACTION 'stuck'", "tx": true },
        { "op": "rollback", "db": "scratch" },
    ]));
    let results = &attack.output.as_ref().unwrap()["results"];
    assert_eq!(results[0]["error"]["kind"], "invalid-request", "{results}");
    assert_eq!(results[2]["error"]["kind"], "invalid-request", "{results}");
    assert_clean(&before, &after);
    let stuck = lab
        .db
        .column("SELECT count(*)::text FROM pg_prepared_xacts");
    assert_eq!(stuck[0].as_deref(), Some("0"));
}

#[test]
fn a_transaction_open_when_the_flow_traps_is_rolled_back_and_its_locks_released() {
    let lab = PoolOfOne::new();
    let (attack, before, after) = lab.after(json!([
        { "op": "begin", "db": "scratch" },
        { "op": "execute", "db": "scratch", "sql": "INSERT INTO t VALUES (2)", "tx": true },
        { "op": "query", "db": "scratch", "sql": "SELECT * FROM t WHERE id = 1 FOR UPDATE", "tx": true },
        { "op": "panic", "message": "trap with a transaction open" },
    ]));
    assert_eq!(attack.status, RunStatus::Failed);
    assert_clean(&before, &after);
    // The row lock is gone: another session takes it at once.
    let locked = lab
        .db
        .column("SELECT count(*)::text FROM (SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT) l");
    assert_eq!(locked[0].as_deref(), Some("1"));
    assert_eq!(lab.db.count("t"), 1, "the insert was rolled back");
}

/// `flowhost run` runs once (`Host::single_run`): every grant's session starts with the run, a
/// connection the flow drops is parked instead of reset, and the run's end closes them all,
/// sparing each database the reset's round trip. A flow that opens the database again must
/// still find the session reset, on the same server connection (the pool holds one: a parked
/// session left unfinished would make it wait).
#[test]
fn a_single_run_resets_a_dropped_session_before_reuse_and_closes_it_at_the_end() {
    let lab = PoolOfOne::new();
    let steps = json!([
        { "op": "query", "db": "victim", "sql": INSPECT },
        { "op": "query", "db": "victim", "sql": "SELECT leak_settings(), leak_lock()" },
        { "op": "drop", "db": "victim" },
        { "op": "query", "db": "victim", "sql": INSPECT },
    ]);
    for single_run in [false, true] {
        let (record, after_run, after_shutdown) = block_on(async {
            let host = Host::new(lab.config.clone(), RuntimeOptions::default()).unwrap();
            let host = if single_run { host.single_run() } else { host };
            let record = lab.run(&host, steps.clone()).await;
            let mut databases = Vec::new();
            for (grant, access) in [("victim", Access::ReadOnly), ("scratch", Access::ReadWrite)] {
                databases.push(host.databases().for_grant(grant, access).await.unwrap());
            }
            let status = |databases: &[std::sync::Arc<flowhost::db::Database>]| {
                databases
                    .iter()
                    .map(|db| {
                        let status = db.pool_status();
                        (status.size, status.idle)
                    })
                    .collect::<Vec<_>>()
            };
            let after_run = status(&databases);
            host.shutdown().await;
            (record, after_run, status(&databases))
        });
        assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
        let results = &record.output.as_ref().unwrap()["results"];
        let (before, after) = (&results[0]["ok"]["rows"][0], &results[3]["ok"]["rows"][0]);
        assert!(before.is_array() && after.is_array(), "{results}");
        assert_eq!(after[0], before[0], "the same server connection: {results}");
        assert_eq!(
            after, before,
            "nothing of the dropped session remains: {results}"
        );
        // Kept for a next run by a host that serves many. A host that runs once keeps none
        // for reuse (none idle): it closes them when it shuts down, after the run is
        // recorded. It also started a session for `scratch` that the flow never opened.
        let sizes: Vec<u32> = after_run.iter().map(|(size, _)| *size).collect();
        assert_eq!(sizes, [1, 1], "single_run = {single_run}: {after_run:?}");
        if single_run {
            let idle: Vec<u32> = after_run.iter().map(|(_, idle)| *idle).collect();
            assert_eq!(idle, [0, 0], "{after_run:?}");
        }
        assert_eq!(
            after_shutdown,
            [(0, 0), (0, 0)],
            "single_run = {single_run}"
        );
    }
}
