//! `execute-batch` and `execute-batch-packed`: a statement once per parameter set, all or none.
//!
//! The sets run in their own transaction, or under a savepoint when the flow's transaction is
//! open (so a failed batch leaves that transaction usable and unchanged). A one-row INSERT
//! goes by the backend's bulk path (PostgreSQL: one statement of arrays) or as multi-row
//! INSERTs; if that fails for any reason it is undone and the sets run one by one, which either
//! succeeds with one statement's semantics per set or names the failing set.

use std::sync::Arc;

use super::{Route, Session, with_set_index};
use crate::bindings::types::{Params, Value};
use crate::db::{
    Backend, BatchRows, Conn, Database, DbError, Statement, ValueRef, bind_order,
    statement::placeholder_columns,
};
use crate::runtime::packed::PackedBatch;
use crate::sql::{Placeholders, StatementKind, ValuesTemplate};

/// The savepoint a batch inside a guest transaction runs under.
const BATCH_SAVEPOINT: &str = "flowhost_batch";

/// Most rows per multi-row INSERT: large enough that round trips stop mattering, small enough
/// that one statement stays cheap to parse (SQLAlchemy uses the same).
const ROWS_PER_INSERT: usize = 1000;

/// A packed batch (`execute-batch-packed`) seen in a statement's placeholder order, read in
/// place.
pub struct PackedSets<'a> {
    batch: PackedBatch<'a>,
    /// For each placeholder, the batch column it binds.
    columns: Vec<usize>,
}

impl BatchRows for PackedSets<'_> {
    fn count(&self) -> usize {
        self.batch.rows()
    }

    fn value(&self, row: usize, column: usize) -> ValueRef<'_> {
        self.batch.value(row, self.columns[column])
    }
}

impl PackedSets<'_> {
    /// Every set as owned values in placeholder order: for the paths that bind `Value`s.
    fn to_values(&self) -> Vec<Vec<Value>> {
        (0..self.count())
            .map(|row| {
                (0..self.columns.len())
                    .map(|column| self.value(row, column).to_value())
                    .collect()
            })
            .collect()
    }
}

/// A batch's parameter sets.
enum Sets<'p> {
    /// `Value`s in placeholder order.
    Ordered(Vec<Vec<&'p Value>>),
    /// A packed batch: the bulk path reads it where it is, and it becomes `Value`s only when
    /// another path needs them (another backend, a statement the bulk path declines, a retry
    /// row by row). Encoding 100,000 rows straight from their packed bytes instead of making
    /// 600,000 `Value`s first takes that part of rpa1's batch from about 70 ms to about 20.
    Packed(PackedSets<'p>),
}

impl Sets<'_> {
    fn len(&self) -> usize {
        match self {
            Sets::Ordered(rows) => rows.len(),
            Sets::Packed(sets) => sets.count(),
        }
    }

    /// Set `index`'s bytes, as the `max-param-mb` limit counts them.
    fn set_bytes(&self, index: usize) -> u64 {
        match self {
            Sets::Ordered(rows) => rows[index]
                .iter()
                .map(|v| ValueRef::from(*v).counted_bytes())
                .sum(),
            Sets::Packed(sets) => (0..sets.columns.len())
                .map(|column| sets.value(index, column).counted_bytes())
                .sum(),
        }
    }
}

