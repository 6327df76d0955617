//! probe: a test flow that does what its input says. The host's end-to-end tests drive it to
//! exercise the database capability, the sandbox and the limits. It uses the SDK's public API
//! throughout, so those tests exercise the SDK too.
//!
//! # Protocol
//!
//! Input: `{"steps": [step, ...]}`. Steps run in order; each step's outcome is pushed to
//! `results` as `{"ok": <value>}` or
//! `{"error": {"kind": K, "message": M, "code": C|null, "constraint": N|null}}`, where `K` is
//! the db-error case in kebab-case (`not-granted`, `read-only-violation`, `connection`,
//! `timeout`, `query`, `conversion`, `invalid-request`) or `sdk` for anything else (a
//! malformed step, a decoding or I/O error). The run goes on after an error. Output:
//! `{"results": [...]}`.
//!
//! Typed values ("V") are `{"t": "<case>", "v": <payload>}` with case `null` (no `v`),
//! `boolean`, `int`, `float`, `decimal`, `text`, `bytes` (`v` an array of numbers), `uuid`,
//! `date`, `time`, `timestamp`, `timestamp-tz` or `json` (`v` the JSON text as a string).
//! Parameters ("P") are an array of V (positional, `$1`...), an object name → V (named,
//! `:name`), or absent (none).
//!
//! `db` is a logical database name. A connection per name is opened on first use and kept
//! until a `drop` step. `"tx": true` sends the call to the transaction open on that db (an
//! `sdk` error if there is none).
//!
//! | step | ok value |
//! |---|---|
//! | `{"op":"open","db":D}` (reuses an open connection) | `{"name","access","backend"}` |
//! | `{"op":"query","db":D,"sql":S,"params":P,"tx":bool}` | `{"columns":[{"name","type"}],"rows":[[V,...],...]}` |
//! | `{"op":"execute","db":D,"sql":S,"params":P,"tx":bool}` | `{"affected": n}` |
//! | `{"op":"batch","db":D,"sql":S,"param_sets":[P,...],"tx":bool}` | `{"affected": n}` |
//! | `{"op":"cursor","db":D,"sql":S,"params":P,"batch":n,"tx":bool}` | `{"rows","batches","first","last"}` |
//! | `{"op":"begin","db":D}` / `commit` / `rollback` | `null` |
//! | `{"op":"drop","db":D}`: drops the transaction (if any), then the connection | `null` |
//! | `{"op":"log","level":L,"message":M}` (L: trace, debug, info, warn, error, critical) | `null` |
//! | `{"op":"fail","message":M}`: the run returns `Err(M)` at once | - |
//! | `{"op":"panic","message":M}`: panics with M | - |
//! | `{"op":"loop"}`: spins until the host's deadline stops it | - |
//! | `{"op":"alloc","mb":n}`: allocates and touches n MiB, kept until the run ends | `n` |
//! | `{"op":"env"}` | `{"vars": n, "args": n}` |
//! | `{"op":"read_file","path":P}` | content length in bytes, or an `sdk` error |
//! | `{"op":"connect","addr":"127.0.0.1:5432"}` (a TCP connect) | `null`, or an `sdk` error |
//! | `{"op":"stdout","message":M}` / `{"op":"stderr","message":M}` | `null` |
//! | `{"op":"insert_generated","db":D,"sql":S,"rows":N}` (rows `{id, note, score}` built in the guest, one `execute_batch`) | `{"affected": n}` |
//! | `{"op":"stale_handles","db":D,"sql":S}`: raw bindings, no SDK: runs S through a transaction after its commit, commits it twice, runs S through a transaction and reads a cursor after their connection was dropped | `{"after_commit","commit_twice","tx_after_connection_dropped","cursor_after_connection_dropped"}`, each `{"ok": n}` or `{"error": kind}` |
//! | `{"op":"recurse","depth":n}`: recurses n calls deep (engine stack, not linear memory) | `n` |
//! | `{"op":"alloc","mb":n,"quiet":true}`: as `alloc`, but aborts without a word on failure | `n` |
//! | `{"op":"log_big","mb":n,"stream":S,"level":L}`: one record of n MiB (`x`s) built in the guest | bytes |
//! | `{"op":"log_flood","n":n,"bytes":m,"stream":S,"level":L}`: n records of m bytes (`f`s) | `n` |
//! | `{"op":"queries","db":D,"n":n}`: n `SELECT 1` queries in a loop | `n` |
//! | `{"op":"hold_cursor","db":D,"sql":S,"params":P,"batch":n,"batches":k,"name":N,"tx":bool}` | rows read |
//! | `{"op":"close_cursor","name":N}`: drops the held cursor N | `null` |
//! | `{"op":"backend","db":D}`: the connection's `backend()` | `"postgresql"`... |
//! | `{"op":"open_many","db":D,"n":n,"then":T,"sql":S}` | `{"held": k, "error": E\|null}` |
//! | `{"op":"release"}`: drops everything `open_many` holds | `null` |
//! | `{"op":"big_param","db":D,"mb":n}`: `SELECT length($1)` with an n MiB text built in the guest | the length |
//! | `{"op":"read_wide","db":D,"sql":S,"batch":n}`: reads S through a cursor into typed structs `{id: i64, note: String, score: f64, qty: i32, flag: bool}` (benchmarks use this) | `{"rows", "id_sum", "note_bytes"}` |
//! | `{"op":"insert_wide","db":D,"sql":S,"rows":N}` (rows of `read_wide`'s struct built in the guest, one `execute_batch` in a transaction) | `{"affected": n}` |
//!
//! A cursor step reads to the end holding one batch at a time (`batch` rows per fetch, 1000
//! when absent): `rows` is the total, `batches` the number of non-empty batches, `first` and
//! `last` the first and last rows as `[V, ...]` (`null` when there are none).
//!
//! A `batch` step always calls the host, even with no parameter sets.
//!
//! `log_big` and `log_flood` write to `wasi:logging` at level L (default `info`), or with
//! `"stream"` set to `stdout` or `stderr`, as lines of that stream. `hold_cursor` opens a cursor
//! on D's connection (or its transaction), reads `batches` batches (default 0) of `batch` rows
//! (default 1000) and keeps it open under N until `close_cursor` or the run's end: while it is
//! open the connection is busy. `open_many` opens n further connections to D (not the step's
//! connection), and on each `then`: nothing (absent), `"query"` (runs S, so a pooled
//! connection is taken), `"begin"` or `"cursor"` (opens a cursor on S); it stops at the first
//! error and reports it as E alongside the k connections it holds.
//!
//! Any step with `"fail_on_error": true` ends the run with `Err("<kind>: <message>")` when it
//! fails, or when its ok value carries a non-null `"error"` (as `open_many`'s can).

