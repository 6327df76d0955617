use super::*;
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

#[derive(Debug, Deserialize, PartialEq)]
struct Survey {
    response_id: i64,
    email: Option<String>,
    score: String,
    ok: bool,
    data: serde_json::Value,
    blob: Vec<u8>,
    ratio: f64,
}

#[test]
fn row_decodes_into_struct_by_column_name() {
    let columns = cols(&[
        "ok",
        "score",
        "email",
        "response_id",
        "data",
        "blob",
        "ratio",
    ]);
    let values = vec![
        Value::Boolean(true),
        Value::Decimal("4.20".into()),
        Value::Null,
        Value::Int(7),
        Value::Json(r#"{"q":[1,2]}"#.into()),
        Value::Bytes(vec![1, 2]),
        Value::Int(3),
    ];
    let got: Survey = decode_row(&columns, &values).unwrap();
    assert_eq!(
        got,
        Survey {
            response_id: 7,
            email: None,
            score: "4.20".into(),
            ok: true,
            data: serde_json::json!({"q": [1, 2]}),
            blob: vec![1, 2],
            ratio: 3.0,
        }
    );
}

#[test]
fn type_errors_name_the_column() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Row {
        id: i64,
        name: String,
    }
    let err =
        decode_row::<Row>(&cols(&["id", "name"]), &[Value::Int(1), Value::Int(2)]).unwrap_err();
    match err {
        Error::Decode { column, message } => {
            assert_eq!(column.as_deref(), Some("name"));
            assert!(message.contains("invalid type: integer `2`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = decode_row::<Row>(&cols(&["id"]), &[Value::Int(1)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode result: missing field `name`"
    );
}

#[test]
fn single_columns_decode_as_plain_values() {
    let c = cols(&["count"]);
    assert_eq!(decode_row::<i64>(&c, &[Value::Int(3)]).unwrap(), 3);
    assert_eq!(
        decode_row::<i64>(&c, &[Value::Decimal("25".into())]).unwrap(),
        25
    );
    assert_eq!(
        decode_row::<f64>(&c, &[Value::Decimal("4.2".into())]).unwrap(),
        4.2
    );
    assert_eq!(
        decode_row::<Option<String>>(&c, &[Value::Null]).unwrap(),
        None
    );
    let err = decode_row::<i64>(&c, &[Value::Decimal("4.2".into())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode column `count`: decimal 4.2 does not fit i64"
    );
    let err = decode_row::<i64>(&cols(&["a", "b"]), &[Value::Int(1), Value::Int(2)]).unwrap_err();
    assert!(err.to_string().contains("2 columns"), "{err}");
}

#[test]
fn tuples_decode_by_position() {
    let c = cols(&["id", "name"]);
    let row = [Value::Int(1), Value::Text("a".into())];
    assert_eq!(
        decode_row::<(i64, String)>(&c, &row).unwrap(),
        (1, "a".to_owned())
    );
    let err = decode_row::<(i64,)>(&c, &row).unwrap_err();
    assert!(err.to_string().contains("tuple of 1"), "{err}");
    let err = decode_row::<(i64, i64)>(&c, &row).unwrap_err();
    assert!(err.to_string().contains("column `name`"), "{err}");
}

#[test]
fn json_values_and_maps() {
    let c = cols(&["a", "b"]);
    let row = [Value::Null, Value::Json("[1]".into())];
    let got: serde_json::Value = decode_row(&c, &row).unwrap();
    assert_eq!(got, serde_json::json!({"a": null, "b": [1]}));
    let bad = [Value::Null, Value::Json("{".into())];
    let err = decode_row::<serde_json::Value>(&c, &bad).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot decode column `b`: invalid JSON"),
        "{err}"
    );
}

#[test]
fn enums_and_typed_newtypes_decode_from_text() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Status {
        Processed,
        Failed,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Row {
        status: Status,
        day: crate::Date,
        id: crate::Uuid,
    }
    let c = cols(&["status", "day", "id"]);
    let row = [
        Value::Text("failed".into()),
        Value::Date("2024-01-01".into()),
        Value::Uuid("u".into()),
    ];
    let got: Row = decode_row(&c, &row).unwrap();
    assert_eq!(got.status, Status::Failed);
    assert_eq!(got.day, crate::Date("2024-01-01".into()));
    assert_eq!(
        decode_row::<Status>(&c[..1], &row[..1]).unwrap(),
        Status::Failed
    );
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Input {
    survey_id: Option<i64>,
    #[serde(default)]
    batch_size: Option<u32>,
}

#[test]
fn blank_input_is_an_empty_object() {
    let expected = Input {
        survey_id: None,
        batch_size: None,
    };
    assert_eq!(parse_input::<Input>("").unwrap(), expected);
    assert_eq!(parse_input::<Input>("  \n").unwrap(), expected);
    assert_eq!(parse_input::<Input>("{}").unwrap(), expected);
    parse_input::<()>("{}").unwrap();
    assert!(parse_input::<()>(r#"{"a":1}"#).is_err());
}

#[test]
fn input_errors_name_the_field() {
    let err = parse_input::<Input>(r#"{"batch_size": "ten"}"#).unwrap_err();
    assert_eq!(
        err,
        "invalid input: field `batch_size`: invalid type: string \"ten\", expected u32"
    );
    let err = parse_input::<Input>(r#"{"batch": 1}"#).unwrap_err();
    assert!(
        err.starts_with("invalid input: unknown field `batch`"),
        "{err}"
    );
    let err = parse_input::<Input>("{").unwrap_err();
    assert!(err.starts_with("invalid input: not JSON"), "{err}");
    let err = parse_input::<Input>("5").unwrap_err();
    assert!(err.starts_with("invalid input: invalid type"), "{err}");
}