impl Session {
    /// Runs `sql` once per parameter set, all or nothing: in its own transaction, or in a
    /// savepoint when a transaction is already open (so a failed batch leaves that transaction
    /// usable and unchanged).
    pub async fn execute_batch(
        &mut self,
        route: Route,
        sql: &str,
        sets: &[Params],
    ) -> Result<u64, DbError> {
        self.check_route(route)?;
        let stmt = self.db.guest_statement(sql, self.access)?;
        let ordered = sets
            .iter()
            .enumerate()
            .map(|(i, params)| {
                bind_order(&stmt, params, self.name()).map_err(|e| with_set_index(e, i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.execute_sets(stmt, Sets::Ordered(ordered)).await
    }

    /// [`execute_batch`](Self::execute_batch) for a packed batch of rows of values in the
    /// order of `names` (`execute-batch-packed`): the names are matched to the placeholders
    /// once, and the rows are read where they are.
    pub async fn execute_batch_packed(
        &mut self,
        route: Route,
        sql: &str,
        names: &[String],
        batch: PackedBatch<'_>,
    ) -> Result<u64, DbError> {
        self.check_route(route)?;
        let stmt = self.db.guest_statement(sql, self.access)?;
        let columns = placeholder_columns(&stmt, names, self.name())?;
        self.execute_sets(stmt, Sets::Packed(PackedSets { batch, columns }))
            .await
    }

    /// Runs `stmt` once per set of `sets`, all or none.
    async fn execute_sets(&mut self, stmt: Arc<Statement>, sets: Sets<'_>) -> Result<u64, DbError> {
        for i in 0..sets.len() {
            self.check_set_bytes(sets.set_bytes(i))
                .map_err(|e| with_set_index(e, i))?;
        }
        if sets.len() == 0 {
            return Ok(0);
        }
        self.check_functions(&stmt).await?;
        let backend = self.db.backend();
        // A batch that is its transaction's first statement begins it, and is undone by
        // undoing it (see `Session::unbegun`); one that follows others gets a savepoint.
        let unbegun = self.unbegun.take();
        let in_transaction = self.tx.is_some();
        let (open, keep, undo) = if let Some(begin) = unbegun {
            (
                begin.to_owned(),
                None,
                backend.rollback_if_open_sql().to_owned(),
            )
        } else if in_transaction {
            (
                backend.savepoint_sql(BATCH_SAVEPOINT),
                backend.release_savepoint_sql(BATCH_SAVEPOINT),
                backend.undo_to_savepoint_sql(BATCH_SAVEPOINT),
            )
        } else {
            (
                self.begin_sql().to_owned(),
                Some(backend.commit_sql().to_owned()),
                backend.rollback_if_open_sql().to_owned(),
            )
        };
        let db = self.db.clone();
        let dialect = db.backend();
        self.conn().await?;
        self.start_statement();
        let conn = self.conn.as_mut().expect("connected above");
        conn.run_raw(&db, &open).await?;
        // Many rows per statement when the statement allows it; if that fails for any reason
        // (a constraint, ON CONFLICT touching a row twice), undo and go row by row, which
        // either succeeds with the per-statement semantics or names the failing set.
        let template = match sets.len() {
            1 => None,
            _ => ValuesTemplate::parse(&stmt.sql, dialect),
        };
        // A packed batch is read in place where the backend can; elsewhere, and whenever that
        // path declines or fails, its values are made.
        let in_place = match (&template, &sets) {
            (Some(_), Sets::Packed(packed)) => conn.bulk_insert_in_place(&db, &stmt, packed).await,
            _ => None,
        };
        let owned: Vec<Vec<Value>>;
        let result = match in_place {
            Some(Ok(written)) => Ok(written),
            in_place => {
                let ordered = match sets {
                    Sets::Ordered(rows) => rows,
                    Sets::Packed(packed) => {
                        owned = packed.to_values();
                        owned.iter().map(|row| row.iter().collect()).collect()
                    }
                };
                let bulk = match (&template, in_place) {
                    (None, _) => None,
                    (Some(_), Some(failed)) => Some(failed),
                    (Some(_), None) => conn.bulk_insert(&db, &stmt, &ordered).await,
                };
                let mut result = match (&template, bulk) {
                    (Some(_), Some(result)) => result,
                    (Some(template), None) => insert_many_rows(conn, &db, template, &ordered).await,
                    (None, _) => execute_each(conn, &db, &stmt, &ordered).await,
                };
                if result.is_err() && !conn.is_usable() {
                    // The bulk path broke the connection mid-load; the server rolls its
                    // transaction back when it closes, and the session replaces it.
                    self.busy = false;
                    return result;
                }
                if let (Some(_), Err(e)) = (&template, &result) {
                    tracing::debug!(database = %db.name(), error = %e, "multi-row INSERT failed; retrying row by row");
                    conn.run_raw(&db, &undo).await?;
                    conn.run_raw(&db, &open).await?;
                    result = execute_each(conn, &db, &stmt, &ordered).await;
                }
                result
            }
        };
        match (&result, keep) {
            // In the flow's transaction, the savepoint is released with its next statement,
            // or not at all when a commit or rollback comes next (see `Session::unreleased`).
            (Ok(_), Some(release)) if in_transaction => self.unreleased = Some(release),
            (Ok(_), Some(commit)) => conn.run_raw(&db, &commit).await?,
            (Ok(_), None) => {}
            (Err(_), _) => {
                conn.run_raw(&db, &undo).await?;
                // Undone with the transaction it began, which is as new again.
                self.unbegun = unbegun;
            }
        }
        self.busy = false;
        result
    }
}

/// Runs `stmt` once per parameter set.
async fn execute_each(
    conn: &mut Conn,
    db: &Database,
    stmt: &Statement,
    sets: &[Vec<&Value>],
) -> Result<u64, DbError> {
    let mut total = 0;
    for (i, values) in sets.iter().enumerate() {
        total += conn
            .execute(db, stmt, values)
            .await
            .map_err(|e| with_set_index(e, i))?;
    }
    Ok(total)
}

/// Inserts every set's row with as few multi-row INSERTs as the backend's parameter limit allows.
async fn insert_many_rows(
    conn: &mut Conn,
    db: &Database,
    template: &ValuesTemplate,
    sets: &[Vec<&Value>],
) -> Result<u64, DbError> {
    let max_params = match db.backend() {
        Backend::Postgres => 65_535,
        Backend::Sqlite => 32_766,
        // 2,100 per request, two of which are sp_executesql's own statement and declarations.
        Backend::SqlServer => 2_098,
    };
    let per_row = template.params_per_row().max(1);
    let rows_per_chunk = (max_params / per_row).clamp(1, ROWS_PER_INSERT);
    let mut total = 0;
    for chunk in sets.chunks(rows_per_chunk) {
        let stmt = Statement {
            sql: template.render(chunk.len(), db.backend()).into(),
            placeholders: Placeholders::Positional(chunk.len() * template.params_per_row()),
            kind: StatementKind::Write,
            functions: Vec::new(),
            host: false,
        };
        let values: Vec<&Value> = chunk.iter().flatten().copied().collect();
        total += conn.execute(db, &stmt, &values).await?;
    }
    Ok(total)
}
