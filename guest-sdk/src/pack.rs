//! Writing `execute-batch-packed` rows: each item's fields serialised straight into one buffer
//! (the format of `wit/database.wit`), with the field names sent once. Where the named path
//! made a string for every field name and value of every row, and the host a copy of each,
//! this makes one buffer.

use crate::bindings::flowhost::flow::types::Value;
use crate::ser::to_value;
use crate::value::{TYPED_PREFIX, typed_case};
use serde::Serialize;
use serde::ser::{self, Impossible, SerializeMap, SerializeStruct};
use std::fmt;

/// A batch of parameter rows, packed.
pub(crate) struct PackedRows {
    /// The field names, in the order every row holds its values.
    pub(crate) names: Vec<String>,
    /// Row count, then each row: its length and its values.
    pub(crate) buf: Vec<u8>,
}

impl PackedRows {
    /// Packs `items` (structs or maps). `None` when they do not pack the same way: a map
    /// whose keys differ from the first item's, a value that will not convert, an item that
    /// is not a struct or map. The caller then sends named sets, which bind what can be bound
    /// and report what cannot exactly as before.
    pub(crate) fn pack<T: Serialize>(items: &[T]) -> Option<PackedRows> {
        let mut rows = PackedRows {
            names: Vec::new(),
            buf: Vec::with_capacity(4 + items.len() * 64),
        };
        rows.buf
            .extend_from_slice(&(items.len() as u32).to_le_bytes());
        for (index, item) in items.iter().enumerate() {
            let start = rows.buf.len();
            rows.buf.extend_from_slice(&[0; 4]);
            item.serialize(RowSer {
                rows: &mut rows,
                first: index == 0,
            })
            .ok()?;
            let len = (rows.buf.len() - start - 4) as u32;
            rows.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        }
        Some(rows)
    }
}

/// Why an item did not pack; the named path reports the real reason.
#[derive(Debug)]
struct Unpackable;

impl fmt::Display for Unpackable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not packable")
    }
}

impl std::error::Error for Unpackable {}

impl ser::Error for Unpackable {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unpackable
    }
}

/// One item: a struct or a map at the top.
struct RowSer<'a> {
    rows: &'a mut PackedRows,
    first: bool,
}

struct RowFields<'a> {
    rows: &'a mut PackedRows,
    first: bool,
    next: usize,
    key: Option<String>,
}

impl RowFields<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Unpackable> {
        if self.first {
            self.rows.names.push(name.to_owned());
        } else if self.rows.names.get(self.next).map(String::as_str) != Some(name) {
            return Err(Unpackable);
        }
        self.next += 1;
        let buf = &mut self.rows.buf;
        match value.serialize(ValueWriter { buf: &mut *buf }) {
            Ok(()) => Ok(()),
            // Anything but a plain scalar: bound as the named path binds it.
            Err(Unpackable) => {
                put_value(buf, &to_value(value).map_err(|_| Unpackable)?);
                Ok(())
            }
        }
    }

    fn end(self) -> Result<(), Unpackable> {
        if self.next == self.rows.names.len() {
            Ok(())
        } else {
            Err(Unpackable)
        }
    }
}

macro_rules! unpackable {
    ($($method:ident($($arg:ty),*) -> $ret:ty),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, Unpackable> {
            Err(Unpackable)
        }
    )*};
}

impl<'a> ser::Serializer for RowSer<'a> {
    type Ok = ();
    type Error = Unpackable;
    type SerializeSeq = Impossible<(), Unpackable>;
    type SerializeTuple = Impossible<(), Unpackable>;
    type SerializeTupleStruct = Impossible<(), Unpackable>;
    type SerializeTupleVariant = Impossible<(), Unpackable>;
    type SerializeMap = RowFields<'a>;
    type SerializeStruct = RowFields<'a>;
    type SerializeStructVariant = Impossible<(), Unpackable>;

