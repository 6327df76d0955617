//! PostgreSQL: pool setup, parameter encoding by the server's inferred types, value decoding.
//!
//! Parameters are encoded for the type PostgreSQL inferred for each placeholder (read from the
//! prepared statement, which sqlx caches per connection), the way asyncpg does. So a flow may
//! pass a date or a UUID as plain text, an integer into a `numeric` column or a decimal into a
//! `float8` one, and the server never sees a mistyped binary value.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use futures_util::TryStreamExt;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgPoolOptions, PgSslMode, PgTypeInfo,
    PgTypeKind, PgValueRef, Postgres,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column as _, Either, Encode, Executor, PgConnection, Row, SqlSafeStr,
    Statement as _, Type, TypeInfo, ValueRef as _, encode::IsNull, error::BoxDynError,
    postgres::types::Oid,
};

use super::numeric::{self, shorten};
use super::temporal;
use super::{Database, DbError, RowStream, Statement, ValueRef};
use crate::bindings::types::{Column, Value};
use crate::config::{DatabaseTarget, PoolSettings};
use crate::sql::Placeholders;

/// Builds the pool; connections open lazily on first acquire.
pub fn pool(
    name: &str,
    target: &DatabaseTarget,
    settings: &PoolSettings,
) -> Result<sqlx::PgPool, DbError> {
    let DatabaseTarget::Postgres {
        host,
        port,
        database,
        user,
        password,
        options,
    } = target
    else {
        unreachable!("postgres::pool called for {target}");
    };
    let mut opts = PgConnectOptions::new_without_pgpass()
        .port(*port)
        .database(database)
        .application_name("flowhost");
    opts = if host.starts_with('/') {
        opts.socket(host)
    } else {
        opts.host(host)
    };
    if let Some(user) = user {
        opts = opts.username(user);
    }
    if let Some(password) = password {
        opts = opts.password(password.expose());
    }
    let mut server_options: Vec<(String, String)> = Vec::new();
    if let Some(timeout) = settings.statement_timeout {
        server_options.push((
            "statement_timeout".into(),
            format!("{}ms", timeout.as_millis()),
        ));
    }
    for (key, value) in options {
        match key.as_str() {
            "sslmode" => {
                let mode: PgSslMode = value.parse().map_err(|_| DbError::Connection {
                    database: name.to_owned(),
                    target: target.to_string(),
                    message: format!("unknown sslmode '{value}'"),
                })?;
                opts = opts.ssl_mode(mode);
            }
            "sslrootcert" => opts = opts.ssl_root_cert(value),
            "application_name" => opts = opts.application_name(value),
            "options" => {}
            // Anything else is a server setting (`?search_path=etl`), as libpq's `options`.
            _ => server_options.push((key.clone(), value.clone())),
        }
    }
    if !server_options.is_empty() {
        opts = opts.options(server_options);
    }
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .max_lifetime(settings.max_lifetime)
        .idle_timeout(settings.idle_timeout)
        .test_before_acquire(settings.test_before_acquire)
        .connect_lazy_with(opts))
}

