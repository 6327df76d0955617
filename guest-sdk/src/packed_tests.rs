use super::*;
use crate::bindings::flowhost::flow::types::Column;
use crate::decode::decode_packed_row;
use serde::Deserialize;

fn cols(names: &[&str]) -> Vec<Column> {
    names
        .iter()
        .map(|n| Column {
            name: (*n).to_owned(),
            type_name: "TEXT".to_owned(),
        })
        .collect()
}

/// Values laid out by hand from the contract's words in wit/database.wit, not by any encoder.
fn text(tag: u8, s: &str) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
    out
}

fn int(i: i64) -> Vec<u8> {
    let mut out = vec![2];
    out.extend(i.to_le_bytes());
    out
}

fn batch(rows: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut out = (rows.len() as u32).to_le_bytes().to_vec();
    for row in rows {
        let bytes: Vec<u8> = row.concat();
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out
}

#[derive(Debug, Deserialize, PartialEq)]
struct Response {
    id: i64,
    email: Option<String>,
    score: f64,
    ok: bool,
    data: serde_json::Value,
}

fn read_all<T: serde::de::DeserializeOwned>(
    columns: &[Column],
    buf: Vec<u8>,
) -> Vec<Result<T, String>> {
    let mut batch = PackedBatch::new(buf).unwrap().expect("a batch with rows");
    let mut out = Vec::new();
    while let Some(row) = batch.next_row() {
        out.push(
            row.map_err(|e| e.to_string())
                .and_then(|r| decode_packed_row(columns, r).map_err(|e| e.to_string())),
        );
    }
    out
}

#[test]
fn rows_decode_into_structs_by_column_name() {
    let columns = cols(&["ok", "id", "email", "score", "data"]);
    let mut score = vec![3];
    score.extend(4.25f64.to_bits().to_le_bytes());
    let buf = batch(&[
        vec![
            vec![1, 1],
            int(7),
            text(5, "a@example.com"),
            score.clone(),
            text(12, r#"{"q":[1,2]}"#),
        ],
        vec![vec![1, 0], int(-1), vec![0], score, text(12, "null")],
    ]);
    let rows: Vec<Result<Response, String>> = read_all(&columns, buf);
    assert_eq!(
        rows,
        vec![
            Ok(Response {
                id: 7,
                email: Some("a@example.com".into()),
                score: 4.25,
                ok: true,
                data: serde_json::json!({"q": [1, 2]}),
            }),
            Ok(Response {
                id: -1,
                email: None,
                score: 4.25,
                ok: false,
                data: serde_json::Value::Null,
            }),
        ]
    );
}

#[test]
fn an_empty_batch_ends_the_result() {
    assert!(PackedBatch::new(vec![0, 0, 0, 0]).unwrap().is_none());
}

#[test]
fn a_row_that_does_not_decode_does_not_misalign_the_next() {
    let columns = cols(&["id"]);
    let buf = batch(&[vec![int(1)], vec![text(5, "not a number")], vec![int(3)]]);
    let rows: Vec<Result<i64, String>> = read_all(&columns, buf);
    assert_eq!(rows[0], Ok(1));
    assert!(rows[1].as_ref().unwrap_err().contains("id"), "{rows:?}");
    assert_eq!(rows[2], Ok(3));
}

#[test]
fn every_text_case_and_bytes_decode() {
    let columns = cols(&["d", "u", "dt", "t", "ts", "tz", "b"]);
    let buf = batch(&[vec![
        text(4, "-1.50"),
        text(7, "67e55044-10b1-426f-9247-bb680e5fe0c8"),
        text(8, "2024-01-02"),
        text(9, "10:00:00"),
        text(10, "2024-01-02T10:00:00"),
        text(11, "2024-01-02T10:00:00Z"),
        text(6, "\u{0}\u{7f}"),
    ]]);
    type Row = (String, String, String, String, String, String, Vec<u8>);
    let rows: Vec<Result<Row, String>> = read_all(&columns, buf);
    let row = rows[0].clone().unwrap();
    assert_eq!(row.0, "-1.50");
    assert_eq!(row.5, "2024-01-02T10:00:00Z");
    assert_eq!(row.6, vec![0, 0x7f]);
}

#[test]
fn wide_rows_decode_too() {
    let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let columns = cols(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let buf = batch(&[(0..20).map(int).collect()]);
    let rows: Vec<Result<Vec<i64>, String>> = read_all(&columns, buf);
    assert_eq!(rows[0], Ok((0..20).collect::<Vec<i64>>()));
}

#[test]
fn malformed_batches_are_errors_not_panics() {
    let columns = cols(&["a"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown value tag 99", batch(&[vec![vec![99]]])),
        ("truncated", batch(&[vec![vec![2, 1, 2]]])),
        ("not UTF-8", batch(&[vec![vec![5, 1, 0, 0, 0, 0xff]]])),
        ("more values than columns", batch(&[vec![int(1), int(2)]])),
        ("truncated row", {
            let mut b = batch(&[vec![int(1)]]);
            b.truncate(b.len() - 1);
            b
        }),
        ("truncated length", {
            // Two rows announced, one sent.
            let mut b = batch(&[vec![int(1)]]);
            b[0] = 2;
            b
        }),
    ];
    for (want, buf) in cases {
        let rows: Vec<Result<i64, String>> = read_all(&columns, buf);
        let err = rows
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap_or_else(|| panic!("no error for {want}: {rows:?}"));
        assert!(err.contains(want), "{want}: {err}");
        assert!(err.contains("malformed packed batch"), "{err}");
    }
}
