//! SQL Server end to end, against the server `FLOWHOST_TEST_MSSQL_URL` names (each test prints
//! that it was skipped when it is not set): rpa1 from SQL Server into PostgreSQL, every type,
//! transactions, read-only grants, pool hygiene with one connection, a real T-SQL schema
//! migrated, and concurrent migrators.

use std::sync::Barrier;

use serde_json::{Value, json};

use crate::rpa1::{MALFORMED, assert_counts, run_rpa1};
use crate::sqlserver_support::{MsDatabase, require_mssql};
use crate::support::*;
use crate::values::{UNICODE, round_trip_with};

fn lab_project(db: &MsDatabase, extra: &str) -> Project {
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_LAB_TYPE=mssql\nDEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n{extra}",
            db.url()
        ),
    );
    project
}

fn assert_no_secret(db: &MsDatabase, out: &std::process::Output) {
    let password = db.password();
    if password.is_empty() {
        return;
    }
    let all = format!("{}{}", stdout(out), stderr(out));
    assert!(!all.contains(&password), "the password leaked:\n{all}");
}

#[test]
fn rpa1_reads_surveyhub_from_sql_server_and_writes_postgresql() {
    let survey_hub = require_mssql!("rpa1_reads_surveyhub_from_sql_server_and_writes_postgresql");
    survey_hub.exec(&std::fs::read_to_string(repo().join("seeds/SurveyHub.mssql.sql")).unwrap());
    let completed = survey_hub.count("survey_responses WHERE status = N'completed'");
    let rpa_db = PgDatabase::create();

    let project = Project::new();
    // SurveyHub exactly as the users' configurations have it: mssql+pyodbc with an ODBC driver.
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_RPA_DB_TYPE=postgresql\n\
             DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING={}\n\
             DEVELOPMENT_GLOBAL_SURVEYHUB_TYPE=mssql\n\
             DEVELOPMENT_GLOBAL_SURVEYHUB_CONNECTION_STRING={}\n",
            rpa_db.url(),
            survey_hub.pyodbc_url()
        ),
    );
    let out = run_rpa1(&project);
    assert_no_secret(&survey_hub, &out);
    assert_counts(&json_ok(&out), completed, completed - MALFORMED, MALFORMED);
    // The mean of the five ratings of responses 1-3 (seeds/SurveyHub.mssql.sql).
    assert_eq!(
        rpa_db.column(
            "SELECT response_id::text || '=' || satisfaction_score::text FROM \
             rpa1_processed_surveys WHERE response_id IN (1, 2, 3) ORDER BY response_id"
        ),
        ["1=4.20", "2=5.00", "3=3.00"].map(|s| Some(s.to_owned()))
    );
    assert_eq!(
        rpa_db.count("rpa1_processed_surveys WHERE status = 'failed'"),
        MALFORMED
    );

    assert_counts(&json_ok(&run_rpa1(&project)), 0, 0, 0);
    assert_eq!(rpa_db.count("rpa1_processed_surveys"), completed);
    // The read-only grant left SurveyHub as it was.
    assert_eq!(survey_hub.count("survey_responses"), 25);
}