/// Prepares (cached per connection) and binds `values` by the types the server inferred.
pub(super) async fn bind(
    conn: &mut PgConnection,
    db: &Database,
    stmt: &Statement,
) -> Result<(Vec<PgTypeInfo>, Vec<Column>), DbError> {
    let prepared = conn
        .prepare(AssertSqlSafe(stmt.sql.clone()).into_sql_str())
        .await
        .map_err(|e| db.error(e))?;
    let types = match prepared.parameters() {
        Some(Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    };
    Ok((types, columns_of(prepared.columns())))
}

pub(super) fn arguments(
    db: &Database,
    types: &[PgTypeInfo],
    values: &[&Value],
) -> Result<PgArguments, DbError> {
    if types.len() != values.len() {
        return Err(DbError::invalid(
            db.name(),
            format!(
                "the statement has {} parameter(s) but {} value(s) were bound",
                types.len(),
                values.len()
            ),
        ));
    }
    let mut args = PgArguments::default();
    for (index, (value, target)) in values.iter().zip(types).enumerate() {
        args.add(PgParam {
            value,
            target: target.clone(),
        })
        .map_err(|e| DbError::conversion(db.name(), format!("parameter ${}: {e}", index + 1)))?;
    }
    Ok(args)
}

/// Rows as sqlx reads them off the wire.
pub(super) type PgRows<'c> =
    futures_util::stream::BoxStream<'c, Result<sqlx::postgres::PgRow, sqlx::Error>>;

/// Starts `stmt` with `values` bound by the types the server inferred; returns its columns and
/// its rows as they arrive.
///
/// A statement without parameters is not described on its own first. `PgConnection::prepare`
/// (what [`bind`] needs, to learn the parameters' types) also looks up in `pg_attribute` where
/// each result column comes from, a query of its own for every table a connection reads for
/// the first time: three extra round trips, one of them on a cold catalog, before an rpa1
/// run's first rows. Run directly, sqlx prepares the statement without that lookup and caches
/// it; the columns come with the first row, or, for an empty result, from that cache.
pub(super) async fn start<'c>(
    conn: &'c mut PgConnection,
    db: &Database,
    stmt: &Statement,
    values: &[&Value],
) -> Result<(Vec<Column>, PgRows<'c>), DbError> {
    use futures_util::StreamExt;
    let takes_parameters = !matches!(
        stmt.placeholders,
        Placeholders::None | Placeholders::Positional(0)
    );
    if takes_parameters || !values.is_empty() {
        let (types, columns) = bind(conn, db, stmt).await?;
        let args = arguments(db, &types, values)?;
        let rows = sqlx::query_with(AssertSqlSafe(stmt.sql.clone()), args).fetch(conn);
        return Ok((columns, rows));
    }
    // Borrowing `conn` for the rows and, when there are none, again afterwards is sound but
    // beyond today's borrow checker (a borrow returned on one branch only), hence the pointer.
    let conn = ExclusiveConn(conn);
    // SAFETY: the pointer came from a `&'c mut` that is not used again; `rows` is the only
    // reference made from it until it is dropped below.
    let mut rows = sqlx::query(AssertSqlSafe(stmt.sql.clone())).fetch(unsafe { &mut *conn.0 });
    match rows.next().await {
        Some(Ok(first)) => {
            let columns = columns_of(first.columns());
            let rows = futures_util::stream::once(async { Ok(first) }).chain(rows);
            Ok((columns, Box::pin(rows)))
        }
        Some(Err(e)) => Err(db.error(e)),
        None => {
            drop(rows);
            // SAFETY: `rows`, the only reference made from the pointer, is gone.
            let conn = unsafe { &mut *conn.0 };
            // The statement has just run: this finds it in the connection's cache.
            let prepared = conn
                .prepare(AssertSqlSafe(stmt.sql.clone()).into_sql_str())
                .await
                .map_err(|e| db.error(e))?;
            Ok((
                columns_of(prepared.columns()),
                Box::pin(futures_util::stream::empty()),
            ))
        }
    }
}

/// A connection borrowed exclusively for `'c`, as a pointer (see [`start`]).
struct ExclusiveConn(*mut PgConnection);

// SAFETY: it stands for a `&mut PgConnection`, which is `Send` because `PgConnection` is.
unsafe impl Send for ExclusiveConn {}

fn columns_of(columns: &[sqlx::postgres::PgColumn]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_info().name().to_owned(),
        })
        .collect()
}

