//! Write flowhost data flows in plain Rust.
//!
//! A flow is a small crate compiled to `wasm32-wasip2`. The host runs it in a sandbox and lends
//! it the databases its manifest grants; this crate is the flow's side of that contract.
//!
//! # A flow in five steps
//!
//! **1. The crate.** A library with `crate-type = ["cdylib", "rlib"]` (the `rlib` lets its unit
//! tests run natively) that depends on `flowhost-sdk` and `serde`.
//!
//! **2. The manifest**, `flows/<name>.toml`, grants databases by logical name:
//!
//! ```toml
//! [flow]
//! name = "daily_totals"
//! [databases.rpa_db]
//! access = "read-write"
//! [databases.SurveyHub]
//! access = "read-only"
//! ```
//!
//! **3. The code.** Input and output are JSON, decoded into and encoded from your own types.
//! Statements take `:name` or `$1` parameters on every backend.
//!
//! ```no_run
//! use flowhost_sdk::{Db, Error, flow, info, params};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     #[serde(default)]
//!     min_responses: i64,
//! }
//!
//! #[derive(Deserialize, Serialize)]
//! struct Total {
//!     survey_id: i64,
//!     responses: i64,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     surveys: usize,
//! }
//!
//! fn run(input: Input) -> Result<Output, Error> {
//!     let hub = Db::open("SurveyHub")?;
//!     let rpa = Db::open("rpa_db")?;
//!     let totals: Vec<Total> = hub.query_as(
//!         "SELECT survey_id, COUNT(*) AS responses FROM survey_responses
//!          GROUP BY survey_id HAVING COUNT(*) >= :min",
//!         params! { "min" => input.min_responses },
//!     )?;
//!     rpa.transaction(|tx| {
//!         tx.execute("DELETE FROM totals", ())?;
//!         tx.execute_batch(
//!             "INSERT INTO totals (survey_id, responses) VALUES (:survey_id, :responses)",
//!             &totals,
//!         )
//!     })?;
//!     info!("stored {} totals", totals.len());
//!     Ok(Output { surveys: totals.len() })
//! }
//!
//! flow!(run);
//! ```
//!
//! **4. Build** the component: `cargo build --release --target wasm32-wasip2 -p <crate>`
//! emits a component directly; copy it beside the manifest as `flows/<name>.wasm`.
//!
//! **5. Test** the pure logic natively with `cargo test`. Database calls only work inside the
//! host (called natively, a host import aborts the test binary), so keep decisions in plain
//! functions and test the whole flow through the host.
//!
//! # Map of the API
//!
//! - [`Db`] opens a granted database; [`Db::query`], [`Db::query_as`], [`Db::execute`],
//!   [`Db::execute_batch`] and [`Db::cursor`] run statements; [`Db::transaction`] and
//!   [`Db::begin`] give a [`Tx`] with the same methods.
//! - Parameters are anything [`IntoParams`]: `()`, tuples, `Vec<Value>`, [`Params`],
//!   [`params!`], or a struct via [`named`]. [`Value`] converts from Rust scalars; the typed
//!   wrappers ([`Decimal`], [`Date`], [`Uuid`], ...) pin a value's SQL type.
//! - Everything fails with [`Error`]; database failures carry a [`DbError`].
//! - [`trace!`], [`debug!`], [`info!`], [`warn!`] and [`error!`] log through the host.
//! - [`flow!`] exports your `run` function.

#![warn(missing_docs)]

#[cfg(any(all(target_arch = "wasm32", target_os = "wasi"), test))]
mod alloc;
mod cursor;
mod db;
mod decode;
mod error;
mod export;
mod logging;
#[cfg(any(all(target_arch = "wasm32", target_os = "wasi"), test))]
mod mem;
mod pack;
mod packed;
mod params;
mod rows;
mod ser;
mod value;

/// Every flow built with the SDK allocates through [`alloc::FlowAllocator`] (small blocks
/// reused from free lists); a flow that brings its own `#[global_allocator]` turns the SDK's
/// default features off.
#[cfg(all(target_arch = "wasm32", target_os = "wasi", feature = "flow-allocator"))]
#[global_allocator]
static FLOW_ALLOCATOR: alloc::FlowAllocator = alloc::FlowAllocator::new();

/// The raw bindings generated from the WIT contract. The rest of this crate wraps them;
/// reach for them only to do what the wrappers deliberately do not.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "flowhost:flow/flow",
        pub_export_macro: true,
        default_bindings_module: "flowhost_sdk::bindings",
        generate_all,
        additional_derives: [PartialEq],
    });
}

pub use cursor::{Cursor, DEFAULT_BATCH_SIZE, RowIter, RowsAs};
pub use db::{Db, Tx};
pub use error::{DbError, DbErrorKind, Error};
pub use export::run_json;
pub use logging::log;
pub use params::{IntoParams, Named, Params, named, to_value};
pub use rows::Rows;
pub use value::{Date, Decimal, Json, Time, Timestamp, TimestampTz, Uuid};

/// The mode a database is granted in: `read-only` or `read-write` (its `Display`).
///
/// ```
/// assert_eq!(flowhost_sdk::Access::ReadOnly.to_string(), "read-only");
/// ```
#[doc(inline)]
pub use bindings::flowhost::flow::database::Access;

/// A result column: its name and the backend's own name for its type (`int4`, `TEXT`, ...).
///
/// ```
/// let c = flowhost_sdk::Column { name: "id".into(), type_name: "int8".into() };
/// assert_eq!(c.name, "id");
/// ```
#[doc(inline)]
pub use bindings::flowhost::flow::types::Column;

/// One database value, as the contract defines it. Build values with `From` (integers, floats,
/// bools, strings, bytes, `Option`, `serde_json::Value` → json) or the typed wrappers.
///
/// ```
/// use flowhost_sdk::{Decimal, Value};
/// assert_eq!(Value::from(3u16), Value::Int(3));
/// assert_eq!(Value::from("x"), Value::Text("x".into()));
/// assert_eq!(Value::from(None::<f64>), Value::Null);
/// assert_eq!(Value::from(Decimal("4.20".into())), Value::Decimal("4.20".into()));
/// ```
#[doc(inline)]
pub use bindings::flowhost::flow::types::Value;

/// Severity of a log record, for [`log`]; its `Display` is the WIT name (`info`).
///
/// ```
/// assert_eq!(flowhost_sdk::Level::Warn.to_string(), "warn");
/// ```
#[doc(inline)]
pub use bindings::wasi::logging::logging::Level;

/// The `serde` this crate is built with, for flows that do not depend on it directly.
///
/// ```
/// #[derive(flowhost_sdk::serde::Serialize)]
/// #[serde(crate = "flowhost_sdk::serde")]
/// struct Out { n: i64 }
/// ```
pub use serde;

/// The `serde_json` this crate is built with.
///
/// ```
/// let v = flowhost_sdk::serde_json::json!({"surveys_processed": 19});
/// assert_eq!(v["surveys_processed"], 19);
/// ```
pub use serde_json;

/// The SDK guide's examples (docs/sdk-guide.md), compiled by `cargo test --doc` so the guide
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/sdk-guide.md")]
mod sdk_guide {}
