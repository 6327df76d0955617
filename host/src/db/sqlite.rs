//! SQLite: the embedded default. Pool setup, seeding, and what a column's declared type makes
//! of its values (statements run in `sqlite_held.rs` and `sqlite_step.rs`).
//!
//! SQLite stores five storage classes; the WIT value has thirteen cases. The column's declared
//! type (`DATE`, `UUID`, `JSON`, `NUMERIC`, `BOOLEAN`...) says which case a stored value
//! means, so the host reads declared types straight from SQLite (sqlx maps unknown declared
//! types to their storage class and loses exactly the distinction we need).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, SqliteConnection};

use super::DbError;
use super::temporal;
use crate::bindings::types::Value;
use crate::config::{DatabaseConfig, DatabaseTarget, PoolSettings};
use crate::sql::{self, Backend};

pub fn pool(
    _name: &str,
    target: &DatabaseTarget,
    settings: &PoolSettings,
) -> Result<sqlx::SqlitePool, DbError> {
    let DatabaseTarget::Sqlite {
        path,
        in_memory,
        create_if_missing,
    } = target
    else {
        unreachable!("sqlite::pool called for {target}");
    };
    let busy = settings
        .statement_timeout
        .unwrap_or(Duration::from_secs(30));
    let keep_wal = settings.keep_wal_on_close;
    let opts = SqliteConnectOptions::new()
        .busy_timeout(busy)
        .foreign_keys(true)
        .create_if_missing(*create_if_missing);
    let pool = SqlitePoolOptions::new().acquire_timeout(settings.acquire_timeout);
    Ok(if *in_memory {
        // Every connection to `:memory:` is a database of its own: keep exactly one, forever.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(opts.in_memory(true))
    } else {
        pool.max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .max_lifetime(settings.max_lifetime)
            .idle_timeout(settings.idle_timeout)
            .test_before_acquire(settings.test_before_acquire)
            // WAL lets readers run beside the one writer, which concurrent runs need.
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    use_wal(conn, busy).await?;
                    if keep_wal {
                        keep_wal_on_close(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(opts.filename(path))
    })
}

/// Puts the database file in WAL mode (a setting stored in the file) unless it already is.
///
/// Not sqlx's `journal_mode` option: switching a file into WAL needs an exclusive lock that
/// SQLite's busy timeout does not wait for, so connections opened at once on a new file (a pool
/// filling up, concurrent migrators) fail with "database is locked". Here the switch is
/// retried for as long as the busy timeout allows, and a file already in WAL needs no lock.
async fn use_wal(conn: &mut SqliteConnection, busy: Duration) -> Result<(), sqlx::Error> {
    let deadline = tokio::time::Instant::now() + busy;
    loop {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .fetch_one(&mut *conn)
            .await
        {
            // SQLite answers with the mode now in force; anything but "wal" (a read-only or
            // network file system) leaves the rollback journal, which still works.
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Leaves the write-ahead log in place when this connection closes (see
/// [`crate::config::PoolSettings::keep_wal_on_close`]). The log is still checkpointed as it
/// grows, every 100 pages here rather than SQLite's 1,000, because each process that opens
/// the file first reads the log back to rebuild its index.
async fn keep_wal_on_close(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("PRAGMA wal_autocheckpoint = 100")
        .execute(&mut *conn)
        .await?;
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is this connection's open handle, held locked for the call; the option
    // takes an int and a pointer to write the new setting to (null: not wanted).
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    };
    match rc {
        libsqlite3_sys::SQLITE_OK => Ok(()),
        rc => Err(sqlx::Error::Protocol(format!(
            "SQLite refused SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE (code {rc})"
        ))),
    }
}

/// SQLITE_BUSY or one of its extended codes (5, 261, 517, ...).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

/// Creates an embedded development database the first time it is used, loading its demo data
/// from `<name>.sql` in the first of `seed_dirs` that has it. The file is built under a
/// temporary name and renamed into place, so a failed seed never leaves a half-filled database
/// behind. Without a seed nothing is created here: the pool creates an empty file on first use.
pub async fn prepare_embedded(
    cfg: &DatabaseConfig,
    seed_dirs: &[PathBuf],
) -> Result<(), crate::Error> {
    let DatabaseTarget::Sqlite {
        path,
        in_memory: false,
        ..
    } = &cfg.target
    else {
        return Ok(());
    };
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::Io {
            action: format!("create the embedded database folder {}", dir.display()),
            source: e,
        })?;
    }
    let Some(seed) = seed_file(&cfg.name, seed_dirs) else {
        tracing::debug!(database = %cfg.name, path = %path.display(), "creating embedded development database empty: no seed file for it");
        return Ok(());
    };
    let script = std::fs::read_to_string(&seed).map_err(|e| crate::Error::Io {
        action: format!("read seed file {}", seed.display()),
        source: e,
    })?;
    let temp = path.with_extension(format!("seeding-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let result = seed_into(&temp, &script, &cfg.name).await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(crate::Error::Seed {
            database: cfg.name.clone(),
            file: seed,
            message: e,
        });
    }
    std::fs::rename(&temp, path).map_err(|e| crate::Error::Io {
        action: format!("move the seeded database into {}", path.display()),
        source: e,
    })?;
    tracing::info!(database = %cfg.name, seed = %seed.display(), "created embedded development database with demo data");
    Ok(())
}

/// Whether `cfg` is an embedded database not created yet, for which no seed file exists.
pub fn would_start_empty(cfg: &DatabaseConfig, seed_dirs: &[PathBuf]) -> bool {
    match &cfg.target {
        DatabaseTarget::Sqlite {
            path,
            in_memory: false,
            ..
        } => cfg.embedded && !path.exists() && seed_file(&cfg.name, seed_dirs).is_none(),
        _ => false,
    }
}

/// `<name>.sql` (exact name first, then lowercase) in the first folder of `dirs` that has it.
fn seed_file(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|dir| {
            [name.to_owned(), name.to_lowercase()]
                .into_iter()
                .map(move |n| dir.join(format!("{n}.sql")))
        })
        .find(|p| p.is_file())
}

async fn seed_into(path: &Path, script: &str, name: &str) -> Result<(), String> {
    use sqlx::{Connection, Executor};
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| e.to_string())?;
    let statements = sql::split_statements(script, Backend::Sqlite).map_err(|e| e.to_string())?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    for stmt in &statements {
        tx.execute(sqlx::raw_sql(AssertSqlSafe(stmt.sql.clone())))
            .await
            .map_err(|e| format!("statement at line {}: {e}", stmt.line))?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())?;
    tracing::debug!(database = name, statements = statements.len(), "seeded");
    Ok(())
}

