//! Steps for the hostile suite: resource exhaustion, oversized logs, handles held open. Each
//! builds its load inside the guest, so a test's input stays small however big the load.

use flowhost_sdk::{Db, Error, Level, Value, log};
use serde_json::{Value as Json, json};

use crate::{Probe, StepError, StepResult, Target, error_json, params_field, sdk, str_field};

/// What `open_many` does on each connection it opens.
enum Then {
    Nothing,
    Query(String),
    Begin,
    Cursor(String),
}

impl Probe {
    /// The hostile suite's steps; `None` for an op that is not one of them.
    pub(crate) fn hostile_step(&mut self, op: &str, step: &Json) -> Option<StepResult> {
        Some(match op {
            "recurse" => u64_field(step, "depth").map(|depth| json!(recurse(depth))),
            "log_big" => self.log_big(step),
            "log_flood" => log_flood(step),
            "queries" => self.queries(step),
            "hold_cursor" => self.hold_cursor(step),
            "close_cursor" => str_field(step, "name").and_then(|name| {
                self.cursors
                    .remove(name)
                    .map(|_| Json::Null)
                    .ok_or_else(|| sdk(format!("no held cursor named {name}")))
            }),
            "backend" => str_field(step, "db")
                .and_then(|name| self.db(name))
                .map(|db| json!(db.backend())),
            "open_many" => self.open_many(step),
            "big_param" => self.big_param(step),
            "stale_handles" => stale_handles(step),
            _ => return None,
        })
    }

    fn log_big(&mut self, step: &Json) -> StepResult {
        let bytes = mib(u64_field(step, "mb")?)?;
        let text = "x".repeat(bytes);
        write_text(step, &text)?;
        Ok(json!(bytes))
    }

    fn queries(&mut self, step: &Json) -> StepResult {
        let n = u64_field(step, "n")?;
        let db = self.db(str_field(step, "db")?)?;
        for _ in 0..n {
            db.query("SELECT 1", ())?;
        }
        Ok(json!(n))
    }

    fn hold_cursor(&mut self, step: &Json) -> StepResult {
        let name = str_field(step, "name")?.to_owned();
        let (sql, params) = (str_field(step, "sql")?, params_field(step, "params")?);
        let batch = step.get("batch").and_then(Json::as_u64).unwrap_or(1000);
        let batch = u32::try_from(batch).map_err(|_| sdk("\"batch\" must fit in u32"))?;
        let batches = step.get("batches").and_then(Json::as_u64).unwrap_or(0);
        let mut cursor = match self.target(step)? {
            Target::Db(db) => db.cursor(sql, params)?,
            Target::Tx(tx) => tx.cursor(sql, params)?,
        };
        cursor.set_batch_size(batch);
        let mut rows = 0u64;
        for _ in 0..batches {
            match cursor.next_batch()? {
                Some(b) => rows += b.len() as u64,
                None => break,
            }
        }
        self.cursors.insert(name, cursor);
        Ok(json!(rows))
    }

    /// Opens `n` more connections to one database and holds them (and what `then` made on
    /// each) until the run ends. Reports how many it holds, and the error that stopped it.
    fn open_many(&mut self, step: &Json) -> StepResult {
        let name = str_field(step, "db")?;
        let n = u64_field(step, "n")?;
        let then = match step.get("then").and_then(Json::as_str) {
            None => Then::Nothing,
            Some("query") => Then::Query(str_field(step, "sql")?.to_owned()),
            Some("begin") => Then::Begin,
            Some("cursor") => Then::Cursor(str_field(step, "sql")?.to_owned()),
            Some(other) => return Err(sdk(format!("unknown \"then\": {other}"))),
        };
        let mut stopped = Json::Null;
        let before = self.held_dbs.len();
        for _ in 0..n {
            if let Err(e) = self.open_one(name, &then) {
                stopped = error_json(&e);
                break;
            }
        }
        Ok(json!({"held": self.held_dbs.len() - before, "error": stopped}))
    }

    fn open_one(&mut self, name: &str, then: &Then) -> Result<(), Error> {
        let db = Db::open(name)?;
        match then {
            Then::Nothing => {}
            Then::Query(sql) => {
                db.query(sql, ())?;
            }
            Then::Begin => self.held_txs.push(db.begin()?),
            Then::Cursor(sql) => self.held_cursors.push(db.cursor(sql, ())?),
        }
        self.held_dbs.push(db);
        Ok(())
    }