mod hostile;
mod values;

use flowhost_sdk::{Cursor, Db, Error, Level, Params, Tx, flow, log};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use values::{decode_params, encode_columns, encode_row};

#[derive(Deserialize)]
pub struct Input {
    pub steps: Vec<Json>,
}

#[derive(Serialize)]
pub struct Output {
    pub results: Vec<Json>,
}

/// Why a step did not produce an `ok`.
enum StepError {
    /// Pushed as an `error` result; the run goes on.
    Report(Error),
    /// The `fail` op: the run ends with this message.
    Fail(String),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Report(e)
    }
}

fn sdk(message: impl std::fmt::Display) -> StepError {
    StepError::Report(Error::msg(message))
}

type StepResult = Result<Json, StepError>;

#[derive(Default)]
struct Probe {
    dbs: HashMap<String, Db>,
    txs: HashMap<String, Tx>,
    /// Allocations from `alloc` steps, held so that several steps add up against the cap.
    held: Vec<Vec<u8>>,
    /// Cursors `hold_cursor` keeps open, by name.
    cursors: HashMap<String, Cursor>,
    /// What `open_many` holds; field order drops cursors and transactions first.
    held_cursors: Vec<Cursor>,
    held_txs: Vec<Tx>,
    held_dbs: Vec<Db>,
}

