//! Repeatable and undo migrations, baseline, repair, out-of-order, placeholders and
//! non-transactional files, on SQLite and PostgreSQL.

use super::*;

on_both!(
    repeatables_run_after_versioned_and_again_when_changed,
    undo_runs_u_files_newest_first_and_versions_become_pending,
    baseline_skips_files_at_or_below_it,
    repair_realigns_only_what_it_is_told_and_dry_run_changes_nothing,
    repair_removes_failed_entries,
    out_of_order_applies_only_when_allowed,
    placeholders_are_replaced_and_unknown_ones_refused,
    non_transactional_file_resumes_after_its_last_completed_statement,
    mixed_file_without_header_is_refused_before_anything_runs,
);

async fn repeatables_run_after_versioned_and_again_when_changed(fx: &Fixture) {
    // The view needs V2's column: it must run after every versioned migration.
    fx.write(
        "R__Views.sql",
        "CREATE VIEW item_names AS SELECT name FROM items;\n",
    );
    fx.write("V1__Items.sql", "CREATE TABLE items (id INTEGER);\n");
    fx.write("V2__Name.sql", "ALTER TABLE items ADD COLUMN name TEXT;\n");
    let db = fx.db().await;
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let order: Vec<&str> = report.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(order, ["V1__Items.sql", "V2__Name.sql", "R__Views.sql"]);
    assert_eq!(report.applied[2].kind, StepKind::Repeatable);
    assert_eq!(report.applied[2].version, None);

    // Unchanged: nothing to do.
    let again = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert!(again.applied.is_empty(), "{again}");

    // Changed: applied again, and recorded as a second row without a version.
    fx.write(
        "R__Views.sql",
        "DROP VIEW IF EXISTS item_names;\nCREATE VIEW item_names AS SELECT id, name FROM items;\n",
    );
    let status_before = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(status_before.pending.len(), 1);
    assert_eq!(status_before.pending[0].kind, StepKind::Repeatable);
    assert!(
        status_before.is_valid(),
        "a changed repeatable is not a problem"
    );
    assert!(
        status_before.to_string().contains("outdated"),
        "{status_before}"
    );
    let third = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert_eq!(third.applied.len(), 1);
    assert_eq!(
        strings(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM flowhost_schema_history WHERE version IS NULL"
        )
        .await,
        ["2"]
    );
    // The new view has the new column.
    assert_eq!(
        strings(&db, "SELECT CAST(COUNT(id) AS TEXT) FROM item_names").await,
        ["0"]
    );
}

