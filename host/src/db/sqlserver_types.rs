//! SQL Server values ↔ the WIT `value`: parameters in, column data out, without loss.
//!
//! Parameters are typed from the value: integers as `bigint`, text as `nvarchar`, decimals as
//! `decimal(p,s)` of exactly their digits, temporal text as `date`/`time`/`datetime2`/
//! `datetimeoffset`. Text goes as NVARCHAR because it is the only string type that carries every
//! character a flow can send; against a VARCHAR column with a SQL_* collation that costs an
//! index seek (SQL Server converts the column, not the parameter), which a statement avoids by
//! writing `CAST(:p AS varchar(n))` (README: SQL Server).

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use tiberius::{ColumnData, ColumnType, FromSql, IntoSql, numeric::Numeric};

use super::temporal;
use crate::bindings::types::Value;
use crate::sql::Backend;
use crate::sql::lexer::{self, TokenKind};

/// Money arrives from tiberius as `f64` (value / 10⁴); below 2⁵³ / 10⁴ rounding to four places
/// gives back the exact value, above it the last digits are gone.
const MONEY_EXACT_LIMIT: f64 = 9_007_199_254_740_992.0 / 10_000.0;

/// `sql` with every `@Pn` whose value is `null` written as the literal `NULL` and the other
/// parameters renumbered from `@P1` in order, so the non-null values bind as they come; `None`
/// when nothing is null (or the lexer cannot read the statement: then it goes as it is and the
/// server reports its error).
///
/// tiberius sends an untyped NULL (TDS type 0x1F) for a null parameter, which SQL Server takes
/// as the declared `nvarchar` but Babelfish refuses ("Data type 0x1F is unknown"). A literal
/// `NULL` works on both and converts to every column type, binary ones included, which
/// `nvarchar` NULL does not. `@Pn` inside strings, comments and `[ident]` is left alone (the
/// lexer sees it as text), and so is any other variable.
pub fn inline_nulls(sql: &str, values: &[&Value]) -> Option<String> {
    if !values.iter().any(|v| matches!(v, Value::Null)) {
        return None;
    }
    // New number of each parameter (1-based), or None where the value is null.
    let mut kept = 0;
    let renumbered: Vec<Option<usize>> = values
        .iter()
        .map(|v| {
            (!matches!(v, Value::Null)).then(|| {
                kept += 1;
                kept
            })
        })
        .collect();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0;
    for token in lexer::tokens(sql, Backend::SqlServer) {
        let Ok(token) = token else {
            return None;
        };
        if token.kind != TokenKind::Variable {
            continue;
        }
        let text = token.text(sql);
        let Some(n) = text
            .strip_prefix("@P")
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|n| (1..=values.len()).contains(n))
        else {
            continue;
        };
        out.push_str(&sql[copied..token.start]);
        match renumbered[n - 1] {
            Some(new) => {
                let _ = write!(out, "@P{new}");
            }
            None => out.push_str("NULL"),
        }
        copied = token.end;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// The value as a typed SQL Server parameter.
pub fn param(value: &Value) -> Result<ColumnData<'static>, String> {
    Ok(match value {
        // NVARCHAR NULL converts implicitly to every type but the binary ones; a NULL for a
        // varbinary column needs `CAST(:p AS varbinary(max))` in the statement.
        Value::Null => ColumnData::String(None),
        Value::Boolean(b) => ColumnData::Bit(Some(*b)),
        Value::Int(i) => ColumnData::I64(Some(*i)),
        Value::Float(f) => ColumnData::F64(Some(*f)),
        Value::Decimal(s) => ColumnData::Numeric(Some(parse_decimal(s)?)),
        Value::Text(s) | Value::Json(s) => ColumnData::String(Some(Cow::Owned(s.clone()))),
        Value::Bytes(b) => ColumnData::Binary(Some(Cow::Owned(b.clone()))),
        Value::Uuid(s) => ColumnData::Guid(Some(
            uuid::Uuid::parse_str(s).map_err(|_| format!("'{s}' is not a UUID"))?,
        )),
        Value::Date(s) => temporal::parse_date(s)
            .ok_or_else(|| format!("'{s}' is not a date (YYYY-MM-DD)"))?
            .into_sql(),
        Value::Time(s) => temporal::parse_time(s)
            .ok_or_else(|| format!("'{s}' is not a time (HH:MM:SS[.fraction])"))?
            .into_sql(),
        Value::Timestamp(s) => temporal::parse_timestamp(s)
            .ok_or_else(|| format!("'{s}' is not a timestamp (YYYY-MM-DDTHH:MM:SS[.fraction])"))?
            .into_sql(),
        Value::TimestampTz(s) => temporal::parse_timestamp_tz(s)
            .ok_or_else(|| format!("'{s}' is not an RFC 3339 timestamp with an offset"))?
            .fixed_offset()
            .into_sql(),
    })
}

