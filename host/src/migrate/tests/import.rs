//! Taking over Pyway and Flyway histories, on SQLite and PostgreSQL. The history tables are made
//! with the DDL the tools run (pyway/dbms/{postgres,sqlite}.py; Flyway's PostgreSQLDatabase and
//! SQLiteDatabase `getRawCreateScript`) and filled as the tools fill them, with checksums worked
//! out here from the fixture files independently of `checksum.rs`.

use super::*;

on_both!(
    pyway_history_is_adopted_and_verified_with_pyways_checksum,
    flyway_history_is_adopted_and_verified_with_flyways_checksum,
    flyway_is_preferred_when_both_tables_exist,
    only_history_tables_are_recognised,
    unreadable_foreign_row_is_refused,
    adopt_refuses_a_history_flowhost_already_wrote,
);

async fn exec(db: &Database, sql: &str) {
    let mut conn = db.acquire().await.unwrap();
    conn.run_raw(db, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn find(db: &Database) -> Result<Option<ForeignHistory>, MigrateError> {
    let mut conn = db.acquire().await.unwrap();
    find_foreign(&mut conn, db).await
}

async fn adopt_into_flowhost(
    db: &Database,
    foreign: &ForeignHistory,
) -> Result<usize, MigrateError> {
    let table = HistoryTable::new(DEFAULT_HISTORY_TABLE, db.backend()).unwrap();
    let mut conn = db.acquire().await.unwrap();
    adopt(&mut conn, db, &table, foreign).await
}

fn read(fx: &Fixture, name: &str) -> Vec<u8> {
    std::fs::read(fx.migrations().join(name)).unwrap()
}

/// Runs a fixture file as the other tool did when it applied it.
async fn run_file(fx: &Fixture, db: &Database, name: &str) {
    let raw = read(fx, name);
    exec(db, std::str::from_utf8(&normalise(&raw)).unwrap()).await;
}

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

// --- Pyway -------------------------------------------------------------------------------

/// Pyway's `CREATE_VERSION_MIGRATIONS`, per backend.
fn pyway_create(fx: &Fixture, table: &str) -> String {
    let default = match fx.kind {
        Kind::Postgres => "NOW()",
        Kind::Sqlite => "CURRENT_TIMESTAMP",
    };
    format!(
        "create table if not exists {table} (installed_rank serial PRIMARY KEY,version \
         varchar(20) NOT NULL,extension varchar(20) NOT NULL,name varchar(125) NOT \
         NULL,checksum varchar(25) NOT NULL,apply_timestamp timestamp DEFAULT {default});"
    )
}

/// Pyway's `INSERT_VERSION_MIGRATE`.
fn pyway_insert(table: &str, version: &str, name: &str, checksum: &str) -> String {
    format!(
        "insert into {table} (version, extension, name, checksum) values ('{version}', 'SQL', \
         '{name}', '{checksum}');"
    )
}

/// Pyway's checksum: `zlib.crc32` over the raw bytes, `"%X"`.
fn pyway_checksum(raw: &[u8]) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(raw);
    format!("{:X}", h.finalize())
}

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n";
const EMAIL_CRLF: &str = "-- e-mail\r\nALTER TABLE users ADD COLUMN email TEXT;\r\n";
const SEED_BOM: &str = "\u{feff}INSERT INTO users (id, name, email) VALUES (1, 'ann', 'a@x');\n";

async fn pyway_history_is_adopted_and_verified_with_pyways_checksum(fx: &Fixture) {
    let files = [
        ("01.01", "V01_01__create_users.sql", USERS),
        ("01.02", "V01_02__add_email.sql", EMAIL_CRLF),
        ("01.03", "V01_03__seed.sql", SEED_BOM),
    ];
    let db = fx.db().await;
    exec(&db, &pyway_create(fx, "schema_version")).await;
    let mut expected = Vec::new();
    for (version, name, body) in files {
        fx.write(name, body);
        run_file(fx, &db, name).await;
        let checksum = pyway_checksum(&read(fx, name));
        exec(
            &db,
            &pyway_insert("schema_version", version, name, &checksum),
        )
        .await;
        expected.push(checksum);
    }
    // The BOM and the CRs are hashed: Pyway's value differs from the LF-only text's.
    assert_ne!(
        expected[1],
        pyway_checksum(EMAIL_CRLF.replace('\r', "").as_bytes())
    );

    // Before the import, status already reads Pyway's history and says migrate adopts it.
    let before = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(
        before.foreign_history.as_deref(),
        Some("pyway table schema_version")
    );
    assert!(before.pending.is_empty(), "{before}");
    assert!(before.checksum_mismatches.is_empty(), "{before}");
    assert_eq!(before.applied_count, 3);

    let foreign = find(&db).await.unwrap().expect("the Pyway table is found");
    assert_eq!(foreign.tool, ForeignTool::Pyway);
    assert_eq!(foreign.table, "schema_version");
    assert!(foreign.passed_over.is_empty());
    assert_eq!(foreign.rows.len(), 3);
    for (i, (row, (version, name, _))) in foreign.rows.iter().zip(files).enumerate() {
        assert_eq!(row.installed_rank, i as i32 + 1);
        let recorded = row.version.as_ref().unwrap();
        assert_eq!(recorded.as_str(), version, "kept as written");
        assert_eq!(recorded, &v(&format!("1.{}", i + 1)), "01.0x equals 1.x");
        assert_eq!(row.script, name);
        assert_eq!(row.kind, "SQL");
        assert!(row.success);
        let checksum = row.checksum.as_ref().unwrap();
        assert_eq!(checksum.algorithm, ChecksumAlgorithm::PywayCrc32);
        assert_eq!(checksum.value, expected[i]);
        let age = chrono::Utc::now().naive_utc() - row.installed_on;
        assert!(age.num_hours().abs() < 24, "{}", row.installed_on);
    }
    assert_eq!(foreign.rows[1].description, "add email");

    assert_eq!(adopt_into_flowhost(&db, &foreign).await.unwrap(), 3);
    let st = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(st.applied_count, 3, "{st:?}");
    assert!(st.pending.is_empty(), "{:?}", st.pending);
    assert!(
        st.checksum_mismatches.is_empty(),
        "{:?}",
        st.checksum_mismatches
    );
    assert!(st.missing_on_disk.is_empty() && st.out_of_order.is_empty() && st.failed.is_empty());
    assert_eq!(st.current_version, Some(v("1.3")));
    assert_eq!(
        strings(
            &db,
            "SELECT checksum_algorithm FROM flowhost_schema_history"
        )
        .await,
        ["pyway-crc32"; 3]
    );
    assert_eq!(
        strings(
            &db,
            "SELECT version FROM flowhost_schema_history ORDER BY installed_rank"
        )
        .await,
        ["01.01", "01.02", "01.03"]
    );

    // Pyway hashes raw bytes, so even CRLF -> LF is a change it (and now flowhost) sees.
    fx.write("V01_02__add_email.sql", &EMAIL_CRLF.replace('\r', ""));
    let st = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(st.checksum_mismatches.len(), 1, "{st:?}");
    let m = &st.checksum_mismatches[0];
    assert_eq!(m.script, "V01_02__add_email.sql");
    assert_eq!(m.recorded.algorithm, ChecksumAlgorithm::PywayCrc32);
    assert_eq!(m.recorded.value, expected[1]);
    assert_eq!(m.current.algorithm, ChecksumAlgorithm::PywayCrc32);
    assert_eq!(
        m.current.value,
        pyway_checksum(&read(fx, "V01_02__add_email.sql"))
    );
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::ChecksumMismatch { .. }),
        "{err}"
    );
    fx.write("V01_02__add_email.sql", EMAIL_CRLF);

    // Only the file Pyway never ran is applied.
    fx.write(
        "V01_04__more_users.sql",
        "INSERT INTO users (id, name, email) VALUES (2, 'bob', 'b@x');\n",
    );
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let applied: Vec<&str> = report.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(applied, ["V01_04__more_users.sql"]);
    assert_eq!(report.version_before, Some(v("1.3")));
    assert_eq!(
        strings(&db, "SELECT name FROM users ORDER BY id").await,
        ["ann", "bob"]
    );
    let rows = history(&db).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3].installed_rank, 4);
    assert_eq!(
        rows[3].checksum.as_ref().unwrap().algorithm,
        ChecksumAlgorithm::Sha256
    );
    let again = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    assert!(again.applied.is_empty(), "{again}");
}