/// Prepares, binds and starts `stmt`; rows are decoded as they arrive.
pub async fn open_stream<'c>(
    conn: &'c mut PgConnection,
    db: &'c Database,
    stmt: &Statement,
    values: &[&Value],
) -> Result<(Vec<Column>, RowStream<'c>), DbError> {
    let (columns, rows) = start(conn, db, stmt, values).await?;
    let rows = rows.map_err(|e| db.error(e)).and_then({
        // Every row of a result has the same column types: resolve each column's base type
        // (through domains) once, not once per value.
        let mut types: Vec<PgTypeInfo> = Vec::new();
        move |row| {
            if types.is_empty() {
                types = row
                    .columns()
                    .iter()
                    .map(|c| base_type(c.type_info()).clone())
                    .collect();
            }
            std::future::ready(decode_row(db, &row, &types))
        }
    });
    Ok((columns, Box::pin(rows)))
}

pub async fn execute(
    conn: &mut PgConnection,
    db: &Database,
    stmt: &Statement,
    values: &[&Value],
) -> Result<u64, DbError> {
    let (types, _) = bind(conn, db, stmt).await?;
    let args = arguments(db, &types, values)?;
    let done = sqlx::query_with(AssertSqlSafe(stmt.sql.clone()), args)
        .execute(&mut *conn)
        .await
        .map_err(|e| db.error(e))?;
    Ok(done.rows_affected())
}

/// Decodes `row`, whose columns have the base types `types`.
fn decode_row(
    db: &Database,
    row: &sqlx::postgres::PgRow,
    types: &[PgTypeInfo],
) -> Result<Vec<Value>, DbError> {
    // Sized up front: collecting `Result`s cannot see the length, and grew each row twice.
    let mut values = Vec::with_capacity(row.len());
    for (i, ti) in types.iter().enumerate().take(row.len()) {
        let raw = row.try_get_raw(i).map_err(|e| db.error(e))?;
        values.push(decode_value(raw, ti).map_err(|message| {
            DbError::conversion(
                db.name(),
                format!("column '{}': {message}", row.columns()[i].name()),
            )
        })?);
    }
    Ok(values)
}

// Type OIDs from PostgreSQL's pg_type.dat; stable across server versions.
pub(super) const BOOL: u32 = 16;
pub(super) const BYTEA: u32 = 17;
pub(super) const CHAR: u32 = 18;
pub(super) const NAME: u32 = 19;
pub(super) const INT8: u32 = 20;
pub(super) const INT2: u32 = 21;
pub(super) const INT4: u32 = 23;
pub(super) const TEXT: u32 = 25;
pub(super) const OID: u32 = 26;
pub(super) const JSON: u32 = 114;
pub(super) const XML: u32 = 142;
pub(super) const FLOAT4: u32 = 700;
pub(super) const FLOAT8: u32 = 701;
pub(super) const UNKNOWN: u32 = 705;
pub(super) const BPCHAR: u32 = 1042;
pub(super) const VARCHAR: u32 = 1043;
pub(super) const DATE: u32 = 1082;
pub(super) const TIME: u32 = 1083;
pub(super) const TIMESTAMP: u32 = 1114;
pub(super) const TIMESTAMPTZ: u32 = 1184;
pub(super) const NUMERIC: u32 = 1700;
pub(super) const UUID: u32 = 2950;
pub(super) const JSONB: u32 = 3802;

/// The type that decides the wire format: a domain is sent as its base type.
pub(super) fn base_type(ti: &PgTypeInfo) -> &PgTypeInfo {
    match ti.kind() {
        PgTypeKind::Domain(base) => base_type(base),
        _ => ti,
    }
}

fn is_textual(ti: &PgTypeInfo) -> bool {
    matches!(
        ti.oid().map(|o| o.0),
        Some(TEXT | VARCHAR | BPCHAR | NAME | XML | UNKNOWN)
    ) || matches!(ti.kind(), PgTypeKind::Enum(_))
        || ti.name().eq_ignore_ascii_case("citext")
}

