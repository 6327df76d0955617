//! Reading `cursor.next-packed` batches (the format is documented in `wit/database.wit`; the
//! host's encoder is `host/src/runtime/packed.rs`). A batch is one buffer; rows are decoded
//! straight from it, borrowing its text, so reading a row allocates only what the flow's own
//! type keeps.

use crate::bindings::flowhost::flow::types::Value;
use crate::decode::DecodeError;
use serde::de;

/// One value, borrowed: from a [`Value`] or from a packed batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ValueRef<'a> {
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
    fn from(value: &'a Value) -> Self {
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

impl<'a> ValueRef<'a> {
    /// The text of every case that carries text (not JSON, which is a document).
    pub(crate) fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::Decimal(s)
            | ValueRef::Text(s)
            | ValueRef::Uuid(s)
            | ValueRef::Date(s)
            | ValueRef::Time(s)
            | ValueRef::Timestamp(s)
            | ValueRef::TimestampTz(s) => Some(s),
            _ => None,
        }
    }
}

fn malformed(what: &str) -> DecodeError {
    de::Error::custom(format!(
        "the host sent a malformed packed batch ({what}); the SDK and the host disagree on the \
         contract: rebuild the flow against the host's flowhost-sdk"
    ))
}

/// Reads a little-endian u32 at `*pos`.
fn read_u32(buf: &[u8], pos: &mut usize) -> Result<u32, DecodeError> {
    let bytes = buf
        .get(*pos..*pos + 4)
        .ok_or_else(|| malformed("truncated length"))?;
    *pos += 4;
    Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
}

fn read_8(buf: &[u8], pos: &mut usize) -> Result<[u8; 8], DecodeError> {
    let bytes = buf
        .get(*pos..*pos + 8)
        .ok_or_else(|| malformed("truncated number"))?;
    *pos += 8;
    Ok(bytes.try_into().expect("eight bytes"))
}

fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DecodeError> {
    let len = read_u32(buf, pos)? as usize;
    let bytes = buf
        .get(*pos..*pos + len)
        .ok_or_else(|| malformed("truncated value"))?;
    *pos += len;
    Ok(bytes)
}

fn read_str<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(read_bytes(buf, pos)?).map_err(|_| malformed("text that is not UTF-8"))
}

/// Reads one value at `*pos`.
pub(crate) fn read_value<'a>(buf: &'a [u8], pos: &mut usize) -> Result<ValueRef<'a>, DecodeError> {
    let tag = *buf.get(*pos).ok_or_else(|| malformed("missing value"))?;
    *pos += 1;
    Ok(match tag {
        0 => ValueRef::Null,
        1 => {
            let b = *buf
                .get(*pos)
                .ok_or_else(|| malformed("truncated boolean"))?;
            *pos += 1;
            ValueRef::Boolean(b != 0)
        }
        2 => ValueRef::Int(i64::from_le_bytes(read_8(buf, pos)?)),
        3 => ValueRef::Float(f64::from_bits(u64::from_le_bytes(read_8(buf, pos)?))),
        4 => ValueRef::Decimal(read_str(buf, pos)?),
        5 => ValueRef::Text(read_str(buf, pos)?),
        6 => ValueRef::Bytes(read_bytes(buf, pos)?),
        7 => ValueRef::Uuid(read_str(buf, pos)?),
        8 => ValueRef::Date(read_str(buf, pos)?),
        9 => ValueRef::Time(read_str(buf, pos)?),
        10 => ValueRef::Timestamp(read_str(buf, pos)?),
        11 => ValueRef::TimestampTz(read_str(buf, pos)?),
        12 => ValueRef::Json(read_str(buf, pos)?),
        other => return Err(malformed(&format!("unknown value tag {other}"))),
    })
}

/// One packed batch, read row by row.
#[derive(Default)]
pub(crate) struct PackedBatch {
    buf: Vec<u8>,
    pos: usize,
    rows_left: u32,
}

impl PackedBatch {
    /// Takes a batch as the host sent it; `None` when it holds no rows (the result's end).
    pub(crate) fn new(buf: Vec<u8>) -> Result<Option<PackedBatch>, DecodeError> {
        let mut pos = 0;
        let rows_left = read_u32(&buf, &mut pos)?;
        if rows_left == 0 {
            return Ok(None);
        }
        Ok(Some(PackedBatch {
            buf,
            pos,
            rows_left,
        }))
    }

    /// Rows not read yet.
    pub(crate) fn rows_left(&self) -> u32 {
        self.rows_left
    }

    /// The next row's bytes (its values, back to back), or `None` after the last row. The
    /// batch moves past the row whatever its values turn out to hold, so a row that fails to
    /// decode never misaligns the next.
    pub(crate) fn next_row(&mut self) -> Option<Result<&[u8], DecodeError>> {
        if self.rows_left == 0 {
            return None;
        }
        self.rows_left -= 1;
        let row = read_u32(&self.buf, &mut self.pos).and_then(|len| {
            let start = self.pos;
            let end = start + len as usize;
            if end > self.buf.len() {
                return Err(malformed("truncated row"));
            }
            self.pos = end;
            Ok(start..end)
        });
        match row {
            Ok(range) => Some(Ok(&self.buf[range])),
            Err(e) => {
                // Nothing after a broken length can be trusted.
                self.rows_left = 0;
                Some(Err(e))
            }
        }
    }
}

/// Calls `f` with a row's values, read from `row` (a packed row's bytes) without allocating for
/// rows of up to 16 columns.
pub(crate) fn with_packed_row<R>(
    row: &[u8],
    columns: usize,
    f: impl FnOnce(&[ValueRef<'_>]) -> Result<R, DecodeError>,
) -> Result<R, DecodeError> {
    let mut pos = 0;
    if columns <= 16 {
        let mut values = [ValueRef::Null; 16];
        for value in values.iter_mut().take(columns) {
            *value = read_value(row, &mut pos)?;
        }
        check_end(row, pos)?;
        f(&values[..columns])
    } else {
        let values = (0..columns)
            .map(|_| read_value(row, &mut pos))
            .collect::<Result<Vec<_>, _>>()?;
        check_end(row, pos)?;
        f(&values)
    }
}

fn check_end(row: &[u8], pos: usize) -> Result<(), DecodeError> {
    if pos == row.len() {
        Ok(())
    } else {
        Err(malformed("a row with more values than columns"))
    }
}

/// Calls `f` with `values` as [`ValueRef`]s, without allocating for rows of up to 16 columns.
pub(crate) fn with_value_refs<R>(values: &[Value], f: impl FnOnce(&[ValueRef<'_>]) -> R) -> R {
    if values.len() <= 16 {
        let mut refs = [ValueRef::Null; 16];
        for (r, v) in refs.iter_mut().zip(values) {
            *r = ValueRef::from(v);
        }
        f(&refs[..values.len()])
    } else {
        let refs: Vec<ValueRef<'_>> = values.iter().map(ValueRef::from).collect();
        f(&refs)
    }
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