/// (column, value sent, value expected back) for a table of every SQL Server type flowhost maps.
/// `micro`: fractional seconds to six digits, for a server that keeps microseconds (Babelfish).
fn sqlserver_cases(micro: bool) -> Vec<(&'static str, Value, Value)> {
    let (tm, dt2) = if micro {
        ("23:59:59.123456", "9999-12-31T23:59:59.999999")
    } else {
        ("23:59:59.1234567", "9999-12-31T23:59:59.9999999")
    };
    let same = |t: &str, value: Value| (v(t, value.clone()), v(t, value));
    let cases: Vec<(&str, (Value, Value))> = vec![
        ("b", same("boolean", json!(true))),
        ("ti", same("int", json!(255))),
        ("si", same("int", json!(-32768))),
        ("i", same("int", json!(2147483647))),
        ("bi", same("int", json!(i64::MIN))),
        ("r", same("float", json!(1.5))),
        ("f", same("float", json!(std::f64::consts::PI))),
        (
            "d",
            same("decimal", json!("12345678901234567890.123456789")),
        ),
        (
            "d2",
            (v("decimal", json!("-1.5")), v("decimal", json!("-1.500"))),
        ),
        ("m", same("decimal", json!("900000000000.1234"))),
        ("sm", same("decimal", json!("-214748.3648"))),
        ("nc", same("text", json!("ab "))),
        ("vc", same("text", json!("plain ascii"))),
        ("nv", same("text", json!(UNICODE))),
        ("nvm", same("text", json!("x".repeat(9000)))),
        ("bin", same("bytes", json!([0, 255, 1, 128]))),
        (
            "u",
            (
                v("uuid", json!("67E55044-10B1-426F-9247-BB680E5FE0C8")),
                v("uuid", json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
            ),
        ),
        ("dt", same("date", json!("0001-01-01"))),
        ("tm", same("time", json!(tm))),
        // datetime keeps 1/300 s: .123 is stored as 37/300 s and shown, as SQL Server shows
        // it, to the millisecond.
        ("dtm", same("timestamp", json!("2024-02-29T13:45:10.123"))),
        (
            "sdt",
            (
                v("timestamp", json!("2024-02-29T13:45:00")),
                v("timestamp", json!("2024-02-29T13:45:00")),
            ),
        ),
        ("dt2", same("timestamp", json!(dt2))),
        (
            "dto",
            (
                v("timestamp-tz", json!("2024-02-29T13:45:10.5+02:00")),
                v("timestamp-tz", json!("2024-02-29T11:45:10.5Z")),
            ),
        ),
        ("x", same("text", json!("<a b=\"1\">é</a>"))),
    ];
    cases.into_iter().map(|(c, (s, e))| (c, s, e)).collect()
}

#[test]
fn every_sql_server_type_round_trips_with_nulls_unicode_and_extremes() {
    let db = require_mssql!("every_sql_server_type_round_trips_with_nulls_unicode_and_extremes");
    let project = lab_project(&db, "");
    let create = "CREATE TABLE vals (id INT PRIMARY KEY, b BIT, ti TINYINT, si SMALLINT, i INT, \
        bi BIGINT, r REAL, f FLOAT, d DECIMAL(38, 9), d2 NUMERIC(10, 3), m MONEY, sm SMALLMONEY, \
        nc NCHAR(3), vc VARCHAR(50), nv NVARCHAR(200), nvm NVARCHAR(MAX), bin VARBINARY(MAX), \
        u UNIQUEIDENTIFIER, dt DATE, tm TIME(7), dtm DATETIME, sdt SMALLDATETIME, \
        dt2 DATETIME2(7), dto DATETIMEOFFSET(7), x XML)";
    // Babelfish (PostgreSQL underneath) keeps time and datetime2 to the microsecond; SQL
    // Server's seventh digit is asserted wherever the server has it.
    let micro = db.is_babelfish();
    if micro {
        eprintln!(
            "note: every_sql_server_type_round_trips_with_nulls_unicode_and_extremes: the server \
             is Babelfish, which keeps microseconds: time(7) and datetime2(7) tested at 6 digits"
        );
    }
    // NULLs go as literals (see sqlserver_types::inline_nulls), so even the varbinary column
    // takes a plain `:bin` parameter.
    round_trip_with(&project, create, &sqlserver_cases(micro), |c| {
        format!(":{c}")
    });
}

#[test]
fn a_sql_variant_column_is_refused_naming_the_column_and_its_type() {
    let db = require_mssql!("a_sql_variant_column_is_refused_naming_the_column_and_its_type");
    db.exec("CREATE TABLE odd (id INT, v SQL_VARIANT); INSERT INTO odd VALUES (1, 42)");
    let project = lab_project(&db, "");
    let results = probe_results(&project.run_probe(
        &[("lab", "read-write")],
        json!([{ "op": "query", "db": "lab", "sql": "SELECT id, v FROM odd" }]),
    ));
    let err = results[0]["error"].to_string();
    assert!(
        err.contains("'v'") && err.contains("sql_variant"),
        "names the column and its type: {err}"
    );
}

#[test]
fn transactions_commit_roll_back_and_roll_back_on_drop_on_sql_server() {
    let db = require_mssql!("transactions_commit_roll_back_and_roll_back_on_drop_on_sql_server");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, note NVARCHAR(20))");
    let project = lab_project(&db, "");
    let insert = |id: i64| {
        json!({ "op": "execute", "db": "lab", "tx": true,
                "sql": "INSERT INTO t (id, note) VALUES (:id, N'x')",
                "params": { "id": v("int", json!(id)) } })
    };
    let results = probe_results(&project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "begin", "db": "lab" }, insert(1), { "op": "commit", "db": "lab" },
            { "op": "begin", "db": "lab" }, insert(2), { "op": "rollback", "db": "lab" },
            // A failing statement inside a transaction, then commit: the first insert stays.
            { "op": "begin", "db": "lab" }, insert(3), insert(3), { "op": "commit", "db": "lab" },
            { "op": "batch", "db": "lab", "sql": "INSERT INTO t (id, note) VALUES (:id, N'b')",
              "param_sets": [{ "id": v("int", json!(10)) }, { "id": v("int", json!(1)) }] },
            { "op": "begin", "db": "lab" }, insert(4), { "op": "drop", "db": "lab" },
        ]),
    ));
    assert!(
        results[8]["error"].to_string().contains("2627"),
        "a duplicate key is error 2627: {results:?}"
    );
    assert!(
        results[10]["error"].is_object(),
        "the batch with a duplicate fails whole: {results:?}"
    );
    assert_eq!(
        db.column("SELECT CAST(id AS NVARCHAR(10)) FROM t ORDER BY id"),
        ["1", "3"].map(|s| Some(s.to_owned())),
        "committed 1 and 3; rolled back 2, the failed batch and the dropped 4"
    );
    assert_eq!(
        db.count("t WHERE id = 10"),
        0,
        "the batch was all-or-nothing"
    );
}