pub(super) fn decode_value(raw: PgValueRef<'_>, ti: &PgTypeInfo) -> Result<Value, String> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    let fixed = |n: usize| -> Result<&[u8], String> {
        (bytes.len() == n)
            .then_some(bytes)
            .ok_or_else(|| format!("expected {n} bytes for {}, got {}", ti.name(), bytes.len()))
    };
    let text = || String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string());
    Ok(match ti.oid().map(|o| o.0).unwrap_or(0) {
        BOOL => Value::Boolean(fixed(1)?[0] != 0),
        INT2 => Value::Int(i16::from_be_bytes(fixed(2)?.try_into().unwrap()) as i64),
        INT4 => Value::Int(i32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i64),
        INT8 => Value::Int(i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        OID => Value::Int(u32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i64),
        FLOAT4 => Value::Float(f32::from_be_bytes(fixed(4)?.try_into().unwrap()) as f64),
        FLOAT8 => Value::Float(f64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        NUMERIC => Value::Decimal(numeric::decode(bytes)?),
        BYTEA => Value::Bytes(bytes.to_vec()),
        CHAR => Value::Text(text()?),
        UUID => Value::Uuid(
            uuid::Uuid::from_slice(fixed(16)?)
                .map_err(|e| e.to_string())?
                .to_string(),
        ),
        DATE => {
            let days = i32::from_be_bytes(fixed(4)?.try_into().unwrap());
            Value::Date(match days {
                i32::MAX => "infinity".into(),
                i32::MIN => "-infinity".into(),
                d => temporal::format_date(pg_epoch_date() + chrono::Duration::days(d as i64)),
            })
        }
        TIME => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().unwrap());
            Value::Time(temporal::format_time(
                NaiveTime::MIN + chrono::Duration::microseconds(micros),
            ))
        }
        TIMESTAMP | TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().unwrap());
            let tz = ti.oid().map(|o| o.0) == Some(TIMESTAMPTZ);
            let formatted = match micros {
                i64::MAX => "infinity".into(),
                i64::MIN => "-infinity".into(),
                m => {
                    let naive = pg_epoch() + chrono::Duration::microseconds(m);
                    if tz {
                        temporal::format_timestamp_tz(naive.and_utc())
                    } else {
                        temporal::format_timestamp(naive)
                    }
                }
            };
            if tz {
                Value::TimestampTz(formatted)
            } else {
                Value::Timestamp(formatted)
            }
        }
        JSON => Value::Json(text()?),
        JSONB => match bytes.split_first() {
            Some((1, rest)) => {
                Value::Json(String::from_utf8(rest.to_vec()).map_err(|e| e.to_string())?)
            }
            _ => return Err("unsupported jsonb wire version".into()),
        },
        _ if is_textual(ti) => Value::Text(text()?),
        _ => {
            return Err(format!(
                "type '{}' has no flowhost value yet; cast it in SQL (e.g. col::text)",
                ti.name()
            ));
        }
    })
}

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

fn pg_epoch() -> NaiveDateTime {
    pg_epoch_date().and_time(NaiveTime::MIN)
}

/// A guest value bound to a placeholder whose type the server chose.
struct PgParam<'a> {
    value: &'a Value,
    target: PgTypeInfo,
}

impl Type<Postgres> for PgParam<'_> {
    fn type_info() -> PgTypeInfo {
        // Never used: `produces` always names the prepared statement's own type.
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for PgParam<'_> {
    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.target.clone())
    }

    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        if matches!(self.value, Value::Null) {
            return Ok(IsNull::Yes);
        }
        encode_as(self.value.into(), base_type(&self.target), buf)?;
        Ok(IsNull::No)
    }
}

