//! `flowhost db stats`: what a database optimizer looks at. Table statistics (rows, live and
//! dead tuples, last vacuum and analyze, size), unused and duplicate indexes, foreign keys no
//! index covers, the slowest statements where the server keeps them, and recommendations.
//!
//! Each backend module ([`postgres`], [`sqlite`], [`sqlserver`]) holds that backend's SQL and
//! gathers [`Facts`]; what is judged from them (duplicates, unused indexes, uncovered foreign
//! keys, recommendations) is decided once, here. What a backend cannot tell goes into
//! [`DbStats::notes`]. Errors are the db layer's, which never hold a connection string.

mod postgres;
mod sqlite;
mod sqlserver;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Backend;
use crate::db::{Database, DbError, FromValue};

/// Slow statements reported at most.
const SLOW_STATEMENTS: usize = 10;
/// Characters of a statement's text reported.
const QUERY_CHARS: usize = 200;

/// What `collect` found in one database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbStats {
    /// The whole database's size on disk, when the backend tells.
    pub database_bytes: Option<i64>,
    /// Space inside the database file that is allocated but free (SQLite's free pages).
    pub free_bytes: Option<i64>,
    /// Since when index scans are counted (PostgreSQL's statistics reset, SQL Server's start).
    pub index_usage_since: Option<String>,
    pub tables: Vec<TableStats>,
    pub indexes: Vec<IndexStats>,
    /// Foreign keys whose columns lead no index of their table.
    pub unindexed_foreign_keys: Vec<ForeignKey>,
    /// The slowest statements by mean time; `None` when the server keeps none (see `notes`).
    pub slow_statements: Option<Vec<SlowStatement>>,
    /// What to do, most pressing first; each line starts with the statement to run.
    pub recommendations: Vec<String>,
    /// What this backend cannot tell, or could not be read (missing permissions, extensions).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    /// Rows: an estimate from the server's statistics, exact where `rows_exact`.
    pub rows: Option<i64>,
    pub rows_exact: bool,
    pub live_tuples: Option<i64>,
    pub dead_tuples: Option<i64>,
    /// Rows changed since the last analyze (PostgreSQL).
    pub modified_since_analyze: Option<i64>,
    pub last_vacuum: Option<String>,
    pub last_autovacuum: Option<String>,
    pub last_analyze: Option<String>,
    pub last_autoanalyze: Option<String>,
    /// Whether the planner has statistics for the table, where the backend tells.
    pub analyzed: Option<bool>,
    /// The table with its indexes (and TOAST), in bytes.
    pub total_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexStats {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// Key columns in order; an expression as its text.
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    /// Enforces a PRIMARY KEY or UNIQUE (or exclusion) constraint.
    pub constraint: bool,
    /// Has a WHERE clause.
    pub partial: bool,
    pub size_bytes: Option<i64>,
    /// Scans counted since `index_usage_since`; `None` where the backend counts none.
    pub scans: Option<i64>,
    /// Never scanned, enforces nothing.
    pub unused: bool,
    /// Another index of the same table with the same definition, which is kept.
    pub duplicate_of: Option<String>,
    /// What makes two indexes the same, in the backend's terms.
    #[serde(skip)]
    pub(crate) signature: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ForeignKey {
    pub schema: String,
    pub table: String,
    /// The constraint's name (SQLite's foreign keys have none).
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub references: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlowStatement {
    /// The statement's text, whitespace collapsed, cut at 200 characters.
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
    pub total_ms: f64,
}

/// What a backend module gathers; [`finish`] judges it.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub stats: DbStats,
    /// Every foreign key, covered or not.
    pub foreign_keys: Vec<ForeignKey>,
    /// Keys that cover columns without being in `indexes` (SQLite's INTEGER PRIMARY KEY).
    pub implicit_keys: Vec<(String, String, Vec<String>)>,
    /// How `index_usage_since` reads in a recommendation ("stats reset", "server start").
    pub usage_since_phrase: &'static str,
}

/// Gathers the statistics of `db` on one pooled connection.
pub async fn collect(db: &Database) -> Result<DbStats, DbError> {
    let mut conn = db.acquire().await?;
    let backend = db.backend();
    let facts = match backend {
        Backend::Postgres => postgres::gather(&mut conn, db).await?,
        Backend::Sqlite => sqlite::gather(&mut conn, db).await?,
        Backend::SqlServer => sqlserver::gather(&mut conn, db).await?,
    };
    Ok(finish(backend, facts))
}

/// Marks duplicate and unused indexes, finds uncovered foreign keys and writes the
/// recommendations.
pub(crate) fn finish(backend: Backend, facts: Facts) -> DbStats {
    let Facts {
        mut stats,
        foreign_keys,
        implicit_keys,
        usage_since_phrase,
    } = facts;
    mark_duplicates(&mut stats.indexes);
    let fold = backend != Backend::Postgres;
    // The indexes able to serve each foreign key (duplicates aside: they are to go).
    let mut serves_a_key = vec![false; stats.indexes.len()];
    for fk in foreign_keys {
        let cover: Vec<usize> = (0..stats.indexes.len())
            .filter(|&n| {
                let i = &stats.indexes[n];
                !i.partial
                    && i.duplicate_of.is_none()
                    && i.schema == fk.schema
                    && i.table == fk.table
                    && covers(&i.columns, &fk.columns, fold)
            })
            .collect();
        let by_key = implicit_keys.iter().any(|(s, t, cols)| {
            *s == fk.schema && *t == fk.table && covers(cols, &fk.columns, fold)
        });
        match cover.as_slice() {
            [] if !by_key => stats.unindexed_foreign_keys.push(fk),
            // The only index behind a key: unscanned by queries, it still serves the key's
            // checks when a referenced row changes.
            [only] if !by_key => serves_a_key[*only] = true,
            _ => {}
        }
    }
    for (index, serves_fk) in stats.indexes.iter_mut().zip(serves_a_key) {
        index.unused = index.scans == Some(0)
            && index.duplicate_of.is_none()
            && !index.unique
            && !index.primary
            && !index.constraint
            && !serves_fk;
    }
    stats.recommendations = recommend(backend, &stats, usage_since_phrase);
    stats
}

/// Whether an index whose key columns are `index` serves lookups on `key`: its leading
/// columns are `key`'s, in any order.
pub(crate) fn covers(index: &[String], key: &[String], fold: bool) -> bool {
    if key.is_empty() || index.len() < key.len() {
        return false;
    }
    let norm = |c: &String| if fold { c.to_lowercase() } else { c.clone() };
    let mut lead: Vec<String> = index[..key.len()].iter().map(norm).collect();
    let mut want: Vec<String> = key.iter().map(norm).collect();
    lead.sort();
    want.sort();
    lead == want
}

/// Sets `duplicate_of` on every index whose table has another with the same signature. The
/// one kept is the one that enforces most (primary key, constraint, unique), then the most
/// scanned, then the first by name.
pub(crate) fn mark_duplicates(indexes: &mut [IndexStats]) {
    let mut groups: BTreeMap<(&str, &str, &str), Vec<usize>> = BTreeMap::new();
    for (n, i) in indexes.iter().enumerate() {
        groups
            .entry((&i.schema, &i.table, &i.signature))
            .or_default()
            .push(n);
    }
    let mut marks = Vec::new();
    for mut group in groups.into_values().filter(|g| g.len() > 1) {
        group.sort_by_key(|&n| {
            let i = &indexes[n];
            (
                !i.primary,
                !i.constraint,
                !i.unique,
                std::cmp::Reverse(i.scans.unwrap_or(0)),
                i.name.clone(),
            )
        });
        let keep = indexes[group[0]].name.clone();
        marks.extend(group[1..].iter().map(|&n| (n, keep.clone())));
    }
    for (n, keep) in marks {
        indexes[n].duplicate_of = Some(keep);
    }
}

/// Dead tuples at which a table wants a vacuum: autovacuum's default threshold (50 plus 20%).
const DEAD_MIN: i64 = 50;
const DEAD_SHARE: f64 = 0.2;
/// Changed rows at which statistics are stale: autoanalyze's default (50 plus 10%).
const MODIFIED_MIN: i64 = 50;
const MODIFIED_SHARE: f64 = 0.1;
/// Free space at which a SQLite file is worth a VACUUM.
const FREE_SHARE: f64 = 0.2;
const FREE_MIN: i64 = 1 << 20;

/// The recommendations, in order: per table (vacuum, analyze), foreign keys to index,
/// duplicate indexes, unused indexes, then the database file.
pub(crate) fn recommend(backend: Backend, stats: &DbStats, since: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in &stats.tables {
        let table = qualified(backend, &t.schema, &t.name);
        let live = t.live_tuples.or(t.rows).unwrap_or(0);
        if let Some(dead) = t.dead_tuples {
            let share = dead as f64 / (live + dead).max(1) as f64;
            if dead >= DEAD_MIN && share >= DEAD_SHARE {
                out.push(format!(
                    "VACUUM (ANALYZE) {table}: {}% dead tuples ({dead} dead, {live} live)",
                    (share * 100.0).round()
                ));
                continue;
            }
        }
        let rows = t.rows.unwrap_or(live);
        if t.analyzed == Some(false) && rows > 0 {
            out.push(format!("ANALYZE {table}: never analyzed"));
        } else if let Some(changed) = t.modified_since_analyze
            && changed >= MODIFIED_MIN
            && changed as f64 >= MODIFIED_SHARE * rows as f64
        {
            out.push(format!(
                "ANALYZE {table}: {changed} rows changed since the last analyze"
            ));
        }
    }
    for fk in &stats.unindexed_foreign_keys {
        let what = match &fk.name {
            Some(name) => format!("foreign key {name}"),
            None => format!("foreign key to {}", fk.references),
        };
        out.push(format!(
            "{}: {what} without an index",
            create_index(backend, fk)
        ));
    }
    for i in &stats.indexes {
        let Some(keep) = &i.duplicate_of else {
            continue;
        };
        let table = qualified(backend, &i.schema, &i.table);
        if i.constraint && backend == Backend::Sqlite {
            out.push(format!(
                "{table}: {} duplicates {keep}, but enforces a constraint SQLite cannot drop; \
                 remove the constraint or {keep} when the table is next rebuilt",
                i.name
            ));
        } else if i.constraint {
            out.push(format!(
                "ALTER TABLE {table} DROP CONSTRAINT {}: its index duplicates {keep}",
                ident(backend, &i.name)
            ));
        } else {
            out.push(format!("{}: duplicates {keep}", drop_index(backend, i)));
        }
    }
    for i in stats.indexes.iter().filter(|i| i.unused) {
        let since = match &stats.index_usage_since {
            Some(at) => format!("{since} ({at})"),
            None => since.to_owned(),
        };
        out.push(format!("{}: unused since {since}", drop_index(backend, i)));
    }
    if let (Some(total), Some(free)) = (stats.database_bytes, stats.free_bytes)
        && free >= FREE_MIN
        && free as f64 >= FREE_SHARE * total as f64
    {
        out.push(format!(
            "VACUUM: {}% of the database file ({}) is free pages",
            (free as f64 * 100.0 / total.max(1) as f64).round(),
            human_bytes(free)
        ));
    }
    out
}

fn create_index(backend: Backend, fk: &ForeignKey) -> String {
    let table = qualified(backend, &fk.schema, &fk.table);
    let columns: Vec<String> = fk.columns.iter().map(|c| ident(backend, c)).collect();
    let columns = columns.join(", ");
    let name = || {
        let raw = format!("{}_{}_idx", fk.table, fk.columns.join("_"));
        let clean: String = raw
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .collect();
        ident(backend, &clean)
    };
    match backend {
        // PostgreSQL names it.
        Backend::Postgres => format!("CREATE INDEX ON {table} ({columns})"),
        Backend::Sqlite => format!(
            "CREATE INDEX {}.{} ON {} ({columns})",
            ident(backend, &fk.schema),
            name(),
            ident(backend, &fk.table)
        ),
        Backend::SqlServer => format!("CREATE INDEX {} ON {table} ({columns})", name()),
    }
}

fn drop_index(backend: Backend, i: &IndexStats) -> String {
    match backend {
        Backend::SqlServer => format!(
            "DROP INDEX {} ON {}",
            ident(backend, &i.name),
            qualified(backend, &i.schema, &i.table)
        ),
        _ => format!("DROP INDEX {}", qualified(backend, &i.schema, &i.name)),
    }
}

/// `schema.name`, each quoted where it must be.
pub(crate) fn qualified(backend: Backend, schema: &str, name: &str) -> String {
    format!("{}.{}", ident(backend, schema), ident(backend, name))
}

/// Words that cannot be bare names in any of the three dialects.
const RESERVED: &[&str] = &[
    "all",
    "and",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "check",
    "column",
    "constraint",
    "create",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "end",
    "from",
    "group",
    "having",
    "in",
    "index",
    "insert",
    "into",
    "is",
    "join",
    "key",
    "like",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "primary",
    "references",
    "select",
    "set",
    "table",
    "to",
    "union",
    "unique",
    "update",
    "user",
    "values",
    "where",
    "with",
];

/// `name` as the backend reads it: bare when it is plain, quoted otherwise.
pub(crate) fn ident(backend: Backend, name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        // PostgreSQL folds bare names to lower case.
        && (backend != Backend::Postgres || !name.chars().any(|c| c.is_ascii_uppercase()))
        && !RESERVED.contains(&name.to_ascii_lowercase().as_str());
    match backend {
        _ if plain => name.to_owned(),
        Backend::SqlServer => format!("[{}]", name.replace(']', "]]")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// A statement's text for the report: whitespace collapsed, cut at [`QUERY_CHARS`].
pub(crate) fn short_query(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(QUERY_CHARS) {
        Some((cut, _)) => format!("{}...", &collapsed[..cut]),
        None => collapsed,
    }
}

/// `1536` as `1.5 KiB`.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Key columns joined by this in one text column (a separator no name holds).
pub(crate) const SEP: char = '\u{1f}';

pub(crate) fn split_columns(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        return Vec::new();
    }
    joined.split(SEP).map(str::to_owned).collect()
}

/// The slowest statements of a statistics view's rows (`query`, `calls`, `mean_ms`,
/// `total_ms`), as PostgreSQL's and SQL Server's views both give them.
pub(crate) fn slow_statements(
    db: &Database,
    rows: &[crate::db::HostRow],
) -> Result<Vec<SlowStatement>, DbError> {
    rows.iter()
        .map(|row| {
            let query: Option<String> = get(db, row, "query")?;
            Ok(SlowStatement {
                query: short_query(query.as_deref().unwrap_or("")),
                calls: get(db, row, "calls")?,
                mean_ms: get(db, row, "mean_ms")?,
                total_ms: get(db, row, "total_ms")?,
            })
        })
        .collect()
}

/// Reads column `name` of a host row, as a database error when it does not convert.
pub(crate) fn get<T: FromValue>(
    db: &Database,
    row: &crate::db::HostRow,
    name: &str,
) -> Result<T, DbError> {
    row.get(name).map_err(|e| DbError::conversion(db.name(), e))
}

#[cfg(test)]
mod tests;
