//! The packed row format of `cursor.next-packed` (documented in `wit/database.wit`): a batch of
//! rows as one byte buffer, so the guest receives one allocation per batch instead of one per
//! value. The guest SDK's decoder is `guest-sdk/src/packed.rs`; the two are tested against each
//! other through real components (tests/e2e), and each against the format here.

use crate::bindings::types::Value;
use crate::db::ValueRef;

/// Tags of the value cases, in the order of `wit/types.wit`'s `value` variant.
pub mod tag {
    pub const NULL: u8 = 0;
    pub const BOOLEAN: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const DECIMAL: u8 = 4;
    pub const TEXT: u8 = 5;
    pub const BYTES: u8 = 6;
    pub const UUID: u8 = 7;
    pub const DATE: u8 = 8;
    pub const TIME: u8 = 9;
    pub const TIMESTAMP: u8 = 10;
    pub const TIMESTAMP_TZ: u8 = 11;
    pub const JSON: u8 = 12;
}

/// Packs `rows` into one buffer: row count, then each row as its length and its values.
///
/// A value's length is a u32: a single value of 4 GiB or more cannot be packed, and never needs
/// to be, since `max-result-mb` caps a batch far below that (the reader refuses such a row).
pub fn encode(rows: &[Vec<Value>]) -> Vec<u8> {
    let estimate: usize = rows
        .iter()
        .map(|row| 4 + row.iter().map(encoded_len).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(4 + estimate);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for row in rows {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        for value in row {
            put_value(&mut out, value);
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }
    out
}

fn encoded_len(value: &Value) -> usize {
    match value {
        Value::Null => 1,
        Value::Boolean(_) => 2,
        Value::Int(_) | Value::Float(_) => 9,
        Value::Bytes(b) => 5 + b.len(),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Uuid(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s)
        | Value::TimestampTz(s)
        | Value::Json(s) => 5 + s.len(),
    }
}

/// Appends `value`'s packed form (its tag, then its bytes) to `out`.
pub fn put_value(out: &mut Vec<u8>, value: &Value) {
    let mut bytes = |tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    match value {
        Value::Null => out.push(tag::NULL),
        Value::Boolean(b) => out.extend_from_slice(&[tag::BOOLEAN, u8::from(*b)]),
        Value::Int(i) => {
            out.push(tag::INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(tag::FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(s) => bytes(tag::DECIMAL, s.as_bytes()),
        Value::Text(s) => bytes(tag::TEXT, s.as_bytes()),
        Value::Bytes(b) => bytes(tag::BYTES, b),
        Value::Uuid(s) => bytes(tag::UUID, s.as_bytes()),
        Value::Date(s) => bytes(tag::DATE, s.as_bytes()),
        Value::Time(s) => bytes(tag::TIME, s.as_bytes()),
        Value::Timestamp(s) => bytes(tag::TIMESTAMP, s.as_bytes()),
        Value::TimestampTz(s) => bytes(tag::TIMESTAMP_TZ, s.as_bytes()),
        Value::Json(s) => bytes(tag::JSON, s.as_bytes()),
    }
}

/// Reads a packed batch of rows that each hold `width` values (what `execute-batch-packed`
/// sends). A malformed batch is the guest's error, described for the flow's author.
pub fn decode(buf: &[u8], width: usize) -> Result<Vec<Vec<Value>>, String> {
    Ok(PackedBatch::index(buf, width)?.to_values())
}

/// A packed batch checked whole (counts, lengths, tags, UTF-8) and indexed, so that any value
/// can be read in place, as a [`ValueRef`], without copying it out.
#[derive(Debug)]
pub struct PackedBatch<'a> {
    buf: &'a [u8],
    rows: usize,
    width: usize,
    /// Where each value starts, row after row: value `c` of row `r` is at `offsets[r * width + c]`.
    offsets: Vec<u32>,
}

impl<'a> PackedBatch<'a> {
    /// Checks `buf` as a batch of rows of `width` values each; the error says what is wrong
    /// and where.
    pub fn index(buf: &'a [u8], width: usize) -> Result<PackedBatch<'a>, String> {
        let mut reader = Reader {
            buf,
            pos: 0,
            checked: false,
        };
        let count = reader.u32()? as usize;
        // Every row takes at least its length; a count beyond that is a lie, not an allocation.
        if count > buf.len() / 4 {
            return Err(format!("it announces {count} rows in {} bytes", buf.len()));
        }
        if u32::try_from(buf.len()).is_err() {
            return Err(format!("{} bytes is more than a batch can hold", buf.len()));
        }
        let mut offsets = Vec::with_capacity(count.saturating_mul(width).min(buf.len()));
        for index in 0..count {
            let len = reader.u32()? as usize;
            let end = reader.pos.checked_add(len).filter(|&e| e <= buf.len());
            let end = end.ok_or_else(|| format!("row {index} is truncated"))?;
            let mut values = 0;
            while reader.pos < end {
                offsets.push(reader.pos as u32);
                reader
                    .value_ref()
                    .map_err(|e| format!("row {index}: {e}"))?;
                values += 1;
            }
            if reader.pos != end || values != width {
                return Err(format!(
                    "row {index} holds {values} values, not one per name ({width})"
                ));
            }
        }
        if reader.pos != buf.len() {
            return Err(format!(
                "{} bytes follow the last row",
                buf.len() - reader.pos
            ));
        }
        Ok(PackedBatch {
            buf,
            rows: count,
            width,
            offsets,
        })
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Value `column` of row `row`, read in place.
    pub fn value(&self, row: usize, column: usize) -> ValueRef<'a> {
        let pos = self.offsets[row * self.width + column] as usize;
        // Each value is read about three times (its size against the limit, its encoding,
        // sometimes its retry): its text was checked to be UTF-8 once, in `index`.
        Reader {
            buf: self.buf,
            pos,
            checked: true,
        }
        .value_ref()
        .expect("checked when the batch was indexed")
    }

    /// Every row as owned values, in the batch's order.
    pub fn to_values(&self) -> Vec<Vec<Value>> {
        (0..self.rows())
            .map(|row| {
                (0..self.width)
                    .map(|column| self.value(row, column).to_value())
                    .collect()
            })
            .collect()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The buffer's values were read once before by a reader that checked their text is
    /// UTF-8 (see [`PackedBatch::value`]).
    checked: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or("a value is truncated")?;
        self.pos += n;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn eight(&mut self) -> Result<[u8; 8], String> {
        Ok(self.take(8)?.try_into().expect("8 bytes"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn text(&mut self) -> Result<&'a str, String> {
        let bytes = self.bytes()?;
        if self.checked {
            // SAFETY: `checked` readers only read values of a buffer `PackedBatch::index`
            // read in full, at offsets it recorded, and it refused any text that is not UTF-8;
            // the buffer is borrowed immutably for as long as the batch exists.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| "text is not UTF-8".to_owned())
    }

    fn value_ref(&mut self) -> Result<ValueRef<'a>, String> {
        Ok(match self.take(1)?[0] {
            tag::NULL => ValueRef::Null,
            tag::BOOLEAN => ValueRef::Boolean(self.take(1)?[0] != 0),
            tag::INT => ValueRef::Int(i64::from_le_bytes(self.eight()?)),
            tag::FLOAT => ValueRef::Float(f64::from_bits(u64::from_le_bytes(self.eight()?))),
            tag::DECIMAL => ValueRef::Decimal(self.text()?),
            tag::TEXT => ValueRef::Text(self.text()?),
            tag::BYTES => ValueRef::Bytes(self.bytes()?),
            tag::UUID => ValueRef::Uuid(self.text()?),
            tag::DATE => ValueRef::Date(self.text()?),
            tag::TIME => ValueRef::Time(self.text()?),
            tag::TIMESTAMP => ValueRef::Timestamp(self.text()?),
            tag::TIMESTAMP_TZ => ValueRef::TimestampTz(self.text()?),
            tag::JSON => ValueRef::Json(self.text()?),
            other => return Err(format!("unknown value tag {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_what_encode_writes() {
        let rows = vec![
            vec![
                Value::Null,
                Value::Boolean(false),
                Value::Int(i64::MIN),
                Value::Float(-0.5),
                Value::Decimal("1.10".into()),
                Value::Text("ünïcode".into()),
                Value::Bytes(vec![1, 2, 3]),
            ],
            vec![
                Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
                Value::Date("2024-01-02".into()),
                Value::Time("10:00:00.5".into()),
                Value::Timestamp("2024-01-02T10:00:00".into()),
                Value::TimestampTz("2024-01-02T10:00:00Z".into()),
                Value::Json("[1]".into()),
                Value::Text(String::new()),
            ],
        ];
        // The generated Value has no PartialEq: compare what Debug shows.
        let debug = |rows: &[Vec<Value>]| format!("{rows:?}");
        assert_eq!(debug(&decode(&encode(&rows), 7).unwrap()), debug(&rows));
        assert!(decode(&encode(&[]), 3).unwrap().is_empty());
    }

    #[test]
    fn an_indexed_batch_reads_each_value_in_place() {
        let rows = vec![
            vec![Value::Int(1), Value::Text("ä".into()), Value::Null],
            vec![
                Value::Int(2),
                Value::Text(String::new()),
                Value::Bytes(vec![7]),
            ],
        ];
        let packed = encode(&rows);
        let batch = PackedBatch::index(&packed, 3).unwrap();
        assert_eq!(batch.rows(), 2);
        assert!(matches!(batch.value(1, 0), ValueRef::Int(2)));
        assert!(matches!(batch.value(0, 1), ValueRef::Text("ä")));
        assert!(matches!(batch.value(1, 1), ValueRef::Text("")));
        assert!(batch.value(0, 2).is_null());
        assert!(matches!(batch.value(1, 2), ValueRef::Bytes([7])));
        let debug = |rows: &[Vec<Value>]| format!("{rows:?}");
        assert_eq!(debug(&batch.to_values()), debug(&rows));
        assert_eq!(PackedBatch::index(&encode(&[]), 0).unwrap().rows(), 0);
        // Rows without values (a statement without placeholders) still count.
        let empty_rows = encode(&[vec![], vec![]]);
        assert_eq!(PackedBatch::index(&empty_rows, 0).unwrap().rows(), 2);
    }

    #[test]
    fn malformed_batches_are_refused_with_a_reason() {
        let good = encode(&[vec![Value::Int(1), Value::Text("a".into())]]);
        let cases: Vec<(Vec<u8>, usize, &str)> = vec![
            (good.clone(), 3, "holds 2 values, not one per name (3)"),
            (good[..good.len() - 1].to_vec(), 2, "row 0 is truncated"),
            (
                [good.clone(), vec![0]].concat(),
                2,
                "1 bytes follow the last row",
            ),
            (vec![255, 255, 255, 255], 1, "announces 4294967295 rows"),
            (vec![1, 0, 0, 0, 1, 0, 0, 0, 42], 1, "unknown value tag 42"),
            (
                vec![1, 0, 0, 0, 6, 0, 0, 0, 5, 1, 0, 0, 0, 0xff],
                1,
                "not UTF-8",
            ),
            (vec![1, 0], 1, "truncated"),
        ];
        for (buf, width, want) in cases {
            let err = decode(&buf, width).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn an_empty_batch_is_a_zero_count() {
        assert_eq!(encode(&[]), vec![0, 0, 0, 0]);
    }

    #[test]
    fn every_case_is_laid_out_as_the_contract_says() {
        let rows = vec![
            vec![
                Value::Null,
                Value::Boolean(true),
                Value::Int(-2),
                Value::Float(1.5),
                Value::Text("hé".into()),
            ],
            vec![Value::Bytes(vec![0, 255]), Value::Json("{}".into())],
        ];
        let packed = encode(&rows);
        let mut expected = vec![2, 0, 0, 0];
        let row1: Vec<u8> = [
            vec![tag::NULL],
            vec![tag::BOOLEAN, 1],
            [vec![tag::INT], (-2i64).to_le_bytes().to_vec()].concat(),
            [vec![tag::FLOAT], 1.5f64.to_bits().to_le_bytes().to_vec()].concat(),
            vec![tag::TEXT, 3, 0, 0, 0, b'h', 0xc3, 0xa9],
        ]
        .concat();
        expected.extend((row1.len() as u32).to_le_bytes());
        expected.extend(&row1);
        let row2 = vec![
            tag::BYTES,
            2,
            0,
            0,
            0,
            0,
            255,
            tag::JSON,
            2,
            0,
            0,
            0,
            b'{',
            b'}',
        ];
        expected.extend((row2.len() as u32).to_le_bytes());
        expected.extend(&row2);
        assert_eq!(packed, expected);
    }

    #[test]
    fn the_estimate_is_exact() {
        let rows = vec![vec![
            Value::Decimal("-1.50".into()),
            Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            Value::Date("2024-01-02".into()),
            Value::Time("10:00:00".into()),
            Value::Timestamp("2024-01-02T10:00:00".into()),
            Value::TimestampTz("2024-01-02T10:00:00Z".into()),
        ]];
        let packed = encode(&rows);
        let estimate: usize = 4 + rows[0].iter().map(encoded_len).sum::<usize>() + 4;
        assert_eq!(packed.len(), estimate);
    }
}
