//! serde serializers that turn Rust values into parameter [`Value`]s, keeping the exact case
//! of the typed wrappers, which a detour through `serde_json::Value` would lose.

use crate::bindings::flowhost::flow::types::Value;
use crate::error::Error;
use crate::params::Params;
use crate::value::typed_case;
use serde::Serialize;
use serde::ser::{self, Impossible, SerializeMap, SerializeStruct};
use std::fmt;

/// One value: scalars map directly, anything compound becomes its JSON text.
pub(crate) fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    match value.serialize(ScalarSer) {
        Ok(v) => Ok(v),
        Err(SerError::Compound) => Ok(Value::Json(serde_json::to_string(value)?)),
        Err(SerError::Other(m)) => Err(Error::msg(format!("cannot bind parameter: {m}"))),
    }
}

/// Each field of a struct or map becomes a named value in `out`.
pub(crate) fn named_fields<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Params,
) -> Result<(), Error> {
    match value.serialize(NamedSer { out }) {
        Ok(()) => Ok(()),
        Err(SerError::Compound) => Err(Error::msg("named parameters need a struct or a map")),
        Err(SerError::Other(m)) => Err(Error::msg(format!("cannot bind parameters: {m}"))),
    }
}

/// `Compound` is not a failure: it tells `to_value` to fall back to JSON text for the value.
#[derive(Debug)]
enum SerError {
    Compound,
    Other(String),
}

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerError::Compound => f.write_str("a compound value"),
            SerError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError::Other(msg.to_string())
    }
}

/// Serialises one scalar straight into a [`Value`]; anything compound reports
/// [`SerError::Compound`] so the caller can serialise it again as JSON.
struct ScalarSer;

macro_rules! scalar_ints {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<Value, SerError> {
            Ok(Value::Int(i64::from(v)))
        }
    )*};
}

macro_rules! compound {
    ($($method:ident($($arg:ty),*) -> $ret:ty),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, SerError> {
            Err(SerError::Compound)
        }
    )*};
}

impl ser::Serializer for ScalarSer {
    type Ok = Value;
    type Error = SerError;
    type SerializeSeq = Impossible<Value, SerError>;
    type SerializeTuple = Impossible<Value, SerError>;
    type SerializeTupleStruct = Impossible<Value, SerError>;
    type SerializeTupleVariant = Impossible<Value, SerError>;
    type SerializeMap = Impossible<Value, SerError>;
    type SerializeStruct = Impossible<Value, SerError>;
    type SerializeStructVariant = Impossible<Value, SerError>;

    scalar_ints!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32);

    fn serialize_u64(self, v: u64) -> Result<Value, SerError> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerError> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerError> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerError> {
        Ok(Value::Float(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerError> {
        Ok(Value::Float(v))
    }
    fn serialize_bool(self, v: bool) -> Result<Value, SerError> {
        Ok(Value::Boolean(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, SerError> {
        Ok(Value::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerError> {
        Ok(Value::Text(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, SerError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, SerError> {
        Ok(Value::Text(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Value, SerError> {
        match v.serialize(self)? {
            Value::Text(text) => Ok(typed_case(name, text)),
            other => Ok(other),
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, SerError> {
        Err(SerError::Compound)
    }

    compound!(
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeStructVariant
    );
}

/// Accepts only a struct or a map at the top and turns each field into a named value.
struct NamedSer<'a> {
    out: &'a mut Params,
}

struct NamedFields<'a> {
    out: &'a mut Params,
    key: Option<String>,
}

impl NamedFields<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, name: String, value: &T) -> Result<(), SerError> {
        let value = to_value(value).map_err(|e| SerError::Other(format!("field `{name}`: {e}")))?;
        self.out.set(name, value);
        Ok(())
    }
}

impl<'a> ser::Serializer for NamedSer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = NamedFields<'a>;
    type SerializeStruct = NamedFields<'a>;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_map(self, _: Option<usize>) -> Result<NamedFields<'a>, SerError> {
        Ok(NamedFields {
            out: self.out,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<NamedFields<'a>, SerError> {
        self.serialize_map(None)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), SerError> {
        v.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), SerError> {
        v.serialize(self)
    }

    compound!(
        serialize_bool(bool) -> (), serialize_i8(i8) -> (), serialize_i16(i16) -> (),
        serialize_i32(i32) -> (), serialize_i64(i64) -> (), serialize_u8(u8) -> (),
        serialize_u16(u16) -> (), serialize_u32(u32) -> (), serialize_u64(u64) -> (),
        serialize_f32(f32) -> (), serialize_f64(f64) -> (), serialize_char(char) -> (),
        serialize_str(&str) -> (), serialize_bytes(&[u8]) -> (), serialize_none() -> (),
        serialize_unit() -> (), serialize_unit_struct(&'static str) -> (),
        serialize_unit_variant(&'static str, u32, &'static str) -> (),
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeTupleVariant,
        serialize_struct_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeStructVariant
    );

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), SerError> {
        Err(SerError::Compound)
    }
}

impl SerializeStruct for NamedFields<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.field(key.to_owned(), value)
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}

impl SerializeMap for NamedFields<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerError> {
        match key.serialize(ScalarSer) {
            Ok(Value::Text(k)) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(SerError::Other("parameter names must be strings".into())),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        let key = self.key.take().expect("serde calls serialize_key first");
        self.field(key, value)
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}
