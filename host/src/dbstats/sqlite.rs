//! SQLite's equivalents: the schema table, exact row counts, the `index_list`/`index_xinfo`
//! and `foreign_key_list` pragmas, page counts, and the `dbstat` table for sizes. SQLite keeps
//! no statement or index-use statistics and no dead-row counts; the notes say so.

use std::collections::{BTreeMap, BTreeSet};

use super::{Facts, ForeignKey, IndexStats, TableStats, get};
use crate::bindings::types::Value;
use crate::db::{Conn, Database, DbError};

const SCHEMA: &str = "main";

const TABLES: &str = "\
SELECT name FROM sqlite_master
WHERE type = 'table' AND substr(name, 1, 7) <> 'sqlite_'
  AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%'
ORDER BY name";

const INDEXES: &str = "\
SELECT m.name AS table_name, il.name AS index_name, il.\"unique\" AS is_unique,
       il.origin AS origin, il.partial AS partial,
       (SELECT s.sql FROM sqlite_master s WHERE s.type = 'index' AND s.name = il.name) AS sql
FROM sqlite_master AS m, pragma_index_list(m.name) AS il
WHERE m.type = 'table'
ORDER BY 1, 2";

/// An index's key columns: `cid` -2 is an expression, -1 the rowid.
const INDEX_COLUMNS: &str = "\
SELECT cid, name, \"desc\" AS descending, coll FROM pragma_index_xinfo(?1)
WHERE key = 1 ORDER BY seqno";

const PRIMARY_KEY: &str = "\
SELECT name, type FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk";

const FOREIGN_KEYS: &str = "\
SELECT m.name AS table_name, fk.id AS id, fk.\"table\" AS referenced, fk.\"from\" AS column_name
FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS fk
WHERE m.type = 'table'
ORDER BY m.name, fk.id, fk.seq";

const PAGES: &str = "\
SELECT (SELECT page_count FROM pragma_page_count()) AS pages,
       (SELECT page_size FROM pragma_page_size()) AS page_size,
       (SELECT freelist_count FROM pragma_freelist_count()) AS free_pages";

const HAS_STAT1: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'";
const ANALYZED: &str = "SELECT DISTINCT tbl FROM sqlite_stat1";
const SIZES: &str = "SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name";

