//! Every value case survives a round trip through a guest, on both backends: written with
//! parameters, read back typed, including NULLs and unicode.

use serde_json::{Value, json};

use crate::support::*;

pub(crate) const UNICODE: &str = "Grüße, 世界 🚀 — 'quoted' \"double\" \\ :not_a_param";

/// (column, value sent, value expected back)
fn postgres_cases() -> Vec<(&'static str, Value, Value)> {
    vec![
        ("b", v("boolean", json!(true)), v("boolean", json!(true))),
        ("i2", v("int", json!(-32768)), v("int", json!(-32768))),
        (
            "i4",
            v("int", json!(2147483647)),
            v("int", json!(2147483647)),
        ),
        ("i8", v("int", json!(i64::MIN)), v("int", json!(i64::MIN))),
        ("f4", v("float", json!(1.5)), v("float", json!(1.5))),
        (
            "f8",
            v("float", json!(std::f64::consts::PI)),
            v("float", json!(std::f64::consts::PI)),
        ),
        (
            "n",
            v("decimal", json!("12345678901234567890.123456789")),
            v("decimal", json!("12345678901234567890.123456789")),
        ),
        (
            "n2",
            v("decimal", json!("-1.5")),
            v("decimal", json!("-1.500")),
        ),
        ("t", v("text", json!(UNICODE)), v("text", json!(UNICODE))),
        ("vc", v("text", json!("")), v("text", json!(""))),
        (
            "by",
            v("bytes", json!([0, 255, 1, 128])),
            v("bytes", json!([0, 255, 1, 128])),
        ),
        (
            "u",
            v("uuid", json!("67E55044-10B1-426F-9247-BB680E5FE0C8")),
            v("uuid", json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
        ),
        (
            "d",
            v("date", json!("2024-02-29")),
            v("date", json!("2024-02-29")),
        ),
        (
            "tm",
            v("time", json!("13:45:10.123456")),
            v("time", json!("13:45:10.123456")),
        ),
        (
            "ts",
            v("timestamp", json!("2024-02-29T13:45:10.123456")),
            v("timestamp", json!("2024-02-29T13:45:10.123456")),
        ),
        (
            "tz",
            v("timestamp-tz", json!("2024-02-29T13:45:10.5+02:00")),
            v("timestamp-tz", json!("2024-02-29T11:45:10.5Z")),
        ),
        (
            "j",
            v("json", json!("{\"a\": [1, 2], \"s\": \"é\"}")),
            v("json", json!("{\"a\": [1, 2], \"s\": \"é\"}")),
        ),
        (
            "jb",
            v("json", json!("{\"a\": [1, 2]}")),
            v("json", json!("{\"a\": [1, 2]}")),
        ),
    ]
}

fn sqlite_cases() -> Vec<(&'static str, Value, Value)> {
    vec![
        ("b", v("boolean", json!(false)), v("boolean", json!(false))),
        ("i", v("int", json!(i64::MAX)), v("int", json!(i64::MAX))),
        ("f", v("float", json!(-0.25)), v("float", json!(-0.25))),
        (
            "n",
            v("decimal", json!("12.75")),
            v("decimal", json!("12.75")),
        ),
        ("t", v("text", json!(UNICODE)), v("text", json!(UNICODE))),
        (
            "by",
            v("bytes", json!([0, 255, 1, 128])),
            v("bytes", json!([0, 255, 1, 128])),
        ),
        (
            "u",
            v("uuid", json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
            v("uuid", json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
        ),
        (
            "d",
            v("date", json!("2024-02-29")),
            v("date", json!("2024-02-29")),
        ),
        (
            "tm",
            v("time", json!("13:45:10.123456")),
            v("time", json!("13:45:10.123456")),
        ),
        (
            "ts",
            v("timestamp", json!("2024-02-29T13:45:10.123456")),
            v("timestamp", json!("2024-02-29T13:45:10.123456")),
        ),
        (
            "tz",
            v("timestamp-tz", json!("2024-02-29T13:45:10.5+02:00")),
            v("timestamp-tz", json!("2024-02-29T11:45:10.5Z")),
        ),
        (
            "j",
            v("json", json!("{\"a\": [1, 2]}")),
            v("json", json!("{\"a\": [1, 2]}")),
        ),
    ]
}

/// Inserts one row of `cases` and one row of NULLs with named parameters, reads both back
/// with positional ones, and compares every cell.
fn round_trip(project: &Project, create: &str, cases: &[(&str, Value, Value)]) {
    round_trip_with(project, create, cases, |c| format!(":{c}"))
}

/// [`round_trip`] with each column's value written as `placeholder(column)` (a CAST where a
/// backend needs one).
pub(crate) fn round_trip_with(
    project: &Project,
    create: &str,
    cases: &[(&str, Value, Value)],
    placeholder: impl Fn(&str) -> String,
) {
    round_trip_by(project, create, cases, placeholder, false)
}

/// [`round_trip_with`], the two rows written by one `execute-batch` when `batch` (on
/// PostgreSQL one statement of arrays, elsewhere a multi-row INSERT).
fn round_trip_by(
    project: &Project,
    create: &str,
    cases: &[(&str, Value, Value)],
    placeholder: impl Fn(&str) -> String,
    batch: bool,
) {
    let columns: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let insert = format!(
        "INSERT INTO vals (id, {}) VALUES (:id, {})",
        columns.join(", "),
        columns
            .iter()
            .map(|c| placeholder(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut full = serde_json::Map::new();
    let mut nulls = serde_json::Map::new();
    full.insert("id".into(), v("int", json!(1)));
    nulls.insert("id".into(), v("int", json!(2)));
    for (column, sent, _) in cases {
        full.insert(column.to_string(), sent.clone());
        nulls.insert(column.to_string(), v("null", Value::Null));
    }
    let select = format!("SELECT {} FROM vals WHERE id = $1", columns.join(", "));
    let mut steps = vec![json!({ "op": "execute", "db": "lab", "sql": create })];
    if batch {
        steps.push(
            json!({ "op": "batch", "db": "lab", "sql": insert, "param_sets": [full, nulls] }),
        );
    } else {
        steps.push(json!({ "op": "execute", "db": "lab", "sql": insert, "params": full }));
        steps.push(json!({ "op": "execute", "db": "lab", "sql": insert, "params": nulls }));
    }
    let writes = steps.len();
    for id in [1, 2] {
        steps.push(
            json!({ "op": "query", "db": "lab", "sql": select, "params": [v("int", json!(id))] }),
        );
    }
    let results = probe_results(&project.run_probe(&[("lab", "read-write")], json!(steps)));
    for (i, r) in results.iter().enumerate().take(writes) {
        assert!(r.get("ok").is_some(), "step {i} failed: {r}");
    }
    let row = &results[writes]["ok"]["rows"][0];
    for (i, (column, _, expected)) in cases.iter().enumerate() {
        let got = &row[i];
        if expected["t"] == "json" {
            // JSON documents compare as documents: jsonb normalises whitespace.
            let parse =
                |v: &Value| serde_json::from_str::<Value>(v["v"].as_str().unwrap()).unwrap();
            assert_eq!(got["t"], "json", "column {column}: {got}");
            assert_eq!(parse(got), parse(expected), "column {column}");
        } else {
            assert_eq!(got, expected, "column {column}");
        }
    }
    let null_row = results[writes + 1]["ok"]["rows"][0].as_array().unwrap();
    assert_eq!(null_row.len(), cases.len());
    for (i, cell) in null_row.iter().enumerate() {
        assert_eq!(
            cell["t"], "null",
            "column {} of the NULL row: {cell}",
            cases[i].0
        );
    }
}

/// The table every PostgreSQL value case goes into.
const POSTGRES_VALS: &str = "CREATE TABLE vals (id int PRIMARY KEY, b boolean, i2 smallint, \
    i4 integer, i8 bigint, f4 real, f8 double precision, n numeric, n2 numeric(10,3), t text, \
    vc varchar(50), by bytea, u uuid, d date, tm time, ts timestamp, tz timestamptz, j json, \
    jb jsonb)";

fn postgres_project(db: &PgDatabase) -> Project {
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    project
}

#[test]
fn every_value_case_round_trips_on_postgresql() {
    let db = PgDatabase::create();
    let project = postgres_project(&db);
    round_trip(&project, POSTGRES_VALS, &postgres_cases());
}

#[test]
fn every_value_case_round_trips_through_a_batch_on_postgresql() {
    let db = PgDatabase::create();
    let project = postgres_project(&db);
    round_trip_by(
        &project,
        POSTGRES_VALS,
        &postgres_cases(),
        |c| format!(":{c}"),
        true,
    );
}

#[test]
fn every_value_case_round_trips_on_sqlite() {
    let project = Project::new();
    round_trip(
        &project,
        "CREATE TABLE vals (id INTEGER PRIMARY KEY, b BOOLEAN, i INTEGER, f REAL, n NUMERIC, \
         t TEXT, by BLOB, u UUID, d DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ, j JSON)",
        &sqlite_cases(),
    );
}

#[test]
fn text_parameters_are_coerced_to_the_column_type_on_postgresql() {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE typed (d date, u uuid, n numeric, f float8, i int4)");
    let project = postgres_project(&db);
    let results = probe_results(&project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "execute", "db": "lab",
              "sql": "INSERT INTO typed VALUES (:d, :u, :n, :f, :i)",
              "params": { "d": v("text", json!("2024-01-31")), "u": v("text", json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
                          "n": v("int", json!(7)), "f": v("decimal", json!("2.5")), "i": v("text", json!("42")) } },
            { "op": "execute", "db": "lab", "sql": "INSERT INTO typed (i) VALUES (:i)",
              "params": { "i": v("int", json!(3_000_000_000i64)) } },
        ]),
    ));
    assert_eq!(results[0]["ok"]["affected"], 1, "{results:?}");
    assert_eq!(results[1]["error"]["kind"], "conversion", "{results:?}");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{results:?}"
    );
    assert_eq!(
        db.column("SELECT d::text || ' ' || u::text || ' ' || n::text || ' ' || f::text || ' ' || i::text FROM typed"),
        vec![Some("2024-01-31 67e55044-10b1-426f-9247-bb680e5fe0c8 7 2.5 42".to_owned())]
    );
}

#[test]
fn named_parameters_leave_literals_comments_and_casts_alone() {
    let db = PgDatabase::create();
    let project = postgres_project(&db);
    let results = probe_results(&project.run_probe(
        &[("lab", "read-only")],
        json!([
            { "op": "query", "db": "lab",
              "sql": "SELECT ':x' AS lit, :x::int + 1 AS cast_sum, $$ :x $$ AS dollar, \"col:x\".v -- :y\n FROM (SELECT 5 AS v) AS \"col:x\" /* :z */",
              "params": { "x": v("text", json!("41")) } },
        ]),
    ));
    let row = &results[0]["ok"]["rows"][0];
    assert_eq!(row[0], v("text", json!(":x")), "{results:?}");
    assert_eq!(row[1], v("int", json!(42)));
    assert_eq!(row[2], v("text", json!(" :x ")));
    assert_eq!(row[3], v("int", json!(5)));
}