// --- Flyway ------------------------------------------------------------------------------

/// Flyway's `getRawCreateScript` (no baseline), per backend, as it names the table.
fn flyway_create(fx: &Fixture) -> &'static str {
    match fx.kind {
        Kind::Postgres => {
            "CREATE TABLE \"public\".\"flyway_schema_history\" (\n    \"installed_rank\" INT NOT NULL,\n    \"version\" VARCHAR(50),\n    \"description\" VARCHAR(200) NOT NULL,\n    \"type\" VARCHAR(20) NOT NULL,\n    \"script\" VARCHAR(1000) NOT NULL,\n    \"checksum\" INTEGER,\n    \"installed_by\" VARCHAR(100) NOT NULL,\n    \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),\n    \"execution_time\" INTEGER NOT NULL,\n    \"success\" BOOLEAN NOT NULL\n);\nALTER TABLE \"public\".\"flyway_schema_history\" ADD CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY (\"installed_rank\");\nCREATE INDEX \"flyway_schema_history_s_idx\" ON \"public\".\"flyway_schema_history\" (\"success\");"
        }
        Kind::Sqlite => {
            "CREATE TABLE \"main\".\"flyway_schema_history\" (\n    \"installed_rank\" INT NOT NULL PRIMARY KEY,\n    \"version\" VARCHAR(50),\n    \"description\" VARCHAR(200) NOT NULL,\n    \"type\" VARCHAR(20) NOT NULL,\n    \"script\" VARCHAR(1000) NOT NULL,\n    \"checksum\" INT,\n    \"installed_by\" VARCHAR(100) NOT NULL,\n    \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),\n    \"execution_time\" INT NOT NULL,\n    \"success\" BOOLEAN NOT NULL\n);\nCREATE INDEX \"main\".\"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\");"
        }
    }
}

