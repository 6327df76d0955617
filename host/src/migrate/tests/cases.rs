//! One migrator's behaviour, on SQLite and PostgreSQL.

use super::*;

on_both!(
    applies_in_version_order_and_records_history,
    rerun_applies_nothing,
    failing_statement_rolls_back_the_whole_migration,
    changed_applied_file_is_refused,
    out_of_order_and_missing_files,
    status_before_and_after,
    an_unreadable_history_table_is_an_error_not_a_missing_one,
    dry_run_and_target,
);

fn write_three(fx: &Fixture) {
    // V10 needs V2's table and V2 needs V1's: applied in text order (V1, V10, V2) they fail.
    fx.write(
        "V1__Create_log.sql",
        "CREATE TABLE step_log (step TEXT NOT NULL);\nINSERT INTO step_log VALUES ('1');\n",
    );
    fx.write(
        "V2__Create_items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\nINSERT INTO step_log VALUES ('2');\n",
    );
    fx.write(
        "V10__Fill_items.sql",
        "INSERT INTO items (id) VALUES (10);\nINSERT INTO step_log VALUES ('10');\n",
    );
    fx.write("README.md", "not a migration");
}

async fn applies_in_version_order_and_records_history(fx: &Fixture) {
    write_three(fx);
    let db = fx.db().await;
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let applied: Vec<&str> = report.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(
        applied,
        [
            "V1__Create_log.sql",
            "V2__Create_items.sql",
            "V10__Fill_items.sql"
        ]
    );
    assert_eq!(report.version_before, None);
    assert_eq!(report.version_after, Some(Version::parse("10").unwrap()));
    assert_eq!(
        strings(&db, "SELECT step FROM step_log").await,
        ["1", "2", "10"]
    );

    let rows = history(&db).await;
    assert_eq!(rows.len(), 3);
    let body = std::fs::read(fx.migrations().join("V2__Create_items.sql")).unwrap();
    for (i, (row, version)) in rows.iter().zip(["1", "2", "10"]).enumerate() {
        assert_eq!(row.installed_rank, i as i32 + 1);
        assert_eq!(row.version, Some(Version::parse(version).unwrap()));
        assert_eq!(row.kind, "SQL");
        assert_eq!(row.installed_by, "tester");
        assert!(row.success);
        assert!(row.execution_time_ms >= 0);
        let age = chrono::Utc::now().naive_utc() - row.installed_on;
        assert!(
            age.num_seconds().abs() < 300,
            "installed_on {} is not now (UTC)",
            row.installed_on
        );
    }
    assert_eq!(rows[1].script, "V2__Create_items.sql");
    assert_eq!(rows[1].description, "Create items");
    assert_eq!(rows[1].checksum, Some(Checksum::of(&body)));
    // The stored columns, as other tools will read them.
    let algorithms = strings(
        &db,
        "SELECT checksum_algorithm FROM flowhost_schema_history",
    )
    .await;
    assert_eq!(algorithms, ["sha256", "sha256", "sha256"]);
    let versions = strings(
        &db,
        "SELECT version FROM flowhost_schema_history ORDER BY installed_rank",
    )
    .await;
    assert_eq!(versions, ["1", "2", "10"]);
}

async fn rerun_applies_nothing(fx: &Fixture) {
    write_three(fx);
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    // A new pool, as a second process would have.
    let db = fx.db().await;
    let again = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert!(again.applied.is_empty(), "{again}");
    assert_eq!(again.version_before, Some(Version::parse("10").unwrap()));
    assert!(
        again.to_string().contains("up to date at version 10"),
        "{again}"
    );
    assert_eq!(history(&db).await.len(), 3);
    assert_eq!(strings(&db, "SELECT step FROM step_log").await.len(), 3);
    // CRLF line endings and a BOM are the same file.
    let crlf = "\u{feff}CREATE TABLE step_log (step TEXT NOT NULL);\r\nINSERT INTO step_log VALUES ('1');\r\n";
    fx.write("V1__Create_log.sql", crlf);
    let third = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert!(third.applied.is_empty());
}

