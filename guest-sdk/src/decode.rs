//! serde deserializers over result rows and flow input that name the column or field at fault,
//! which `serde_json::from_value` cannot do.

use crate::bindings::flowhost::flow::types::{Column, Value};
use crate::error::Error;
use crate::packed::{ValueRef, with_packed_row, with_value_refs};
use serde::de::value::{SeqDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use std::fmt;

/// A decoding failure, with the column (or input field) it happened in once known.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl DecodeError {
    fn at(field: &str, e: impl fmt::Display) -> Self {
        DecodeError {
            field: Some(field.to_owned()),
            message: e.to_string(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            field: None,
            message: msg.to_string(),
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode {
            column: e.field,
            message: e.message,
        }
    }
}

/// Decodes one row into `T` by column name (structs, maps), by position (tuples), or, for a
/// one-column row, as that column's value (`i64`, `Option<String>`, ...).
pub(crate) fn decode_row<T: de::DeserializeOwned>(
    columns: &[Column],
    values: &[Value],
) -> Result<T, Error> {
    with_value_refs(values, |values| T::deserialize(RowDe { columns, values })).map_err(Error::from)
}

/// Decodes one row of a packed batch (its values' bytes) into `T`, as [`decode_row`] does.
pub(crate) fn decode_packed_row<T: de::DeserializeOwned>(
    columns: &[Column],
    row: &[u8],
) -> Result<T, Error> {
    with_packed_row(row, columns.len(), |values| {
        T::deserialize(RowDe { columns, values })
    })
    .map_err(Error::from)
}

fn parse_json(text: &str) -> Result<serde_json::Value, DecodeError> {
    serde_json::from_str(text).map_err(|e| de::Error::custom(format!("invalid JSON: {e}")))
}

fn json_err(e: serde_json::Error) -> DecodeError {
    de::Error::custom(e)
}

/// One value: int → number, float → number, text-like cases and decimal → string, boolean →
/// bool, null → unit/none, json → the parsed document, bytes → a sequence of u8.
#[derive(Clone, Copy)]
struct ValueDe<'de>(ValueRef<'de>);

impl<'de> IntoDeserializer<'de, DecodeError> for ValueDe<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A decimal read into a Rust number is parsed, because `SUM` and `AVG` return `numeric` on
/// PostgreSQL and a flow asking for `i64` or `f64` means the number, not the text.
macro_rules! numeric_from_decimal {
    ($($method:ident => $visit:ident: $t:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.0 {
                ValueRef::Decimal(text) => match text.parse::<$t>() {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(de::Error::custom(format!(
                        "decimal {text} does not fit {}", stringify!($t)
                    ))),
                },
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDe<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            ValueRef::Null => visitor.visit_unit(),
            ValueRef::Boolean(b) => visitor.visit_bool(b),
            ValueRef::Int(i) => visitor.visit_i64(i),
            ValueRef::Float(f) => visitor.visit_f64(f),
            ValueRef::Decimal(s)
            | ValueRef::Text(s)
            | ValueRef::Uuid(s)
            | ValueRef::Date(s)
            | ValueRef::Time(s)
            | ValueRef::Timestamp(s)
            | ValueRef::TimestampTz(s) => visitor.visit_borrowed_str(s),
            ValueRef::Bytes(b) => visitor.visit_seq(SeqDeserializer::new(b.iter().copied())),
            ValueRef::Json(s) => parse_json(s)?.deserialize_any(visitor).map_err(json_err),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            ValueRef::Null => visitor.visit_none(),
            ValueRef::Json(s) => parse_json(s)?.deserialize_option(visitor).map_err(json_err),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            ValueRef::Json(s) => parse_json(s)?
                .deserialize_enum(name, variants, visitor)
                .map_err(json_err),
            other => match other.as_str() {
                Some(s) => visitor.visit_enum(StrDeserializer::<DecodeError>::new(s)),
                None => self.deserialize_any(visitor),
            },
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            ValueRef::Bytes(b) => visitor.visit_borrowed_bytes(b),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    numeric_from_decimal!(
        deserialize_i8 => visit_i8: i8, deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32, deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8, deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32, deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32, deserialize_f64 => visit_f64: f64
    );

    serde::forward_to_deserialize_any! {
        bool i128 u128 char str string unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// A whole row: its columns, and its values borrowing `'de` (a row's own values, or a packed
/// batch).
struct RowDe<'r, 'de> {
    columns: &'r [Column],
    values: &'r [ValueRef<'de>],
}

impl<'r, 'de> RowDe<'r, 'de> {
    fn single(&self) -> Result<(&'r str, ValueDe<'de>), DecodeError> {
        match (self.columns, self.values) {
            ([column], [value]) => Ok((column.name.as_str(), ValueDe(*value))),
            _ => Err(de::Error::custom(format!(
                "a row of {} columns does not decode into a single value",
                self.values.len()
            ))),
        }
    }

    fn fields(
        &self,
    ) -> KeyedMap<&'r str, impl Iterator<Item = (&'r str, ValueDe<'de>)>, ValueDe<'de>> {
        let names = self.columns.iter().map(|c| c.name.as_str());
        KeyedMap::new(names.zip(self.values.iter().copied().map(ValueDe)))
    }
}

/// Decoding a one-column row as a plain value, blaming that column if it fails.
macro_rules! via_single_column {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let (name, value) = self.single()?;
            value.$method(visitor).map_err(|e| DecodeError::at(name, e.message))
        }
    )*};
}

impl<'de> Deserializer<'de> for RowDe<'_, 'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(self.fields())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_map(self.fields())
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(self.fields())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(RowSeq { row: self, next: 0 })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if len != self.values.len() {
            return Err(de::Error::custom(format!(
                "a row of {} columns does not decode into a tuple of {len}",
                self.values.len()
            )));
        }
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let (name, value) = self.single()?;
        visitor
            .visit_newtype_struct(value)
            .map_err(|e| DecodeError::at(name, e.message))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        enum_name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let (name, value) = self.single()?;
        value
            .deserialize_enum(enum_name, variants, visitor)
            .map_err(|e| DecodeError::at(name, e.message))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    via_single_column!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_identifier
    );
}

