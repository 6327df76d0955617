//! One SQLite statement stepped on the calling thread through SQLite's C API: binding the
//! flow's values, and decoding each row straight from SQLite's column accessors into them.
//! The connection is held away from sqlx's worker meanwhile (`sqlite_held.rs` says why).

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

use super::sqlite::{Declared, text_value};
use super::temporal;
use super::{Database, DbError};
use crate::bindings::types::{Column, Value};

/// A prepared statement: kept for the session (reset after use) or made for one use
/// (finalized after it).
pub(super) struct RawStatement(NonNull<ffi::sqlite3_stmt>);

// SAFETY: used only through the connection that made it, which one thread at a time holds
// (`sqlite_held.rs`).
unsafe impl Send for RawStatement {}

impl RawStatement {
    /// Prepares the first statement of `sql`; `None` when it holds only whitespace and comments.
    ///
    /// # Safety
    /// `raw` must be a connection held by the caller.
    pub(super) unsafe fn prepare(
        raw: *mut ffi::sqlite3,
        db: &Database,
        sql: &str,
        persistent: bool,
    ) -> Result<Option<RawStatement>, DbError> {
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        let flags = if persistent {
            ffi::SQLITE_PREPARE_PERSISTENT
        } else {
            0
        };
        // SAFETY: the caller holds `raw`; SQLite copies what it keeps of `sql`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                raw,
                sql.as_ptr() as *const c_char,
                c_int::try_from(sql.len()).unwrap_or(c_int::MAX),
                flags,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: as above; the error is the prepare's.
            return Err(unsafe { last_error(raw, db) });
        }
        Ok(NonNull::new(stmt).map(RawStatement))
    }

    pub(super) fn as_ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.0.as_ptr()
    }

    /// Ends any result under way and clears the bindings, ready for the next use.
    pub(super) fn reset(&self) {
        // SAFETY: the statement is valid until finalized; both calls only touch it.
        unsafe {
            ffi::sqlite3_reset(self.as_ptr());
            ffi::sqlite3_clear_bindings(self.as_ptr());
        }
    }

    /// The result's columns: names and declared types.
    pub(super) fn columns(&self) -> Vec<Column> {
        let stmt = self.as_ptr();
        // SAFETY: the statement is prepared; SQLite's strings are copied before the next call.
        unsafe {
            (0..ffi::sqlite3_column_count(stmt))
                .map(|i| Column {
                    name: owned(ffi::sqlite3_column_name(stmt, i)).unwrap_or_default(),
                    type_name: owned(ffi::sqlite3_column_decltype(stmt, i)).unwrap_or_default(),
                })
                .collect()
        }
    }

    /// Whether the statement leaves the database file alone.
    pub(super) fn is_read_only(&self) -> bool {
        // SAFETY: the statement is prepared.
        unsafe { ffi::sqlite3_stmt_readonly(self.as_ptr()) != 0 }
    }

    /// Binds `values` to the parameters as sqlx does: `?` in order, `?NNN` and `$NNN` by
    /// number, and a parameter without a value left NULL.
    ///
    /// # Safety
    /// `raw` must be the statement's connection, held by the caller.
    pub(super) unsafe fn bind(
        &self,
        raw: *mut ffi::sqlite3,
        db: &Database,
        values: &[&Value],
    ) -> Result<(), DbError> {
        let stmt = self.as_ptr();
        // SAFETY: the statement is prepared and not stepped since its last reset.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        let mut next = 0;
        for param in 1..=count {
            // SAFETY: as above.
            let name = unsafe { owned(ffi::sqlite3_bind_parameter_name(stmt, param)) };
            let n = match name.as_deref() {
                None => {
                    next += 1;
                    next
                }
                Some(name) => parameter_number(name).ok_or_else(|| {
                    DbError::invalid(
                        db.name(),
                        format!("unsupported SQL parameter {name}: use ? or ?NNN"),
                    )
                })?,
            };
            let Some(value) = n.checked_sub(1).and_then(|i| values.get(i)) else {
                // SQLite reads an unbound parameter as NULL.
                break;
            };
            // SAFETY: as above; SQLITE_TRANSIENT makes SQLite copy text and blobs.
            if unsafe { bind_value(stmt, param, value) } != ffi::SQLITE_OK {
                // SAFETY: the caller holds `raw`; the error is the bind's.
                return Err(unsafe { last_error(raw, db) });
            }
        }
        Ok(())
    }

    /// Steps once: `true` on a row, `false` at the end.
    ///
    /// # Safety
    /// `raw` must be the statement's connection, held by the caller.
    pub(super) unsafe fn step(
        &self,
        raw: *mut ffi::sqlite3,
        db: &Database,
    ) -> Result<bool, DbError> {
        // SAFETY: the statement is prepared and bound, and its connection held.
        match unsafe { ffi::sqlite3_step(self.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            // SAFETY: as above; the connection's error is the step's.
            _ => Err(unsafe { last_error(raw, db) }),
        }
    }

    /// The current row, each column decoded by its storage class and declared type.
    ///
    /// # Safety
    /// The last step must have returned a row.
    pub(super) unsafe fn row(
        &self,
        db: &Database,
        kinds: &[Declared],
    ) -> Result<Vec<Value>, DbError> {
        let stmt = self.as_ptr();
        // SAFETY: the statement is on a row.
        if unsafe { ffi::sqlite3_column_count(stmt) } as usize != kinds.len() {
            // SQLite re-prepares a statement whose tables changed since it was prepared.
            return Err(DbError::invalid(
                db.name(),
                "the statement's result columns changed during the run (the schema was \
                 changed on another connection); run the flow again",
            ));
        }
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                // SAFETY: the statement is on a row and `i` is one of its columns.
                unsafe { column_value(stmt, i as c_int, *kind) }.map_err(|message| {
                    DbError::conversion(db.name(), format!("column {i}: {message}"))
                })
            })
            .collect()
    }

    /// Frees the statement.
    pub(super) fn finalize(self) {
        // SAFETY: the statement is valid and, consumed here, never used again.
        unsafe {
            ffi::sqlite3_finalize(self.as_ptr());
        }
    }
}

