//! The part of running a guest statement that every backend shares: one statement per call,
//! grant check by statement kind, placeholder rewriting, and putting parameter values in the
//! order the rewritten SQL expects.

use std::sync::Arc;

use crate::bindings::types::{Params, Value};
use crate::manifest::Access;
use crate::sql::postgres::{FunctionName, Refusal};
use crate::sql::{self, Placeholders, StatementKind};

use super::{Backend, DbError};

/// A guest statement checked against its grant and rewritten for its backend.
#[derive(Debug, Clone)]
pub struct Statement {
    /// SQL with placeholders in the backend's syntax.
    pub sql: Arc<str>,
    pub placeholders: Placeholders,
    pub kind: StatementKind,
    /// Functions a read-only PostgreSQL statement calls; the session resolves each against the
    /// database (`pg_proc`) and refuses the statement if one may have side effects.
    pub functions: Vec<FunctionName>,
    /// The host's own SQL (migrations, history, health), not a flow's: timed like any
    /// statement, but never listed among a database's slow statements.
    pub host: bool,
}

impl Statement {
    /// Checks `sql` for a guest holding `access` on `database`, and rewrites it for `backend`.
    ///
    /// Guests never run transaction control or session statements: transactions come from the
    /// API (so the host always knows whether one is open) and session state would leak into the
    /// next run that takes the same pooled connection.
    pub fn for_guest(
        sql: &str,
        backend: Backend,
        access: Access,
        database: &str,
    ) -> Result<Statement, DbError> {
        if backend == Backend::Postgres {
            return Self::for_postgres(sql, access, database);
        }
        let dialect = backend;
        let classified =
            sql::classify(sql, dialect).map_err(|e| DbError::invalid(database, e.to_string()))?;
        let reason = || {
            classified
                .reason
                .clone()
                .unwrap_or_else(|| format!("{} statements are not allowed", classified.keyword))
        };
        match classified.kind {
            StatementKind::TransactionControl => {
                return Err(DbError::invalid(
                    database,
                    format!(
                        "{} is transaction control; use begin() and the transaction's \
                         commit()/rollback() instead",
                        classified.keyword
                    ),
                ));
            }
            StatementKind::SessionControl => {
                let message = format!(
                    "{}; statements that change session state are refused because the \
                     connection is shared with other runs",
                    reason()
                );
                return Err(match access {
                    Access::ReadOnly => DbError::ReadOnly {
                        database: database.to_owned(),
                        reason: message,
                    },
                    Access::ReadWrite => DbError::invalid(database, message),
                });
            }
            StatementKind::Read => {}
            StatementKind::Write | StatementKind::Ddl | StatementKind::Other => {
                if access == Access::ReadOnly {
                    return Err(DbError::ReadOnly {
                        database: database.to_owned(),
                        reason: format!("{} is not a read ({})", classified.keyword, reason()),
                    });
                }
            }
        }
        let rewritten =
            sql::rewrite(sql, dialect).map_err(|e| DbError::invalid(database, e.to_string()))?;
        Ok(Statement {
            host: false,
            sql: Arc::from(rewritten.sql),
            placeholders: rewritten.placeholders,
            kind: classified.kind,
            functions: Vec::new(),
        })
    }

    /// PostgreSQL: rewrite the placeholders, then judge the rewritten text (exactly what the
    /// server will run) with PostgreSQL's own parser.
    fn for_postgres(sql: &str, access: Access, database: &str) -> Result<Statement, DbError> {
        let rewritten = sql::rewrite(sql, sql::Backend::Postgres)
            .map_err(|e| DbError::invalid(database, e.to_string()))?;
        let read_only = access == Access::ReadOnly;
        let checked = sql::postgres::check(&rewritten.sql, read_only).map_err(|e| match e {
            Refusal::NotARead(_) | Refusal::Forbidden(_) if read_only => DbError::ReadOnly {
                database: database.to_owned(),
                reason: e.to_string(),
            },
            other => DbError::invalid(database, other.to_string()),
        })?;
        Ok(Statement {
            host: false,
            sql: Arc::from(rewritten.sql),
            placeholders: rewritten.placeholders,
            kind: checked.kind,
            functions: checked.functions,
        })
    }
}

/// The values for `stmt`'s placeholders, in placeholder order.
///
/// Named values the statement does not use are ignored (one record may feed several
/// statements); a placeholder without a value is an error naming it.
pub fn bind_order<'p>(
    stmt: &Statement,
    params: &'p Params,
    database: &str,
) -> Result<Vec<&'p Value>, DbError> {
    match (&stmt.placeholders, params) {
        (Placeholders::None, Params::Positional(v)) if v.is_empty() => Ok(Vec::new()),
        (Placeholders::None, Params::Named(_)) => Ok(Vec::new()),
        (Placeholders::None, Params::Positional(v)) => Err(DbError::invalid(
            database,
            format!(
                "{} positional parameter(s) given but the statement has no $n placeholders",
                v.len()
            ),
        )),
        (Placeholders::Positional(count), Params::Positional(values)) => {
            if values.len() != *count {
                return Err(DbError::invalid(
                    database,
                    format!(
                        "the statement uses ${count} but {} positional parameter(s) were given",
                        values.len()
                    ),
                ));
            }
            Ok(values.iter().collect())
        }
        (Placeholders::Named(names), Params::Named(values)) => names
            .iter()
            .map(|name| {
                values
                    .iter()
                    .find(|nv| nv.name == *name)
                    .map(|nv| &nv.value)
                    .ok_or_else(|| {
                        DbError::invalid(database, format!("parameter :{name} has no value"))
                    })
            })
            .collect(),
        (Placeholders::Named(names), Params::Positional(_)) => Err(DbError::invalid(
            database,
            format!(
                "the statement uses named placeholders (:{}) but positional parameters were given",
                names.first().map(String::as_str).unwrap_or("")
            ),
        )),
        (Placeholders::Positional(_), Params::Named(_)) => Err(DbError::invalid(
            database,
            "the statement uses $n placeholders but named parameters were given",
        )),
    }
}