struct RowSeq<'r, 'de> {
    row: RowDe<'r, 'de>,
    next: usize,
}

impl<'de> SeqAccess<'de> for RowSeq<'_, 'de> {
    type Error = DecodeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DecodeError> {
        let Some(value) = self.row.values.get(self.next) else {
            return Ok(None);
        };
        let name = self
            .row
            .columns
            .get(self.next)
            .map_or("", |c| c.name.as_str());
        self.next += 1;
        seed.deserialize(ValueDe(*value))
            .map(Some)
            .map_err(|e| DecodeError::at(name, e.message))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values.len() - self.next)
    }
}

/// A map whose values are decoded lazily, so a failure can name its key (kept as given: a
/// row's column names are borrowed, never copied per row).
struct KeyedMap<K, I, D> {
    entries: I,
    pending: Option<(K, D)>,
    len: usize,
}

impl<K, I: Iterator, D> KeyedMap<K, I, D> {
    fn new(entries: I) -> Self {
        let len = entries.size_hint().0;
        KeyedMap {
            entries,
            pending: None,
            len,
        }
    }
}

impl<'de, K, I, D> MapAccess<'de> for KeyedMap<K, I, D>
where
    K: AsRef<str>,
    I: Iterator<Item = (K, D)>,
    D: Deserializer<'de>,
    D::Error: fmt::Display,
{
    type Error = DecodeError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let k = seed.deserialize(StrDeserializer::<DecodeError>::new(key.as_ref()))?;
        self.pending = Some((key, value));
        Ok(Some(k))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, DecodeError> {
        let (key, value) = self
            .pending
            .take()
            .expect("serde asks for a key before its value");
        seed.deserialize(value)
            .map_err(|e| DecodeError::at(key.as_ref(), e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

/// Parses a flow's input. An empty or blank input means `{}`; a type error in a top-level field
/// names that field.
pub(crate) fn parse_input<T: de::DeserializeOwned>(input: &str) -> Result<T, String> {
    let text = if input.trim().is_empty() { "{}" } else { input };
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid input: not JSON: {e}"))?;
    let result = match json {
        serde_json::Value::Object(map) => T::deserialize(InputDe(map)),
        other => T::deserialize(other).map_err(de::Error::custom),
    };
    result.map_err(|e| format!("invalid input: {e}"))
}

struct InputDe(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserializer<'de> for InputDe {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(KeyedMap::new(self.0.into_iter()))
    }

    /// Lets `fn run(_: ()) -> ...` take the empty input `{}`.
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0.keys().next() {
            None => visitor.visit_unit(),
            Some(k) => Err(de::Error::custom(format!("unexpected field `{k}`"))),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