/// One row as Flyway's `getInsertStatement` writes it (booleans as its JDBC drivers bind
/// them: `true` on PostgreSQL, `1` on SQLite).
#[allow(clippy::too_many_arguments)]
fn flyway_insert(
    fx: &Fixture,
    rank: i32,
    version: Option<&str>,
    description: &str,
    kind: &str,
    script: &str,
    checksum: Option<i32>,
    millis: i32,
    success: bool,
) -> String {
    let text = |s: Option<&str>| s.map_or("NULL".to_owned(), |s| format!("'{s}'"));
    let success = match (fx.kind, success) {
        (Kind::Postgres, s) => s.to_string(),
        (Kind::Sqlite, s) => (s as i32).to_string(),
    };
    format!(
        "INSERT INTO \"flyway_schema_history\" (\"installed_rank\", \"version\", \
         \"description\", \"type\", \"script\", \"checksum\", \"installed_by\", \
         \"execution_time\", \"success\") VALUES ({rank}, {}, '{description}', '{kind}', \
         '{script}', {}, 'deployer', {millis}, {success})",
        text(version),
        checksum.map_or("NULL".to_owned(), |c| c.to_string()),
    )
}

/// Flyway's checksum as `ChecksumCalculator` makes it: decode, `readLine` after `readLine`
/// (a line ends at `\n`, `\r\n` or `\r`), BOM dropped from the first line, CRC-32 updated with
/// each line's UTF-8 bytes, cast to a Java `int`.
fn flyway_checksum(raw: &[u8]) -> i32 {
    let text = std::str::from_utf8(raw).unwrap();
    let mut chars = text.chars().peekable();
    let mut lines: Vec<String> = Vec::new();
    while chars.peek().is_some() {
        let mut line = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\n' => break,
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    break;
                }
                c => line.push(c),
            }
        }
        lines.push(line);
    }
    if let Some(first) = lines.first_mut()
        && first.starts_with('\u{feff}')
    {
        first.remove(0);
    }
    let mut h = crc32fast::Hasher::new();
    for line in &lines {
        h.update(line.as_bytes());
    }
    h.finalize() as i32
}

