//! SQL Server session hygiene: a guest session's baseline, the read-only wrapper transaction,
//! and the reset that must leave the next run a clean session.
//!
//! tiberius cannot send the TDS reset-connection flag (`sp_reset_connection`) on a request, so
//! the reset is explicit and verified: roll back, clear `CONTEXT_INFO`, then check that
//! `@@TRANCOUNT` is 0 and the login, user, database and `@@OPTIONS` are what they were when the
//! session started. Guest statements run through `sp_executesql`, whose scope ends the `#temp`
//! tables, `SET` options and `EXECUTE AS` they create, and the classifier refuses session
//! statements outright. What neither covers — `SESSION_CONTEXT` keys and session-owned
//! application locks a procedure or DDL trigger may leave — the reset cannot see, so a session
//! that ran procedures or DDL is not pooled again: its connection is closed.

use std::borrow::Cow;
use std::sync::Arc;

use super::sqlite_session::Watchdog;
use super::sqlserver::TdsConn;
use super::{Database, DbError, ServerSession};

/// What the host holds of a guest session on SQL Server.
#[derive(Debug)]
pub struct MsSession {
    /// The session id, to `KILL` it from another connection when it is stuck.
    pub spid: i32,
    /// The running statement's deadline, shared with the connection.
    pub watchdog: Arc<Watchdog>,
}

/// What the connection holds while a guest session runs on it.
#[derive(Debug)]
pub struct GuestState {
    pub watchdog: Arc<Watchdog>,
    /// The session as it started; the reset must bring it back.
    baseline: Baseline,
    /// A read-only grant: every statement runs inside a transaction that is always rolled back.
    read_only: bool,
    /// The session ran a procedure or DDL: state the reset cannot verify may be left.
    pub opaque: bool,
}

/// Session properties a run could change and the reset checks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Baseline {
    login: String,
    user: String,
    database: String,
    options: i64,
}

/// Reads the baseline (and `@@TRANCOUNT`, which must be 0, and whether the login is sysadmin)
/// in one round trip.
const STATE_SQL: &str = "SELECT CAST(@@TRANCOUNT AS INT), SUSER_SNAME(), USER_NAME(), DB_NAME(), \
    CAST(@@OPTIONS AS INT), CAST(@@SPID AS INT), CAST(IS_SRVROLEMEMBER('sysadmin') AS INT)";

/// What a session starts with: `@@TRANCOUNT`, the baseline, `@@SPID`, sysadmin membership.
type State = (i32, Baseline, i32, bool);

async fn read_state(conn: &mut TdsConn, db: &Database) -> Result<State, DbError> {
    let rows = conn.host_rows(db, STATE_SQL).await?;
    let row = rows
        .first()
        .ok_or_else(|| DbError::conversion(db.name(), "the session check returned no row"))?;
    let text = |i: usize| -> String { row.get::<&str, _>(i).unwrap_or_default().to_owned() };
    let int = |i: usize| -> i32 { row.get::<i32, _>(i).unwrap_or(-1) };
    Ok((
        int(0),
        Baseline {
            login: text(1),
            user: text(2),
            database: text(3),
            options: int(4).into(),
        },
        int(5),
        int(6) == 1,
    ))
}

/// Starts a guest session: reads the baseline and, for a read-only grant, opens the wrapper
/// transaction that the reset rolls back.
pub async fn start_session(
    conn: &mut TdsConn,
    db: &Database,
    read_only: bool,
) -> Result<ServerSession, DbError> {
    let (trancount, baseline, spid, sysadmin) = read_state(conn, db).await?;
    if sysadmin {
        db.privileged_role(&baseline.login, "is a member of sysadmin")?;
    }
    if trancount != 0 {
        return Err(DbError::Connection {
            database: db.name().to_owned(),
            target: db.target().to_owned(),
            message: format!("a pooled connection had {trancount} open transaction(s)"),
        });
    }
    if read_only {
        conn.host_batch(db, "BEGIN TRANSACTION").await?;
    }
    let watchdog = Watchdog::new();
    conn.session = Some(GuestState {
        watchdog: watchdog.clone(),
        baseline,
        read_only,
        opaque: false,
    });
    Ok(ServerSession::SqlServer(MsSession { spid, watchdog }))
}

/// On a read-only session, guest transaction control must not end the wrapper transaction: a
/// guest `ROLLBACK` ends every level, so the wrapper is opened again after it.
pub fn with_read_only_wrapper<'a>(session: Option<&GuestState>, sql: &'a str) -> Cow<'a, str> {
    match session {
        Some(s) if s.read_only => {
            Cow::Owned(format!("{sql}; IF @@TRANCOUNT = 0 BEGIN TRANSACTION"))
        }
        _ => Cow::Borrowed(sql),
    }
}

/// Ends a guest session and checks the connection is as the session found it.
pub async fn reset_session(conn: &mut TdsConn, db: &Database) -> Result<(), String> {
    let Some(state) = conn.session.take() else {
        return Ok(());
    };
    if state.opaque {
        return Err(
            "the run called procedures or ran DDL, which may leave session state \
                    (SESSION_CONTEXT, application locks) a reset cannot verify"
                .into(),
        );
    }
    conn.host_batch(
        db,
        "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION; SET CONTEXT_INFO 0x",
    )
    .await
    .map_err(|e| format!("the reset failed: {e}"))?;
    let (trancount, now, _, _) = read_state(conn, db)
        .await
        .map_err(|e| format!("the session check failed: {e}"))?;
    if trancount != 0 {
        return Err(format!(
            "{trancount} transaction(s) still open after the reset"
        ));
    }
    if now != state.baseline {
        return Err(format!(
            "the session changed: it started as {:?} and ended as {now:?}",
            state.baseline
        ));
    }
    Ok(())
}
