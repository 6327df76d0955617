//! PostgreSQL rows packed for cursors straight from their wire bytes (`packed_rows.rs` says
//! why): the common types are written as they arrive, every other through the decoded path.

use sqlx::postgres::{PgConnection, PgTypeInfo, PgValueRef};
use sqlx::{Column as _, Row, ValueRef};

use super::packed_rows::{PackedRows, PackedStream, append_row};
use super::postgres::{
    BOOL, BPCHAR, FLOAT8, INT2, INT4, INT8, JSON, JSONB, NAME, PgRows, TEXT, UNKNOWN, VARCHAR, XML,
    base_type, decode_value, start,
};
use super::session::value_bytes;
use super::{Database, DbError, Statement};
use crate::bindings::types::{Column, Value};
use crate::runtime::packed::{put_value, tag};

/// Prepares, binds and starts `stmt` for a cursor; each row is packed straight from its wire
/// bytes (`packed_rows.rs` says why).
pub(super) async fn open_packed<'c>(
    conn: &'c mut PgConnection,
    db: &'c Database,
    stmt: &Statement,
    values: &[&Value],
) -> Result<(Vec<Column>, PackedStream<'c>), DbError> {
    let (columns, rows) = start(conn, db, stmt, values).await?;
    let packing = PackingRows {
        rows,
        db,
        types: Vec::new(),
    };
    Ok((columns, Box::pin(packing)))
}

/// A result whose rows are packed as they arrive.
struct PackingRows<'c> {
    rows: PgRows<'c>,
    db: &'c Database,
    /// Each column's base type, resolved from the first row (see `open_stream`).
    types: Vec<PgTypeInfo>,
}

impl PackedRows for PackingRows<'_> {
    fn poll_pack(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut Vec<u8>,
    ) -> std::task::Poll<Option<Result<u64, DbError>>> {
        let this = &mut *self;
        this.rows.as_mut().poll_next(cx).map(|row| {
            row.map(|row| {
                let row = row.map_err(|e| this.db.error(e))?;
                if this.types.is_empty() {
                    this.types = row
                        .columns()
                        .iter()
                        .map(|c| base_type(c.type_info()).clone())
                        .collect();
                }
                append_row(out, |out| pack_row(this.db, &row, &this.types, out))
            })
        })
    }
}

/// Packs `row`, whose columns have the base types `types`; answers its size as `row_bytes`
/// counts it.
fn pack_row(
    db: &Database,
    row: &sqlx::postgres::PgRow,
    types: &[PgTypeInfo],
    out: &mut Vec<u8>,
) -> Result<u64, DbError> {
    let mut size = 0;
    for (i, ti) in types.iter().enumerate().take(row.len()) {
        let raw = row.try_get_raw(i).map_err(|e| db.error(e))?;
        size += pack_value(raw, ti, out).map_err(|message| {
            DbError::conversion(
                db.name(),
                format!("column '{}': {message}", row.columns()[i].name()),
            )
        })?;
    }
    Ok(size)
}

/// Packs one value. The common types are written straight from their wire bytes; every other
/// type, and any value not of the expected size, goes through [`decode_value`], so the
/// result (and every error) is exactly what the decoded path gives.
fn pack_value(raw: PgValueRef<'_>, ti: &PgTypeInfo, out: &mut Vec<u8>) -> Result<u64, String> {
    if raw.is_null() {
        out.push(tag::NULL);
        return Ok(value_bytes(&Value::Null));
    }
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    let int = |v: i64| v.to_le_bytes();
    match (ti.oid().map(|o| o.0).unwrap_or(0), bytes.len()) {
        (BOOL, 1) => Ok(put_fixed(out, tag::BOOLEAN, &[u8::from(bytes[0] != 0)])),
        (INT2, 2) => Ok(put_fixed(
            out,
            tag::INT,
            &int(i16::from_be_bytes([bytes[0], bytes[1]]).into()),
        )),
        (INT4, 4) => Ok(put_fixed(
            out,
            tag::INT,
            &int(i32::from_be_bytes(bytes.try_into().unwrap()).into()),
        )),
        (INT8, 8) => Ok(put_fixed(
            out,
            tag::INT,
            &int(i64::from_be_bytes(bytes.try_into().unwrap())),
        )),
        (FLOAT8, 8) => {
            let f = f64::from_be_bytes(bytes.try_into().unwrap());
            Ok(put_fixed(out, tag::FLOAT, &f.to_bits().to_le_bytes()))
        }
        (TEXT | VARCHAR | BPCHAR | NAME | XML | UNKNOWN, _) => put_text(out, tag::TEXT, bytes),
        (JSON, _) => put_text(out, tag::JSON, bytes),
        (JSONB, _) if bytes.first() == Some(&1) => put_text(out, tag::JSON, &bytes[1..]),
        _ => {
            let value = decode_value(raw, ti)?;
            put_value(out, &value);
            Ok(value_bytes(&value))
        }
    }
}