#[test]
fn a_batch_is_bulk_loaded_with_the_semantics_of_insert() {
    let db = require_mssql!("a_batch_is_bulk_loaded_with_the_semantics_of_insert");
    let columns = "id INT PRIMARY KEY, name NVARCHAR(100) NULL, \
        qty SMALLINT NOT NULL CHECK (qty >= 0), flag BIT NULL, \
        tag NVARCHAR(10) NULL DEFAULT N'dflt', blob VARBINARY(MAX) NULL";
    db.exec(&format!(
        "CREATE TABLE b ({columns}); CREATE TABLE plain ({columns});
         CREATE TABLE b_audit (n INT NOT NULL);
         EXEC('CREATE TRIGGER trg_b ON b AFTER INSERT AS \
               INSERT INTO b_audit (n) SELECT COUNT(*) FROM inserted');"
    ));
    let project = lab_project(&db, "");
    let insert = |table: &str| {
        format!(
            "INSERT INTO {table} (id, name, qty, flag, tag, blob) \
             VALUES (:id, :name, :qty, :flag, :tag, :blob)"
        )
    };
    let set = |id: i64, qty: i64| {
        json!({
            "id": v("int", json!(id)),
            "name": v("text", json!(format!("{UNICODE} {id}"))),
            "qty": v("int", json!(qty)),
            "flag": if id % 2 == 0 { v("boolean", json!(true)) } else { v("null", json!(null)) },
            "tag": v("null", json!(null)),
            "blob": v("bytes", json!([id % 256, 0])),
        })
    };
    let good: Vec<Value> = (1..=2000).map(|id| set(id, id % 7)).collect();
    // The second batch breaks the CHECK constraint in its fourth set.
    let bad: Vec<Value> = (3001..=3010)
        .map(|id| set(id, if id == 3004 { -1 } else { 1 }))
        .collect();
    let mut steps = Vec::new();
    for table in ["b", "plain"] {
        steps.push(json!({ "op": "batch", "db": "lab", "sql": insert(table), "param_sets": good }));
        steps.push(json!({ "op": "batch", "db": "lab", "sql": insert(table), "param_sets": bad }));
    }
    let results = probe_results(&project.run_probe(&[("lab", "read-write")], json!(steps)));
    for (i, table) in ["b", "plain"].iter().enumerate() {
        assert!(
            results[2 * i]["error"].is_null(),
            "{table}: {:?}",
            results[2 * i]
        );
        assert_eq!(
            db.count(table),
            2000,
            "{table}: the first batch whole, none of the second"
        );
        assert_eq!(
            db.count(&format!("{table} WHERE tag IS NULL")),
            2000,
            "{table}: an explicit NULL is kept, not the default"
        );
        assert_eq!(db.count(&format!("{table} WHERE flag IS NULL")), 1000);
        assert_eq!(
            db.column(&format!("SELECT name FROM {table} WHERE id = 7")),
            [Some(format!("{UNICODE} 7"))]
        );
        assert_eq!(
            db.column(&format!(
                "SELECT CASE WHEN blob = 0x0200 THEN N'same' ELSE N'differs' END FROM {table} \
                 WHERE id = 258"
            )),
            [Some("same".to_owned())]
        );
        let err = results[2 * i + 1]["error"].to_string();
        assert!(
            err.contains("547") && err.contains("parameter set 3"),
            "{table}: the CHECK violation (547) fails the batch, naming its set: {err}"
        );
    }
    assert_eq!(
        db.column("SELECT CAST(SUM(n) AS NVARCHAR(10)) FROM b_audit"),
        [Some("2000".to_owned())],
        "the trigger saw every row"
    );
    // One bulk load is one statement, so the trigger fired once; 349-row INSERTs would have
    // fired it six times. Babelfish ignores FIRE_TRIGGERS, so there a table with triggers gets
    // the INSERTs.
    let fired = if db.is_babelfish() { 6 } else { 1 };
    assert_eq!(
        db.count("b_audit"),
        fired,
        "the trigger fired {fired} time(s)"
    );
}

