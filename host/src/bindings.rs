//! Host-side bindings for the `flowhost:flow` WIT contract (`wit/`).
//!
//! Imports are async (database calls do I/O on the host's tokio runtime) and trappable (a bad
//! resource handle is a guest bug that ends the run, not a `db-error`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "flowhost:flow/flow",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "flowhost:flow/database.connection": crate::runtime::resources::ConnectionResource,
        "flowhost:flow/database.transaction": crate::runtime::resources::TransactionResource,
        "flowhost:flow/database.cursor": crate::runtime::resources::CursorResource,
    },
});

pub use self::flowhost::flow::database;
pub use self::flowhost::flow::types;
pub use self::wasi::logging::logging;