/// What a column's declared type says its values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Declared {
    Plain,
    Boolean,
    Decimal,
    Uuid,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
}

impl Declared {
    pub(super) fn of(decltype: &str) -> Declared {
        let t = decltype.to_ascii_uppercase();
        let t = t.trim();
        if t.starts_with("BOOL") {
            Declared::Boolean
        } else if t.starts_with("DECIMAL") || t.starts_with("NUMERIC") {
            Declared::Decimal
        } else if t == "UUID" || t == "UNIQUEIDENTIFIER" {
            Declared::Uuid
        } else if t == "DATE" {
            Declared::Date
        } else if t == "TIME" {
            Declared::Time
        } else if t == "TIMESTAMPTZ" || t.contains("WITH TIME ZONE") || t == "DATETIMEOFFSET" {
            Declared::TimestampTz
        } else if t.starts_with("TIMESTAMP") || t.starts_with("DATETIME") {
            Declared::Timestamp
        } else if t == "JSON" || t == "JSONB" {
            Declared::Json
        } else {
            Declared::Plain
        }
    }
}

/// A stored text read through its declared type; text that does not parse as that type stays
/// text rather than failing the whole query (SQLite does not enforce declared types).
pub(super) fn text_value(s: String, declared: Declared) -> Value {
    match declared {
        Declared::Decimal => Value::Decimal(s),
        Declared::Uuid => match uuid::Uuid::parse_str(&s) {
            Ok(u) => Value::Uuid(u.to_string()),
            Err(_) => Value::Text(s),
        },
        Declared::Date => match temporal::parse_date(&s) {
            Some(d) => Value::Date(temporal::format_date(d)),
            None => Value::Text(s),
        },
        Declared::Time => match temporal::parse_time(&s) {
            Some(t) => Value::Time(temporal::format_time(t)),
            None => Value::Text(s),
        },
        Declared::Timestamp => match temporal::parse_timestamp(&s) {
            Some(t) => Value::Timestamp(temporal::format_timestamp(t)),
            None => Value::Text(s),
        },
        Declared::TimestampTz => match temporal::parse_timestamp_tz(&s) {
            Some(t) => Value::TimestampTz(temporal::format_timestamp_tz(t)),
            None => Value::Text(s),
        },
        Declared::Json => Value::Json(s),
        Declared::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Value::Boolean(true),
            "false" | "f" | "0" => Value::Boolean(false),
            _ => Value::Text(s),
        },
        Declared::Plain => Value::Text(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_value_cases() {
        assert_eq!(Declared::of("boolean"), Declared::Boolean);
        assert_eq!(Declared::of("NUMERIC(4,2)"), Declared::Decimal);
        assert_eq!(Declared::of("TIMESTAMP"), Declared::Timestamp);
        assert_eq!(
            Declared::of("timestamp with time zone"),
            Declared::TimestampTz
        );
        assert_eq!(Declared::of("DATETIME"), Declared::Timestamp);
        assert_eq!(Declared::of("VARCHAR(20)"), Declared::Plain);
    }

    #[test]
    fn text_that_does_not_parse_as_its_declared_type_stays_text() {
        assert!(matches!(
            text_value("soon".into(), Declared::Date),
            Value::Text(_)
        ));
        assert!(matches!(
            text_value("2026-11-21 14:03:44".into(), Declared::Timestamp),
            Value::Timestamp(s) if s == "2026-11-21T14:03:44"
        ));
    }

    /// Pools opened at once on a new file (concurrent migrators, a pool filling up) all get a
    /// connection, and the file ends up in WAL mode.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn connections_opened_at_once_on_a_new_file_all_switch_it_to_wal() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite {
            path: dir.path().join("new.sqlite"),
            in_memory: false,
            create_if_missing: true,
        };
        let settings = PoolSettings::default();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let pool = pool("wal_test", &target, &settings).unwrap();
            tasks.push(tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
                    .fetch_one(&mut *conn)
                    .await
            }));
        }
        for task in tasks {
            let mode = task.await.unwrap().expect("a connection failed to open");
            assert_eq!(mode, "wal");
        }
    }
}