async fn failing_statement_rolls_back_the_whole_migration(fx: &Fixture) {
    fx.write("V1__Base.sql", "CREATE TABLE base (id INTEGER);\n");
    let broken = "-- a table, then a bad insert\nCREATE TABLE partial (id INTEGER);\nINSERT INTO partial VALUES (1);\n\nINSERT INTO no_such_table VALUES (1);\nCREATE TABLE after_failure (id INTEGER);\n";
    fx.write("V2__Broken.sql", broken);
    fx.write("V3__Later.sql", "CREATE TABLE later (id INTEGER);\n");
    let db = fx.db().await;
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    let text = err.to_string();
    match &err {
        MigrateError::Failed {
            database,
            script,
            statement_line,
            statement_preview,
            ..
        } => {
            assert_eq!(database, "mig_test");
            assert_eq!(script, "V2__Broken.sql");
            assert_eq!(*statement_line, 5);
            assert_eq!(statement_preview, "INSERT INTO no_such_table VALUES (1)");
        }
        other => panic!("expected a failed migration, got {other}"),
    }
    assert!(
        text.starts_with("migration V2__Broken.sql (database mig_test) failed at line 5: "),
        "{text}"
    );
    assert!(text.contains("no_such_table"), "{text}");
    assert!(
        text.contains("nothing from this migration was applied"),
        "{text}"
    );
    // V1 stays applied; nothing of V2 exists; V3 never ran.
    assert!(table_exists(&db, "base").await);
    assert!(
        !table_exists(&db, "partial").await,
        "the failed migration left its table behind"
    );
    assert!(!table_exists(&db, "after_failure").await);
    assert!(!table_exists(&db, "later").await);
    let rows = history(&db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].script, "V1__Base.sql");

    // Fixed, the next run applies it and the rest.
    fx.write(
        "V2__Broken.sql",
        &broken.replace("no_such_table", "partial"),
    );
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let applied: Vec<&str> = report.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(applied, ["V2__Broken.sql", "V3__Later.sql"]);
    assert_eq!(
        strings(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM partial").await,
        ["2"]
    );
}

async fn changed_applied_file_is_refused(fx: &Fixture) {
    fx.write("V1__Create.sql", "CREATE TABLE t (id INTEGER);\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let recorded = Checksum::of(b"CREATE TABLE t (id INTEGER);\n");
    fx.write("V1__Create.sql", "CREATE TABLE t (id BIGINT);\n");
    fx.write("V2__Next.sql", "CREATE TABLE t2 (id INTEGER);\n");
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    let MigrateError::ChecksumMismatch { mismatches, .. } = &err else {
        panic!("expected a checksum mismatch, got {err}");
    };
    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0].script, "V1__Create.sql");
    assert_eq!(mismatches[0].recorded, recorded);
    assert_eq!(
        mismatches[0].current,
        Checksum::of(b"CREATE TABLE t (id BIGINT);\n")
    );
    let text = err.to_string();
    assert!(
        text.contains("V1__Create.sql") && text.contains(&recorded.value),
        "{text}"
    );
    assert!(text.contains("repair"), "{text}");
    // Nothing else ran.
    assert!(!table_exists(&db, "t2").await);
    let status = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(status.checksum_mismatches.len(), 1);
    assert!(!status.is_valid());
    let problems = status.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("V1__Create.sql") && problems[0].contains(&recorded.value));
}

