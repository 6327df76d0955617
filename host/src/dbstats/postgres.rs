//! PostgreSQL's statistics: the cumulative statistics views (`pg_stat_user_tables`,
//! `pg_stat_user_indexes`), the catalog (`pg_index`, `pg_constraint`) and, when installed,
//! `pg_stat_statements`.

use super::{Facts, ForeignKey, IndexStats, SlowStatement, TableStats, get};
use crate::db::{Conn, Database, DbError};

const TABLES: &str = "\
/* flowhost db stats */
SELECT s.schemaname::text AS schema_name, s.relname::text AS table_name,
       c.reltuples::bigint AS reltuples, s.n_live_tup AS live, s.n_dead_tup AS dead,
       s.n_mod_since_analyze AS modified,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       pg_total_relation_size(s.relid) AS total_bytes
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
ORDER BY 1, 2";

/// One row per index of a user table. `signature` is what makes two indexes the same: their
/// columns (`indkey`), operator classes, collations, expressions and predicate (the table is
/// the grouping's). `columns` joins the key columns (INCLUDE ones aside) with chr(31).
const INDEXES: &str = "\
/* flowhost db stats */
SELECT n.nspname::text AS schema_name, t.relname::text AS table_name,
       i.relname::text AS index_name, x.indisunique AS is_unique, x.indisprimary AS is_primary,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid
                 AND k.contype IN ('p', 'u', 'x')) AS backs_constraint,
       x.indpred IS NOT NULL AS partial,
       'key ' || x.indkey::text || ' class ' || x.indclass::text
         || ' coll ' || x.indcollation::text
         || ' expr ' || coalesce(pg_get_expr(x.indexprs, x.indrelid), '')
         || ' where ' || coalesce(pg_get_expr(x.indpred, x.indrelid), '') AS signature,
       array_to_string(ARRAY(
         SELECT CASE WHEN u.attnum = 0 THEN pg_get_indexdef(x.indexrelid, u.ord::int, true)
                     ELSE a.attname::text END
         FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
         LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.attnum
         WHERE u.ord <= x.indnkeyatts ORDER BY u.ord), chr(31)) AS columns,
       pg_relation_size(x.indexrelid) AS size_bytes, s.idx_scan AS scans
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
ORDER BY 1, 2, 3";

const FOREIGN_KEYS: &str = "\
/* flowhost db stats */
SELECT n.nspname::text AS schema_name, t.relname::text AS table_name, k.conname::text AS name,
       array_to_string(ARRAY(
         SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
         ORDER BY u.ord), chr(31)) AS columns,
       k.confrelid::regclass::text AS referenced
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3";

const DATABASE: &str = "\
/* flowhost db stats */
SELECT pg_database_size(current_database()) AS bytes,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS reset,
       current_setting('server_version_num')::int AS version";

const STATEMENTS_SCHEMA: &str = "\
/* flowhost db stats */
SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'";

/// The slowest statements of this database, this report's own aside (each of its queries
/// starts with the same comment); `{schema}` is the extension's, `{total}` and
/// `{mean}` the columns' names in the server's version.
const STATEMENTS: &str = "\
/* flowhost db stats */
SELECT left(query, 2000) AS query, calls, {total} AS total_ms, {mean} AS mean_ms
FROM {schema}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '/* flowhost db stats */%'
ORDER BY {mean} DESC LIMIT {limit}";