#[test]
fn a_read_only_grant_on_sql_server_refuses_writes_and_changes_nothing() {
    let db = require_mssql!("a_read_only_grant_on_sql_server_refuses_writes_and_changes_nothing");
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);
         EXEC('CREATE PROCEDURE sneaky AS INSERT INTO t VALUES (99)');",
    );
    let project = lab_project(&db, "");
    let refused = [
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET id = 5",
        "DELETE FROM t",
        "EXEC sneaky",
        "EXECUTE sneaky",
        "sneaky",
        "MERGE t AS d USING (SELECT 7 AS id) AS s ON d.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id);",
        "SELECT id INTO copy_of_t FROM t",
        "SELECT 1; INSERT INTO t VALUES (3)",
        "SELECT 1 INSERT INTO t VALUES (3)",
        "WAITFOR DELAY '00:00:01'",
        "DBCC CHECKDB",
        "EXEC xp_cmdshell 'dir'",
        "SELECT * FROM OPENROWSET('SQLNCLI', 'Server=x;Trusted_Connection=yes;', 'SELECT 1')",
        "DELETE t OUTPUT deleted.id",
        "BACKUP DATABASE x TO DISK = 'x'",
        "SET CONTEXT_INFO 0x01",
        "USE master",
        "BEGIN TRANSACTION",
        "DROP TABLE t",
    ];
    let mut steps: Vec<Value> = refused
        .iter()
        .map(|sql| json!({ "op": "execute", "db": "src", "sql": sql }))
        .collect();
    steps.push(json!({ "op": "query", "db": "src", "sql": "SELECT COUNT(*) AS n FROM t" }));
    let manifest_grants = [("src", "read-only")];
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_SRC_TYPE=mssql\nDEVELOPMENT_GLOBAL_SRC_CONNECTION_STRING={}\n",
            db.url()
        ),
    );
    let results = probe_results(&project.run_probe(&manifest_grants, json!(steps)));
    for (sql, r) in refused.iter().zip(&results) {
        let kind = r["error"]["kind"].as_str().unwrap_or_default();
        assert!(
            kind == "read-only-violation" || kind == "invalid-request",
            "{sql} must be refused before it reaches the server: {r}"
        );
    }
    assert_eq!(
        results[refused.len()]["ok"]["rows"][0][0],
        v("int", json!(1))
    );
    assert_eq!(db.count("t"), 1);
    assert_eq!(
        db.count("sys.tables WHERE name = 'copy_of_t'"),
        0,
        "SELECT INTO made no table"
    );
}