async fn out_of_order_and_missing_files(fx: &Fixture) {
    fx.write("V1__One.sql", "CREATE TABLE one (id INTEGER);\n");
    fx.write("V3__Three.sql", "CREATE TABLE three (id INTEGER);\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    fx.write("V2__Two.sql", "CREATE TABLE two (id INTEGER);\n");
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    match &err {
        MigrateError::OutOfOrder {
            latest, pending, ..
        } => {
            assert_eq!(latest, &Version::parse("3").unwrap());
            assert_eq!(pending, &["V2__Two.sql".to_owned()]);
        }
        other => panic!("expected out of order, got {other}"),
    }
    assert!(err.to_string().contains("out of order"), "{err}");
    assert!(!table_exists(&db, "two").await);

    // An applied file deleted from disk is a warning, not an error.
    fx.remove("V2__Two.sql");
    fx.remove("V1__One.sql");
    fx.write("V4__Four.sql", "CREATE TABLE four (id INTEGER);\n");
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert!(
        report.warnings[0].contains("V1__One.sql")
            && report.warnings[0].contains("missing on disk")
    );
    let status = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(status.missing_on_disk.len(), 1);
    assert_eq!(status.missing_on_disk[0].script, "V1__One.sql");
    assert_eq!(
        status.problems(),
        ["V1__One.sql was applied but is missing on disk"]
    );
}

async fn status_before_and_after(fx: &Fixture) {
    write_three(fx);
    let db = fx.db().await;
    let before = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert!(!before.history_exists);
    assert_eq!(before.current_version, None);
    let pending: Vec<&str> = before.pending.iter().map(|p| p.script.as_str()).collect();
    assert_eq!(
        pending,
        [
            "V1__Create_log.sql",
            "V2__Create_items.sql",
            "V10__Fill_items.sql"
        ]
    );
    // Status changes nothing: still no history table.
    assert!(!table_exists(&db, DEFAULT_HISTORY_TABLE).await);
    let history_only = status(&db, None, &opts()).await.unwrap();
    assert!(!history_only.files_checked && history_only.pending.is_empty());

    let target = MigrateOptions {
        target: Some(Version::parse("2").unwrap()),
        ..opts()
    };
    migrate(&db, &fx.migrations(), &target).await.unwrap();
    let after = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert!(after.history_exists);
    assert_eq!(after.current_version, Some(Version::parse("2").unwrap()));
    assert_eq!(after.applied_count, 2);
    assert_eq!(after.pending.len(), 1);
    assert_eq!(after.pending[0].script, "V10__Fill_items.sql");
    assert_eq!(after.summary(), "version 2, 2 applied, 1 pending");
    let text = after.to_string();
    assert!(
        text.contains("Create items") && text.contains("pending"),
        "{text}"
    );
    let json = serde_json::to_value(&after).unwrap();
    assert_eq!(json["current_version"], "2");
    assert_eq!(json["applied"][1]["script"], "V2__Create_items.sql");
    let history_only = status(&db, None, &opts()).await.unwrap();
    assert_eq!(history_only.applied_count, 2);
    assert_eq!(
        history_only.current_version,
        Some(Version::parse("2").unwrap())
    );
}

/// The history is read without a presence check first on PostgreSQL (one round trip less per
/// run): only "no such table" may mean no history. A table by that name that cannot be read
/// as one is an error, never a database with nothing applied.
async fn an_unreadable_history_table_is_an_error_not_a_missing_one(fx: &Fixture) {
    write_three(fx);
    let db = fx.db().await;
    let mut conn = db.acquire().await.unwrap();
    conn.run_raw(
        &db,
        &format!("CREATE TABLE {DEFAULT_HISTORY_TABLE} (installed_rank TEXT); INSERT INTO {DEFAULT_HISTORY_TABLE} VALUES ('first')"),
    )
    .await
    .unwrap();
    conn.release().await;
    let err = status(&db, Some(&fx.migrations()), &opts())
        .await
        .expect_err("a history table of the wrong shape is not an empty history");
    assert!(
        err.to_string().contains(DEFAULT_HISTORY_TABLE),
        "the error names the table: {err}"
    );
    assert!(table_exists(&db, DEFAULT_HISTORY_TABLE).await);
}

async fn dry_run_and_target(fx: &Fixture) {
    write_three(fx);
    let db = fx.db().await;
    let dry = MigrateOptions {
        dry_run: true,
        ..opts()
    };
    let report = migrate(&db, &fx.migrations(), &dry).await.unwrap();
    assert!(report.dry_run && report.applied.is_empty());
    assert_eq!(report.would_apply.len(), 3);
    assert!(
        report.to_string().contains("would apply 3 migrations"),
        "{report}"
    );
    assert!(
        !table_exists(&db, DEFAULT_HISTORY_TABLE).await,
        "a dry run created the history table"
    );
    assert!(!table_exists(&db, "step_log").await);

    let to_v2 = MigrateOptions {
        target: Some(Version::parse("2").unwrap()),
        ..opts()
    };
    let report = migrate(&db, &fx.migrations(), &to_v2).await.unwrap();
    assert_eq!(report.applied.len(), 2);
    assert_eq!(report.above_target.len(), 1);
    assert_eq!(report.above_target[0].script, "V10__Fill_items.sql");
    assert!(
        !table_exists(&db, "items").await
            || strings(&db, "SELECT CAST(id AS TEXT) FROM items")
                .await
                .is_empty()
    );
    let report = migrate(&db, &fx.migrations(), &dry).await.unwrap();
    let would: Vec<&str> = report
        .would_apply
        .iter()
        .map(|p| p.script.as_str())
        .collect();
    assert_eq!(would, ["V10__Fill_items.sql"]);
    assert_eq!(history(&db).await.len(), 2);
}

#[test]
fn invalid_history_table_is_refused_before_touching_the_database() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fx_dir = tempfile::tempdir().unwrap();
        let fx = Fixture {
            kind: Kind::Sqlite,
            dir: fx_dir,
            pg_database: None,
        };
        fx.write("V1__x.sql", "SELECT 1;");
        let db = fx.db().await;
        let bad = MigrateOptions {
            history_table: "x; DROP TABLE y".into(),
            ..opts()
        };
        let err = migrate(&db, &fx.migrations(), &bad).await.unwrap_err();
        assert!(matches!(err, MigrateError::InvalidOption(_)), "{err}");
        assert!(
            err.to_string()
                .contains("'x; DROP TABLE y' is not a plain identifier"),
            "{err}"
        );
        assert!(!table_exists(&db, "y").await && !table_exists(&db, DEFAULT_HISTORY_TABLE).await);
    });
}