fn run(input: Input) -> Result<Output, String> {
    let mut probe = Probe::default();
    let mut results = Vec::with_capacity(input.steps.len());
    for step in &input.steps {
        let fail_on_error = step.get("fail_on_error").and_then(Json::as_bool) == Some(true);
        let result = match probe.step(step) {
            Ok(value) => json!({"ok": value}),
            Err(StepError::Report(e)) => json!({"error": error_json(&e)}),
            Err(StepError::Fail(message)) => return Err(message),
        };
        let error = result.get("error").or_else(|| result["ok"].get("error"));
        if let Some(error) = error.filter(|e| fail_on_error && !e.is_null()) {
            return Err(format!("{}: {}", error["kind"], error["message"]));
        }
        results.push(result);
    }
    Ok(Output { results })
}

fn error_json(e: &Error) -> Json {
    match e.db_error() {
        Some(db) => json!({
            "kind": db.kind().as_str(),
            "message": db.message(),
            "code": db.code(),
            "constraint": db.constraint(),
        }),
        None => json!({"kind": "sdk", "message": e.to_string(), "code": null, "constraint": null}),
    }
}

fn str_field<'a>(step: &'a Json, name: &str) -> Result<&'a str, StepError> {
    step.get(name)
        .and_then(Json::as_str)
        .ok_or_else(|| sdk(format!("step needs a string \"{name}\"")))
}

fn params_field(step: &Json, name: &str) -> Result<Params, StepError> {
    decode_params(step.get(name)).map_err(sdk)
}

fn level(name: &str) -> Result<Level, StepError> {
    Ok(match name {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        "critical" => Level::Critical,
        other => return Err(sdk(format!("unknown log level \"{other}\""))),
    })
}

/// Allocates `bytes` and, if the allocator cannot, aborts without printing: the host must tell
/// what happened from the refused memory growth alone.
fn quiet_alloc(bytes: usize) -> Result<(), StepError> {
    let layout = std::alloc::Layout::from_size_align(bytes.max(1), 4096).map_err(sdk)?;
    // SAFETY: the layout is non-zero in size; the block is written within its bounds and
    // deliberately leaked (held until the run ends, like `alloc`'s).
    unsafe {
        let block = std::alloc::alloc(layout);
        if block.is_null() {
            std::process::abort();
        }
        for page in (0..bytes).step_by(4096) {
            block.add(page).write_volatile(1);
        }
    }
    Ok(())
}

/// One generated row of `insert_generated`.
#[derive(Serialize)]
struct Generated {
    id: i64,
    note: String,
    score: f64,
}

/// Five columns of the common kinds: what the read and write benchmarks move.
#[derive(Serialize, Deserialize)]
struct Wide {
    id: i64,
    note: String,
    score: f64,
    qty: i32,
    flag: bool,
}