/// Two runs, one after the other, on a pool of one connection: the second must see none of
/// what the first did to its session, nor an open transaction.
#[test]
fn the_only_pooled_connection_comes_back_clean_after_each_run() {
    let db = require_mssql!("the_only_pooled_connection_comes_back_clean_after_each_run");
    db.exec("CREATE TABLE t (id INT)");
    let project = lab_project(
        &db,
        "DEVELOPMENT_GLOBAL_LAB_CONNECTION_POOL_SIZE=1\nDEVELOPMENT_GLOBAL_LAB_MAX_OVERFLOW=0\n",
    );
    let config = project.load_config();
    let manifest = flowhost::manifest::Manifest::parse(
        "[flow]\nname = \"hygiene\"\n[databases.lab]\naccess = \"read-write\"\n",
        project.path().join("hygiene.toml"),
    )
    .unwrap();
    let state = json!([{ "op": "query", "db": "lab", "sql":
        "SELECT CAST(@@SPID AS INT) AS spid, CAST(@@TRANCOUNT AS INT) AS trancount, \
         CAST(@@OPTIONS AS INT) AS options, (SELECT COUNT(*) FROM t) AS n" }]);
    let run = async |host: &flowhost::run::Host, steps: Value| {
        let request = flowhost::run::RunRequest {
            component: probe_wasm(),
            manifest: manifest.clone(),
            input: json!({ "steps": steps }).to_string(),
        };
        host.run(&request).await.expect("the run starts")
    };
    block_on(async {
        let host = flowhost::run::Host::new(
            std::sync::Arc::new(config),
            flowhost::runtime::RuntimeOptions::default(),
        )
        .unwrap();
        let before = run(&host, state.clone()).await;
        let crashed = run(
            &host,
            json!([
                { "op": "begin", "db": "lab" },
                { "op": "execute", "db": "lab", "sql": "INSERT INTO t VALUES (1)", "tx": true },
                { "op": "panic", "message": "crash inside a transaction" },
            ]),
        )
        .await;
        assert_eq!(crashed.status, flowhost::run::RunStatus::Failed);
        let after = run(&host, state).await;
        host.shutdown().await;
        let row = |r: &flowhost::run::RunRecord| {
            r.output.as_ref().unwrap()["results"][0]["ok"]["rows"][0].clone()
        };
        let (before, after) = (row(&before), row(&after));
        assert_eq!(
            after[0], before[0],
            "the same pooled session: {before} / {after}"
        );
        assert_eq!(after[1], v("int", json!(0)), "no transaction left open");
        assert_eq!(after[2], before[2], "the same SET options");
        assert_eq!(
            after[3],
            v("int", json!(0)),
            "the crashed run's insert rolled back"
        );
    });
}