    fn serialize_map(self, _: Option<usize>) -> Result<RowFields<'a>, Unpackable> {
        Ok(RowFields {
            rows: self.rows,
            first: self.first,
            next: 0,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<RowFields<'a>, Unpackable> {
        self.serialize_map(None)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Unpackable> {
        v.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Unpackable> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unpackable> {
        Err(Unpackable)
    }

    unpackable!(
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
}

impl SerializeStruct for RowFields<'_> {
    type Ok = ();
    type Error = Unpackable;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unpackable> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Unpackable> {
        RowFields::end(self)
    }
}

impl SerializeMap for RowFields<'_> {
    type Ok = ();
    type Error = Unpackable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unpackable> {
        match to_value(key) {
            Ok(Value::Text(k)) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(Unpackable),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unpackable> {
        let key = self.key.take().ok_or(Unpackable)?;
        self.field(&key, value)
    }
    fn end(self) -> Result<(), Unpackable> {
        RowFields::end(self)
    }
}

/// Writes one scalar; refuses (writing nothing) anything else, which is then converted as the
/// named path converts it.
struct ValueWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl ValueWriter<'_> {
    fn int(self, v: i64) -> Result<(), Unpackable> {
        self.buf.push(2);
        self.buf.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn float(self, v: f64) -> Result<(), Unpackable> {
        self.buf.push(3);
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
}

macro_rules! small_ints {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<(), Unpackable> {
            self.int(i64::from(v))
        }
    )*};
}

impl ser::Serializer for ValueWriter<'_> {
    type Ok = ();
    type Error = Unpackable;
    type SerializeSeq = Impossible<(), Unpackable>;
    type SerializeTuple = Impossible<(), Unpackable>;
    type SerializeTupleStruct = Impossible<(), Unpackable>;
    type SerializeTupleVariant = Impossible<(), Unpackable>;
    type SerializeMap = Impossible<(), Unpackable>;
    type SerializeStruct = Impossible<(), Unpackable>;
    type SerializeStructVariant = Impossible<(), Unpackable>;

    small_ints!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32);

    fn serialize_u64(self, v: u64) -> Result<(), Unpackable> {
        match i64::try_from(v) {
            Ok(i) => self.int(i),
            Err(_) => self.float(v as f64),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unpackable> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unpackable> {
        self.float(v)
    }
    fn serialize_bool(self, v: bool) -> Result<(), Unpackable> {
        self.buf.extend_from_slice(&[1, u8::from(v)]);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unpackable> {
        put_bytes(self.buf, 5, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unpackable> {
        put_bytes(self.buf, 6, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unpackable> {
        self.buf.push(0);
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), Unpackable> {
        self.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Unpackable> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Unpackable> {
        if !name.starts_with(TYPED_PREFIX) {
            return v.serialize(self);
        }
        // A typed wrapper (`Decimal`, `Uuid`, ...): its text, bound as its case.
        match to_value(v).map_err(|_| Unpackable)? {
            Value::Text(text) => put_value(self.buf, &typed_case(name, text)),
            other => put_value(self.buf, &other),
        }
        Ok(())
    }

    unpackable!(
        serialize_i128(i128) -> (), serialize_u128(u128) -> (), serialize_char(char) -> (),
        serialize_unit_struct(&'static str) -> (),
        serialize_unit_variant(&'static str, u32, &'static str) -> (),
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

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unpackable> {
        Err(Unpackable)
    }
}

fn put_bytes(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    buf.push(tag);
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Writes a [`Value`] in the packed format.
pub(crate) fn put_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.push(0),
        Value::Boolean(b) => buf.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            buf.push(2);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            buf.push(3);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(s) => put_bytes(buf, 4, s.as_bytes()),
        Value::Text(s) => put_bytes(buf, 5, s.as_bytes()),
        Value::Bytes(b) => put_bytes(buf, 6, b),
        Value::Uuid(s) => put_bytes(buf, 7, s.as_bytes()),
        Value::Date(s) => put_bytes(buf, 8, s.as_bytes()),
        Value::Time(s) => put_bytes(buf, 9, s.as_bytes()),
        Value::Timestamp(s) => put_bytes(buf, 10, s.as_bytes()),
        Value::TimestampTz(s) => put_bytes(buf, 11, s.as_bytes()),
        Value::Json(s) => put_bytes(buf, 12, s.as_bytes()),
    }
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
