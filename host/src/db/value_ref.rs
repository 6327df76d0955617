//! A parameter value borrowed from wherever it lives: a guest's `Value`, or the bytes of a
//! packed batch (`execute-batch-packed`).
//!
//! Why: a packed batch of 100,000 rows holds 600,000 values. Turning each into an owned
//! `Value` (and its `String`) before encoding it for PostgreSQL cost a third of the host's time
//! in such a batch: the allocations, and first touches of the memory they took. Encoders read
//! a `ValueRef` instead, so the array path encodes straight from the guest's bytes and every
//! other path from its `Value`s, with one definition of each conversion.

use crate::bindings::types::Value;

/// One parameter value, borrowed; the cases of `wit/types.wit`'s `value`.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Null,
    Boolean(bool),
    Int(i64),
    Float(f64),
    Decimal(&'a str),
    Text(&'a str),
    Bytes(&'a [u8]),
    Uuid(&'a str),
    Date(&'a str),
    Time(&'a str),
    Timestamp(&'a str),
    TimestampTz(&'a str),
    Json(&'a str),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> ValueRef<'a> {
        match value {
            Value::Null => ValueRef::Null,
            Value::Boolean(b) => ValueRef::Boolean(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Decimal(s) => ValueRef::Decimal(s),
            Value::Text(s) => ValueRef::Text(s),
            Value::Bytes(b) => ValueRef::Bytes(b),
            Value::Uuid(s) => ValueRef::Uuid(s),
            Value::Date(s) => ValueRef::Date(s),
            Value::Time(s) => ValueRef::Time(s),
            Value::Timestamp(s) => ValueRef::Timestamp(s),
            Value::TimestampTz(s) => ValueRef::TimestampTz(s),
            Value::Json(s) => ValueRef::Json(s),
        }
    }
}

impl ValueRef<'_> {
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Boolean(b) => Value::Boolean(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Decimal(s) => Value::Decimal(s.to_owned()),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Uuid(s) => Value::Uuid(s.to_owned()),
            ValueRef::Date(s) => Value::Date(s.to_owned()),
            ValueRef::Time(s) => Value::Time(s.to_owned()),
            ValueRef::Timestamp(s) => Value::Timestamp(s.to_owned()),
            ValueRef::TimestampTz(s) => Value::TimestampTz(s.to_owned()),
            ValueRef::Json(s) => Value::Json(s.to_owned()),
        }
    }

    pub fn is_null(self) -> bool {
        matches!(self, ValueRef::Null)
    }

    /// The bytes a value counts for against the `max-result-mb` and `max-param-mb` limits:
    /// its payload and 16 for the case, whatever the case.
    pub fn counted_bytes(self) -> u64 {
        let payload = match self {
            ValueRef::Null | ValueRef::Boolean(_) | ValueRef::Int(_) | ValueRef::Float(_) => 0,
            ValueRef::Bytes(b) => b.len(),
            ValueRef::Decimal(s)
            | ValueRef::Text(s)
            | ValueRef::Uuid(s)
            | ValueRef::Date(s)
            | ValueRef::Time(s)
            | ValueRef::Timestamp(s)
            | ValueRef::TimestampTz(s)
            | ValueRef::Json(s) => s.len(),
        };
        16 + payload as u64
    }
}

/// The parameter sets of a batch, each in its statement's placeholder order, as the bulk paths
/// read them: `Value`s, or a packed batch read in place.
pub trait BatchRows: Sync {
    /// How many parameter sets.
    fn count(&self) -> usize;

    /// The value set `row` binds to placeholder `column` (0-based).
    fn value(&self, row: usize, column: usize) -> ValueRef<'_>;
}

/// Parameter sets as `Value`s in placeholder order (`execute-batch`, and any batch off the
/// array path).
pub struct OrderedRows<'a, 'v>(pub &'a [Vec<&'v Value>]);

impl BatchRows for OrderedRows<'_, '_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn value(&self, row: usize, column: usize) -> ValueRef<'_> {
        self.0[row][column].into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_case() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Boolean(true),
            Value::Int(-7),
            Value::Float(2.5),
            Value::Decimal("1.10".into()),
            Value::Text("hé".into()),
            Value::Bytes(vec![0, 255]),
            Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            Value::Date("2026-12-07".into()),
            Value::Time("10:00:00".into()),
            Value::Timestamp("2026-12-07T10:00:00".into()),
            Value::TimestampTz("2026-12-07T10:00:00Z".into()),
            Value::Json("{}".into()),
        ]
    }

    #[test]
    fn a_value_borrowed_and_owned_again_is_the_same_value() {
        for value in every_case() {
            let back = ValueRef::from(&value).to_value();
            // The generated Value has no PartialEq: compare what Debug shows.
            assert_eq!(format!("{back:?}"), format!("{value:?}"));
        }
    }

    #[test]
    fn counted_bytes_are_the_payload_and_sixteen() {
        let sizes: Vec<u64> = every_case()
            .iter()
            .map(|v| ValueRef::from(v).counted_bytes())
            .collect();
        assert_eq!(sizes, [16, 16, 16, 16, 20, 19, 18, 52, 26, 24, 35, 36, 18]);
    }
}