async fn undo_runs_u_files_newest_first_and_versions_become_pending(fx: &Fixture) {
    fx.write("V1__A.sql", "CREATE TABLE a (id INTEGER);\n");
    fx.write("V2__B.sql", "CREATE TABLE b (id INTEGER);\n");
    fx.write("V3__C.sql", "CREATE TABLE c (id INTEGER);\n");
    fx.write("U2__B.sql", "DROP TABLE b;\n");
    fx.write("U3__C.sql", "DROP TABLE c;\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();

    // Without --to: only the latest.
    let one = undo(&db, &fx.migrations(), &opts(), None).await.unwrap();
    assert_eq!(one.applied.len(), 1);
    assert_eq!(one.applied[0].script, "U3__C.sql");
    assert_eq!(one.applied[0].kind, StepKind::Undo);
    assert_eq!(one.version_after, Some(Version::parse("2").unwrap()));
    assert!(!table_exists(&db, "c").await);
    assert!(table_exists(&db, "b").await);

    // Undone versions are pending again; migrate re-applies them.
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(s.current_version, Some(Version::parse("2").unwrap()));
    assert_eq!(s.pending.len(), 1);
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert!(table_exists(&db, "c").await);

    // --to 1 needs U3 and U2; with U2 missing nothing runs.
    fx.remove("U2__B.sql");
    let err = undo(
        &db,
        &fx.migrations(),
        &opts(),
        Some(&Version::parse("1").unwrap()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MigrateError::NoUndoFile { .. }), "{err}");
    assert!(err.to_string().contains("V2__B.sql"), "{err}");
    assert!(table_exists(&db, "c").await, "nothing ran");
    fx.write("U2__B.sql", "DROP TABLE b;\n");

    // A dry run says what would run and changes nothing.
    let mut dry = opts();
    dry.dry_run = true;
    let plan = undo(
        &db,
        &fx.migrations(),
        &dry,
        Some(&Version::parse("1").unwrap()),
    )
    .await
    .unwrap();
    let scripts: Vec<&str> = plan.would_apply.iter().map(|p| p.script.as_str()).collect();
    assert_eq!(scripts, ["U3__C.sql", "U2__B.sql"]);
    assert!(table_exists(&db, "c").await);

    let two = undo(
        &db,
        &fx.migrations(),
        &opts(),
        Some(&Version::parse("1").unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(two.applied.len(), 2);
    assert!(!table_exists(&db, "b").await && !table_exists(&db, "c").await);
    assert!(table_exists(&db, "a").await);
    let kinds = strings(
        &db,
        "SELECT type FROM flowhost_schema_history ORDER BY installed_rank",
    )
    .await;
    assert_eq!(
        kinds,
        [
            "SQL", "SQL", "SQL", "UNDO_SQL", "SQL", "UNDO_SQL", "UNDO_SQL"
        ]
    );
    // A failing undo leaves the version applied.
    fx.write("U1__A.sql", "DROP TABLE a;\nDROP TABLE no_such_table;\n");
    let err = undo(&db, &fx.migrations(), &opts(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Failed { .. }), "{err}");
    assert!(table_exists(&db, "a").await);
}

async fn baseline_skips_files_at_or_below_it(fx: &Fixture) {
    // The database was set up by hand (or another tool) up to version 2.
    let db = fx.db().await;
    {
        let mut conn = db.acquire().await.unwrap();
        conn.run_raw(&db, "CREATE TABLE legacy (id INTEGER)")
            .await
            .unwrap();
    }
    fx.write("V1__Legacy.sql", "CREATE TABLE legacy (id INTEGER);\n");
    fx.write(
        "V2__Legacy_more.sql",
        "ALTER TABLE legacy ADD COLUMN x INTEGER;\n",
    );
    fx.write("V3__New.sql", "CREATE TABLE newer (id INTEGER);\n");
    let two = Version::parse("2").unwrap();
    let report = baseline(&db, Some(&fx.migrations()), &opts(), two.clone(), None)
        .await
        .unwrap();
    assert!(report.created);
    assert_eq!(
        report.below_baseline,
        ["V1__Legacy.sql", "V2__Legacy_more.sql"]
    );
    // Again with the same version: nothing to do. Another version: refused.
    let same = baseline(&db, None, &opts(), two.clone(), None)
        .await
        .unwrap();
    assert!(!same.created);

    let applied = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let scripts: Vec<&str> = applied.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(scripts, ["V3__New.sql"]);
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(s.below_baseline.len(), 2);
    assert!(s.is_valid(), "{s}");
    assert!(s.to_string().contains("below baseline"), "{s}");

    let err = baseline(&db, None, &opts(), Version::parse("5").unwrap(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::BaselineNotEmpty { rows: 2, .. }),
        "{err}"
    );
}

async fn repair_realigns_only_what_it_is_told_and_dry_run_changes_nothing(fx: &Fixture) {
    fx.write("V1__A.sql", "CREATE TABLE a (id INTEGER);\n");
    fx.write("V2__B.sql", "CREATE TABLE b (id INTEGER);\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    fx.write(
        "V1__A.sql",
        "-- reformatted\nCREATE TABLE a (id INTEGER);\n",
    );
    fx.write(
        "V2__B.sql",
        "-- reformatted\nCREATE TABLE b (id INTEGER);\n",
    );
    let before = history(&db).await;

    let mut dry = opts();
    dry.dry_run = true;
    let preview = repair(&db, &fx.migrations(), &dry, &[]).await.unwrap();
    assert_eq!(preview.actions.len(), 2);
    assert!(
        preview.to_string().contains("would make 2 changes"),
        "{preview}"
    );
    assert_eq!(
        history(&db)
            .await
            .iter()
            .map(|r| r.checksum.clone())
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|r| r.checksum.clone())
            .collect::<Vec<_>>(),
        "a dry run changes nothing"
    );

    // Only version 1.
    let one = Version::parse("1").unwrap();
    let done = repair(&db, &fx.migrations(), &opts(), std::slice::from_ref(&one))
        .await
        .unwrap();
    assert_eq!(done.actions.len(), 1);
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(s.checksum_mismatches.len(), 1);
    assert_eq!(s.checksum_mismatches[0].script, "V2__B.sql");
    let rows = history(&db).await;
    assert_eq!(
        rows[0].checksum,
        Some(Checksum::of(
            b"-- reformatted\nCREATE TABLE a (id INTEGER);\n"
        ))
    );
    assert_eq!(rows[1].checksum, before[1].checksum);

    // Everything else, then validate is clean and migrate runs again.
    repair(&db, &fx.migrations(), &opts(), &[]).await.unwrap();
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert!(s.is_valid(), "{s}");
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
}

async fn repair_removes_failed_entries(fx: &Fixture) {
    fx.write("V1__A.sql", "CREATE TABLE a (id INTEGER);\n");
    fx.write("V2__B.sql", "CREATE TABLE b (id INTEGER);\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    // A failed row as another tool (or a crashed non-transactional run) leaves it.
    let table = HistoryTable::new(DEFAULT_HISTORY_TABLE, db.backend()).unwrap();
    {
        let mut conn = db.acquire().await.unwrap();
        let mut row = history(&db).await.pop().unwrap();
        row.installed_rank = 3;
        row.version = Some(Version::parse("3").unwrap());
        row.script = "V3__C.sql".into();
        row.success = false;
        table.insert(&mut conn, &db, &row).await.unwrap();
    }
    fx.write("V3__C.sql", "CREATE TABLE c (id INTEGER);\n");
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    assert!(matches!(err, MigrateError::FailedEntries { .. }), "{err}");
    assert!(err.to_string().contains("flowhost migrate repair"), "{err}");

    let report = repair(&db, &fx.migrations(), &opts(), &[]).await.unwrap();
    assert!(matches!(
        report.actions.as_slice(),
        [RepairAction::RemoveFailed {
            installed_rank: 3,
            ..
        }]
    ));
    assert_eq!(history(&db).await.len(), 2);
    let applied = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert_eq!(applied.applied.len(), 1);
    assert!(table_exists(&db, "c").await);
}

async fn out_of_order_applies_only_when_allowed(fx: &Fixture) {
    fx.write("V1__One.sql", "CREATE TABLE one (id INTEGER);\n");
    fx.write("V3__Three.sql", "CREATE TABLE three (id INTEGER);\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    fx.write("V2__Two.sql", "CREATE TABLE two (id INTEGER);\n");
    fx.write("V4__Four.sql", "CREATE TABLE four (id INTEGER);\n");
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(s.out_of_order.len(), 1);
    assert!(!s.is_valid());
    assert!(migrate(&db, &fx.migrations(), &opts()).await.is_err());
    assert!(
        !table_exists(&db, "four").await,
        "refused before anything ran"
    );

    let mut allow = opts();
    allow.out_of_order = true;
    let report = migrate(&db, &fx.migrations(), &allow).await.unwrap();
    let scripts: Vec<&str> = report.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(scripts, ["V2__Two.sql", "V4__Four.sql"]);
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert!(s.is_valid() && s.pending.is_empty(), "{s}");
}

async fn placeholders_are_replaced_and_unknown_ones_refused(fx: &Fixture) {
    fx.write(
        "V1__Config.sql",
        "CREATE TABLE settings (k TEXT, v TEXT);\n\
         INSERT INTO settings VALUES ('region', '${region}');\n\
         INSERT INTO settings VALUES ('db', '${flowhost:database}');\n",
    );
    let db = fx.db().await;
    let mut with = opts();
    with.placeholders = Some(Placeholders::new([(
        "REGION".to_owned(),
        "eu-west".to_owned(),
    )]));
    migrate(&db, &fx.migrations(), &with).await.unwrap();
    assert_eq!(
        strings(&db, "SELECT v FROM settings ORDER BY k").await,
        ["mig_test", "eu-west"]
    );
    // The checksum is of the file as written: a new value is not a change.
    let checksum = history(&db).await[0].checksum.clone().unwrap();
    let raw = std::fs::read(fx.migrations().join("V1__Config.sql")).unwrap();
    assert_eq!(checksum, Checksum::of(&raw));

    fx.write(
        "V2__More.sql",
        "INSERT INTO settings VALUES ('x', '${missing}');\n",
    );
    let err = migrate(&db, &fx.migrations(), &with).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, MigrateError::UnknownPlaceholder { line: 1, .. }),
        "{text}"
    );
    assert!(text.contains("FLOWHOST_PLACEHOLDER_MISSING"), "{text}");
    // Off (the default): the text runs as written.
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert_eq!(
        strings(&db, "SELECT v FROM settings WHERE k = 'x'").await,
        ["${missing}"]
    );
}

/// A statement each backend refuses inside a transaction, and its clean-up.
fn outside_statement(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "CREATE INDEX CONCURRENTLY big_a ON big (a);\n",
        Kind::Sqlite => "VACUUM;\n",
    }
}

async fn non_transactional_file_resumes_after_its_last_completed_statement(fx: &Fixture) {
    fx.write("V1__Big.sql", "CREATE TABLE big (a INTEGER);\n");
    let header = format!("-- {NO_TRANSACTION_HEADER}\n");
    let broken = format!(
        "{header}INSERT INTO big VALUES (1);\n{}INSERT INTO no_such_table VALUES (2);\nINSERT INTO big VALUES (3);\n",
        outside_statement(fx.kind)
    );
    fx.write("V2__Outside.sql", &broken);
    let db = fx.db().await;
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    let text = err.to_string();
    let MigrateError::FailedPartway { done, total, .. } = &err else {
        panic!("expected a part-way failure, got {text}");
    };
    assert_eq!((*done, *total), (2, 4), "{text}");
    assert!(text.contains("resumes at statement 3"), "{text}");
    // The first two statements stay, recorded as progress.
    assert_eq!(strings(&db, "SELECT CAST(a AS TEXT) FROM big").await, ["1"]);
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(s.resumable.len(), 1, "{s}");
    assert_eq!(s.resumable[0].statements_done, Some(2));
    assert!(!s.is_valid());
    assert!(s.to_string().contains("stopped after statement 2"), "{s}");

    // Fix the failing statement: migrate resumes there, without repeating the INSERT of 1.
    fx.write("V2__Outside.sql", &broken.replace("no_such_table", "big"));
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.applied[0].resumed_after, Some(2));
    assert!(!report.applied[0].transactional);
    let mut values = strings(&db, "SELECT CAST(a AS TEXT) FROM big").await;
    values.sort();
    assert_eq!(values, ["1", "2", "3"]);
    let rows = history(&db).await;
    assert_eq!(rows.len(), 2, "the same row was completed");
    assert!(rows[1].success);
    assert_eq!(rows[1].statements_done, Some(4));
    let raw = std::fs::read(fx.migrations().join("V2__Outside.sql")).unwrap();
    assert_eq!(rows[1].checksum, Some(Checksum::of(&raw)));
    let s = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert!(s.is_valid(), "{s}");
}

async fn mixed_file_without_header_is_refused_before_anything_runs(fx: &Fixture) {
    fx.write("V1__Big.sql", "CREATE TABLE big (a INTEGER);\n");
    fx.write(
        "V2__Mixed.sql",
        &format!(
            "INSERT INTO big VALUES (1);\n{}",
            outside_statement(fx.kind)
        ),
    );
    let db = fx.db().await;
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::MixedTransactional {
                line: 2,
                other_line: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(!table_exists(&db, "big").await, "V1 did not run either");
    // On its own, the statement runs outside a transaction without a header.
    fx.write("V2__Mixed.sql", outside_statement(fx.kind));
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert_eq!(report.applied.len(), 2);
    assert!(!report.applied[1].transactional);
}
