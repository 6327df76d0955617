//! SQL Server's equivalents: row counts and sizes from the catalog (`sys.partitions`,
//! `sys.allocation_units`, which need no server permission), statistics dates, index
//! definitions (`sys.indexes`, `sys.index_columns`), `sys.dm_db_index_usage_stats` for unused
//! indexes and `sys.dm_exec_query_stats` for the slowest statements. The two views need VIEW
//! SERVER STATE (VIEW SERVER PERFORMANCE STATE on 2022); without it the notes say so.

use std::collections::BTreeMap;

use super::{Facts, ForeignKey, IndexStats, TableStats, get};
use crate::db::{Conn, Database, DbError, HostRow};

const TABLES: &str = "\
/* flowhost db stats */
SELECT s.name AS schema_name, t.name AS table_name,
       (SELECT CAST(SUM(p.rows) AS BIGINT) FROM sys.partitions p
        WHERE p.object_id = t.object_id AND p.index_id IN (0, 1)) AS row_count,
       (SELECT CAST(SUM(a.total_pages) AS BIGINT) * 8192 FROM sys.partitions p
        JOIN sys.allocation_units a ON a.container_id = p.partition_id
        WHERE p.object_id = t.object_id) AS total_bytes,
       (SELECT CONVERT(NVARCHAR(33), MAX(STATS_DATE(st.object_id, st.stats_id)), 126)
        FROM sys.stats st WHERE st.object_id = t.object_id) AS last_analyze
FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id
WHERE t.is_ms_shipped = 0
ORDER BY s.name, t.name";

const INDEXES: &str = "\
/* flowhost db stats */
SELECT CAST(i.object_id AS BIGINT) AS object_id, CAST(i.index_id AS BIGINT) AS index_id,
       s.name AS schema_name, t.name AS table_name, i.name AS index_name,
       i.is_unique, i.is_primary_key, i.is_unique_constraint, i.has_filter,
       CAST(i.filter_definition AS NVARCHAR(4000)) AS filter, i.type_desc,
       (SELECT CAST(SUM(a.total_pages) AS BIGINT) * 8192 FROM sys.partitions p
        JOIN sys.allocation_units a ON a.container_id = p.partition_id
        WHERE p.object_id = i.object_id AND p.index_id = i.index_id) AS size_bytes
FROM sys.indexes i
JOIN sys.tables t ON t.object_id = i.object_id
JOIN sys.schemas s ON s.schema_id = t.schema_id
WHERE t.is_ms_shipped = 0 AND i.type > 0 AND i.is_hypothetical = 0
ORDER BY s.name, t.name, i.name";

const INDEX_COLUMNS: &str = "\
/* flowhost db stats */
SELECT CAST(ic.object_id AS BIGINT) AS object_id, CAST(ic.index_id AS BIGINT) AS index_id,
       c.name AS column_name, ic.is_descending_key, ic.is_included_column
FROM sys.index_columns ic
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
JOIN sys.tables t ON t.object_id = ic.object_id
WHERE t.is_ms_shipped = 0
ORDER BY ic.object_id, ic.index_id, ic.is_included_column, ic.key_ordinal, c.name";

const USAGE: &str = "\
/* flowhost db stats */
SELECT CAST(object_id AS BIGINT) AS object_id, CAST(index_id AS BIGINT) AS index_id,
       CAST(user_seeks + user_scans + user_lookups AS BIGINT) AS reads
FROM sys.dm_db_index_usage_stats WHERE database_id = DB_ID()";

const STARTED: &str =
    "SELECT CONVERT(NVARCHAR(33), sqlserver_start_time, 126) FROM sys.dm_os_sys_info";

const FOREIGN_KEYS: &str = "\
/* flowhost db stats */
SELECT CAST(fk.object_id AS BIGINT) AS fk_id, fk.name AS fk_name, s.name AS schema_name,
       t.name AS table_name, c.name AS column_name,
       rs.name + N'.' + rt.name AS referenced
