//! Transaction control in each backend's own words. T-SQL is the odd one: `BEGIN` alone opens a
//! block, not a transaction; a savepoint is `SAVE TRANSACTION` and is never released.

use super::Backend;

/// What a transaction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionKind {
    /// Only reads (a read-only grant): PostgreSQL is told, so the server refuses writes too.
    ReadOnly,
    /// Reads and writes. SQLite takes the write lock up front: a deferred transaction that
    /// later upgrades can fail with SQLITE_BUSY midway instead of waiting its turn.
    ReadWrite,
}

impl Backend {
    /// Starts a transaction of `kind`.
    pub fn begin_sql(self, kind: TransactionKind) -> &'static str {
        match (self, kind) {
            (Backend::Postgres, TransactionKind::ReadOnly) => "BEGIN READ ONLY",
            (Backend::Postgres, TransactionKind::ReadWrite) => "BEGIN",
            (Backend::Sqlite, TransactionKind::ReadOnly) => "BEGIN",
            (Backend::Sqlite, TransactionKind::ReadWrite) => "BEGIN IMMEDIATE",
            // Read-only grants are enforced by the statement check on SQL Server.
            (Backend::SqlServer, _) => "BEGIN TRANSACTION",
        }
    }

    pub fn commit_sql(self) -> &'static str {
        match self {
            Backend::SqlServer => "COMMIT TRANSACTION",
            _ => "COMMIT",
        }
    }

    /// Ends a transaction the host opened, which an error may already have ended on SQL Server
    /// (a failed bulk load on Babelfish, XACT_ABORT), where a bare ROLLBACK then fails (3903).
    pub fn rollback_if_open_sql(self) -> &'static str {
        match self {
            Backend::SqlServer => "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION",
            _ => self.rollback_sql(),
        }
    }

    pub fn rollback_sql(self) -> &'static str {
        match self {
            Backend::SqlServer => "ROLLBACK TRANSACTION",
            _ => "ROLLBACK",
        }
    }

    /// Marks savepoint `name` (a plain identifier) inside the open transaction.
    pub fn savepoint_sql(self, name: &str) -> String {
        match self {
            Backend::SqlServer => format!("SAVE TRANSACTION {name}"),
            _ => format!("SAVEPOINT {name}"),
        }
    }

    /// Keeps the work since savepoint `name` and forgets the savepoint; `None` where a
    /// savepoint cannot be released (SQL Server: it ends with its transaction).
    pub fn release_savepoint_sql(self, name: &str) -> Option<String> {
        match self {
            Backend::SqlServer => None,
            _ => Some(format!("RELEASE SAVEPOINT {name}")),
        }
    }

    /// Undoes the work since savepoint `name` and forgets the savepoint where the backend can,
    /// leaving the transaction open and usable.
    pub fn undo_to_savepoint_sql(self, name: &str) -> String {
        match self {
            Backend::SqlServer => format!("ROLLBACK TRANSACTION {name}"),
            _ => format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{StatementKind, classify};

    const ALL: [Backend; 3] = [Backend::Postgres, Backend::Sqlite, Backend::SqlServer];

    #[test]
    fn every_backend_begins_a_transaction_not_a_block() {
        for backend in ALL {
            for kind in [TransactionKind::ReadOnly, TransactionKind::ReadWrite] {
                let sql = backend.begin_sql(kind);
                assert_eq!(
                    classify(sql, backend).unwrap().kind,
                    StatementKind::TransactionControl,
                    "{backend}: {sql}"
                );
            }
            for sql in [backend.commit_sql(), backend.rollback_sql()] {
                assert_eq!(
                    classify(sql, backend).unwrap().kind,
                    StatementKind::TransactionControl,
                    "{backend}: {sql}"
                );
            }
        }
        assert_eq!(
            Backend::SqlServer.begin_sql(TransactionKind::ReadWrite),
            "BEGIN TRANSACTION"
        );
    }

    #[test]
    fn savepoints_in_each_dialect() {
        assert_eq!(Backend::Postgres.savepoint_sql("s"), "SAVEPOINT s");
        assert_eq!(Backend::SqlServer.savepoint_sql("s"), "SAVE TRANSACTION s");
        assert_eq!(
            Backend::Sqlite.release_savepoint_sql("s").as_deref(),
            Some("RELEASE SAVEPOINT s")
        );
        assert_eq!(Backend::SqlServer.release_savepoint_sql("s"), None);
        assert_eq!(
            Backend::Postgres.undo_to_savepoint_sql("s"),
            "ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s"
        );
        assert_eq!(
            Backend::SqlServer.undo_to_savepoint_sql("s"),
            "ROLLBACK TRANSACTION s"
        );
    }
}
