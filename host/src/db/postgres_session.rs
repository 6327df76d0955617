//! PostgreSQL session hygiene: starting a guest session with the run's limits, resolving the
//! functions a read-only statement calls, resetting the session when the run ends, and ending
//! a stuck backend from another connection.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPoolOptions, Postgres};

use super::value_ref::OrderedRows;
use super::{
    BatchRows, Conn, Database, DbError, DriverConn, DriverPool, PackedStream, PgSession, Pool,
    RowStream, ServerSession, Statement, sqlx_common,
};
use crate::bindings::types::{Column, Value};
use crate::sql::postgres::{CallKind, FunctionName, function_allowed, function_volatility_sql};

/// Starts a guest session: one round trip that sets the statement timeout, asks the server to
/// notice a vanished client within a second (so a killed host does not leave statements
/// running), makes every transaction read-only for a read-only grant, and reads what the reset
/// and the cancel path need. Whether the role is a superuser comes from the server's own
/// `is_superuser` setting (it follows the current role), not from `pg_roles`: planning that
/// view and reading its catalogs cold took a new backend about a millisecond.
pub async fn start_session(
    conn: &mut PgConnection,
    db: &Database,
    read_only: bool,
    statement_timeout: Duration,
) -> Result<PgSession, DbError> {
    let mut sql = format!(
        "SET statement_timeout = {}; ",
        statement_timeout.as_millis().max(1)
    );
    // client_connection_check_interval exists from PostgreSQL 14 on.
    if conn.server_version_num().unwrap_or(0) >= 140_000 {
        sql.push_str("SET client_connection_check_interval = 1000; ");
    }
    if read_only {
        sql.push_str("SET default_transaction_read_only = on; ");
    }
    sql.push_str(
        "SELECT pg_backend_pid(), session_user::text, \
         current_setting('standard_conforming_strings'), \
         current_setting('is_superuser') = 'on', \
         pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') \
         OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') \
         OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')",
    );
    let rows = conn
        .fetch_all(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
        .await
        .map_err(|e| db.error(e))?;
    let row = rows.last().ok_or_else(|| {
        DbError::invalid(db.name(), "the server did not answer the session set-up")
    })?;
    let (pid, login_user, conforming): (i32, String, String) = (
        row.try_get(0).map_err(|e| db.error(e))?,
        row.try_get(1).map_err(|e| db.error(e))?,
        row.try_get(2).map_err(|e| db.error(e))?,
    );
    let superuser: Option<bool> = row.try_get(3).map_err(|e| db.error(e))?;
    let server_files: Option<bool> = row.try_get(4).map_err(|e| db.error(e))?;
    let privilege = match (superuser, server_files) {
        (Some(true), _) => Some("is a superuser"),
        (_, Some(true)) => Some("may read or write the server's files or run programs there"),
        _ => None,
    };
    if let Some(what) = privilege {
        db.privileged_role(&login_user, what)?;
    }
    if conforming != "on" {
        // Statements are judged by PostgreSQL's parser with standard_conforming_strings on;
        // with it off, backslashes in strings would read differently on the server.
        return Err(DbError::invalid(
            db.name(),
            "the server has standard_conforming_strings = off; flowhost checks statements as \
             PostgreSQL parses them with it on, so set it on for flowhost's role (ALTER ROLE \
             ... SET standard_conforming_strings = on)",
        ));
    }
    Ok(PgSession { pid, login_user })
}

/// Undoes whatever a run could have left on its session, then checks: role and session
/// authorization back at the login role, no prepared statements but the driver's own, no
/// advisory locks. The reset is one round trip and the check rides along with it.
pub async fn reset_session(
    conn: &mut PgConnection,
    db: &Database,
    server: Option<&PgSession>,
) -> Result<(), String> {
    const RESET: &str = "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *; \
        SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; \
        SELECT session_user::text, current_user::text, \
        (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
        (SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql), \
        (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory')";
    let rows = conn
        .fetch_all(sqlx::raw_sql(RESET))
        .await
        .map_err(|e| format!("the session reset failed: {}", db.error(e)))?;
    let row = rows.last().ok_or("the session reset returned nothing")?;
    let get = |i: usize| -> Result<i64, String> { row.try_get(i).map_err(|e| e.to_string()) };
    let (session_user, current_user): (String, String) = (
        row.try_get(0).map_err(|e| e.to_string())?,
        row.try_get(1).map_err(|e| e.to_string())?,
    );
    let (from_sql, protocol, advisory) = (get(2)?, get(3)?, get(4)?);
    if let Some(server) = server
        && (session_user != server.login_user || current_user != server.login_user)
    {
        return Err(format!(
            "the session is still running as role '{current_user}' (session '{session_user}'), \
             not '{}'",
            server.login_user
        ));
    }
    if advisory != 0 {
        return Err(format!("{advisory} advisory lock(s) survived the reset"));
    }
    // The driver caches its prepared statements per connection; if the flow deallocated some
    // (or prepared its own), the cache no longer matches the server and the next run would
    // fail with `prepared statement "sqlx_s_1" does not exist`. Start both afresh.
    if from_sql != 0 || protocol != conn.cached_statements_size() as i64 {
        conn.clear_cached_statements()
            .await
            .map_err(|e| format!("clearing the statement cache failed: {}", db.error(e)))?;
        conn.execute("DEALLOCATE ALL")
            .await
            .map_err(|e| format!("DEALLOCATE ALL failed: {}", db.error(e)))?;
    }
    Ok(())
}

/// How long a verdict on a function name is trusted; functions can be created or altered.
const VERDICT_TTL: Duration = Duration::from_secs(60);

/// Verdicts on function names for read-only statements, per database, shared by every run.
#[derive(Debug, Default)]
pub struct FunctionVerdicts {
    known: Mutex<HashMap<FunctionName, (Verdict, Instant)>>,
}

/// What the catalog says about one name a statement calls.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    allowed: bool,
    /// Some candidate lives outside `pg_catalog`: a function someone wrote, which may change
    /// session settings (`set_config` in its body) even when it is not VOLATILE.
    user_defined: bool,
}

impl FunctionVerdicts {
    fn get(&self, name: &FunctionName) -> Option<Verdict> {
        let known = self.known.lock().expect("function verdicts");
        known
            .get(name)
            .filter(|(_, at)| at.elapsed() < VERDICT_TTL)
            .map(|(verdict, _)| *verdict)
    }

    fn put(&self, name: FunctionName, verdict: Verdict) {
        let mut known = self.known.lock().expect("function verdicts");
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(name, (verdict, Instant::now()));
    }
}

/// Refuses a read-only statement that calls a function which may have side effects. Every
/// function of that name (in the named schema, or in any schema when unqualified: the
/// search path could reach any of them) must be non-volatile, or on a short list of volatile
/// functions that only compute a value.
///
/// Returns whether the statement runs user-defined code, after which the session's read-only
/// default must be set again (that code may have turned it off).
pub async fn check_functions(
    conn: &mut PgConnection,
    db: &Database,
    verdicts: &FunctionVerdicts,
    functions: &[FunctionName],
) -> Result<bool, DbError> {
    let mut unknown = Vec::new();
    let mut user_code = false;
    for f in functions {
        match verdicts.get(f) {
            Some(v) if !v.allowed => return Err(refuse(db, f)),
            Some(v) => user_code |= v.user_defined,
            None => unknown.push(f),
        }
    }
    if unknown.is_empty() {
        return Ok(user_code);
    }
    let kinds: Vec<CallKind> = CallKind::ALL
        .into_iter()
        .filter(|kind| unknown.iter().any(|f| f.kind == *kind))
        .collect();
    let sql = function_volatility_sql(&kinds);
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for kind in &kinds {
        let names: Vec<String> = unknown
            .iter()
            .filter(|f| f.kind == *kind)
            .map(|f| f.name.clone())
            .collect();
        query = query.bind(names);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(|e| db.error(e))?;
    let candidates: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| db.error(e))?;
    for f in unknown {
        let matching: Vec<&(String, String, String, String)> = candidates
            .iter()
            .filter(|(kind, schema, name, _)| {
                kind == f.kind.tag()
                    && *name == f.name
                    && f.schema.as_ref().is_none_or(|s| s == schema)
            })
            .collect();
        let volatilities: Vec<char> = matching.iter().flat_map(|(_, _, _, v)| v.chars()).collect();
        let verdict = Verdict {
            allowed: function_allowed(f, &volatilities),
            user_defined: matching.iter().any(|(_, schema, _, _)| {
                !matches!(schema.as_str(), "pg_catalog" | "information_schema")
            }),
        };
        // A name with no function behind it fails on the server; a later CREATE FUNCTION
        // must not find it pre-approved.
        if !matching.is_empty() {
            verdicts.put(f.clone(), verdict);
        }
        if !verdict.allowed {
            return Err(refuse(db, f));
        }
        user_code |= verdict.user_defined;
    }
    Ok(user_code)
}

fn refuse(db: &Database, f: &FunctionName) -> DbError {
    DbError::ReadOnly {
        database: db.name().to_owned(),
        reason: match f.kind {
            CallKind::Function => format!(
                "{f} may change data or session state (it is VOLATILE in pg_proc, or reaches \
                 outside the database); a read-only grant calls only functions without side \
                 effects"
            ),
            CallKind::Operator | CallKind::Cast => format!(
                "{f} may change data or session state (a VOLATILE function implements it); a \
                 read-only grant calls only functions without side effects"
            ),
        },
    }
}

/// Ends backend `pid`, waiting up to 5 s for it to go (PostgreSQL 14+), from an idle pooled
/// connection or, when the pool has none to spare, a fresh one.
pub async fn terminate_backend(
    pool: &sqlx::PgPool,
    pid: i32,
    connect_timeout: Duration,
) -> Result<(), sqlx::Error> {
    let run = async |conn: &mut PgConnection| -> Result<(), sqlx::Error> {
        let sql = if conn.server_version_num().unwrap_or(0) >= 140_000 {
            "SELECT pg_terminate_backend($1, 5000)"
        } else {
            "SELECT pg_terminate_backend($1)"
        };
        sqlx::query(sql).bind(pid).execute(&mut *conn).await?;
        Ok(())
    };
    if let Some(mut pooled) = pool.try_acquire() {
        return run(&mut pooled).await;
    }
    let options = (*pool.connect_options())
        .clone()
        .application_name("flowhost-terminate");
    let mut conn = tokio::time::timeout(connect_timeout, PgConnection::connect_with(&options))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let result = run(&mut conn).await;
    let _ = conn.close().await;
    result
}

impl DriverPool for sqlx::PgPool {
    fn acquire<'a>(&'a self, db: &'a Database) -> BoxFuture<'a, Result<Conn, DbError>> {
        sqlx_common::acquire(self, db, std::convert::identity)
    }

    /// A session lock on a pooled connection could outlive its user or, behind a
    /// transaction-mode pooler, land on the wrong server session; a private pool of one is used
    /// by one owner, and closing it releases the lock.
    fn dedicated<'a>(
        &'a self,
        db: &'a Database,
        application_name: &'a str,
    ) -> BoxFuture<'a, Result<(Conn, Option<Pool>), DbError>> {
        Box::pin(async move {
            let options = (*self.connect_options())
                .clone()
                .application_name(application_name);
            let private = PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(db.connect_timeout())
                .connect_lazy_with(options);
            let conn = private.acquire().await.map_err(|e| db.error(e))?;
            Ok((Conn::new(conn), Some(Pool::new(private))))
        })
    }

    fn occupancy(&self) -> (u32, u32) {
        sqlx_common::occupancy(self)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(sqlx::Pool::close(self))
    }

    fn end_session<'a>(
        &'a self,
        db: &'a Database,
        session: &'a ServerSession,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ServerSession::Postgres(pg) = session else {
                return;
            };
            if let Err(e) = terminate_backend(self, pg.pid, db.connect_timeout()).await {
                tracing::warn!(database = %db.name(), pid = pg.pid, error = %db.error(e), "could not end a stuck backend on the server");
            }
        })
    }
}