FROM sys.foreign_keys fk
JOIN sys.foreign_key_columns fkc ON fkc.constraint_object_id = fk.object_id
JOIN sys.tables t ON t.object_id = fk.parent_object_id
JOIN sys.schemas s ON s.schema_id = t.schema_id
JOIN sys.columns c ON c.object_id = fkc.parent_object_id AND c.column_id = fkc.parent_column_id
JOIN sys.tables rt ON rt.object_id = fk.referenced_object_id
JOIN sys.schemas rs ON rs.schema_id = rt.schema_id
ORDER BY fk.object_id, fkc.constraint_column_id";

const DATABASE_BYTES: &str =
    "SELECT CAST(SUM(CAST(size AS BIGINT)) * 8192 AS BIGINT) FROM sys.database_files";

/// The slowest statements whose plans belong to this database, by mean elapsed time, this
/// report's own aside.
const STATEMENTS: &str = "\
/* flowhost db stats */
SELECT TOP ({limit})
       CAST(SUBSTRING(st.text, qs.statement_start_offset / 2 + 1,
            (CASE qs.statement_end_offset WHEN -1 THEN DATALENGTH(st.text)
             ELSE qs.statement_end_offset END - qs.statement_start_offset) / 2 + 1)
            AS NVARCHAR(2000)) AS query,
       CAST(qs.execution_count AS BIGINT) AS calls,
       CAST(qs.total_elapsed_time / 1000.0 AS FLOAT) AS total_ms,
       CAST(qs.total_elapsed_time / 1000.0 / qs.execution_count AS FLOAT) AS mean_ms
FROM sys.dm_exec_query_stats qs
CROSS APPLY sys.dm_exec_sql_text(qs.sql_handle) st
CROSS APPLY (SELECT CAST(pa.value AS INT) AS dbid FROM sys.dm_exec_plan_attributes(qs.plan_handle) pa
             WHERE pa.attribute = N'dbid') d
WHERE d.dbid = DB_ID() AND st.text NOT LIKE N'/* flowhost db stats */%'
ORDER BY qs.total_elapsed_time / qs.execution_count DESC";

type IndexId = (i64, i64);

/// An index's key columns as named, as compared (lower case, with direction), and its
/// included columns.
#[derive(Default)]
struct IndexColumns {
    keys: Vec<String>,
    signature: Vec<String>,
    included: Vec<String>,
}