pub(super) async fn gather(conn: &mut Conn, db: &Database) -> Result<Facts, DbError> {
    let mut facts = Facts::default();
    let text = |s: &str| Value::Text(s.to_owned());

    let analyzed: Option<BTreeSet<String>> =
        if conn.host_scalar::<i64>(db, HAS_STAT1, &[]).await? > 0 {
            let rows = conn.host_query(db, ANALYZED, &[]).await?;
            let tables = rows.iter().map(|r| get::<Option<String>>(db, r, "tbl"));
            Some(
                tables
                    .filter_map(Result::transpose)
                    .collect::<Result<_, _>>()?,
            )
        } else {
            None
        };
    let sizes: Option<BTreeMap<String, i64>> = match conn.host_query(db, SIZES, &[]).await {
        Ok(rows) => Some(
            rows.iter()
                .map(|r| Ok((get(db, r, "name")?, get(db, r, "bytes")?)))
                .collect::<Result<_, DbError>>()?,
        ),
        Err(e) if !e.is_connection_lost() => {
            facts.stats.notes.push(format!(
                "the dbstat table is not available, so table and index sizes are unknown: {e}"
            ));
            None
        }
        Err(e) => return Err(e),
    };
    let size_of = |name: &str| sizes.as_ref().map(|s| s.get(name).copied().unwrap_or(0));

    for row in conn.host_query(db, INDEXES, &[]).await? {
        let name: String = get(db, &row, "index_name")?;
        let origin: String = get(db, &row, "origin")?;
        let partial: bool = get(db, &row, "partial")?;
        let sql: Option<String> = get(db, &row, "sql")?;
        let mut columns = Vec::new();
        let mut signature = Vec::new();
        let mut expression = false;
        for col in conn.host_query(db, INDEX_COLUMNS, &[text(&name)]).await? {
            let cid: i64 = get(db, &col, "cid")?;
            let column: Option<String> = get(db, &col, "name")?;
            let descending: bool = get(db, &col, "descending")?;
            let coll: Option<String> = get(db, &col, "coll")?;
            expression |= cid == -2;
            let column = column.unwrap_or_else(|| "(expression)".into());
            signature.push(format!(
                "{}/{}/{}",
                column.to_lowercase(),
                coll.unwrap_or_default().to_uppercase(),
                if descending { "desc" } else { "asc" }
            ));
            columns.push(column);
        }
        let mut signature = signature.join(",");
        // Expressions and WHERE clauses are known only by the text that created them.
        if (expression || partial)
            && let Some(sql) = &sql
            && let Some(open) = sql.find('(')
        {
            let tail = sql[open..].split_whitespace().collect::<Vec<_>>().join(" ");
            signature = format!("{signature}|{}", tail.to_lowercase());
        }
        facts.stats.indexes.push(IndexStats {
            schema: SCHEMA.into(),
            table: get(db, &row, "table_name")?,
            size_bytes: size_of(&name),
            name,
            columns,
            unique: get(db, &row, "is_unique")?,
            primary: origin == "pk",
            constraint: origin != "c",
            partial,
            scans: None,
            signature,
            ..IndexStats::default()
        });
    }

    for row in conn.host_query(db, TABLES, &[]).await? {
        let name: String = get(db, &row, "name")?;
        let count = format!("SELECT count(*) FROM {}", super::ident(db.backend(), &name));
        let rows: i64 = conn.host_scalar(db, &count, &[]).await?;
        let total_bytes = size_of(&name).map(|own| {
            let indexes = facts.stats.indexes.iter().filter(|i| i.table == name);
            own + indexes.filter_map(|i| i.size_bytes).sum::<i64>()
        });
        // An INTEGER PRIMARY KEY is the rowid: it covers its column without an index.
        let key = conn.host_query(db, PRIMARY_KEY, &[text(&name)]).await?;
        if let [only] = key.as_slice() {
            let kind: String = get(db, only, "type")?;
            if kind.eq_ignore_ascii_case("INTEGER") {
                let column: String = get(db, only, "name")?;
                facts
                    .implicit_keys
                    .push((SCHEMA.into(), name.clone(), vec![column]));
            }
        }
        facts.stats.tables.push(TableStats {
            schema: SCHEMA.into(),
            analyzed: Some(analyzed.as_ref().is_some_and(|a| a.contains(&name))),
            name,
            rows: Some(rows),
            rows_exact: true,
            total_bytes,
            ..TableStats::default()
        });
    }

    let mut keys: BTreeMap<(String, i64), ForeignKey> = BTreeMap::new();
    for row in conn.host_query(db, FOREIGN_KEYS, &[]).await? {
        let table: String = get(db, &row, "table_name")?;
        let id: i64 = get(db, &row, "id")?;
        let column: String = get(db, &row, "column_name")?;
        let referenced: String = get(db, &row, "referenced")?;
        keys.entry((table.clone(), id))
            .or_insert_with(|| ForeignKey {
                schema: SCHEMA.into(),
                table,
                name: None,
                columns: Vec::new(),
                references: referenced,
            })
            .columns
            .push(column);
    }
    facts.foreign_keys = keys.into_values().collect();

    let pages = conn.host_query(db, PAGES, &[]).await?;
    if let Some(row) = pages.first() {
        let page_size: i64 = get(db, row, "page_size")?;
        facts.stats.database_bytes = Some(get::<i64>(db, row, "pages")? * page_size);
        facts.stats.free_bytes = Some(get::<i64>(db, row, "free_pages")? * page_size);
    }
    facts.stats.notes.extend([
        "SQLite keeps no statement statistics: there are no slow statements to show".to_owned(),
        "SQLite counts no index use: unused indexes cannot be told".to_owned(),
        "SQLite keeps no dead-row counts or vacuum times; free pages are reported instead, and \
         rows are exact counts"
            .to_owned(),
    ]);
    Ok(facts)
}