pub(super) async fn gather(conn: &mut Conn, db: &Database) -> Result<Facts, DbError> {
    let mut facts = Facts {
        usage_since_phrase: "stats reset",
        ..Facts::default()
    };
    let stats = &mut facts.stats;
    for row in conn.host_query(db, TABLES, &[]).await? {
        let live: i64 = get(db, &row, "live")?;
        let dead: i64 = get(db, &row, "dead")?;
        let modified: i64 = get(db, &row, "modified")?;
        let reltuples: i64 = get(db, &row, "reltuples")?;
        let last_analyze: Option<String> = get(db, &row, "last_analyze")?;
        let last_autoanalyze: Option<String> = get(db, &row, "last_autoanalyze")?;
        // Counters all zero on a table the planner knows rows of: the statistics were reset.
        let reset = live == 0 && dead == 0 && modified == 0 && reltuples > 0;
        stats.tables.push(TableStats {
            schema: get(db, &row, "schema_name")?,
            name: get(db, &row, "table_name")?,
            rows: Some(if reset { reltuples } else { live }),
            rows_exact: false,
            live_tuples: Some(live),
            dead_tuples: Some(dead),
            modified_since_analyze: Some(modified),
            last_vacuum: get(db, &row, "last_vacuum")?,
            last_autovacuum: get(db, &row, "last_autovacuum")?,
            analyzed: Some(last_analyze.is_some() || last_autoanalyze.is_some()),
            last_analyze,
            last_autoanalyze,
            total_bytes: get(db, &row, "total_bytes")?,
        });
    }
    for row in conn.host_query(db, INDEXES, &[]).await? {
        let columns: String = get(db, &row, "columns")?;
        stats.indexes.push(IndexStats {
            schema: get(db, &row, "schema_name")?,
            table: get(db, &row, "table_name")?,
            name: get(db, &row, "index_name")?,
            columns: super::split_columns(&columns),
            unique: get(db, &row, "is_unique")?,
            primary: get(db, &row, "is_primary")?,
            constraint: get(db, &row, "backs_constraint")?,
            partial: get(db, &row, "partial")?,
            size_bytes: get(db, &row, "size_bytes")?,
            scans: get(db, &row, "scans")?,
            signature: get(db, &row, "signature")?,
            ..IndexStats::default()
        });
    }
    for row in conn.host_query(db, FOREIGN_KEYS, &[]).await? {
        let columns: String = get(db, &row, "columns")?;
        facts.foreign_keys.push(ForeignKey {
            schema: get(db, &row, "schema_name")?,
            table: get(db, &row, "table_name")?,
            name: get(db, &row, "name")?,
            columns: super::split_columns(&columns),
            references: get(db, &row, "referenced")?,
        });
    }
    let rows = conn.host_query(db, DATABASE, &[]).await?;
    let mut version = 0;
    if let Some(row) = rows.first() {
        stats.database_bytes = get(db, row, "bytes")?;
        stats.index_usage_since = get(db, row, "reset")?;
        version = get(db, row, "version")?;
    }
    stats.notes.push(
        "index scans and tuple counts are the server's cumulative statistics, counted since \
         they were last reset; rows are estimates"
            .into(),
    );
    stats.slow_statements = slow_statements(conn, db, version, &mut stats.notes).await?;
    Ok(facts)
}

/// The slowest statements, or `None` with a note saying why there are none.
async fn slow_statements(
    conn: &mut Conn,
    db: &Database,
    version: i32,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<SlowStatement>>, DbError> {
    let schema: Vec<String> = conn
        .host_query(db, STATEMENTS_SCHEMA, &[])
        .await?
        .iter()
        .map(|r| r.at(0).map_err(|e| DbError::conversion(db.name(), e)))
        .collect::<Result<_, _>>()?;
    let Some(schema) = schema.first() else {
        notes.push(
            "pg_stat_statements is not installed in this database, so there are no slow \
             statements to show (add it to shared_preload_libraries, restart, then CREATE \
             EXTENSION pg_stat_statements)"
                .into(),
        );
        return Ok(None);
    };
    // PostgreSQL 13 split planning from execution and renamed the columns.
    let (total, mean) = if version >= 130_000 {
        ("total_exec_time", "mean_exec_time")
    } else {
        ("total_time", "mean_time")
    };
    let sql = STATEMENTS
        .replace("{schema}", &super::ident(crate::Backend::Postgres, schema))
        .replace("{total}", total)
        .replace("{mean}", mean)
        .replace("{limit}", &super::SLOW_STATEMENTS.to_string());
    match conn.host_query(db, &sql, &[]).await {
        Ok(rows) => Ok(Some(super::slow_statements(db, &rows)?)),
        // Installed but not preloaded, or not readable by this role.
        Err(e) if !e.is_connection_lost() => {
            notes.push(format!(
                "pg_stat_statements is installed but unreadable: {e}"
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