pub(super) async fn gather(conn: &mut Conn, db: &Database) -> Result<Facts, DbError> {
    let mut facts = Facts {
        usage_since_phrase: "server start",
        ..Facts::default()
    };
    let stats = &mut facts.stats;
    for row in conn.host_query(db, TABLES, &[]).await? {
        stats.tables.push(TableStats {
            schema: get(db, &row, "schema_name")?,
            name: get(db, &row, "table_name")?,
            rows: Some(get::<Option<i64>>(db, &row, "row_count")?.unwrap_or(0)),
            total_bytes: get(db, &row, "total_bytes")?,
            last_analyze: get(db, &row, "last_analyze")?,
            ..TableStats::default()
        });
    }

    let mut columns: BTreeMap<IndexId, IndexColumns> = BTreeMap::new();
    for row in conn.host_query(db, INDEX_COLUMNS, &[]).await? {
        let IndexColumns {
            keys,
            signature,
            included,
        } = columns.entry(id(db, &row)?).or_default();
        let name: String = get(db, &row, "column_name")?;
        if get::<bool>(db, &row, "is_included_column")? {
            included.push(name.to_lowercase());
        } else {
            let descending: bool = get(db, &row, "is_descending_key")?;
            signature.push(format!("{}/{descending}", name.to_lowercase()));
            keys.push(name);
        }
    }
    let usage = optional(conn, db, USAGE, &mut stats.notes, "index usage").await?;
    let usage: Option<BTreeMap<IndexId, i64>> = match usage {
        Some(rows) => Some(
            rows.iter()
                .map(|r| Ok((id(db, r)?, get(db, r, "reads")?)))
                .collect::<Result<_, DbError>>()?,
        ),
        None => None,
    };
    if usage.is_some()
        && let Ok(at) = conn.host_scalar::<String>(db, STARTED, &[]).await
    {
        stats.index_usage_since = Some(at);
    }
    for row in conn.host_query(db, INDEXES, &[]).await? {
        let key = id(db, &row)?;
        let IndexColumns {
            keys: cols,
            signature,
            included,
        } = columns.remove(&key).unwrap_or_default();
        let kind: String = get(db, &row, "type_desc")?;
        // A clustered and a nonclustered B-tree on the same keys serve the same lookups.
        let kind = if kind.ends_with("CLUSTERED") {
            "btree".into()
        } else {
            kind
        };
        let filter: Option<String> = get(db, &row, "filter")?;
        let primary: bool = get(db, &row, "is_primary_key")?;
        let unique_constraint: bool = get(db, &row, "is_unique_constraint")?;
        stats.indexes.push(IndexStats {
            schema: get(db, &row, "schema_name")?,
            table: get(db, &row, "table_name")?,
            name: get(db, &row, "index_name")?,
            signature: format!(
                "{kind} key {} include {} where {}",
                signature.join(","),
                sorted(included).join(","),
                filter.unwrap_or_default()
            ),
            columns: cols,
            unique: get(db, &row, "is_unique")?,
            primary,
            constraint: primary || unique_constraint,
            partial: get(db, &row, "has_filter")?,
            size_bytes: get(db, &row, "size_bytes")?,
            // No row: not used since the server started.
            scans: usage.as_ref().map(|u| u.get(&key).copied().unwrap_or(0)),
            ..IndexStats::default()
        });
    }

    let mut keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    for row in conn.host_query(db, FOREIGN_KEYS, &[]).await? {
        let fk: i64 = get(db, &row, "fk_id")?;
        let column: String = get(db, &row, "column_name")?;
        if let Some(existing) = keys.get_mut(&fk) {
            existing.columns.push(column);
            continue;
        }
        keys.insert(
            fk,
            ForeignKey {
                schema: get(db, &row, "schema_name")?,
                table: get(db, &row, "table_name")?,
                name: get(db, &row, "fk_name")?,
                columns: vec![column],
                references: get(db, &row, "referenced")?,
            },
        );
    }
    facts.foreign_keys = keys.into_values().collect();
    let stats = &mut facts.stats;
    stats.database_bytes = conn.host_scalar(db, DATABASE_BYTES, &[]).await?;

    let sql = STATEMENTS.replace("{limit}", &super::SLOW_STATEMENTS.to_string());
    if let Some(rows) = optional(conn, db, &sql, &mut stats.notes, "slow statements").await? {
        stats.slow_statements = Some(super::slow_statements(db, &rows)?);
    }
    stats.notes.push(
        "SQL Server keeps no dead-row counts or vacuum times; rows are the catalog's counts and \
         last_analyze the newest statistics update"
            .into(),
    );
    Ok(facts)
}

fn id(db: &Database, row: &HostRow) -> Result<IndexId, DbError> {
    Ok((get(db, row, "object_id")?, get(db, row, "index_id")?))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Rows of a view this login may not see: `None` and a note when it cannot.
async fn optional(
    conn: &mut Conn,
    db: &Database,
    sql: &str,
    notes: &mut Vec<String>,
    what: &str,
) -> Result<Option<Vec<HostRow>>, DbError> {
    match conn.host_query(db, sql, &[]).await {
        Ok(rows) => Ok(Some(rows)),
        Err(e) if !e.is_connection_lost() => {
            notes.push(format!(
                "{what} unavailable (the login needs VIEW SERVER STATE): {e}"
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
