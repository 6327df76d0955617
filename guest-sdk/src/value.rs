//! Conversions into the contract's [`Value`], and typed wrappers for values whose SQL type a
//! plain string cannot express.

use crate::bindings::flowhost::flow::types::Value;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

impl Value {
    /// The contract's name for this value's case, as spelled in the WIT (`"timestamp-tz"`).
    ///
    /// ```
    /// use flowhost_sdk::Value;
    /// assert_eq!(Value::from(5).kind(), "int");
    /// assert_eq!(Value::Null.kind(), "null");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Uuid(_) => "uuid",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamp-tz",
            Value::Json(_) => "json",
        }
    }

    /// Whether this is SQL NULL.
    ///
    /// ```
    /// use flowhost_sdk::Value;
    /// assert!(Value::from(None::<i64>).is_null());
    /// ```
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, for `int` values.
    ///
    /// ```
    /// use flowhost_sdk::Value;
    /// assert_eq!(Value::from(7u8).as_i64(), Some(7));
    /// assert_eq!(Value::from("7").as_i64(), None);
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as `f64`, for `float` and `int` values (an `int` beyond 2^53 loses precision).
    ///
    /// ```
    /// use flowhost_sdk::Value;
    /// assert_eq!(Value::from(2).as_f64(), Some(2.0));
    /// assert_eq!(Value::from(2.5).as_f64(), Some(2.5));
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, for `boolean` values.
    ///
    /// ```
    /// use flowhost_sdk::Value;
    /// assert_eq!(Value::from(true).as_bool(), Some(true));
    /// ```
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The text of every case that carries text: `text`, `decimal`, `uuid`, `date`, `time`,
    /// `timestamp`, `timestamp-tz` and `json`.
    ///
    /// ```
    /// use flowhost_sdk::{Date, Value};
    /// assert_eq!(Value::from("hi").as_str(), Some("hi"));
    /// assert_eq!(Value::from(Date("2024-01-31".into())).as_str(), Some("2024-01-31"));
    /// assert_eq!(Value::from(1).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Uuid(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, for `bytes` values.
    ///
    /// ```
    /// use flowhost_sdk::Value;
    /// assert_eq!(Value::from(&b"ab"[..]).as_bytes(), Some(&b"ab"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A JSON document always binds as `json`, even a bare number or string: the caller said JSON.
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v.to_string())
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        Value::Json(v.to_string())
    }
}

/// Marks a newtype's serde name so that [`named`](crate::named) parameters keep the exact case
/// while every other serializer (serde_json included) sees a plain string.
pub(crate) const TYPED_PREFIX: &str = "$flowhost::";

macro_rules! typed_text {
    ($(#[$doc:meta] $name:ident => $case:ident, $example:literal;)*) => {$(
        #[$doc]
        ///
        /// Plain strings usually work too (the host coerces text to the column's type on
        /// PostgreSQL); use this wrapper when the flow must state the type exactly. In a struct
        /// passed to [`named`](crate::named) it binds as this case; serde_json sees a string.
        ///
        /// ```
        #[doc = concat!("use flowhost_sdk::{", stringify!($name), ", Value};")]
        #[doc = concat!("let v = Value::from(", stringify!($name), "(\"", $example, "\".into()));")]
        #[doc = concat!("assert_eq!(v, Value::", stringify!($case), "(\"", $example, "\".into()));")]
        /// ```
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        pub struct $name(pub String);

        impl From<$name> for Value {
            fn from(v: $name) -> Self {
                Value::$case(v.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_struct(concat!("$flowhost::", stringify!($name)), &self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

typed_text! {
    /// A UUID, bound as the `uuid` case (lowercase hyphenated form).
    Uuid => Uuid, "67e55044-10b1-426f-9247-bb680e5fe0c8";
    /// A calendar date `YYYY-MM-DD`, bound as the `date` case.
    Date => Date, "2024-01-31";
    /// A time of day `HH:MM:SS[.fraction]`, bound as the `time` case.
    Time => Time, "09:30:00";
    /// A date and time without zone `YYYY-MM-DDTHH:MM:SS[.fraction]`, bound as `timestamp`.
    Timestamp => Timestamp, "2024-01-31T09:30:00";
    /// An instant in RFC 3339 form with an offset, bound as `timestamp-tz`.
    TimestampTz => TimestampTz, "2024-01-31T09:30:00Z";
    /// An exact decimal number as text (`"4.20"`), bound as `decimal`: never rounded through f64.
    Decimal => Decimal, "4.20";
    /// A JSON document as text, bound as `json`.
    Json => Json, "[1,2]";
}

/// Maps a typed newtype's serde name back to its case, for the parameter serializer; any other
/// newtype's text stays `text`.
pub(crate) fn typed_case(name: &str, text: String) -> Value {
    let Some(case) = name.strip_prefix(TYPED_PREFIX) else {
        return Value::Text(text);
    };
    match case {
        "Uuid" => Value::Uuid(text),
        "Date" => Value::Date(text),
        "Time" => Value::Time(text),
        "Timestamp" => Value::Timestamp(text),
        "TimestampTz" => Value::TimestampTz(text),
        "Decimal" => Value::Decimal(text),
        "Json" => Value::Json(text),
        _ => Value::Text(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_become_int() {
        assert_eq!(Value::from(-3i8), Value::Int(-3));
        assert_eq!(Value::from(u32::MAX), Value::Int(i64::from(u32::MAX)));
        assert_eq!(Value::from(i64::MIN), Value::Int(i64::MIN));
    }

    #[test]
    fn options_and_json() {
        assert_eq!(Value::from(Some("a")), Value::Text("a".into()));
        assert_eq!(Value::from(None::<String>), Value::Null);
        assert_eq!(Value::from(serde_json::json!(5)), Value::Json("5".into()));
    }

    #[test]
    fn typed_newtypes_serialize_as_plain_strings_in_json() {
        let text = serde_json::to_string(&Decimal("4.20".into())).unwrap();
        assert_eq!(text, "\"4.20\"");
        let back: Uuid = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back, Uuid("x".into()));
    }
}
