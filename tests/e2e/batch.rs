//! `execute-batch` sends many rows per statement where it can, and keeps the semantics of one
//! statement per parameter set where it cannot.

use serde_json::json;

use crate::support::*;

fn sets(ids: impl Iterator<Item = i64>, note: &str) -> Vec<serde_json::Value> {
    ids.map(|id| json!({ "id": v("int", json!(id)), "note": v("text", json!(note)) }))
        .collect()
}

#[test]
fn a_batch_insert_travels_as_few_statements_and_keeps_one_statement_semantics() {
    let db = PgDatabase::create();
    // A statement-level trigger counts the INSERT statements the server actually ran.
    db.exec(
        "CREATE TABLE counted (id int PRIMARY KEY, note text);
         CREATE TABLE statements (n int); INSERT INTO statements VALUES (0);
         CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN UPDATE statements SET n = n + 1; RETURN NULL; END $$;
         CREATE TRIGGER counted_statements AFTER INSERT ON counted
           FOR EACH STATEMENT EXECUTE FUNCTION bump();",
    );
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    let upsert = "INSERT INTO counted (id, note) VALUES (:id, :note) \
                  ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note";
    let twice: Vec<_> = [sets(9000..=9000, "first"), sets(9000..=9000, "second")].concat();
    let results = probe_results(&project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "batch", "db": "lab", "sql": "INSERT INTO counted (id, note) VALUES (:id, :note)",
              "param_sets": sets(1..=2500, "bulk") },
            // One multi-row upsert may not touch a row twice; row by row it may. Same result.
            { "op": "batch", "db": "lab", "sql": upsert,
              "param_sets": twice },
        ]),
    ));
    assert_eq!(results[0]["ok"]["affected"], 2500, "{results:?}");
    assert_eq!(results[1]["ok"]["affected"], 2, "{results:?}");
    assert_eq!(db.count("counted"), 2501);
    assert_eq!(
        db.column("SELECT note FROM counted WHERE id = 9000"),
        vec![Some("second".into())]
    );
    // 2500 rows in one statement of arrays (UNNEST); the upsert: one failed attempt (rolled
    // back, so not counted) and then 2 single-row statements.
    assert_eq!(
        db.column("SELECT n::text FROM statements"),
        vec![Some("3".into())]
    );
}

/// A packed batch (`execute_batch` of serde structs, through the SDK) is encoded for its one
/// statement of arrays straight from the guest's bytes; a column whose type has no array path
/// (here a domain) makes the same batch go as multi-row INSERTs instead. Both write every row
/// with its values, in as few statements as that path takes.
#[test]
fn a_packed_batch_goes_as_arrays_or_as_multi_row_inserts_and_writes_every_value() {
    let db = PgDatabase::create();
    db.exec(
        "CREATE DOMAIN short_note AS text CHECK (length(VALUE) < 20);
         CREATE TABLE plain (id bigint PRIMARY KEY, note text, score float8);
         CREATE TABLE domained (id bigint PRIMARY KEY, note short_note, score float8);
         CREATE TABLE statements (t text, n int);
         INSERT INTO statements VALUES ('plain', 0), ('domained', 0);
         CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN UPDATE statements SET n = n + 1 WHERE t = TG_TABLE_NAME; RETURN NULL; END $$;
         CREATE TRIGGER plain_statements AFTER INSERT ON plain
           FOR EACH STATEMENT EXECUTE FUNCTION bump();
         CREATE TRIGGER domained_statements AFTER INSERT ON domained
           FOR EACH STATEMENT EXECUTE FUNCTION bump();",
    );
    let project = Project::new();
    project.write(
        ".env",
        &format!("DEVELOPMENT_GLOBAL_LAB_CONNECTION_STRING={}\n", db.url()),
    );
    // Placeholders in another order than the struct's fields: each is bound by name.
    let insert =
        |table: &str| format!("INSERT INTO {table} (score, id, note) VALUES (:score, :id, :note)");
    let results = probe_results(&project.run_probe(
        &[("lab", "read-write")],
        json!([
            { "op": "insert_generated", "db": "lab", "sql": insert("plain"), "rows": 2500 },
            { "op": "insert_generated", "db": "lab", "sql": insert("domained"), "rows": 2500 },
        ]),
    ));
    assert_eq!(results[0]["ok"]["affected"], 2500, "{results:?}");
    assert_eq!(results[1]["ok"]["affected"], 2500, "{results:?}");
    for table in ["plain", "domained"] {
        assert_eq!(db.count(table), 2500, "{table}");
        assert_eq!(
            db.column(&format!(
                "SELECT concat_ws('|', sum(id), min(note), max(note), round(sum(score)::numeric, 6)) FROM {table}"
            )),
            // Notes are "row {id}"; scores id / 7.
            vec![Some("3123750|row 0|row 999|446250.000000".into())],
            "{table}"
        );
    }
    // Arrays: one statement. Multi-row INSERTs: 1,000 rows each.
    assert_eq!(
        db.column("SELECT t || ' ' || n FROM statements ORDER BY t"),
        vec![Some("domained 3".into()), Some("plain 1".into())]
    );
}