const SCHEMA: &str = r#"CREATE TABLE customers (
    id INT IDENTITY(1, 1) NOT NULL CONSTRAINT pk_customers PRIMARY KEY,
    email NVARCHAR(320) NOT NULL CONSTRAINT uq_customers_email UNIQUE,
    notes NVARCHAR(MAX) NULL,
    created_at DATETIME2(3) NOT NULL CONSTRAINT df_customers_created DEFAULT SYSUTCDATETIME()
);
GO
CREATE TABLE orders (
    id BIGINT IDENTITY(1, 1) NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL
        CONSTRAINT fk_orders_customer REFERENCES customers (id) ON DELETE CASCADE,
    amount DECIMAL(12, 2) NOT NULL CONSTRAINT ck_orders_amount CHECK (amount >= 0),
    status NVARCHAR(20) NOT NULL DEFAULT N'new'
);
CREATE INDEX ix_orders_customer ON orders (customer_id) INCLUDE (amount, status);
GO
CREATE VIEW customer_totals AS
    SELECT c.id, c.email, COUNT(o.id) AS orders, COALESCE(SUM(o.amount), 0) AS total
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id, c.email;
GO
CREATE PROCEDURE add_order @customer_id INT, @amount DECIMAL(12, 2) AS
BEGIN
    SET NOCOUNT ON;
    INSERT INTO orders (customer_id, amount) VALUES (@customer_id, @amount);
END;
GO
CREATE TABLE audit (id INT IDENTITY PRIMARY KEY, what NVARCHAR(100) NOT NULL);
GO
CREATE TRIGGER trg_orders_audit ON orders AFTER INSERT AS
BEGIN
    SET NOCOUNT ON;
    INSERT INTO audit (what) SELECT N'order ' + CAST(id AS NVARCHAR(20)) FROM inserted;
END;
GO
INSERT INTO customers (email) VALUES (N'ana@example.com'), (N'bo@example.com');
GO
INSERT INTO audit (what) VALUES (N'seeded');
GO 2
EXEC add_order @customer_id = 1, @amount = 12.50;
"#;

