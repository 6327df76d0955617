use super::*;
use crate::bindings::flowhost::flow::types::{NamedValue, Params as RawParams};
use crate::packed::{PackedBatch, ValueRef, read_value};
use crate::params::{IntoParams, Named};
use crate::value::{Decimal, Json, Uuid};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the named path binds for `item`: the reference the packed rows must match.
fn named(item: &impl Serialize) -> Vec<NamedValue> {
    match Named(item).into_params().unwrap().into_raw() {
        RawParams::Named(v) => v,
        other => panic!("not named: {other:?}"),
    }
}

/// Reads the packed rows back with the cursor's decoder.
fn unpack(rows: &PackedRows) -> Vec<Vec<Value>> {
    let mut batch = PackedBatch::new(rows.buf.clone()).unwrap().unwrap();
    let mut out = Vec::new();
    while let Some(row) = batch.next_row() {
        let row = row.unwrap();
        let mut pos = 0;
        let mut values = Vec::new();
        while pos < row.len() {
            values.push(owned(read_value(row, &mut pos).unwrap()));
        }
        out.push(values);
    }
    out
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Boolean(b) => Value::Boolean(b),
        ValueRef::Int(i) => Value::Int(i),
        ValueRef::Float(f) => Value::Float(f),
        ValueRef::Decimal(s) => Value::Decimal(s.into()),
        ValueRef::Text(s) => Value::Text(s.into()),
        ValueRef::Bytes(b) => Value::Bytes(b.into()),
        ValueRef::Uuid(s) => Value::Uuid(s.into()),
        ValueRef::Date(s) => Value::Date(s.into()),
        ValueRef::Time(s) => Value::Time(s.into()),
        ValueRef::Timestamp(s) => Value::Timestamp(s.into()),
        ValueRef::TimestampTz(s) => Value::TimestampTz(s.into()),
        ValueRef::Json(s) => Value::Json(s.into()),
    }
}

#[derive(Serialize)]
enum Status {
    Processed,
}

#[derive(Serialize)]
struct Inner {
    q: Vec<i32>,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    small: u8,
    big: u64,
    wide: i128,
    email: Option<String>,
    missing: Option<i32>,
    score: Decimal,
    key: Uuid,
    doc: Json,
    nested: Inner,
    status: Status,
    flag: bool,
    ratio: f32,
    letter: char,
    blob: serde_bytes_like::Bytes,
}

/// `&[u8]` serialised as bytes, as `serde_bytes` would, without the dependency.
mod serde_bytes_like {
    pub struct Bytes(pub Vec<u8>);
    impl serde::Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
}

fn row(id: i64) -> Row {
    Row {
        id,
        small: 7,
        big: u64::MAX,
        wide: -5,
        email: Some(format!("u{id}@example.com")),
        missing: None,
        score: Decimal("4.20".into()),
        key: Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        doc: Json("[1]".into()),
        nested: Inner { q: vec![1, 2] },
        status: Status::Processed,
        flag: id % 2 == 0,
        ratio: 0.5,
        letter: 'é',
        blob: serde_bytes_like::Bytes(vec![0, 1, 255]),
    }
}

#[test]
fn packed_rows_bind_exactly_what_named_sets_bind() {
    let items = vec![row(1), row(2), row(3)];
    let rows = PackedRows::pack(&items).expect("structs pack");
    let reference = named(&items[0]);
    assert_eq!(
        rows.names,
        reference.iter().map(|n| n.name.clone()).collect::<Vec<_>>()
    );
    for (item, values) in items.iter().zip(unpack(&rows)) {
        let want: Vec<Value> = named(item).into_iter().map(|n| n.value).collect();
        assert_eq!(values, want);
    }
}

#[test]
fn maps_with_the_same_keys_pack_and_differing_keys_fall_back() {
    let map = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    let same = vec![map(&[("a", 1), ("b", 2)]), map(&[("a", 3), ("b", 4)])];
    let rows = PackedRows::pack(&same).expect("same keys pack");
    assert_eq!(rows.names, vec!["a", "b"]);
    assert_eq!(
        unpack(&rows),
        vec![
            vec![Value::Int(1), Value::Int(2)],
            vec![Value::Int(3), Value::Int(4)]
        ]
    );
    let differing = vec![map(&[("a", 1), ("b", 2)]), map(&[("a", 3), ("c", 4)])];
    assert!(PackedRows::pack(&differing).is_none());
    let fewer = vec![map(&[("a", 1), ("b", 2)]), map(&[("a", 3)])];
    assert!(PackedRows::pack(&fewer).is_none());
}

#[test]
fn what_is_not_a_struct_or_map_is_left_to_the_named_path() {
    assert!(PackedRows::pack(&[1, 2]).is_none());
    assert!(PackedRows::pack(&[(1, "a")]).is_none());
}
