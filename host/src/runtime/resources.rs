//! Host types behind the WIT resources `connection`, `transaction` and `cursor`.

use crate::db::{CursorStream, SharedSession};
use crate::manifest::Access;

/// A guest `connection`: a session on one granted database.
pub struct ConnectionResource {
    pub(crate) name: String,
    pub(crate) access: Access,
    /// Kept here, not read from the session: an open cursor's reader holds the session until
    /// the guest reads on, and `backend()` must not wait for that.
    pub(crate) backend: &'static str,
    pub(crate) session: SharedSession,
}

/// A guest `transaction`: the id of the transaction it began on its connection's session.
pub struct TransactionResource {
    pub(crate) session: SharedSession,
    pub(crate) id: u64,
}

/// A guest `cursor`: an open streaming read.
pub struct CursorResource {
    pub(crate) stream: CursorStream,
    /// The session it reads on, settled when the cursor is dropped.
    pub(crate) session: SharedSession,
}