async fn flyway_history_is_adopted_and_verified_with_flyways_checksum(fx: &Fixture) {
    let files = [
        ("1", "V1__create_users.sql", USERS),
        ("1.1", "V1_1__add_email.sql", EMAIL_CRLF),
        ("2", "V2__seed.sql", SEED_BOM),
    ];
    let db = fx.db().await;
    exec(&db, flyway_create(fx)).await;
    let schema = if fx.kind == Kind::Postgres {
        "\"public\""
    } else {
        "\"main\""
    };
    exec(
        &db,
        &flyway_insert(
            fx,
            1,
            None,
            "<< Flyway Schema Creation >>",
            "SCHEMA",
            schema,
            None,
            0,
            true,
        ),
    )
    .await;
    let mut expected = Vec::new();
    for (i, (version, name, body)) in files.into_iter().enumerate() {
        fx.write(name, body);
        run_file(fx, &db, name).await;
        let checksum = flyway_checksum(&read(fx, name));
        let description = name
            .split_once("__")
            .unwrap()
            .1
            .trim_end_matches(".sql")
            .replace('_', " ");
        exec(
            &db,
            &flyway_insert(
                fx,
                i as i32 + 2,
                Some(version),
                &description,
                "SQL",
                name,
                Some(checksum),
                7,
                true,
            ),
        )
        .await;
        expected.push(checksum);
    }
    // Line endings and the BOM do not change Flyway's checksum.
    assert_eq!(
        expected[1],
        flyway_checksum(EMAIL_CRLF.replace('\r', "").as_bytes())
    );
    assert_eq!(
        expected[2],
        flyway_checksum(SEED_BOM.trim_start_matches('\u{feff}').as_bytes())
    );
    // A repeatable migration, no longer on disk (flowhost does not run R__ files yet).
    exec(
        &db,
        &flyway_insert(
            fx,
            5,
            None,
            "views",
            "SQL",
            "R__views.sql",
            Some(-123_456),
            3,
            true,
        ),
    )
    .await;
    // Flyway's installed_on is the server's local time; it is kept as written.
    exec(
        &db,
        "UPDATE flyway_schema_history SET installed_on = '2023-04-05 06:07:08.123' WHERE installed_rank = 2",
    )
    .await;

    let foreign = find(&db).await.unwrap().expect("the Flyway table is found");
    assert_eq!(foreign.tool, ForeignTool::Flyway);
    assert_eq!(foreign.table, "flyway_schema_history");
    let kinds: Vec<(i32, Option<String>, &str)> = foreign
        .rows
        .iter()
        .map(|r| {
            (
                r.installed_rank,
                r.version.as_ref().map(|v| v.to_string()),
                r.kind.as_str(),
            )
        })
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        kinds,
        [
            (1, None, "SCHEMA"),
            (2, some("1"), "SQL"),
            (3, some("1.1"), "SQL"),
            (4, some("2"), "SQL"),
            (5, None, "SQL"),
        ]
    );
    assert_eq!(foreign.rows[0].checksum, None);
    for (row, want) in foreign.rows[1..4].iter().zip(&expected) {
        let checksum = row.checksum.as_ref().unwrap();
        assert_eq!(checksum.algorithm, ChecksumAlgorithm::FlywayCrc32);
        assert_eq!(checksum.value, want.to_string());
        assert_eq!(row.installed_by, "deployer");
        assert_eq!(row.execution_time_ms, 7);
        assert!(row.success);
    }
    assert_eq!(foreign.rows[2].description, "add email");
    assert_eq!(foreign.rows[4].checksum.as_ref().unwrap().value, "-123456");
    let at = chrono::NaiveDate::from_ymd_opt(2023, 4, 5)
        .unwrap()
        .and_hms_milli_opt(6, 7, 8, 123)
        .unwrap();
    assert_eq!(foreign.rows[1].installed_on, at);

    assert_eq!(adopt_into_flowhost(&db, &foreign).await.unwrap(), 5);
    let rows = history(&db).await;
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1].installed_on, at);
    assert_eq!(rows[0].kind, "SCHEMA");
    assert_eq!(rows[4].script, "R__views.sql");
    let st = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(st.applied_count, 3, "{st:?}");
    assert!(st.pending.is_empty(), "{:?}", st.pending);
    assert!(
        st.checksum_mismatches.is_empty(),
        "{:?}",
        st.checksum_mismatches
    );
    assert!(st.missing_on_disk.is_empty() && st.out_of_order.is_empty() && st.failed.is_empty());
    assert_eq!(st.current_version, Some(v("2")));

    // CRLF -> LF and dropping the BOM change nothing for Flyway's checksum...
    fx.write("V1_1__add_email.sql", &EMAIL_CRLF.replace('\r', ""));
    fx.write("V2__seed.sql", SEED_BOM.trim_start_matches('\u{feff}'));
    let st = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert!(
        st.checksum_mismatches.is_empty(),
        "{:?}",
        st.checksum_mismatches
    );
    // ...a changed statement does.
    fx.write(
        "V1_1__add_email.sql",
        "ALTER TABLE users ADD COLUMN mail TEXT;\n",
    );
    let st = status(&db, Some(&fx.migrations()), &opts()).await.unwrap();
    assert_eq!(st.checksum_mismatches.len(), 1, "{st:?}");
    let m = &st.checksum_mismatches[0];
    assert_eq!(m.version, Some(v("1.1")));
    assert_eq!(m.recorded.algorithm, ChecksumAlgorithm::FlywayCrc32);
    assert_eq!(m.recorded.value, expected[1].to_string());
    assert_eq!(
        m.current.value,
        flyway_checksum(&read(fx, "V1_1__add_email.sql")).to_string()
    );
    let err = migrate(&db, &fx.migrations(), &opts()).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::ChecksumMismatch { .. }),
        "{err}"
    );
    fx.write("V1_1__add_email.sql", EMAIL_CRLF);

    fx.write(
        "V3__more_users.sql",
        "INSERT INTO users (id, name, email) VALUES (2, 'bob', 'b@x');\n",
    );
    let report = migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    let applied: Vec<&str> = report.applied.iter().map(|s| s.script.as_str()).collect();
    assert_eq!(applied, ["V3__more_users.sql"]);
    assert_eq!(
        strings(&db, "SELECT name FROM users ORDER BY id").await,
        ["ann", "bob"]
    );
    let rows = history(&db).await;
    assert_eq!(rows.len(), 6);
    assert_eq!(
        (rows[5].installed_rank, rows[5].version.clone()),
        (6, Some(v("3")))
    );
}