/// The number in `?NNN` or `$NNN`.
fn parameter_number(name: &str) -> Option<usize> {
    name.strip_prefix('?')
        .or_else(|| name.strip_prefix('$'))
        .and_then(|n| n.parse().ok())
}

/// Binds one value as sqlx's SQLite arguments do (booleans as integers, every text-like case
/// as text, a timestamp with time zone in its normal form).
///
/// # Safety
/// `stmt` must be a prepared, unstepped statement with `param` among its parameters.
unsafe fn bind_value(stmt: *mut ffi::sqlite3_stmt, param: c_int, value: &Value) -> c_int {
    let text = |s: &str| unsafe {
        ffi::sqlite3_bind_text64(
            stmt,
            param,
            s.as_ptr() as *const c_char,
            s.len() as u64,
            ffi::SQLITE_TRANSIENT(),
            ffi::SQLITE_UTF8 as u8,
        )
    };
    unsafe {
        match value {
            Value::Null => ffi::sqlite3_bind_null(stmt, param),
            Value::Boolean(b) => ffi::sqlite3_bind_int64(stmt, param, i64::from(*b)),
            Value::Int(i) => ffi::sqlite3_bind_int64(stmt, param, *i),
            Value::Float(f) => ffi::sqlite3_bind_double(stmt, param, *f),
            Value::Bytes(b) => ffi::sqlite3_bind_blob64(
                stmt,
                param,
                b.as_ptr() as *const std::ffi::c_void,
                b.len() as u64,
                ffi::SQLITE_TRANSIENT(),
            ),
            Value::Text(s)
            | Value::Decimal(s)
            | Value::Uuid(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::Json(s) => text(s),
            Value::TimestampTz(s) => match temporal::parse_timestamp_tz(s) {
                Some(t) => text(&temporal::format_timestamp_tz(t)),
                None => text(s),
            },
        }
    }
}

/// Column `i` of the current row, by its storage class and declared type.
///
/// # Safety
/// `stmt` must be on a row (its last step returned SQLITE_ROW) and `i` one of its columns.
unsafe fn column_value(
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
    declared: Declared,
) -> Result<Value, String> {
    // The length is read after the pointer, as SQLite's documentation asks.
    let bytes = |ptr: *const u8| unsafe {
        let len = ffi::sqlite3_column_bytes(stmt, i) as usize;
        if ptr.is_null() || len == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(ptr, len)
        }
    };
    unsafe {
        Ok(match ffi::sqlite3_column_type(stmt, i) {
            ffi::SQLITE_NULL => Value::Null,
            ffi::SQLITE_INTEGER => {
                let i = ffi::sqlite3_column_int64(stmt, i);
                match declared {
                    Declared::Boolean => Value::Boolean(i != 0),
                    Declared::Decimal => Value::Decimal(i.to_string()),
                    _ => Value::Int(i),
                }
            }
            ffi::SQLITE_FLOAT => {
                let f = ffi::sqlite3_column_double(stmt, i);
                match declared {
                    Declared::Decimal if f.is_finite() => Value::Decimal(f.to_string()),
                    _ => Value::Float(f),
                }
            }
            ffi::SQLITE_BLOB => {
                let b = bytes(ffi::sqlite3_column_blob(stmt, i) as *const u8);
                match declared {
                    Declared::Uuid if b.len() == 16 => Value::Uuid(
                        uuid::Uuid::from_slice(b)
                            .map_err(|e| e.to_string())?
                            .to_string(),
                    ),
                    _ => Value::Bytes(b.to_vec()),
                }
            }
            _ => {
                let b = bytes(ffi::sqlite3_column_text(stmt, i));
                let s = std::str::from_utf8(b)
                    .map_err(|e| format!("the stored text is not valid UTF-8: {e}"))?;
                text_value(s.to_owned(), declared)
            }
        })
    }
}

/// A copy of a C string SQLite owns; `None` for a null pointer.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string valid for the call.
unsafe fn owned(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The connection's last error, as the flow sees SQLite's errors from sqlx.
///
/// # Safety
/// `raw` must be a connection locked to the caller, right after the failed call.
pub(super) unsafe fn last_error(raw: *mut ffi::sqlite3, db: &Database) -> DbError {
    let (code, message) = unsafe {
        (
            ffi::sqlite3_extended_errcode(raw),
            owned(ffi::sqlite3_errmsg(raw)).unwrap_or_default(),
        )
    };
    DbError::from_sqlite(code, &message, db.name(), db.redactor())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_name_their_value() {
        assert_eq!(parameter_number("?3"), Some(3));
        assert_eq!(parameter_number("$12"), Some(12));
        assert_eq!(parameter_number(":name"), None);
        assert_eq!(parameter_number("?x"), None);
    }
}