/// A Db or its open transaction, whichever the step asked for.
enum Target<'a> {
    Db(&'a Db),
    Tx(&'a Tx),
}

impl Probe {
    fn step(&mut self, step: &Json) -> StepResult {
        let op = str_field(step, "op")?;
        match op {
            "open" => {
                let db = self.db(str_field(step, "db")?)?;
                Ok(json!({
                    "name": db.name(),
                    "access": db.access().to_string(),
                    "backend": db.backend(),
                }))
            }
            "query" => {
                let (sql, params) = (str_field(step, "sql")?, params_field(step, "params")?);
                let rows = match self.target(step)? {
                    Target::Db(db) => db.query(sql, params)?,
                    Target::Tx(tx) => tx.query(sql, params)?,
                };
                let encoded: Vec<Json> = rows.iter().map(encode_row).collect();
                Ok(json!({"columns": encode_columns(rows.columns()), "rows": encoded}))
            }
            "execute" => {
                let (sql, params) = (str_field(step, "sql")?, params_field(step, "params")?);
                let affected = match self.target(step)? {
                    Target::Db(db) => db.execute(sql, params)?,
                    Target::Tx(tx) => tx.execute(sql, params)?,
                };
                Ok(json!({"affected": affected}))
            }
            "batch" => {
                let sql = str_field(step, "sql")?;
                let sets = match step.get("param_sets") {
                    Some(Json::Array(sets)) => sets
                        .iter()
                        .map(|p| decode_params(Some(p)))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(sdk)?,
                    _ => return Err(sdk("step needs an array \"param_sets\"")),
                };
                let affected = match self.target(step)? {
                    Target::Db(db) => db.execute_batch_params(sql, sets)?,
                    Target::Tx(tx) => tx.execute_batch_params(sql, sets)?,
                };
                Ok(json!({"affected": affected}))
            }
            "insert_generated" => {
                // N rows built in the guest and written with one execute_batch of serde
                // structs, the way a flow writes its results (benchmarks use this).
                let sql = str_field(step, "sql")?;
                let rows = step
                    .get("rows")
                    .and_then(Json::as_i64)
                    .ok_or_else(|| sdk("step needs a number \"rows\""))?;
                let items: Vec<Generated> = (0..rows)
                    .map(|id| Generated {
                        id,
                        note: format!("row {id}"),
                        score: id as f64 / 7.0,
                    })
                    .collect();
                let affected = match self.target(step)? {
                    Target::Db(db) => db.execute_batch(sql, &items)?,
                    Target::Tx(tx) => tx.execute_batch(sql, &items)?,
                };
                Ok(json!({"affected": affected}))
            }
            "cursor" => self.cursor(step),
            "read_wide" => {
                let sql = str_field(step, "sql")?;
                let batch = step.get("batch").and_then(Json::as_u64).unwrap_or(1000) as u32;
                let (mut rows, mut id_sum, mut note_bytes) = (0u64, 0i64, 0usize);
                for row in self
                    .db(str_field(step, "db")?)?
                    .cursor(sql, ())?
                    .batch_size(batch)
                    .rows_as::<Wide>()
                {
                    let row = row?;
                    rows += 1;
                    id_sum = id_sum.wrapping_add(row.id + i64::from(row.qty) + i64::from(row.flag));
                    note_bytes += row.note.len() + (row.score > 0.0) as usize;
                }
                Ok(json!({"rows": rows, "id_sum": id_sum, "note_bytes": note_bytes}))
            }
            "insert_wide" => {
                let sql = str_field(step, "sql")?;
                let rows = step
                    .get("rows")
                    .and_then(Json::as_i64)
                    .ok_or_else(|| sdk("step needs a number \"rows\""))?;
                let items: Vec<Wide> = (0..rows)
                    .map(|id| Wide {
                        id,
                        note: format!("row {id}"),
                        score: id as f64 / 7.0,
                        qty: (id % 1000) as i32,
                        flag: id % 2 == 0,
                    })
                    .collect();
                let db = self.db(str_field(step, "db")?)?;
                let affected = db.transaction(|tx| tx.execute_batch(sql, &items))?;
                Ok(json!({"affected": affected}))
            }
            "begin" => {
                let name = str_field(step, "db")?;
                let tx = self.db(name)?.begin()?;
                self.txs.insert(name.to_owned(), tx);
                Ok(Json::Null)
            }
            "commit" | "rollback" => {
                let name = str_field(step, "db")?;
                let tx = self
                    .txs
                    .remove(name)
                    .ok_or_else(|| sdk(format!("no open transaction on {name}")))?;
                if op == "commit" {
                    tx.commit()?;
                } else {
                    tx.rollback()?;
                }
                Ok(Json::Null)
            }
            "drop" => {
                let name = str_field(step, "db")?;
                // Transaction first: the host sees the rollback before the connection goes.
                drop(self.txs.remove(name));
                drop(self.dbs.remove(name));
                Ok(Json::Null)
            }
            _ => self.sandbox_step(op, step),
        }
    }

    /// Steps that test the sandbox and the limits rather than the database.
    fn sandbox_step(&mut self, op: &str, step: &Json) -> StepResult {
        match op {
            "log" => {
                let level = level(str_field(step, "level")?)?;
                log(level, module_path!(), str_field(step, "message")?);
                Ok(Json::Null)
            }
            "fail" => Err(StepError::Fail(str_field(step, "message")?.to_owned())),
            "panic" => panic!("{}", str_field(step, "message")?),
            "loop" => {
                let mut n = 0u64;
                loop {
                    // black_box: a loop without observable effects may be optimised away.
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mb = step
                    .get("mb")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| sdk("step needs a number \"mb\""))?;
                let bytes = usize::try_from(mb)
                    .ok()
                    .and_then(|mb| mb.checked_mul(1 << 20))
                    .ok_or_else(|| sdk(format!("{mb} MiB does not fit the address space")))?;
                if step.get("quiet").and_then(Json::as_bool) == Some(true) {
                    return quiet_alloc(bytes).map(|_| json!(mb));
                }
                let mut block = vec![0u8; bytes];
                // Write every page so the memory is really used, not just reserved.
                for page in block.chunks_mut(4096) {
                    page[0] = 1;
                }
                self.held.push(std::hint::black_box(block));
                Ok(json!(mb))
            }
            "env" => Ok(json!({
                "vars": std::env::vars_os().count(),
                "args": std::env::args_os().count(),
            })),
            "read_file" => {
                let path = str_field(step, "path")?;
                let content = std::fs::read(path).map_err(|e| sdk(format!("{path}: {e}")))?;
                Ok(json!(content.len()))
            }
            "connect" => {
                let addr = str_field(step, "addr")?;
                std::net::TcpStream::connect(addr).map_err(|e| sdk(format!("{addr}: {e}")))?;
                Ok(Json::Null)
            }
            "stdout" => {
                println!("{}", str_field(step, "message")?);
                Ok(Json::Null)
            }
            "stderr" => {
                eprintln!("{}", str_field(step, "message")?);
                Ok(Json::Null)
            }
            "release" => {
                self.held_cursors.clear();
                self.held_txs.clear();
                self.held_dbs.clear();
                Ok(Json::Null)
            }
            other => self
                .hostile_step(other, step)
                .unwrap_or_else(|| Err(sdk(format!("unknown op \"{other}\"")))),
        }
    }

    fn cursor(&mut self, step: &Json) -> StepResult {
        let (sql, params) = (str_field(step, "sql")?, params_field(step, "params")?);
        let mut cursor = match self.target(step)? {
            Target::Db(db) => db.cursor(sql, params)?,
            Target::Tx(tx) => tx.cursor(sql, params)?,
        };
        if let Some(batch) = step.get("batch").filter(|b| !b.is_null()) {
            let batch = batch
                .as_u64()
                .and_then(|b| u32::try_from(b).ok())
                .ok_or_else(|| sdk("\"batch\" must be a number of rows"))?;
            cursor.set_batch_size(batch);
        }
        let (mut rows, mut batches) = (0u64, 0u64);
        let (mut first, mut last) = (Json::Null, Json::Null);
        while let Some(batch) = cursor.next_batch()? {
            batches += 1;
            rows += batch.len() as u64;
            if first.is_null() {
                first = batch.first().map_or(Json::Null, |r| encode_row(r));
            }
            last = batch.last().map_or(Json::Null, |r| encode_row(r));
        }
        Ok(json!({"rows": rows, "batches": batches, "first": first, "last": last}))
    }

    /// The step's connection, opened on first use.
    fn db(&mut self, name: &str) -> Result<&Db, StepError> {
        if !self.dbs.contains_key(name) {
            let db = Db::open(name)?;
            self.dbs.insert(name.to_owned(), db);
        }
        Ok(&self.dbs[name])
    }

    fn target(&mut self, step: &Json) -> Result<Target<'_>, StepError> {
        let name = str_field(step, "db")?;
        if step.get("tx").and_then(Json::as_bool).unwrap_or(false) {
            let tx = self
                .txs
                .get(name)
                .ok_or_else(|| sdk(format!("no open transaction on {name}")))?;
            Ok(Target::Tx(tx))
        } else {
            Ok(Target::Db(self.db(name)?))
        }
    }
}

flow!(run);
