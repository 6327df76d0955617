//! `flowhost db stats`: table and index statistics and recommendations from a real PostgreSQL
//! database, a real SQLite file (the embedded default) and, when one is configured, SQL
//! Server; never a secret in the output.

use std::path::Path;

use serde_json::Value;

use crate::sqlserver_support::require_mssql;
use crate::support::*;

const SECRET: &str = "S3cret-Stats-Passw0rd";

fn database<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["databases"]
        .as_array()
        .unwrap_or_else(|| panic!("no databases in {report}"))
        .iter()
        .find(|d| d["name"].as_str().unwrap().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("{name} missing from {report}"))
}

fn named<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|v| v[key] == name)
        .unwrap_or_else(|| panic!("no {key} = {name} in {list}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the server's statistics show what the setup did (`condition`, a boolean
/// query): each backend publishes its counters as its session ends, a moment after the client
/// has gone.
fn wait_for_pg_stats(db: &PgDatabase, condition: &str) {
    let sql = format!("SELECT ({condition})::text");
    for _ in 0..200 {
        if db.column(&sql).first().cloned().flatten().as_deref() == Some("true") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the statistics never showed {condition}");
}

#[test]
fn postgres_stats_name_dead_tuples_duplicate_indexes_and_unindexed_foreign_keys() {
    let db = PgDatabase::create();
    db.exec(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
         CREATE TABLE orders (
             id bigint PRIMARY KEY,
             customer_id bigint NOT NULL REFERENCES customers (id),
             placed date NOT NULL
         ) WITH (autovacuum_enabled = false);
         CREATE INDEX orders_placed_a ON orders (placed);
         CREATE INDEX orders_placed_b ON orders (placed);
         CREATE TABLE order_lines (
             order_id bigint NOT NULL REFERENCES orders (id),
             line int NOT NULL
         ) WITH (autovacuum_enabled = false);
         CREATE INDEX order_lines_order ON order_lines (order_id, line);
         CREATE TABLE events (id int) WITH (autovacuum_enabled = false);
         INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 10) g;
         INSERT INTO orders SELECT g, 1 + g % 10, DATE '2026-01-01' + g % 300
             FROM generate_series(1, 1000) g;
         INSERT INTO events SELECT generate_series(1, 20);",
    );
    db.exec("DELETE FROM orders WHERE id <= 400; ANALYZE customers;");
    let counts = |table: &str| {
        format!(
            "SELECT n_live_tup || '/' || n_dead_tup FROM pg_stat_user_tables WHERE relname = '{table}'"
        )
    };
    wait_for_pg_stats(
        &db,
        &format!(
            "({}) = '600/400' AND ({}) = '20/0'",
            counts("orders"),
            counts("events")
        ),
    );
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_WAREHOUSE_CONNECTION_STRING=postgresql://postgres:{SECRET}@127.0.0.1:5432/{}\n",
            db.name
        ),
    );

    let out = project.flowhost(&["db", "stats", "warehouse", "--json"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(SECRET), "a secret leaked:\n{all}");
    let report = json_ok(&out);
    let warehouse = database(&report, "warehouse");
    assert_eq!(warehouse["backend"], "postgresql", "{warehouse}");
    assert!(warehouse["error"].is_null(), "{warehouse}");

    let orders = named(&warehouse["tables"], "name", "orders");
    assert_eq!(orders["schema"], "public");
    assert_eq!(orders["rows"], 600, "{orders}");
    assert_eq!(orders["live_tuples"], 600, "{orders}");
    assert_eq!(orders["dead_tuples"], 400, "{orders}");
    assert!(orders["last_vacuum"].is_null() && orders["last_analyze"].is_null());
    assert!(orders["total_bytes"].as_i64().unwrap() > 0, "{orders}");
    let customers = named(&warehouse["tables"], "name", "customers");
    assert!(customers["last_analyze"].is_string(), "{customers}");

    let dup = named(&warehouse["indexes"], "name", "orders_placed_b");
    assert_eq!(dup["duplicate_of"], "orders_placed_a", "{dup}");
    assert_eq!(dup["table"], "orders");
    assert_eq!(dup["columns"], serde_json::json!(["placed"]));
    let kept = named(&warehouse["indexes"], "name", "orders_placed_a");
    assert!(kept["duplicate_of"].is_null(), "{kept}");
    let pkey = named(&warehouse["indexes"], "name", "orders_pkey");
    assert_eq!(pkey["primary"], true);
    assert_eq!(
        pkey["unused"], false,
        "a primary key is never unused: {pkey}"
    );
    // The only index behind order_lines' foreign key serves it, scanned or not.
    let lines = named(&warehouse["indexes"], "name", "order_lines_order");
    assert_eq!(lines["unused"], false, "{lines}");

    let unindexed = warehouse["unindexed_foreign_keys"].as_array().unwrap();
    assert_eq!(
        unindexed.len(),
        1,
        "order_lines' key is covered: {unindexed:?}"
    );
    assert_eq!(unindexed[0]["table"], "orders");
    assert_eq!(unindexed[0]["name"], "orders_customer_id_fkey");
    assert_eq!(unindexed[0]["columns"], serde_json::json!(["customer_id"]));

    let recommendations = strings(&warehouse["recommendations"]);
    for expected in [
        "VACUUM (ANALYZE) public.orders: 40% dead tuples (400 dead, 600 live)",
        "ANALYZE public.events: never analyzed",
        "CREATE INDEX ON public.orders (customer_id): foreign key orders_customer_id_fkey without an index",
        "DROP INDEX public.orders_placed_b: duplicates orders_placed_a",
    ] {
        assert!(
            recommendations.iter().any(|r| r == expected),
            "missing {expected:?} in {recommendations:#?}"
        );
    }
    assert!(
        !recommendations
            .iter()
            .any(|r| r.contains("public.customers")),
        "customers is analyzed and clean: {recommendations:#?}"
    );
    assert!(warehouse["slow_statements"].is_null(), "{warehouse}");
    let notes = strings(&warehouse["notes"]).join("\n");
    assert!(
        notes.contains("pg_stat_statements is not installed"),
        "{notes}"
    );

    // Installed but not preloaded: still a report, with a note instead of statements.
    db.exec("CREATE EXTENSION pg_stat_statements");
    let report = json_ok(&project.flowhost(&["db", "stats", "warehouse", "--json"]));
    let warehouse = database(&report, "warehouse");
    let notes = strings(&warehouse["notes"]).join("\n");
    assert!(warehouse["slow_statements"].is_null(), "{warehouse}");
    assert!(
        notes.contains("pg_stat_statements is installed but unreadable"),
        "{notes}"
    );

    // The human report says the same.
    let out = project.flowhost(&["db", "stats"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(!format!("{text}{}", stderr(&out)).contains(SECRET));
    for expected in [
        "public.orders",
        "public.orders_placed_b",
        "duplicates orders_placed_a",
        "CREATE INDEX ON public.orders (customer_id)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn an_unreachable_database_exits_3_and_an_unknown_one_2_without_secrets() {
    let db = PgDatabase::create();
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_WAREHOUSE_CONNECTION_STRING=postgresql://postgres:{SECRET}@127.0.0.1:5432/{}\n\
             DEVELOPMENT_GLOBAL_ARCHIVE_CONNECTION_STRING=postgresql://etl:{SECRET}@127.0.0.1:{}/archive\n\
             DEVELOPMENT_GLOBAL_ARCHIVE_CONNECT_TIMEOUT=2\n",
            db.name,
            closed_port()
        ),
    );
    let out = project.flowhost(&["db", "stats", "--json"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(SECRET), "a secret leaked:\n{all}");
    assert_eq!(out.status.code(), Some(3), "{all}");
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 3);
    assert_eq!(report["error"]["kind"], "database");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("archive")
    );
    let archive = database(&report, "archive");
    assert_eq!(archive["error_kind"], "database", "{archive}");
    assert!(archive["tables"].is_null(), "{archive}");
    let warehouse = database(&report, "warehouse");
    assert!(
        warehouse["error"].is_null(),
        "the other database is still reported"
    );
    assert!(warehouse["tables"].is_array(), "{warehouse}");

    let out = project.flowhost(&["db", "stats", "nosuch", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["error"]["kind"], "config", "{report}");
    assert_eq!(database(&report, "nosuch")["error_kind"], "config");
}

/// Runs a script on a SQLite file, creating it.
fn sqlite_exec(path: &Path, script: &str) {
    block_on(async {
        use sqlx::Connection;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .expect("open sqlite");
        sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        conn.close().await.unwrap();
    })
}

#[test]
fn sqlite_stats_count_rows_find_duplicates_keys_and_free_pages_of_the_embedded_default() {
    let project = Project::new();
    let file = project.path().join(".flowhost/lab.sqlite");
    sqlite_exec(
        &file,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (
             id INTEGER PRIMARY KEY,
             customer_id INTEGER NOT NULL REFERENCES customers (id),
             placed TEXT NOT NULL,
             code TEXT UNIQUE
         );
         CREATE INDEX orders_placed_a ON orders (placed);
         CREATE INDEX orders_placed_b ON orders (placed);
         CREATE INDEX orders_code_idx ON orders (code);
         CREATE TABLE lines (order_id INTEGER REFERENCES orders (id), n INTEGER);
         CREATE INDEX lines_order ON lines (order_id, n);
         CREATE TABLE notes (customer_id INTEGER REFERENCES customers (id), body TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10)
             INSERT INTO customers SELECT x, 'c' || x FROM c;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 250)
             INSERT INTO orders SELECT x, 1 + x % 10, date('2026-01-01', '+' || x || ' days'),
                 'code' || x FROM c;
         CREATE TABLE junk (b BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
             INSERT INTO junk SELECT randomblob(1000) FROM c;
         DROP TABLE junk;",
    );

    let out = project.flowhost(&["db", "stats", "--json"]);
    let report = json_ok(&out);
    let lab = database(&report, "lab");
    assert_eq!(lab["backend"], "sqlite", "{lab}");
    let orders = named(&lab["tables"], "name", "orders");
    assert_eq!(orders["schema"], "main");
    assert_eq!(orders["rows"], 250, "{orders}");
    assert_eq!(orders["rows_exact"], true);
    assert_eq!(orders["analyzed"], false);
    assert!(
        orders["total_bytes"].as_i64().unwrap() > 0,
        "dbstat sizes: {orders}"
    );
    assert_eq!(named(&lab["tables"], "name", "customers")["rows"], 10);
    assert!(
        !lab["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "junk"),
        "{lab}"
    );

    let dup = named(&lab["indexes"], "name", "orders_placed_b");
    assert_eq!(dup["duplicate_of"], "orders_placed_a", "{dup}");
    let code = named(&lab["indexes"], "name", "orders_code_idx");
    assert_eq!(
        code["duplicate_of"], "sqlite_autoindex_orders_1",
        "the UNIQUE constraint's index is kept: {code}"
    );
    assert!(
        lab["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["unused"] == false)
    );

    // orders.customer_id has no index; lines.order_id leads one; customers.id is the rowid.
    let unindexed: Vec<(String, String)> = lab["unindexed_foreign_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["table"].as_str().unwrap().to_owned(),
                k["columns"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        unindexed,
        [
            ("notes".to_owned(), "customer_id".to_owned()),
            ("orders".to_owned(), "customer_id".to_owned())
        ]
    );

    let recommendations = strings(&lab["recommendations"]);
    for expected in [
        "ANALYZE main.orders: never analyzed",
        "CREATE INDEX main.orders_customer_id_idx ON orders (customer_id): foreign key to customers without an index",
        "DROP INDEX main.orders_placed_b: duplicates orders_placed_a",
        "DROP INDEX main.orders_code_idx: duplicates sqlite_autoindex_orders_1",
    ] {
        assert!(
            recommendations.iter().any(|r| r == expected),
            "missing {expected:?} in {recommendations:#?}"
        );
    }
    assert!(
        recommendations.iter().any(|r| r.starts_with("VACUUM: ")),
        "3 MB of dropped rows are free pages: {recommendations:#?}"
    );
    assert!(lab["free_bytes"].as_i64().unwrap() > 2_000_000, "{lab}");
    assert!(lab["slow_statements"].is_null());
    let notes = strings(&lab["notes"]).join("\n");
    assert!(notes.contains("no statement statistics"), "{notes}");

    // Analyzed and vacuumed, those recommendations go.
    sqlite_exec(&file, "ANALYZE; VACUUM;");
    let report = json_ok(&project.flowhost(&["db", "stats", "lab", "--json"]));
    let lab = database(&report, "lab");
    assert_eq!(named(&lab["tables"], "name", "orders")["analyzed"], true);
    let recommendations = strings(&lab["recommendations"]);
    assert!(
        !recommendations
            .iter()
            .any(|r| r.starts_with("ANALYZE") || r.starts_with("VACUUM")),
        "{recommendations:#?}"
    );

    // A database the embedded default does not have is not created to be inspected.
    let out = project.flowhost(&["db", "stats", "nosuch", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        report["error"]["message"].as_str().unwrap().contains("lab"),
        "names the databases there are: {report}"
    );
    assert!(!project.path().join(".flowhost/nosuch.sqlite").exists());
}

#[test]
fn sqlserver_stats_find_duplicate_indexes_and_unindexed_foreign_keys() {
    let db = require_mssql!("sqlserver_stats_find_duplicate_indexes_and_unindexed_foreign_keys");
    db.exec(
        "CREATE TABLE customers (id INT PRIMARY KEY, name NVARCHAR(50) NOT NULL);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL
             REFERENCES customers (id), placed DATE NOT NULL);
         CREATE INDEX orders_placed_a ON orders (placed);
         CREATE INDEX orders_placed_b ON orders (placed);
         INSERT INTO customers VALUES (1, N'a'), (2, N'b');
         INSERT INTO orders VALUES (1, 1, '2026-01-01'), (2, 2, '2026-01-02'), (3, 1, '2026-01-03');",
    );
    let project = Project::new();
    project.write(
        ".env",
        &format!(
            "DEVELOPMENT_GLOBAL_LAB_TYPE=mssql\nDEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n",
            db.url()
        ),
    );
    let out = project.flowhost(&["db", "stats", "lab", "--json"]);
    let password = db.password();
    if !password.is_empty() {
        assert!(!format!("{}{}", stdout(&out), stderr(&out)).contains(&password));
    }
    let report = json_ok(&out);
    let lab = database(&report, "lab");
    assert_eq!(lab["backend"], "sqlserver");
    assert_eq!(named(&lab["tables"], "name", "orders")["rows"], 3, "{lab}");
    let dup = named(&lab["indexes"], "name", "orders_placed_b");
    assert_eq!(dup["duplicate_of"], "orders_placed_a", "{dup}");
    let unindexed = lab["unindexed_foreign_keys"].as_array().unwrap();
    assert_eq!(unindexed.len(), 1, "{unindexed:?}");
    assert_eq!(unindexed[0]["columns"], serde_json::json!(["customer_id"]));
    let recommendations = strings(&lab["recommendations"]);
    assert!(
        recommendations
            .iter()
            .any(|r| r == "DROP INDEX orders_placed_b ON dbo.orders: duplicates orders_placed_a"),
        "{recommendations:#?}"
    );
}
