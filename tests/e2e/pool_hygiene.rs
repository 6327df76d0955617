//! Runs share pooled connections: whatever one run did to its session, the next run on the same
//! connection must not see it. Driven in-process through the library (`flowhost::run::Host`), the
//! way a long-lived worker runs many flows on one pool.

use std::sync::Arc;

use flowhost::manifest::Manifest;
use flowhost::run::{Host, RunRecord, RunRequest, RunStatus};
use flowhost::runtime::RuntimeOptions;
use serde_json::{Value, json};

use crate::support::*;

async fn run(host: &Host, manifest: &Manifest, steps: Value) -> RunRecord {
    let request = RunRequest {
        component: probe_wasm(),
        manifest: manifest.clone(),
        input: json!({ "steps": steps }).to_string(),
    };
    host.run(&request).await.expect("the run starts")
}

#[test]
fn a_crashed_run_leaves_its_pooled_connection_clean_for_the_next_run() {
    let db = PgDatabase::create();
    db.exec(
        "CREATE TABLE t (id int);
         CREATE FUNCTION dirty() RETURNS void LANGUAGE plpgsql AS $$ BEGIN
             PERFORM set_config('application_name', 'dirty', false);
             PERFORM pg_advisory_lock(7);
         END $$;",
    );
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n\
             DEVELOPMENT_GLOBAL_LAB_CONNECTION_POOL_SIZE=1\n\
             DEVELOPMENT_GLOBAL_LAB_MAX_OVERFLOW=0\n",
            db.url()
        ),
    );
    let config = project.load_config();
    let manifest = Manifest::parse(
        "[flow]\nname = \"hygiene\"\n[databases.lab]\naccess = \"read-write\"\n",
        project.path().join("hygiene.toml"),
    )
    .unwrap();
    let probe_state = json!([{ "op": "query", "db": "lab", "sql":
        "SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app, \
         (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks, \
         (SELECT count(*) FROM t) AS n" }]);

    block_on(async {
        let host = Host::new(Arc::new(config), RuntimeOptions::default()).unwrap();
        let before = run(&host, &manifest, probe_state.clone()).await;
        assert_eq!(before.status, RunStatus::Succeeded, "{before:?}");

        // Session changes a guest cannot make directly, made by a trusted function (as a
        // migration would have created it), then a crash in the middle of a transaction.
        let crashed = run(
            &host,
            &manifest,
            json!([
                { "op": "execute", "db": "lab", "sql": "SELECT dirty()" },
                { "op": "begin", "db": "lab" },
                { "op": "execute", "db": "lab", "sql": "INSERT INTO t VALUES (1)", "tx": true },
                { "op": "panic", "message": "crash with a dirty session" },
            ]),
        )
        .await;
        assert_eq!(crashed.status, RunStatus::Failed);
        assert_eq!(crashed.error.as_ref().unwrap().kind, "panic", "{crashed:?}");

        let after = run(&host, &manifest, probe_state).await;
        host.shutdown().await;
        let row = |r: &RunRecord| r.output.as_ref().unwrap()["results"][0]["ok"]["rows"][0].clone();
        let (before, after) = (row(&before), row(&after));
        assert_eq!(
            after[0], before[0],
            "the pool of one must hand out the same connection"
        );
        assert_eq!(
            after[1]["v"], "flowhost",
            "application_name was reset: {after}"
        );
        assert_eq!(after[2]["v"], 0, "advisory locks were released: {after}");
        assert_eq!(
            after[3]["v"], 0,
            "the crashed transaction was rolled back: {after}"
        );
    });
}

/// A run's first use of a database (the ping, the migration check, the flow's own statements)
/// takes one connection, not one per step: each extra connection is a TLS handshake and a
/// server process before the flow's first statement.
#[test]
fn checking_and_migrating_then_running_a_flow_opens_one_connection() {
    let (_db, project, manifest) = lab_owning_a_migration("one_connection");
    let config = project.load_config();
    block_on(async {
        // Twice: the first run applies the migration (the lock has a connection of its own,
        // closed after), the second finds it applied, as every later `flowhost run` does.
        for round in 0..2 {
            let host = Host::new(Arc::new(config.clone()), RuntimeOptions::default()).unwrap();
            let record = run(
                &host,
                &manifest,
                json!([{ "op": "query", "db": "lab", "sql": "SELECT count(*) AS n FROM t" }]),
            )
            .await;
            assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
            let lab = host.databases().get("lab").await.unwrap();
            let status = lab.pool_status();
            host.shutdown().await;
            assert_eq!(
                status.size, 1,
                "round {round}: the pool opened {} connections: {status:?}",
                status.size
            );
        }
    });
}

/// A component that does not load stops the run before anything is prepared: its migrations
/// are not applied (a run that cannot start changes no database), and the error is the
/// component's.
#[test]
fn a_component_that_does_not_load_migrates_nothing() {
    let (db, project, manifest) = lab_owning_a_migration("broken");
    let broken = project.write("broken.wasm", "not a component");
    let config = project.load_config();
    block_on(async {
        let host = Host::new(Arc::new(config), RuntimeOptions::default()).unwrap();
        let request = RunRequest {
            component: broken.clone(),
            manifest,
            input: "{}".into(),
        };
        let err = host.run(&request).await.unwrap_err().to_string();
        host.shutdown().await;
        assert!(err.contains("broken.wasm"), "{err}");
    });
    let tables = db.column(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert!(tables.is_empty(), "tables were created: {tables:?}");
}

/// A fresh PostgreSQL database `lab`, configured in a new project, and the manifest of a flow
/// `flow` that owns its one migration (`CREATE TABLE t`).
fn lab_owning_a_migration(flow: &str) -> (PgDatabase, Project, Manifest) {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    project.write("migrations/lab/V1__table.sql", "CREATE TABLE t (id int);");
    let manifest = Manifest::parse(
        &format!(
            "[flow]\nname = \"{flow}\"\n[databases.lab]\naccess = \"read-write\"\n\
             migrations = \"migrations/lab\"\n"
        ),
        project.path().join(format!("{flow}.toml")),
    )
    .unwrap();
    (db, project, manifest)
}