/// A fixed-size value's tag and bytes; 16 bytes as `value_bytes` counts it.
fn put_fixed(out: &mut Vec<u8>, tag: u8, payload: &[u8]) -> u64 {
    out.push(tag);
    out.extend_from_slice(payload);
    value_bytes(&Value::Int(0))
}

/// A text value's tag, length and bytes, once they are known to be UTF-8.
fn put_text(out: &mut Vec<u8>, tag: u8, text: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(text).map_err(|e| e.to_string())?;
    out.push(tag);
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text);
    Ok(16 + text.len() as u64)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;
    use crate::config::{DatabaseConfig, DatabaseTarget, PoolSettings};
    use crate::db::packed_rows::next_into;
    use crate::db::session::row_bytes;
    use crate::manifest::Access;
    use crate::runtime::packed::encode;

    /// Every type the fast path writes, and some it hands to the decoded path, with NULLs, a
    /// NaN and infinities, from a real server: packed straight from the wire and decoded then
    /// packed must give the same bytes and the same sizes.
    #[tokio::test]
    async fn rows_packed_from_the_wire_match_rows_decoded_then_packed() {
        let target = DatabaseTarget::Postgres {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "postgres".into(),
            user: Some("postgres".into()),
            password: None,
            options: Vec::new(),
        };
        let config = DatabaseConfig::new("packed_test", target, PoolSettings::default());
        let db = Database::open(&config)
            .await
            .expect("these tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth)");
        let sql = "SELECT g % 2 = 0, (g * 7)::int2, (-g)::int4, 9007199254740993 + g, \
                   1.5::float4 * g, -2.25::float8 * g, 'NaN'::float8, (12.340 * g)::numeric, \
                   'tëxt ' || g, ('v' || g)::varchar, 'ab'::char(3), 'nm'::name, '\\x0102'::bytea, \
                   '{\"a\": 1}'::json, ('{\"b\": [1, ' || g || ']}')::jsonb, \
                   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '2026-12-07'::date + g, \
                   'infinity'::date, '12:34:56.789'::time, '2026-12-07 10:00:00'::timestamp, \
                   '2026-12-07 10:00:00+02'::timestamptz, 'infinity'::timestamptz, \
                   CASE WHEN g = 2 THEN NULL ELSE g END, NULL::text, 7::oid, 'x'::\"char\", \
                   'int4'::regtype::text, ''::text \
                   FROM generate_series(1, 3) g";
        let stmt = db.guest_statement(sql, Access::ReadOnly).unwrap();
        let mut conn = db.acquire().await.unwrap();

        let (columns, rows) = conn.open_stream(&db, &stmt, &[]).await.unwrap();
        let rows: Vec<Vec<Value>> = rows.try_collect().await.unwrap();
        assert_eq!(rows.len(), 3);
        assert!(matches!(rows[1][22], Value::Null), "{:?}", rows[1]);

        let (packed_columns, mut packed_rows) = conn.open_packed(&db, &stmt, &[]).await.unwrap();
        assert_eq!(format!("{packed_columns:?}"), format!("{columns:?}"));
        let mut out = 3u32.to_le_bytes().to_vec();
        let mut sizes = Vec::new();
        while let Some(size) = next_into(&mut packed_rows, &mut out).await {
            sizes.push(size.unwrap());
        }
        drop(packed_rows);
        drop(conn);
        assert_eq!(out, encode(&rows));
        assert_eq!(sizes, rows.iter().map(|r| row_bytes(r)).collect::<Vec<_>>());
        db.close().await;
    }
}
