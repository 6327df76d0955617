//! Rows packed as they are read, for cursors: each row is appended to the reader's buffer in
//! `cursor.next-packed`'s row format (its length, then its values; `runtime/packed.rs`).
//!
//! A backend that can write a value's packed form straight from the driver's bytes does so
//! (PostgreSQL, `postgres::pack_rows`), which spares a million-row read a `Value`, and for text
//! a `String`, per value, and a second pass to pack them. Any other backend's rows are decoded
//! to values first and packed from those ([`PackedValues`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use super::session::row_bytes;
use super::{DbError, RowStream};
use crate::bindings::types::Value;
use crate::runtime::packed;

/// A result being read into packed rows.
pub trait PackedRows: Send {
    /// Appends the next row to `out` (its length, then its values) and answers its size as
    /// [`row_bytes`] counts it, so the result-size limit reads the same on every path; `None`
    /// at the end of the result. On an error nothing of the row is left in `out`.
    fn poll_pack(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Option<Result<u64, DbError>>>;
}

pub type PackedStream<'c> = Pin<Box<dyn PackedRows + 'c>>;

/// Appends one row, computed by `write`, with its length in front; on an error `out` is left
/// as it was.
pub fn append_row<E>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<u64, E>,
) -> Result<u64, E> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match write(out) {
        Ok(size) => {
            let len = (out.len() - start - 4) as u32;
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            Ok(size)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Rows decoded to values by the backend, packed value by value.
pub struct PackedValues<'c>(pub RowStream<'c>);

impl PackedRows for PackedValues<'_> {
    fn poll_pack(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Option<Result<u64, DbError>>> {
        futures_util::Stream::poll_next(self.0.as_mut(), cx).map(|row| {
            row.map(|row| {
                let row: Vec<Value> = row?;
                append_row(out, |out| {
                    row.iter().for_each(|value| packed::put_value(out, value));
                    Ok(row_bytes(&row))
                })
            })
        })
    }
}

/// The next packed row of `rows`, appended to `out`.
pub async fn next_into(
    rows: &mut PackedStream<'_>,
    out: &mut Vec<u8>,
) -> Option<Result<u64, DbError>> {
    std::future::poll_fn(|cx| rows.as_mut().poll_pack(cx, out)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    #[tokio::test]
    async fn rows_of_values_pack_as_the_runtime_packs_them() {
        let rows = vec![
            vec![Value::Int(7), Value::Text("seven".into()), Value::Null],
            vec![
                Value::Int(8),
                Value::Text("eight".into()),
                Value::Boolean(true),
            ],
        ];
        let stream: RowStream<'static> =
            Box::pin(stream::iter(rows.clone().into_iter().map(Ok::<_, DbError>)));
        let mut packed_rows: PackedStream<'static> = Box::pin(PackedValues(stream));
        let mut out = 2u32.to_le_bytes().to_vec();
        let mut sizes = Vec::new();
        while let Some(size) = next_into(&mut packed_rows, &mut out).await {
            sizes.push(size.unwrap());
        }
        assert_eq!(
            out,
            packed::encode(&rows),
            "the same bytes as the runtime's encoder"
        );
        assert_eq!(sizes, vec![row_bytes(&rows[0]), row_bytes(&rows[1])]);
    }

    #[test]
    fn a_failed_row_leaves_nothing_behind() {
        let mut out = vec![1, 2, 3];
        let result = append_row(&mut out, |out| {
            out.extend_from_slice(b"half a row");
            Err("conversion failed")
        });
        assert_eq!(result, Err("conversion failed"));
        assert_eq!(out, vec![1, 2, 3]);
    }
}