/// `-12.3400` as a decimal of exactly its digits. SQL Server's decimals hold 38 digits.
pub fn parse_decimal(text: &str) -> Result<Numeric, String> {
    let bad = || format!("'{text}' is not a decimal SQL Server can hold (at most 38 digits)");
    let s = text.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let all = format!("{int}{frac}");
    let significant = all.trim_start_matches('0');
    if significant.len() > 38 || frac.len() > 38 {
        return Err(bad());
    }
    let mut value: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| bad())?
    };
    if negative {
        value = -value;
    }
    Ok(Numeric::new_with_scale(value, frac.len() as u8))
}

/// Exact decimal text of a numeric: `value / 10^scale`.
pub fn format_numeric(n: Numeric) -> String {
    let value = n.value();
    let scale = n.scale() as usize;
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// One column's data as a WIT value. `column` is the server's type for the column, which says
/// what an `f64` (money or float) or a string (xml or text) means.
pub fn decode(column: ColumnType, data: &ColumnData<'static>) -> Result<Value, String> {
    if matches!(column, ColumnType::SSVariant | ColumnType::Udt) {
        return Err(format!(
            "type {} has no flowhost value; CAST the column to a concrete type in the query",
            type_name(column)
        ));
    }
    let temporal_err = |e: tiberius::error::Error| e.to_string();
    Ok(match data {
        ColumnData::U8(v) => v.map_or(Value::Null, |v| Value::Int(v.into())),
        ColumnData::I16(v) => v.map_or(Value::Null, |v| Value::Int(v.into())),
        ColumnData::I32(v) => v.map_or(Value::Null, |v| Value::Int(v.into())),
        ColumnData::I64(v) => v.map_or(Value::Null, Value::Int),
        ColumnData::F32(v) => v.map_or(Value::Null, |v| Value::Float(v.into())),
        ColumnData::F64(None) => Value::Null,
        ColumnData::F64(Some(v)) if matches!(column, ColumnType::Money | ColumnType::Money4) => {
            money(*v)?
        }
        ColumnData::F64(Some(v)) => Value::Float(*v),
        ColumnData::Bit(v) => v.map_or(Value::Null, Value::Boolean),
        ColumnData::String(v) => v
            .as_ref()
            .map_or(Value::Null, |s| Value::Text(s.to_string())),
        ColumnData::Guid(v) => v.map_or(Value::Null, |g| {
            Value::Uuid(g.hyphenated().to_string().to_lowercase())
        }),
        ColumnData::Binary(v) => v.as_ref().map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ColumnData::Numeric(v) => v.map_or(Value::Null, |n| Value::Decimal(format_numeric(n))),
        ColumnData::Xml(v) => v.as_ref().map_or(Value::Null, |x| {
            Value::Text(x.as_ref().clone().into_string())
        }),
        ColumnData::DateTime(_) => NaiveDateTime::from_sql(data)
            .map_err(temporal_err)?
            .map_or(Value::Null, |t| {
                Value::Timestamp(temporal::format_timestamp(to_millisecond(t)))
            }),
        ColumnData::SmallDateTime(_) | ColumnData::DateTime2(_) => NaiveDateTime::from_sql(data)
            .map_err(temporal_err)?
            .map_or(Value::Null, |t| {
                Value::Timestamp(temporal::format_timestamp(t))
            }),
        ColumnData::Date(_) => NaiveDate::from_sql(data)
            .map_err(temporal_err)?
            .map_or(Value::Null, |d| Value::Date(temporal::format_date(d))),
        ColumnData::Time(_) => NaiveTime::from_sql(data)
            .map_err(temporal_err)?
            .map_or(Value::Null, |t| Value::Time(temporal::format_time(t))),
        ColumnData::DateTimeOffset(_) => DateTime::<FixedOffset>::from_sql(data)
            .map_err(temporal_err)?
            .map_or(Value::Null, |t| {
                Value::TimestampTz(temporal::format_timestamp_tz(t.with_timezone(&Utc)))
            }),
    })
}

/// `datetime` counts 1/300 s (.123 is stored as 37/300 = .12333... s); SQL Server itself shows
/// and compares it to the millisecond, and so does the host.
fn to_millisecond(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Timelike;
    let millis = (t.nanosecond() as i64 + 500_000) / 1_000_000;
    t.with_nanosecond(0).unwrap_or(t) + chrono::Duration::milliseconds(millis)
}

fn money(v: f64) -> Result<Value, String> {
    if v.abs() >= MONEY_EXACT_LIMIT {
        return Err(format!(
            "money value {v} is beyond what the driver delivers exactly (±{MONEY_EXACT_LIMIT:.0}); \
             CAST the column AS decimal(19,4) in the query"
        ));
    }
    Ok(Value::Decimal(format!("{v:.4}")))
}

/// The SQL Server type name a column type reports to a flow.
pub fn type_name(column: ColumnType) -> &'static str {
    match column {
        ColumnType::Null => "null",
        ColumnType::Bit | ColumnType::Bitn => "bit",
        ColumnType::Int1 => "tinyint",
        ColumnType::Int2 => "smallint",
        ColumnType::Int4 => "int",
        ColumnType::Int8 => "bigint",
        ColumnType::Intn => "int",
        ColumnType::Datetime4 => "smalldatetime",
        ColumnType::Float4 => "real",
        ColumnType::Float8 | ColumnType::Floatn => "float",
        ColumnType::Money => "money",
        ColumnType::Money4 => "smallmoney",
        ColumnType::Datetime | ColumnType::Datetimen => "datetime",
        ColumnType::Guid => "uniqueidentifier",
        ColumnType::Decimaln => "decimal",
        ColumnType::Numericn => "numeric",
        ColumnType::Daten => "date",
        ColumnType::Timen => "time",
        ColumnType::Datetime2 => "datetime2",
        ColumnType::DatetimeOffsetn => "datetimeoffset",
        ColumnType::BigVarBin => "varbinary",
        ColumnType::BigVarChar => "varchar",
        ColumnType::BigBinary => "binary",
        ColumnType::BigChar => "char",
        ColumnType::NVarchar => "nvarchar",
        ColumnType::NChar => "nchar",
        ColumnType::Xml => "xml",
        ColumnType::Udt => "user-defined type",
        ColumnType::Text => "text",
        ColumnType::Image => "image",
        ColumnType::NText => "ntext",
        ColumnType::SSVariant => "sql_variant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bindings' `Value` has no `PartialEq`; its `Debug` form shows every field.
    macro_rules! same {
        ($left:expr, $right:expr $(, $($msg:tt)*)?) => {
            assert_eq!(format!("{:?}", $left), format!("{:?}", $right) $(, $($msg)*)?)
        };
    }

    fn round_trip(value: Value) -> Value {
        let data = param(&value).unwrap();
        let column = match &data {
            ColumnData::I64(_) => ColumnType::Int8,
            ColumnData::F64(_) => ColumnType::Float8,
            ColumnData::Bit(_) => ColumnType::Bit,
            ColumnData::Numeric(_) => ColumnType::Decimaln,
            ColumnData::String(_) => ColumnType::NVarchar,
            ColumnData::Binary(_) => ColumnType::BigVarBin,
            ColumnData::Guid(_) => ColumnType::Guid,
            ColumnData::Date(_) => ColumnType::Daten,
            ColumnData::Time(_) => ColumnType::Timen,
            ColumnData::DateTime2(_) => ColumnType::Datetime2,
            ColumnData::DateTimeOffset(_) => ColumnType::DatetimeOffsetn,
            other => panic!("unexpected parameter type {other:?}"),
        };
        decode(column, &data).unwrap()
    }

    #[test]
    fn every_value_goes_out_as_a_typed_parameter_and_comes_back_the_same() {
        let values = [
            Value::Boolean(true),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(-1.5e300),
            Value::Decimal("-12.3400".into()),
            Value::Decimal("99999999999999999999999999999999999999".into()),
            Value::Decimal("0.00000000000000000000000000000000000001".into()),
            Value::Text("Grüße, 世界 🦀".into()),
            Value::Bytes(vec![0, 255, 7]),
            Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            Value::Date("0001-01-01".into()),
            Value::Date("9999-12-31".into()),
            Value::Time("23:59:59.9999999".into()),
            Value::Timestamp("2026-12-03T10:00:00.1234567".into()),
            Value::TimestampTz("2026-12-03T10:00:00Z".into()),
        ];
        for v in values {
            same!(round_trip(v.clone()), v, "{v:?}");
        }
        same!(round_trip(Value::Null), Value::Null);
        // An offset other than UTC comes back as the same instant in UTC.
        same!(
            round_trip(Value::TimestampTz("2026-12-03T12:00:00+02:00".into())),
            Value::TimestampTz("2026-12-03T10:00:00Z".into())
        );
    }

    #[test]
    fn decimals_parse_exactly_or_say_why_not() {
        let n = parse_decimal("-0012.340").unwrap();
        assert_eq!((n.value(), n.scale()), (-12340, 3));
        assert_eq!(format_numeric(n), "-12.340");
        assert_eq!(format_numeric(parse_decimal(".5").unwrap()), "0.5");
        assert_eq!(format_numeric(parse_decimal("7").unwrap()), "7");
        assert_eq!(format_numeric(Numeric::new_with_scale(-5, 4)), "-0.0005");
        for bad in [
            "",
            "-",
            ".",
            "1e5",
            "NaN",
            "1.2.3",
            "123456789012345678901234567890123456789",
        ] {
            let err = parse_decimal(bad).unwrap_err();
            assert!(err.contains("not a decimal"), "{bad}: {err}");
        }
    }

    #[test]
    fn money_is_exact_decimal_text_and_refused_where_the_driver_rounded() {
        same!(
            decode(ColumnType::Money, &ColumnData::F64(Some(12.3456))).unwrap(),
            Value::Decimal("12.3456".into())
        );
        same!(
            decode(ColumnType::Money4, &ColumnData::F64(Some(-214748.3648))).unwrap(),
            Value::Decimal("-214748.3648".into())
        );
        let err = decode(
            ColumnType::Money,
            &ColumnData::F64(Some(922_337_203_685_477.0)),
        )
        .unwrap_err();
        assert!(err.contains("decimal(19,4)"), "{err}");
        // The same f64 from a float column is a float.
        same!(
            decode(ColumnType::Floatn, &ColumnData::F64(Some(12.3456))).unwrap(),
            Value::Float(12.3456)
        );
    }

    #[test]
    fn unmapped_types_are_refused_naming_the_type() {
        let err = decode(ColumnType::SSVariant, &ColumnData::I32(Some(1))).unwrap_err();
        assert!(err.contains("sql_variant") && err.contains("CAST"), "{err}");
        assert!(
            decode(ColumnType::Udt, &ColumnData::Binary(None))
                .unwrap_err()
                .contains("user-defined")
        );
    }

    #[test]
    fn datetime_reads_to_the_millisecond_as_sql_server_shows_it() {
        // 13:45:10 and 37/300 s, as a datetime column holds .123.
        let seconds = (13 * 3600 + 45 * 60 + 10) * 300 + 37;
        let data = ColumnData::DateTime(Some(tiberius::time::DateTime::new(45_349, seconds)));
        same!(
            decode(ColumnType::Datetimen, &data).unwrap(),
            Value::Timestamp("2024-02-29T13:45:10.123".into())
        );
        // 299/300 s rounds up into the next second.
        let data = ColumnData::DateTime(Some(tiberius::time::DateTime::new(45_349, 299)));
        same!(
            decode(ColumnType::Datetimen, &data).unwrap(),
            Value::Timestamp("2024-02-29T00:00:00.997".into())
        );
    }

    #[test]
    fn small_integers_and_legacy_types_decode_to_their_values() {
        same!(
            decode(ColumnType::Int1, &ColumnData::U8(Some(255))).unwrap(),
            Value::Int(255)
        );
        same!(
            decode(ColumnType::Float4, &ColumnData::F32(Some(0.5))).unwrap(),
            Value::Float(0.5)
        );
        same!(
            decode(ColumnType::NText, &ColumnData::String(None)).unwrap(),
            Value::Null
        );
        same!(
            decode(
                ColumnType::Guid,
                &ColumnData::Guid(Some(
                    uuid::Uuid::parse_str("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap()
                ))
            )
            .unwrap(),
            Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into())
        );
        let bad = [
            Value::Uuid("nope".into()),
            Value::Date("2026-13-01".into()),
            Value::Timestamp("yesterday".into()),
        ];
        for v in bad {
            assert!(param(&v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn null_parameters_become_literals_and_the_rest_are_renumbered() {
        let (one, null, two) = (Value::Int(1), Value::Null, Value::Text("x".into()));
        let sql = inline_nulls(
            "INSERT INTO t (a, b, c) VALUES (@P1, @P2, @P3); SELECT @P2, @P3",
            &[&one, &null, &two],
        );
        assert_eq!(
            sql.as_deref(),
            Some("INSERT INTO t (a, b, c) VALUES (@P1, NULL, @P2); SELECT NULL, @P2")
        );
        // Strings, comments, bracketed names and other variables are not parameters.
        let sql = inline_nulls(
            "SELECT '@P1', N'@P1', [@P1], @P10, @other /* @P1 */ -- @P1\n, @P1",
            &[&null],
        );
        assert_eq!(
            sql.as_deref(),
            Some("SELECT '@P1', N'@P1', [@P1], @P10, @other /* @P1 */ -- @P1\n, NULL")
        );
        // Without a null the statement is bound as it is.
        assert_eq!(inline_nulls("SELECT @P1, @P2", &[&one, &two]), None);
    }
}