fn describe(value: ValueRef<'_>) -> String {
    let (case, payload) = match value {
        ValueRef::Null => ("null", String::new()),
        ValueRef::Boolean(b) => ("boolean", b.to_string()),
        ValueRef::Int(i) => ("int", i.to_string()),
        ValueRef::Float(f) => ("float", f.to_string()),
        ValueRef::Decimal(s) => ("decimal", s.to_owned()),
        ValueRef::Text(s) => ("text", s.to_owned()),
        ValueRef::Bytes(b) => ("bytes", format!("{} bytes", b.len())),
        ValueRef::Uuid(s) => ("uuid", s.to_owned()),
        ValueRef::Date(s) => ("date", s.to_owned()),
        ValueRef::Time(s) => ("time", s.to_owned()),
        ValueRef::Timestamp(s) => ("timestamp", s.to_owned()),
        ValueRef::TimestampTz(s) => ("timestamp-tz", s.to_owned()),
        ValueRef::Json(s) => ("json", s.to_owned()),
    };
    format!("{case} '{}'", shorten(&payload))
}

/// Writes `value` in the binary format of `target`.
/// `value` in the binary format of `target` (a domain as its base type), never NULL.
pub(super) fn encode_param(
    value: ValueRef<'_>,
    target: &PgTypeInfo,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    encode_as(value, base_type(target), buf)
}

