//! SQL the host runs for itself (the migration history and lock, foreign history tables):
//! trusted text with positional parameters in the backend's own syntax (`$1`, `?1`, `@P1`),
//! values in and out in the same [`Value`] model guests use. Callers outside `db` never touch a
//! driver type, so a backend is added in `db` alone.

use std::sync::Arc;

use chrono::NaiveDateTime;

use super::{Conn, Database, DbError, SessionLimits, Statement, temporal};
use crate::bindings::types::Value;
use crate::sql::{Placeholders, StatementKind};

/// One row of a host query, its values readable by column name.
#[derive(Debug, Clone)]
pub struct HostRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl HostRow {
    /// The value of column `name` (case-insensitive), converted; an absent column is an error.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T, String> {
        let i = self
            .index(name)
            .ok_or_else(|| format!("no column '{name}' in the result"))?;
        self.at(i)
    }

    /// The value of column `i` (0-based), converted.
    pub fn at<T: FromValue>(&self, i: usize) -> Result<T, String> {
        let value = self
            .values
            .get(i)
            .ok_or_else(|| format!("no column {i} in the result"))?;
        T::from_value(value).map_err(|e| match self.columns.get(i) {
            Some(name) => format!("column '{name}': {e}"),
            None => e,
        })
    }

    /// Whether the result has column `name` (tables made by older versions may lack one).
    pub fn has(&self, name: &str) -> bool {
        self.index(name).is_some()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }
}

/// A Rust value read from a [`Value`].
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn mismatch(value: &Value, wanted: &str) -> String {
    let found = match value {
        Value::Null => "NULL",
        Value::Boolean(_) => "a boolean",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Decimal(_) => "a decimal",
        Value::Bytes(_) => "bytes",
        _ => "text",
    };
    format!("expected {wanted}, found {found}")
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(i) => Ok(*i),
            // SQLite and SQL Server report COUNT(*) and the like through their own types.
            Value::Decimal(s) | Value::Text(s) => {
                s.parse().map_err(|_| mismatch(value, "an integer"))
            }
            other => Err(mismatch(other, "an integer")),
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let wide = i64::from_value(value)?;
        i32::try_from(wide).map_err(|_| format!("{wide} does not fit a 32-bit integer"))
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            Value::Decimal(s) | Value::Text(s) => {
                s.parse().map_err(|_| mismatch(value, "a number"))
            }
            other => Err(mismatch(other, "a number")),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Boolean(b) => Ok(*b),
            // SQLite keeps booleans as 0/1 wherever the column is not declared BOOLEAN.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(mismatch(other, "a boolean")),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s)
            | Value::Decimal(s)
            | Value::Uuid(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Json(s) => Ok(s.clone()),
            // A version column another tool typed as a number.
            Value::Int(i) => Ok(i.to_string()),
            other => Err(mismatch(other, "text")),
        }
    }
}

impl FromValue for NaiveDateTime {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Timestamp(s) | Value::Text(s) => {
                temporal::parse_timestamp(s).ok_or_else(|| format!("'{s}' is not a timestamp"))
            }
            Value::TimestampTz(s) => temporal::parse_timestamp_tz(s)
                .map(|t| t.naive_utc())
                .ok_or_else(|| format!("'{s}' is not a timestamp")),
            other => Err(mismatch(other, "a timestamp")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A timestamp as the host stores it: `Value::Timestamp`, which every backend binds to its
/// timestamp type.
pub fn timestamp_value(t: NaiveDateTime) -> Value {
    Value::Timestamp(temporal::format_timestamp(t))
}

/// Optional text as a value.
pub fn text_value(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.to_owned()))
}

fn host_statement(sql: &str, params: &[Value]) -> Statement {
    Statement {
        host: true,
        sql: Arc::from(sql),
        placeholders: Placeholders::Positional(params.len()),
        kind: StatementKind::Other,
        functions: Vec::new(),
    }
}

impl Conn {
    /// Runs host SQL and returns every row.
    pub async fn host_query(
        &mut self,
        db: &Database,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<HostRow>, DbError> {
        let stmt = host_statement(sql, params);
        let refs: Vec<&Value> = params.iter().collect();
        let set = self
            .query(db, &stmt, &refs, &SessionLimits::unlimited())
            .await?;
        let columns: Arc<[String]> = set.columns.into_iter().map(|c| c.name).collect();
        Ok(set
            .rows
            .into_iter()
            .map(|values| HostRow {
                columns: columns.clone(),
                values,
            })
            .collect())
    }

    /// Runs host SQL that returns one row, and reads its first column.
    pub async fn host_scalar<T: FromValue>(
        &mut self,
        db: &Database,
        sql: &str,
        params: &[Value],
    ) -> Result<T, DbError> {
        let rows = self.host_query(db, sql, params).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::conversion(db.name(), "the query returned no row"))?;
        row.at(0).map_err(|e| DbError::conversion(db.name(), e))
    }

    /// Runs host SQL and returns the rows it affected.
    pub async fn host_execute(
        &mut self,
        db: &Database,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, DbError> {
        let stmt = host_statement(sql, params);
        let refs: Vec<&Value> = params.iter().collect();
        self.execute(db, &stmt, &refs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<Value>) -> HostRow {
        HostRow {
            columns: ["n", "Flag", "at", "note"].map(String::from).into(),
            values,
        }
    }

    #[test]
    fn values_convert_to_rust_types_by_column_name_or_say_why_not() {
        let r = row(vec![
            Value::Int(7),
            Value::Int(1),
            Value::Timestamp("2026-12-03T10:00:00.5".into()),
            Value::Null,
        ]);
        assert_eq!(r.get::<i32>("N"), Ok(7));
        assert_eq!(r.get::<bool>("flag"), Ok(true));
        assert_eq!(
            r.get::<NaiveDateTime>("at").unwrap().to_string(),
            "2026-12-03 10:00:00.500"
        );
        assert_eq!(r.get::<Option<String>>("note"), Ok(None));
        assert!(r.has("note") && !r.has("missing"));
        assert_eq!(
            r.get::<String>("note").unwrap_err(),
            "column 'note': expected text, found NULL"
        );
        assert!(
            r.get::<i32>("missing")
                .unwrap_err()
                .contains("no column 'missing'")
        );
        let numbers = row(vec![
            Value::Float(1.5),
            Value::Int(2),
            Value::Decimal("2.25".into()),
            Value::Null,
        ]);
        assert_eq!(numbers.at::<f64>(0), Ok(1.5));
        assert_eq!(numbers.at::<f64>(1), Ok(2.0));
        assert_eq!(numbers.at::<f64>(2), Ok(2.25));
        assert!(numbers.at::<f64>(3).is_err());
        let big = row(vec![Value::Int(1 << 40)]);
        assert!(big.at::<i32>(0).unwrap_err().contains("does not fit"));
        // SQLite's "YYYY-MM-DD HH:MM:SS" text, as sqlx wrote it before.
        let text = row(vec![Value::Text("2026-12-03 10:00:00".into())]);
        assert!(text.at::<NaiveDateTime>(0).is_ok());
    }
}