impl DriverConn for PoolConnection<Postgres> {
    fn run_raw<'a>(
        &'a mut self,
        db: &'a Database,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        sqlx_common::run_raw(self, db, sql)
    }

    fn open_stream<'c, 'v>(
        &'c mut self,
        db: &'c Database,
        stmt: &'v Statement,
        values: &'v [&'v Value],
    ) -> BoxFuture<'v, Result<(Vec<Column>, RowStream<'c>), DbError>>
    where
        'c: 'v,
    {
        Box::pin(super::postgres::open_stream(self, db, stmt, values))
    }

    fn open_packed<'c, 'v>(
        &'c mut self,
        db: &'c Database,
        stmt: &'v Statement,
        values: &'v [&'v Value],
    ) -> BoxFuture<'v, Result<(Vec<Column>, PackedStream<'c>), DbError>>
    where
        'c: 'v,
    {
        Box::pin(super::postgres_packed::open_packed(self, db, stmt, values))
    }

    fn execute<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        values: &'a [&'a Value],
    ) -> BoxFuture<'a, Result<u64, DbError>> {
        Box::pin(super::postgres::execute(self, db, stmt, values))
    }

    fn bulk_insert<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        rows: &'a [Vec<&'a Value>],
    ) -> BoxFuture<'a, Option<Result<u64, DbError>>> {
        Box::pin(async move {
            super::postgres_arrays::insert_as_arrays(self, db, stmt, &OrderedRows(rows)).await
        })
    }

    fn bulk_insert_in_place<'a>(
        &'a mut self,
        db: &'a Database,
        stmt: &'a Statement,
        rows: &'a dyn BatchRows,
    ) -> BoxFuture<'a, Option<Result<u64, DbError>>> {
        Box::pin(super::postgres_arrays::insert_as_arrays(
            self, db, stmt, rows,
        ))
    }

    fn start_session<'a>(
        &'a mut self,
        db: &'a Database,
        read_only: bool,
        statement_timeout: Duration,
    ) -> BoxFuture<'a, Result<ServerSession, DbError>> {
        Box::pin(async move {
            start_session(self, db, read_only, statement_timeout)
                .await
                .map(ServerSession::Postgres)
        })
    }

    fn reset_session<'a>(
        &'a mut self,
        db: &'a Database,
        session: Option<&'a ServerSession>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let pg = match session {
            Some(ServerSession::Postgres(pg)) => Some(pg),
            _ => None,
        };
        Box::pin(reset_session(self, db, pg))
    }

    fn check_functions<'a>(
        &'a mut self,
        db: &'a Database,
        functions: &'a [FunctionName],
    ) -> BoxFuture<'a, Result<bool, DbError>> {
        Box::pin(check_functions(self, db, db.function_verdicts(), functions))
    }

    fn close_on_drop(&mut self) {
        PoolConnection::close_on_drop(self)
    }

    fn discard(self: Box<Self>) -> BoxFuture<'static, ()> {
        sqlx_common::discard(*self)
    }

    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        sqlx_common::release(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect() -> PgConnection {
        PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .expect("these tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth)")
    }

    /// The grouped query reports, per schema and name, exactly the volatilities its overloads
    /// have: checked against the catalog read one overload at a time, for the common operators
    /// (530 overloads, `=` alone 63), a volatile function and a cast.
    #[tokio::test]
    async fn the_volatility_query_groups_exactly_what_each_overload_says() {
        let mut conn = connect().await;
        let operators: Vec<String> = crate::sql::postgres::common_operators()
            .into_iter()
            .map(|f| f.name)
            .collect();
        let functions = vec!["nextval".to_owned(), "lower".to_owned()];
        let casts = vec!["regclass".to_owned(), "int4".to_owned()];
        let mut run = async |sql: &str| {
            sqlx::query(AssertSqlSafe(sql.to_owned()))
                .bind(&functions)
                .bind(&operators)
                .bind(&casts)
                .fetch_all(&mut conn)
                .await
                .unwrap()
        };
        let rows = run(&function_volatility_sql(&CallKind::ALL)).await;
        let mut grouped: Vec<(String, String, String, Vec<char>)> = rows
            .iter()
            .map(|r| {
                let mut v: Vec<char> = r.get::<String, _>(3).chars().collect();
                v.sort();
                (r.get(0), r.get(1), r.get(2), v)
            })
            .collect();
        grouped.sort();
        let per_overload = "SELECT 'f', n.nspname::text, p.proname::text, p.provolatile::text \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.proname = ANY($1) \
             UNION ALL SELECT 'o', n.nspname::text, o.oprname::text, p.provolatile::text \
             FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
             JOIN pg_proc p ON p.oid = o.oprcode WHERE o.oprname = ANY($2) \
             UNION ALL SELECT 'c', n.nspname::text, t.typname::text, p.provolatile::text \
             FROM pg_cast c JOIN pg_type t ON t.oid = c.casttarget \
             JOIN pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_proc p ON p.oid = c.castfunc WHERE t.typname = ANY($3)";
        let overloads = run(per_overload).await;
        assert!(overloads.len() > 500, "{} overloads", overloads.len());
        let mut expected: std::collections::BTreeMap<(String, String, String), Vec<char>> =
            Default::default();
        for r in &overloads {
            let v: String = r.get(3);
            let set = expected.entry((r.get(0), r.get(1), r.get(2))).or_default();
            set.extend(v.chars());
            set.sort();
            set.dedup();
        }
        let expected: Vec<(String, String, String, Vec<char>)> = expected
            .into_iter()
            .map(|((kind, schema, name), v)| (kind, schema, name, v))
            .collect();
        assert_eq!(grouped, expected);
        // Not vacuous: the groups hold more than one volatility where overloads differ.
        assert!(
            grouped
                .iter()
                .any(|(k, _, n, v)| k == "o" && n == "=" && v == &['i', 's'])
        );
        assert!(
            grouped
                .iter()
                .any(|(k, _, n, v)| k == "f" && n == "nextval" && v == &['v'])
        );
    }

    /// Every subset of kinds reads the catalog of a real server, and each kind's rows are the
    /// candidates it names: what `check_functions` decides from.
    #[tokio::test]
    async fn the_volatility_query_runs_for_every_subset_of_kinds() {
        let mut conn = connect().await;
        let names = |kind: CallKind| -> Vec<String> {
            vec![
                match kind {
                    CallKind::Function => "nextval",
                    CallKind::Operator => "||",
                    CallKind::Cast => "regclass",
                }
                .to_owned(),
            ]
        };
        for mask in 1..8u8 {
            let kinds: Vec<CallKind> = CallKind::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, kind)| kind)
                .collect();
            let mut query = sqlx::query(AssertSqlSafe(function_volatility_sql(&kinds)));
            for kind in &kinds {
                query = query.bind(names(*kind));
            }
            let rows = query.fetch_all(&mut conn).await.unwrap();
            for kind in &kinds {
                let of_kind: Vec<(String, String, String)> = rows
                    .iter()
                    .filter(|r| r.get::<String, _>(0) == kind.tag())
                    .map(|r| (r.get(1), r.get(2), r.get(3)))
                    .collect();
                assert!(!of_kind.is_empty(), "{kinds:?}: no {kind:?} rows");
                // One row per schema and name, however many overloads it has.
                assert_eq!(of_kind.len(), 1, "{kinds:?}: {of_kind:?}");
                for (schema, name, volatility) in &of_kind {
                    assert_eq!(schema, "pg_catalog", "{kind:?}");
                    assert_eq!(name, &names(*kind)[0], "{kind:?}");
                    assert!(
                        !volatility.is_empty()
                            && volatility.chars().all(|v| matches!(v, 'i' | 's' | 'v')),
                        "{volatility}"
                    );
                }
            }
            // nextval is VOLATILE: the function branch reports what refuses it.
            if kinds.contains(&CallKind::Function) {
                assert!(
                    rows.iter().any(
                        |r| r.get::<String, _>(0) == "f" && r.get::<String, _>(3).contains('v')
                    )
                );
            }
            let unasked = CallKind::ALL.iter().filter(|k| !kinds.contains(k));
            for kind in unasked {
                assert!(rows.iter().all(|r| r.get::<String, _>(0) != kind.tag()));
            }
        }
    }
}