fn encode_as(value: ValueRef<'_>, target: &PgTypeInfo, buf: &mut Vec<u8>) -> Result<(), String> {
    let cannot = || format!("cannot convert {} to {}", describe(value), target.name());
    // Borrowed where the value is text already: a batch encodes a column of these per row.
    let as_text = || -> Option<Cow<'_, str>> {
        Some(match value {
            ValueRef::Text(s)
            | ValueRef::Decimal(s)
            | ValueRef::Uuid(s)
            | ValueRef::Date(s)
            | ValueRef::Time(s)
            | ValueRef::Timestamp(s)
            | ValueRef::TimestampTz(s)
            | ValueRef::Json(s) => Cow::Borrowed(s),
            ValueRef::Int(i) => Cow::Owned(i.to_string()),
            ValueRef::Float(f) => Cow::Owned(f.to_string()),
            ValueRef::Boolean(b) => Cow::Owned(b.to_string()),
            ValueRef::Null | ValueRef::Bytes(_) => return None,
        })
    };
    let as_i64 = || -> Result<i64, String> {
        match value {
            ValueRef::Int(i) => Ok(i),
            ValueRef::Float(f) if f.fract() == 0.0 && f.is_finite() => Ok(f as i64),
            ValueRef::Text(s) | ValueRef::Decimal(s) => s.trim().parse().map_err(|_| cannot()),
            _ => Err(cannot()),
        }
    };
    let as_f64 = || -> Result<f64, String> {
        match value {
            ValueRef::Int(i) => Ok(i as f64),
            ValueRef::Float(f) => Ok(f),
            ValueRef::Text(s) | ValueRef::Decimal(s) => s.trim().parse().map_err(|_| cannot()),
            _ => Err(cannot()),
        }
    };
    let out_of_range = || format!("{} is out of range for {}", describe(value), target.name());
    match target.oid().map(|o| o.0).unwrap_or(0) {
        BOOL => {
            let b = match value {
                ValueRef::Boolean(b) => b,
                ValueRef::Int(0) => false,
                ValueRef::Int(1) => true,
                ValueRef::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "t" | "true" | "yes" | "y" | "on" | "1" => true,
                    "f" | "false" | "no" | "n" | "off" | "0" => false,
                    _ => return Err(cannot()),
                },
                _ => return Err(cannot()),
            };
            buf.push(b as u8);
        }
        INT2 => buf.extend(
            i16::try_from(as_i64()?)
                .map_err(|_| out_of_range())?
                .to_be_bytes(),
        ),
        INT4 => buf.extend(
            i32::try_from(as_i64()?)
                .map_err(|_| out_of_range())?
                .to_be_bytes(),
        ),
        INT8 => buf.extend(as_i64()?.to_be_bytes()),
        OID => buf.extend(
            u32::try_from(as_i64()?)
                .map_err(|_| out_of_range())?
                .to_be_bytes(),
        ),
        FLOAT4 => buf.extend((as_f64()? as f32).to_be_bytes()),
        FLOAT8 => buf.extend(as_f64()?.to_be_bytes()),
        NUMERIC => match value {
            ValueRef::Float(f) if !f.is_finite() => numeric::encode(
                if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                },
                buf,
            )?,
            ValueRef::Boolean(_) | ValueRef::Bytes(_) => return Err(cannot()),
            _ => numeric::encode(&as_text().ok_or_else(cannot)?, buf)
                .map_err(|e| format!("{e} (for {})", target.name()))?,
        },
        BYTEA => match value {
            ValueRef::Bytes(b) => buf.extend_from_slice(b),
            _ => return Err(cannot()),
        },
        UUID => {
            let text = match value {
                ValueRef::Uuid(s) | ValueRef::Text(s) => s,
                _ => return Err(cannot()),
            };
            let uuid = uuid::Uuid::parse_str(text.trim()).map_err(|_| cannot())?;
            buf.extend_from_slice(uuid.as_bytes());
        }
        DATE => {
            let text = temporal_text(value).ok_or_else(cannot)?;
            let days = match text.trim() {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                t => {
                    let date = temporal::parse_date(t).ok_or_else(cannot)?;
                    (date - pg_epoch_date()).num_days() as i32
                }
            };
            buf.extend(days.to_be_bytes());
        }
        TIME => {
            let text = temporal_text(value).ok_or_else(cannot)?;
            let time = temporal::parse_time(text.trim()).ok_or_else(cannot)?;
            let micros = (time - NaiveTime::MIN)
                .num_microseconds()
                .ok_or_else(cannot)?;
            buf.extend(micros.to_be_bytes());
        }
        TIMESTAMP | TIMESTAMPTZ => {
            let text = temporal_text(value).ok_or_else(cannot)?;
            let micros = match text.trim() {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                t => {
                    // A zoned instant bound to `timestamp` is stored as its UTC wall time, and a
                    // naive one bound to `timestamptz` is read as UTC: the host never guesses a
                    // local zone.
                    let naive = match temporal::parse_timestamp_tz(t) {
                        Some(instant) => instant.naive_utc(),
                        None => temporal::parse_timestamp(t).ok_or_else(cannot)?,
                    };
                    (naive - pg_epoch())
                        .num_microseconds()
                        .ok_or_else(out_of_range)?
                }
            };
            buf.extend(micros.to_be_bytes());
        }
        JSON | JSONB => {
            let text = match value {
                ValueRef::Json(s) | ValueRef::Text(s) => Cow::Borrowed(s),
                // Scalars bound to a JSON column become JSON scalars.
                ValueRef::Int(_)
                | ValueRef::Float(_)
                | ValueRef::Boolean(_)
                | ValueRef::Decimal(_) => as_text().ok_or_else(cannot)?,
                _ => return Err(cannot()),
            };
            if target.oid().map(|o| o.0) == Some(JSONB) {
                buf.push(1);
            }
            buf.extend_from_slice(text.as_bytes());
        }
        _ if is_textual(target) || target.oid().map(|o| o.0) == Some(CHAR) => {
            buf.extend_from_slice(as_text().ok_or_else(cannot)?.as_bytes())
        }
        _ => {
            return Err(format!(
                "parameters of type {} are not supported yet; pass text and cast in SQL \
                 (CAST(:p AS text)::{})",
                target.name(),
                target.name()
            ));
        }
    }
    Ok(())
}

fn temporal_text(value: ValueRef<'_>) -> Option<&str> {
    match value {
        ValueRef::Date(s)
        | ValueRef::Time(s)
        | ValueRef::Timestamp(s)
        | ValueRef::TimestampTz(s)
        | ValueRef::Text(s) => Some(s),
        _ => None,
    }
}
