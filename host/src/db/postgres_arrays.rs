//! PostgreSQL `execute-batch` as one statement of arrays: a one-row
//! `INSERT ... VALUES ($1, ..., $n) [tail]` becomes
//! `INSERT ... SELECT * FROM UNNEST($1::t1[], ..., $n::tn[]) [tail]`, every column's values in
//! one binary array parameter.
//!
//! Why: multi-row VALUES statements cost the server a parse and plan of 1000 rows of
//! placeholders and the host a bind of 6,000 parameters per chunk; rpa1's 10,000 rows took ten
//! such statements and about 130 ms, the arrays one statement. The semantics are those of the
//! multi-row INSERT it replaces (one statement, the same assignment casts, `ON CONFLICT` and
//! `RETURNING` kept), and any failure goes the same way: undone, then row by row.
//!
//! Only element types with a built-in array type qualify; a domain, enum or other type keeps
//! the VALUES path.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnection, PgTypeInfo, Postgres};
use sqlx::{Arguments, AssertSqlSafe, Encode, Type};

use super::postgres::{bind, encode_param};
use super::{BatchRows, Database, DbError, Statement};
use crate::sql::Backend;
use crate::sql::values::ValuesTemplate;

/// (element OID, array OID, the name to cast to) for the element types that travel as arrays.
const ARRAYS: [(u32, u32, &str); 18] = [
    (16, 1000, "bool"),
    (17, 1001, "bytea"),
    (20, 1016, "int8"),
    (21, 1005, "int2"),
    (23, 1007, "int4"),
    (25, 1009, "text"),
    (114, 199, "json"),
    (700, 1021, "float4"),
    (701, 1022, "float8"),
    (1042, 1014, "bpchar"),
    (1043, 1015, "varchar"),
    (1082, 1182, "date"),
    (1083, 1183, "time"),
    (1114, 1115, "timestamp"),
    (1184, 1185, "timestamptz"),
    (1700, 1231, "numeric"),
    (2950, 2951, "uuid"),
    (3802, 3807, "jsonb"),
];

fn array_of(ti: &PgTypeInfo) -> Option<(u32, u32, &'static str)> {
    let oid = ti.oid()?.0;
    ARRAYS.iter().copied().find(|(elem, _, _)| *elem == oid)
}

/// Writes `rows` of `stmt` as one UNNEST statement; `None` when the statement's shape or a
/// parameter type does not qualify (nothing was written; the statement was only prepared).
pub async fn insert_as_arrays(
    conn: &mut PgConnection,
    db: &Database,
    stmt: &Statement,
    rows: &dyn BatchRows,
) -> Option<Result<u64, DbError>> {
    let template = ValuesTemplate::parse(&stmt.sql, Backend::Postgres)?;
    let (head, columns, tail) = template.plain_row()?;
    let types = match bind(conn, db, stmt).await {
        Ok((types, _)) => types,
        Err(e) => return Some(Err(e)),
    };
    if types.len() != columns {
        return None;
    }
    let arrays: Vec<(u32, u32, &str)> = types.iter().map(array_of).collect::<Option<_>>()?;
    let list: Vec<String> = arrays
        .iter()
        .enumerate()
        .map(|(i, (_, _, name))| format!("${}::{name}[]", i + 1))
        .collect();
    let sql = format!("{head} SELECT * FROM UNNEST({}){tail}", list.join(", "));
    let mut args = PgArguments::default();
    for (column, ((_, array, _), element)) in arrays.iter().zip(&types).enumerate() {
        let param = ArrayParam {
            rows,
            column,
            element: element.clone(),
            array: *array,
        };
        if let Err(e) = args.add(param) {
            let message = format!("parameter ${}: {e}", column + 1);
            return Some(Err(DbError::conversion(db.name(), message)));
        }
    }
    Some(
        sqlx::query_with(AssertSqlSafe(sql), args)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| db.error(e)),
    )
}

/// One column's values as a one-dimensional PostgreSQL array in the binary format, read from
/// the rows where they are (a packed batch is never copied into `Value`s on this path).
struct ArrayParam<'a> {
    rows: &'a dyn BatchRows,
    column: usize,
    element: PgTypeInfo,
    array: u32,
}

impl Type<Postgres> for ArrayParam<'_> {
    fn type_info() -> PgTypeInfo {
        // Never used: `produces` names the array type.
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for ArrayParam<'_> {
    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(Oid(self.array)))
    }

    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let element_oid = self.element.oid().map_or(0, |o| o.0);
        let len = i32::try_from(self.rows.count())?;
        buf.extend_from_slice(&1_i32.to_be_bytes()); // dimensions
        // Whether the array holds a NULL, written once the values are: one pass over a
        // packed batch's values instead of two.
        let has_null_at = buf.len();
        buf.extend_from_slice(&0_i32.to_be_bytes());
        buf.extend_from_slice(&element_oid.to_be_bytes());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&1_i32.to_be_bytes()); // lower bound
        let mut has_null = false;
        for row in 0..self.rows.count() {
            let value = self.rows.value(row, self.column);
            if value.is_null() {
                has_null = true;
                buf.extend_from_slice(&(-1_i32).to_be_bytes());
                continue;
            }
            let at = buf.len();
            buf.extend_from_slice(&0_i32.to_be_bytes());
            encode_param(value, &self.element, buf)?;
            let size = i32::try_from(buf.len() - at - 4)?;
            buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
        buf[has_null_at..has_null_at + 4].copy_from_slice(&i32::from(has_null).to_be_bytes());
        Ok(IsNull::No)
    }
}
