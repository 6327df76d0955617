//! Concurrent migrators, the migration lock, and what happens to the connection afterwards.

use std::sync::Arc;
use std::time::Duration;

use super::*;

on_both!(
    concurrent_migrators_apply_each_migration_once,
    released_connection_holds_no_lock,
);

async fn concurrent_migrators_apply_each_migration_once(fx: &Fixture) {
    for i in 1..=12 {
        // Each migration takes a little while, so the migrators really overlap.
        let slow = match fx.kind {
            Kind::Postgres => "SELECT pg_sleep(0.02);\n",
            Kind::Sqlite => "",
        };
        let create = if i == 1 {
            "CREATE TABLE applied_log (version INTEGER NOT NULL);\n"
        } else {
            ""
        };
        fx.write(
            &format!("V{i}__Step_{i}.sql"),
            &format!("{create}{slow}INSERT INTO applied_log VALUES ({i});\n"),
        );
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = Arc::new(fx.db().await);
        let dir = fx.migrations();
        tasks.push(tokio::spawn(async move {
            let o = MigrateOptions {
                lock_timeout: Duration::from_secs(60),
                ..opts()
            };
            migrate(&db, &dir, &o).await
        }));
    }
    let mut total = 0;
    for task in tasks {
        let report = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a concurrent migrator failed: {e}"));
        total += report.applied.len();
    }
    let db = fx.db().await;
    assert_eq!(
        total, 12,
        "the migrators together applied {total} migrations, not 12"
    );
    let mut logged: Vec<i64> = strings(&db, "SELECT CAST(version AS TEXT) FROM applied_log")
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    logged.sort();
    assert_eq!(
        logged,
        (1..=12).collect::<Vec<i64>>(),
        "each migration must run exactly once"
    );
    let rows = history(&db).await;
    assert_eq!(rows.len(), 12);
    let ranks: Vec<i32> = rows.iter().map(|r| r.installed_rank).collect();
    assert_eq!(ranks, (1..=12).collect::<Vec<i32>>());
}

async fn released_connection_holds_no_lock(fx: &Fixture) {
    fx.write("V1__Ok.sql", "CREATE TABLE ok (id INTEGER);\n");
    fx.write("V2__Bad.sql", "INSERT INTO missing_table VALUES (1);\n");
    let db = fx.db().await;
    assert!(matches!(
        migrate(&db, &fx.migrations(), &opts()).await,
        Err(MigrateError::Failed { .. })
    ));
    // After an error the lock is free at once: a short timeout is enough.
    fx.remove("V2__Bad.sql");
    let quick = MigrateOptions {
        lock_timeout: Duration::from_millis(300),
        ..opts()
    };
    let other = fx.db().await;
    migrate(&other, &fx.migrations(), &quick).await.unwrap();

    // A guard dropped without release (a panic or a cancelled future) closes its connection,
    // which frees the lock, instead of pooling it.
    let table = HistoryTable::new(DEFAULT_HISTORY_TABLE, db.backend()).unwrap();
    let guard = MigrationConn::acquire(&db, &table, Duration::from_secs(5))
        .await
        .unwrap();
    let panicked = std::panic::AssertUnwindSafe(async move {
        let _held = guard;
        panic!("simulated panic while migrating");
    })
    .catch_unwind()
    .await;
    assert!(panicked.is_err());
    let after = MigrationConn::acquire(&other, &table, Duration::from_secs(5)).await;
    assert!(
        after.is_ok(),
        "the lock of a dropped guard was not freed: {:?}",
        after.err()
    );
    after.unwrap().release(&other).await;
}

/// PostgreSQL only: a held lock makes a migrator give up after the timeout, naming the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lock_timeout_names_the_holder() {
    fn go(fx: &Fixture) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            fx.write("V1__One.sql", "CREATE TABLE one (id INTEGER);\n");
            let holder_db = fx.db().await;
            let table = HistoryTable::new(DEFAULT_HISTORY_TABLE, holder_db.backend()).unwrap();
            let held = MigrationConn::acquire(&holder_db, &table, Duration::from_secs(5))
                .await
                .unwrap();
            let db = fx.db().await;
            let quick = MigrateOptions {
                lock_timeout: Duration::from_millis(400),
                ..opts()
            };
            let started = std::time::Instant::now();
            let err = migrate(&db, &fx.migrations(), &quick).await.unwrap_err();
            assert!(started.elapsed() >= Duration::from_millis(400));
            let MigrateError::LockTimeout { holder, .. } = &err else {
                panic!("expected a lock timeout, got {err}");
            };
            let holder = holder.as_deref().unwrap_or_default();
            assert!(
                holder.starts_with("pid ") && holder.contains("application 'flowhost-migrate'"),
                "{holder}"
            );
            assert!(!table_exists(&db, "one").await);
            held.release(&holder_db).await;
            let report = migrate(&db, &fx.migrations(), &quick).await.unwrap();
            assert_eq!(report.applied.len(), 1);
        })
    }
    run(Kind::Postgres, go).await;
}

/// Migrations on an in-memory SQLite database (one connection, which is the database) must
/// not close that connection afterwards.
#[tokio::test]
async fn sqlite_in_memory_database_keeps_its_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("mem");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("V1__Create.sql"),
        "CREATE TABLE kept (id INTEGER);\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("V2__Fill.sql"),
        "INSERT INTO kept VALUES (7);\n",
    )
    .unwrap();
    let target = DatabaseTarget::Sqlite {
        path: ":memory:".into(),
        in_memory: true,
        create_if_missing: true,
    };
    let db = Database::open(&DatabaseConfig::new("mem", target, PoolSettings::default()))
        .await
        .unwrap();
    let report = migrate(&db, &folder, &opts()).await.unwrap();
    assert_eq!(report.applied.len(), 2);
    assert_eq!(
        strings(&db, "SELECT CAST(id AS TEXT) FROM kept").await,
        ["7"]
    );
    let status = status(&db, Some(&folder), &opts()).await.unwrap();
    assert_eq!(status.applied_count, 2);
    assert!(status.pending.is_empty());
    // A failed migration leaves the database (and what was applied before) in place too.
    std::fs::write(
        folder.join("V3__Bad.sql"),
        "INSERT INTO missing VALUES (1);\n",
    )
    .unwrap();
    assert!(migrate(&db, &folder, &opts()).await.is_err());
    assert_eq!(
        strings(&db, "SELECT CAST(id AS TEXT) FROM kept").await,
        ["7"]
    );
}