#[test]
fn a_real_tsql_schema_is_migrated_and_a_failing_batch_leaves_nothing() {
    let db = require_mssql!("a_real_tsql_schema_is_migrated_and_a_failing_batch_leaves_nothing");
    let project = lab_project(&db, "");
    project.write("migrations/lab/V1__Schema.sql", SCHEMA);
    let out = project.flowhost(&["migrate", "lab"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_secret(&db, &out);
    assert_eq!(db.count("customers"), 2);
    assert_eq!(db.count("orders"), 1);
    assert_eq!(
        db.count("audit WHERE what = N'seeded'"),
        2,
        "`GO 2` ran its batch twice"
    );
    assert_eq!(
        db.count("audit WHERE what LIKE N'order %'"),
        1,
        "the trigger fired"
    );
    assert_eq!(
        db.column("SELECT CAST(total AS NVARCHAR(20)) FROM customer_totals WHERE id = 1"),
        [Some("12.50".to_owned())]
    );
    // Babelfish shows an index's name in sys.indexes with a suffix of its own.
    let index_name = if db.is_babelfish() { "LIKE" } else { "=" };
    let suffix = if db.is_babelfish() { "%" } else { "" };
    for object in [
        "customer_totals",
        "add_order",
        "trg_orders_audit",
        "ix_orders_customer",
    ] {
        let found = db.count(&format!(
            "sys.objects o WHERE o.name = '{object}' OR EXISTS (SELECT 1 FROM sys.indexes i \
             WHERE i.name {index_name} '{object}{suffix}')"
        ));
        assert!(found > 0, "{object} exists");
    }

    // A failing batch: the file and the batch are named, nothing of the migration remains.
    project.write(
        "migrations/lab/V2__Broken.sql",
        "CREATE TABLE partial (id INT);\nGO\nINSERT INTO partial VALUES (1);\nGO\nINSERT INTO no_such_table VALUES (1);\n",
    );
    let out = project.flowhost(&["migrate", "lab"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("V2__Broken.sql"), "names the file: {err}");
    assert!(
        err.contains("line 5"),
        "names the batch's first line: {err}"
    );
    assert!(
        err.contains("no_such_table"),
        "carries the server's message: {err}"
    );
    assert_eq!(
        db.count("sys.tables WHERE name = 'partial'"),
        0,
        "rolled back whole"
    );

    // info, validate and repair work here as on the other backends (undo and baseline: below).
    std::fs::remove_file(project.path().join("migrations/lab/V2__Broken.sql")).unwrap();
    let info = project.flowhost(&["migrate", "info", "lab", "--json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(stdout(&info).contains("Schema"), "{}", stdout(&info));
    let validate = project.flowhost(&["migrate", "validate", "lab"]);
    assert!(validate.status.success(), "{}", stderr(&validate));
    let repair = project.flowhost(&["migrate", "repair", "lab"]);
    assert!(repair.status.success(), "{}", stderr(&repair));
    assert_eq!(db.count("flowhost_schema_history WHERE success = 1"), 1);
}

#[test]
fn undo_and_baseline_work_on_sql_server() {
    let db = require_mssql!("undo_and_baseline_work_on_sql_server");
    let project = lab_project(&db, "");
    project.write(
        "migrations/lab/V1__Accounts.sql",
        "CREATE TABLE accounts (id INT PRIMARY KEY);\nGO\nINSERT INTO accounts VALUES (1);\n",
    );
    project.write(
        "migrations/lab/V2__Notes.sql",
        "ALTER TABLE accounts ADD note NVARCHAR(50) NULL;\n",
    );
    project.write(
        "migrations/lab/U2__Notes.sql",
        "ALTER TABLE accounts DROP COLUMN note;\n",
    );
    let out = project.flowhost(&["migrate", "lab"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(db.count("sys.columns WHERE name = 'note'"), 1);
    let undo = project.flowhost(&["migrate", "undo", "lab"]);
    assert!(undo.status.success(), "{}", stderr(&undo));
    assert_eq!(db.count("sys.columns WHERE name = 'note'"), 0, "U2 ran");
    assert_eq!(db.count("accounts"), 1, "V1's data is untouched");
    let info = project.flowhost(&["migrate", "info", "lab", "--json"]);
    assert!(
        stdout(&info).contains("Notes") && stdout(&info).to_lowercase().contains("pending"),
        "V2 is pending again: {}",
        stdout(&info)
    );

    // A database that already has its schema: baseline at 2, and nothing runs.
    let older = MsDatabase::create("undo_and_baseline_work_on_sql_server").unwrap();
    older.exec("CREATE TABLE accounts (id INT PRIMARY KEY, note NVARCHAR(50) NULL)");
    let project = lab_project(&older, "");
    project.write(
        "migrations/lab/V1__Accounts.sql",
        "CREATE TABLE accounts (id INT);\n",
    );
    project.write(
        "migrations/lab/V2__Notes.sql",
        "ALTER TABLE accounts ADD note INT;\n",
    );
    let baseline = project.flowhost(&["migrate", "baseline", "lab", "--version", "2"]);
    assert!(baseline.status.success(), "{}", stderr(&baseline));
    let out = project.flowhost(&["migrate", "lab"]);
    assert!(out.status.success(), "nothing to apply: {}", stderr(&out));
    assert_eq!(
        older.count("flowhost_schema_history"),
        1,
        "only the baseline row"
    );
}

#[test]
fn a_statement_past_its_timeout_is_stopped_and_the_next_one_runs() {
    let db = require_mssql!("a_statement_past_its_timeout_is_stopped_and_the_next_one_runs");
    // A query that runs for minutes: a cross join counted row by row (Babelfish has no WAITFOR).
    db.exec(
        "CREATE TABLE n (i INT NOT NULL);
         WITH d AS (SELECT 0 AS x UNION ALL SELECT x + 1 FROM d WHERE x < 999)
         INSERT INTO n SELECT x FROM d OPTION (MAXRECURSION 1000);",
    );
    let project = lab_project(&db, "");
    // Had the statement limit not held, the run's own limit would have ended it with no
    // result for the second step.
    let results = probe_results(&project.run_probe_with(
        "timeout-seconds = 30\nstatement-timeout-seconds = 2",
        &[("lab", "read-write")],
        json!([
            { "op": "query", "db": "lab", "sql":
              "SELECT COUNT_BIG(*) FROM n a CROSS JOIN n b CROSS JOIN n c WHERE a.i + b.i + c.i >= 0" },
            { "op": "query", "db": "lab", "sql": "SELECT 7 AS after" },
        ]),
    ));
    assert_eq!(
        results[0]["error"]["kind"], "timeout",
        "the long query is stopped: {results:?}"
    );
    assert_eq!(results[1]["ok"]["rows"][0][0]["v"], 7, "{results:?}");
    if db.is_babelfish() {
        eprintln!(
            "note: a_statement_past_its_timeout_is_stopped_and_the_next_one_runs: the server is \
             Babelfish, which has no sys.dm_exec_requests: not checked that the query is gone"
        );
        return;
    }
    assert_eq!(
        db.count(
            "sys.dm_exec_requests r WHERE r.session_id <> @@SPID AND r.command LIKE '%SELECT%' \
             AND r.database_id = DB_ID()"
        ),
        0,
        "the stopped query is not still running on the server"
    );
}

#[test]
fn a_sysadmin_login_is_warned_about_and_refused_when_asked() {
    let db = require_mssql!("a_sysadmin_login_is_warned_about_and_refused_when_asked");
    let sysadmin = db.column("SELECT CAST(IS_SRVROLEMEMBER('sysadmin') AS NVARCHAR(2))");
    if sysadmin != [Some("1".to_owned())] {
        eprintln!(
            "skipped a_sysadmin_login_is_warned_about_and_refused_when_asked: the login in \
             FLOWHOST_TEST_MSSQL_URL is not in sysadmin"
        );
        return;
    }
    let step = json!([{ "op": "query", "db": "lab", "sql": "SELECT 1 AS one" }]);
    let warned = lab_project(&db, "").run_probe(&[("lab", "read-only")], step.clone());
    assert!(
        stderr(&warned).contains("is a member of sysadmin"),
        "a warning: {}",
        stderr(&warned)
    );
    assert_eq!(probe_results(&warned)[0]["ok"]["rows"][0][0]["v"], 1);
    let refused = lab_project(&db, "DEVELOPMENT_GLOBAL_LAB_REFUSE_PRIVILEGED_ROLE=true\n")
        .run_probe(&[("lab", "read-only")], step);
    let results = probe_results(&refused);
    let err = results[0]["error"].to_string();
    assert!(
        err.contains("sysadmin") && err.contains("REFUSE_PRIVILEGED_ROLE"),
        "refused, saying why: {err}"
    );
    assert_no_secret(&db, &refused);
}

#[test]
fn four_concurrent_migrators_apply_each_tsql_migration_once() {
    let db = require_mssql!("four_concurrent_migrators_apply_each_tsql_migration_once");
    let project = lab_project(&db, "");
    for n in 1..=6 {
        project.write(
            &format!("migrations/lab/V{n}__Step_{n}.sql"),
            &format!(
                "CREATE TABLE step_{n} (id INT IDENTITY PRIMARY KEY, at DATETIME2 NOT NULL DEFAULT SYSUTCDATETIME());\nGO\nINSERT INTO step_{n} DEFAULT VALUES;\n"
            ),
        );
    }
    const PROCESSES: usize = 4;
    let start = Barrier::new(PROCESSES);
    let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PROCESSES)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    project.flowhost(&["migrate", "lab", "--json"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut applied = Vec::new();
    for out in &outputs {
        for step in json_ok(out)[0]["applied"].as_array().unwrap() {
            applied.push(step["version"].as_str().unwrap().parse::<u32>().unwrap());
        }
    }
    applied.sort();
    assert_eq!(
        applied,
        (1..=6).collect::<Vec<_>>(),
        "each applied by exactly one process"
    );
    for n in 1..=6 {
        assert_eq!(db.count(&format!("step_{n}")), 1, "V{n} ran once");
    }
}