    /// One statement with a text parameter of `mb` MiB built in the guest.
    fn big_param(&mut self, step: &Json) -> StepResult {
        let bytes = mib(u64_field(step, "mb")?)?;
        let db = self.db(str_field(step, "db")?)?;
        let text = Value::Text("p".repeat(bytes));
        let rows = db.query("SELECT length($1) AS n", [text])?;
        let n = rows.iter().next().and_then(|r| r[0].as_i64());
        Ok(json!(n))
    }
}

/// `n` records of `bytes` bytes each, to the log or to a stream.
fn log_flood(step: &Json) -> StepResult {
    let n = u64_field(step, "n")?;
    let bytes = usize::try_from(u64_field(step, "bytes")?).map_err(sdk)?;
    let text = "f".repeat(bytes);
    for _ in 0..n {
        write_text(step, &text)?;
    }
    Ok(json!(n))
}

/// Writes one record: to `wasi:logging` at `level` (default info), or with `"stream"` set, as
/// one line of `stdout` or `stderr`.
fn write_text(step: &Json, text: &str) -> Result<(), StepError> {
    match step.get("stream").and_then(Json::as_str) {
        Some("stdout") => println!("{text}"),
        Some("stderr") => eprintln!("{text}"),
        Some(other) => return Err(sdk(format!("unknown stream \"{other}\""))),
        None => {
            let level = match step.get("level").and_then(Json::as_str) {
                Some(level) => crate::level(level)?,
                None => Level::Info,
            };
            log(level, module_path!(), text);
        }
    }
    Ok(())
}

/// Recurses `depth` deep. Every frame stays live (the result is used after the call), and
/// nothing has its address taken, so the frames are wasm frames on the engine's stack, not
/// the shadow stack in linear memory: a deep enough call overflows the engine's stack.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    std::hint::black_box(recurse(std::hint::black_box(depth - 1))) + 1
}

fn u64_field(step: &Json, name: &str) -> Result<u64, StepError> {
    step.get(name)
        .and_then(Json::as_u64)
        .ok_or_else(|| sdk(format!("step needs a number \"{name}\"")))
}

fn mib(mb: u64) -> Result<usize, StepError> {
    usize::try_from(mb)
        .ok()
        .and_then(|mb| mb.checked_mul(1 << 20))
        .ok_or_else(|| sdk(format!("{mb} MiB does not fit the address space")))
}

/// Uses the raw WIT bindings the way a hostile flow that skips the SDK would: a transaction
/// handle after its commit, a transaction and a cursor after their connection was dropped.
/// Reports each call's outcome as `ok` or the db-error's kind.
fn stale_handles(step: &Json) -> StepResult {
    use flowhost_sdk::bindings::flowhost::flow::database::open;
    use flowhost_sdk::bindings::flowhost::flow::types::{DbError, Params};
    let db = str_field(step, "db")?;
    let sql = str_field(step, "sql")?;
    let none = || Params::Positional(Vec::new());
    let outcome = |r: Result<u64, DbError>| match r {
        Ok(n) => json!({ "ok": n }),
        Err(e) => json!({ "error": kind_of(&e) }),
    };
    let raw = |e: DbError| sdk(format!("set-up failed: {}", kind_of(&e)));

    let conn = open(db).map_err(raw)?;
    let tx = conn.begin().map_err(raw)?;
    tx.commit().map_err(raw)?;
    let after_commit = outcome(tx.execute(sql, &none()));
    let committed_again = tx.commit().map(|()| 0);
    drop(tx);

    let tx = conn.begin().map_err(raw)?;
    drop(conn);
    let tx_after_connection_dropped = outcome(tx.execute(sql, &none()));
    drop(tx);

    let conn = open(db).map_err(raw)?;
    let cursor = conn
        .cursor("SELECT g FROM generate_series(1, 100000) g", &none())
        .map_err(raw)?;
    drop(conn);
    let rows = cursor.next(10).map(|rows| rows.len() as u64);
    drop(cursor);
    Ok(json!({
        "after_commit": after_commit,
        "commit_twice": outcome(committed_again),
        "tx_after_connection_dropped": tx_after_connection_dropped,
        "cursor_after_connection_dropped": outcome(rows),
    }))
}

fn kind_of(e: &flowhost_sdk::bindings::flowhost::flow::types::DbError) -> &'static str {
    use flowhost_sdk::bindings::flowhost::flow::types::DbError as E;
    match e {
        E::NotGranted(_) => "not-granted",
        E::ReadOnlyViolation(_) => "read-only-violation",
        E::Connection(_) => "connection",
        E::Timeout(_) => "timeout",
        E::Query(_) => "query",
        E::Conversion(_) => "conversion",
        E::InvalidRequest(_) => "invalid-request",
    }
}
