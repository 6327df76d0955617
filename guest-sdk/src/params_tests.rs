use super::*;
use crate::{Date, Decimal, Json};
use serde_json::json;

fn named_list(p: Params) -> Vec<(String, Value)> {
    match p.into_raw() {
        RawParams::Named(v) => v.into_iter().map(|n| (n.name, n.value)).collect(),
        RawParams::Positional(_) => panic!("expected named"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Processed,
}

#[derive(Serialize)]
struct Everything {
    int: u8,
    big: u64,
    float: f32,
    text: &'static str,
    flag: bool,
    missing: Option<i64>,
    present: Option<i64>,
    status: Status,
    list: Vec<i32>,
    nested: serde_json::Value,
    score: Decimal,
    day: Option<Date>,
    doc: Json,
}

#[test]
fn struct_fields_become_typed_named_values() {
    let row = Everything {
        int: 4,
        big: u64::MAX,
        float: 0.5,
        text: "hi",
        flag: true,
        missing: None,
        present: Some(3),
        status: Status::Processed,
        list: vec![1, 2],
        nested: json!({"a": [1]}),
        score: Decimal("4.20".into()),
        day: Some(Date("2024-02-29".into())),
        doc: Json("{}".into()),
    };
    let got = named_list(named(&row).into_params().unwrap());
    let expected = vec![
        ("int", Value::Int(4)),
        ("big", Value::Float(u64::MAX as f64)),
        ("float", Value::Float(0.5)),
        ("text", Value::Text("hi".into())),
        ("flag", Value::Boolean(true)),
        ("missing", Value::Null),
        ("present", Value::Int(3)),
        ("status", Value::Text("processed".into())),
        ("list", Value::Json("[1,2]".into())),
        ("nested", Value::Json(r#"{"a":[1]}"#.into())),
        ("score", Value::Decimal("4.20".into())),
        ("day", Value::Date("2024-02-29".into())),
        ("doc", Value::Json("{}".into())),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn json_maps_follow_the_json_rules() {
    let map = json!({"n": 1, "f": 1.5, "s": "x", "b": false, "z": null, "o": {"k": 1}});
    let got = named_list(named(&map).into_params().unwrap());
    let find = |k: &str| got.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(find("n"), Value::Int(1));
    assert_eq!(find("f"), Value::Float(1.5));
    assert_eq!(find("s"), Value::Text("x".into()));
    assert_eq!(find("b"), Value::Boolean(false));
    assert_eq!(find("z"), Value::Null);
    assert_eq!(find("o"), Value::Json(r#"{"k":1}"#.into()));
}

#[test]
fn non_structs_are_refused() {
    let err = named(&5).into_params().unwrap_err();
    assert_eq!(err.to_string(), "named parameters need a struct or a map");
    let mut bad = std::collections::BTreeMap::new();
    bad.insert(1, 2);
    assert!(named(&bad).into_params().is_err());
}

#[test]
fn empty_struct_is_named_and_empty() {
    #[derive(Serialize)]
    struct Nothing {}
    assert!(named_list(named(&Nothing {}).into_params().unwrap()).is_empty());
}

#[test]
fn tuples_and_slices_are_positional() {
    let p = (1, "a", None::<bool>, 2.5f64).into_params().unwrap();
    let expected = vec![
        Value::Int(1),
        Value::Text("a".into()),
        Value::Null,
        Value::Float(2.5),
    ];
    assert_eq!(p.into_raw(), RawParams::Positional(expected.clone()));
    let p = expected.as_slice().into_params().unwrap();
    assert_eq!(p.into_raw(), RawParams::Positional(expected));
    assert_eq!(
        ().into_params().unwrap().into_raw(),
        RawParams::Positional(vec![])
    );
}

#[test]
fn params_macro_accepts_trailing_comma_and_replaces_duplicates() {
    let p = params! { "a" => 1, "b" => "x", "a" => 2, };
    assert_eq!(
        named_list(p),
        vec![
            ("a".into(), Value::Int(2)),
            ("b".into(), Value::Text("x".into()))
        ]
    );
}

#[test]
#[should_panic(expected = "cannot bind `:a` in positional parameters")]
fn mixing_kinds_panics() {
    let _ = Params::new().push(1).bind("a", 2);
}