// --- Detection and refusals --------------------------------------------------------------

async fn flyway_is_preferred_when_both_tables_exist(fx: &Fixture) {
    let db = fx.db().await;
    exec(&db, &pyway_create(fx, "schema_version")).await;
    exec(
        &db,
        &pyway_insert("schema_version", "01.01", "V01_01__a.sql", "1A"),
    )
    .await;
    exec(&db, flyway_create(fx)).await;
    exec(
        &db,
        &flyway_insert(fx, 1, Some("1"), "a", "SQL", "V1__a.sql", Some(26), 1, true),
    )
    .await;
    let foreign = find(&db).await.unwrap().unwrap();
    assert_eq!(foreign.tool, ForeignTool::Flyway);
    assert_eq!(foreign.table, "flyway_schema_history");
    assert_eq!(foreign.passed_over, ["pyway:schema_version"]);
    assert_eq!(foreign.rows.len(), 1);
    assert_eq!(foreign.rows[0].script, "V1__a.sql");
}

async fn only_history_tables_are_recognised(fx: &Fixture) {
    let db = fx.db().await;
    assert!(find(&db).await.unwrap().is_none());
    // A table that happens to be called schema_version, and flowhost's own history under the
    // name Flyway uses, are not foreign histories.
    exec(&db, "CREATE TABLE schema_version (id INTEGER, name TEXT)").await;
    let own = HistoryTable::new("flyway_schema_history", db.backend()).unwrap();
    exec(&db, &own.create_sql()).await;
    assert!(find(&db).await.unwrap().is_none());
    // Pyway's table under the name its README configures.
    exec(&db, &pyway_create(fx, "pyway")).await;
    exec(&db, &pyway_insert("pyway", "01.01", "V01_01__a.sql", "1A")).await;
    let foreign = find(&db).await.unwrap().unwrap();
    assert_eq!(
        (foreign.tool, foreign.table.as_str()),
        (ForeignTool::Pyway, "pyway")
    );
    assert_eq!(foreign.rows[0].checksum.as_ref().unwrap().value, "1A");
}

async fn unreadable_foreign_row_is_refused(fx: &Fixture) {
    let db = fx.db().await;
    exec(&db, &pyway_create(fx, "schema_version")).await;
    exec(
        &db,
        &pyway_insert("schema_version", "01.01", "V01_01__a.sql", "1A"),
    )
    .await;
    exec(
        &db,
        &pyway_insert("schema_version", "1.x", "V1_x__b.sql", "2B"),
    )
    .await;
    let err = find(&db).await.unwrap_err();
    match &err {
        MigrateError::History { table, message, .. } => {
            assert_eq!(table, "schema_version");
            assert!(message.contains("V1_x__b.sql"), "{message}");
            assert!(message.contains("'1.x' is not a version"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

async fn adopt_refuses_a_history_flowhost_already_wrote(fx: &Fixture) {
    fx.write("V1__a.sql", "CREATE TABLE a (id INTEGER);\n");
    let db = fx.db().await;
    migrate(&db, &fx.migrations(), &opts()).await.unwrap();
    exec(&db, &pyway_create(fx, "schema_version")).await;
    exec(
        &db,
        &pyway_insert("schema_version", "01.01", "V01_01__a.sql", "1A"),
    )
    .await;
    exec(
        &db,
        &pyway_insert("schema_version", "01.02", "V01_02__b.sql", "2B"),
    )
    .await;
    let foreign = find(&db).await.unwrap().unwrap();
    let err = adopt_into_flowhost(&db, &foreign).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("already holds 1 row, so the pyway history in schema_version"),
        "{err}"
    );
    let rows = history(&db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].script, "V1__a.sql");
}