/// For each of `stmt`'s placeholders, in order, the index in `names` of the value it binds:
/// rows of values in the order of `names` (`execute-batch-packed`) are matched to the
/// placeholders once for the whole batch. The last of two equal names wins, as a named
/// parameter set's does.
pub fn placeholder_columns(
    stmt: &Statement,
    names: &[String],
    database: &str,
) -> Result<Vec<usize>, DbError> {
    match &stmt.placeholders {
        Placeholders::None => Ok(Vec::new()),
        Placeholders::Positional(_) => Err(DbError::invalid(
            database,
            "the statement uses $n placeholders but named parameters were given",
        )),
        Placeholders::Named(placeholders) => placeholders
            .iter()
            .map(|placeholder| {
                names.iter().rposition(|n| n == placeholder).ok_or_else(|| {
                    DbError::invalid(database, format!("parameter :{placeholder} has no value"))
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::NamedValue;

    #[test]
    fn packed_rows_are_bound_by_name_once() {
        let stmt = Statement::for_guest(
            "select :b, :a, :b",
            Backend::Postgres,
            Access::ReadOnly,
            "db",
        )
        .unwrap();
        let names = vec![
            "a".to_owned(),
            "b".to_owned(),
            "unused".to_owned(),
            "a".to_owned(),
        ];
        // `:b` is the second name; `:a` the last of the two.
        assert_eq!(placeholder_columns(&stmt, &names, "db").unwrap(), [1, 3]);

        let err = placeholder_columns(&stmt, &names[..1], "db").unwrap_err();
        assert!(
            err.to_string().contains("parameter :b has no value"),
            "{err}"
        );
        let positional =
            Statement::for_guest("select $1", Backend::Postgres, Access::ReadOnly, "db").unwrap();
        let err = placeholder_columns(&positional, &names, "db").unwrap_err();
        assert!(err.to_string().contains("$n placeholders"), "{err}");
        let none =
            Statement::for_guest("select 1", Backend::Postgres, Access::ReadOnly, "db").unwrap();
        assert!(placeholder_columns(&none, &names, "db").unwrap().is_empty());
    }

    fn named(pairs: &[(&str, Value)]) -> Params {
        Params::Named(
            pairs
                .iter()
                .map(|(n, v)| NamedValue {
                    name: n.to_string(),
                    value: v.clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn named_values_are_ordered_by_placeholder_and_extras_ignored() {
        let stmt = Statement::for_guest(
            "select :b, :a, :b",
            Backend::Postgres,
            Access::ReadOnly,
            "db",
        )
        .unwrap();
        assert_eq!(&*stmt.sql, "select $1, $2, $1");
        let params = named(&[
            ("a", Value::Int(1)),
            ("b", Value::Int(2)),
            ("unused", Value::Null),
        ]);
        let order = bind_order(&stmt, &params, "db").unwrap();
        assert!(matches!(order.as_slice(), [Value::Int(2), Value::Int(1)]));
    }

    #[test]
    fn missing_named_value_is_named_in_the_error() {
        let stmt =
            Statement::for_guest("select :a", Backend::Sqlite, Access::ReadOnly, "db").unwrap();
        let err = bind_order(&stmt, &named(&[]), "db").unwrap_err();
        assert!(err.to_string().contains(":a"), "{err}");
    }

    #[test]
    fn positional_count_must_match() {
        let stmt =
            Statement::for_guest("select $1, $2", Backend::Sqlite, Access::ReadOnly, "db").unwrap();
        assert_eq!(&*stmt.sql, "select ?1, ?2");
        let err = bind_order(&stmt, &Params::Positional(vec![Value::Int(1)]), "db").unwrap_err();
        assert!(matches!(err, DbError::InvalidRequest { .. }), "{err}");
    }

    #[test]
    fn read_only_grant_refuses_writes_and_session_changes() {
        for sql in [
            "insert into t values (1)",
            "delete from t",
            "create table x (a int)",
            "select set_config('a', 'b', false)",
        ] {
            let err =
                Statement::for_guest(sql, Backend::Postgres, Access::ReadOnly, "ro").unwrap_err();
            assert!(matches!(err, DbError::ReadOnly { .. }), "{sql}: {err}");
        }
    }

    #[test]
    fn transaction_control_is_refused_for_every_grant() {
        for access in [Access::ReadOnly, Access::ReadWrite] {
            for sql in ["BEGIN", "commit", "SET TRANSACTION READ WRITE", "rollback"] {
                let err = Statement::for_guest(sql, Backend::Postgres, access, "db").unwrap_err();
                assert!(
                    matches!(err, DbError::InvalidRequest { .. }),
                    "{sql}: {err}"
                );
            }
        }
    }

    #[test]
    fn read_write_grant_allows_writes_but_not_session_changes() {
        Statement::for_guest(
            "update t set a = 1",
            Backend::Sqlite,
            Access::ReadWrite,
            "db",
        )
        .unwrap();
        let err = Statement::for_guest(
            "SET search_path = x",
            Backend::Postgres,
            Access::ReadWrite,
            "db",
        )
        .unwrap_err();
        assert!(matches!(err, DbError::InvalidRequest { .. }), "{err}");
    }
}
