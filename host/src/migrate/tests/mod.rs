//! Migrations against real databases: SQLite files in temp dirs, and PostgreSQL on
//! 127.0.0.1:5432 (user postgres) with a fresh database per test, dropped afterwards. Every case
//! runs on both backends.
//!
//! `cases` holds the behaviour of one migrator; `locking` holds concurrency, the lock and
//! connection handling; `import` holds taking over Pyway and Flyway histories.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::Connection;

use super::*;
use crate::config::{DatabaseConfig, DatabaseTarget, PoolSettings};
use crate::db::Database;

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

struct Fixture {
    kind: Kind,
    dir: tempfile::TempDir,
    /// The PostgreSQL database made for this test.
    pg_database: Option<String>,
}

impl Fixture {
    fn migrations(&self) -> PathBuf {
        self.dir.path().join("migrations").join("mig_test")
    }

    fn write(&self, name: &str, body: &str) {
        std::fs::create_dir_all(self.migrations()).unwrap();
        std::fs::write(self.migrations().join(name), body).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.migrations().join(name)).unwrap();
    }

    /// A new `Database` (its own pool) on the test's database.
    async fn db(&self) -> Database {
        let target = match self.kind {
            Kind::Sqlite => DatabaseTarget::Sqlite {
                path: self.dir.path().join("test.sqlite"),
                in_memory: false,
                create_if_missing: true,
            },
            Kind::Postgres => DatabaseTarget::Postgres {
                host: "127.0.0.1".into(),
                port: 5432,
                database: self.pg_database.clone().unwrap(),
                user: Some("postgres".into()),
                password: None,
                options: Vec::new(),
            },
        };
        let pool = PoolSettings {
            max_connections: 3,
            ..PoolSettings::default()
        };
        Database::open(&DatabaseConfig::new("mig_test", target, pool))
            .await
            .unwrap()
    }
}

fn opts() -> MigrateOptions {
    MigrateOptions {
        installed_by: "tester".into(),
        ..MigrateOptions::default()
    }
}

async fn pg_admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(PG_ADMIN_URL)
        .await
        .unwrap_or_else(|e| {
            panic!("these tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): {e}")
        })
}

/// Runs `case` on a fresh fixture and always cleans up (the PostgreSQL database is dropped
/// even when the case panics).
async fn run(kind: Kind, case: for<'a> fn(&'a Fixture) -> BoxFuture<'a, ()>) {
    let dir = tempfile::tempdir().unwrap();
    let pg_database = if kind == Kind::Postgres {
        let name = format!("fh_mig_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut pg_admin().await)
            .await
            .unwrap();
        Some(name)
    } else {
        None
    };
    let fx = Fixture {
        kind,
        dir,
        pg_database,
    };
    let outcome = std::panic::AssertUnwindSafe(case(&fx)).catch_unwind().await;
    if let Some(name) = &fx.pg_database {
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut pg_admin().await)
            .await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// One test per backend for each case.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            fn go(fx: &super::Fixture) -> futures_util::future::BoxFuture<'_, ()> {
                Box::pin(super::$case(fx))
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::run(super::Kind::Sqlite, go).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::run(super::Kind::Postgres, go).await
            }
        }
    )*};
}

/// Rows of a one-column text query.
async fn strings(db: &Database, sql: &str) -> Vec<String> {
    let mut conn = db.acquire().await.unwrap();
    let rows = conn.host_query(db, sql, &[]).await.unwrap();
    rows.iter().map(|r| r.at::<String>(0).unwrap()).collect()
}

async fn table_exists(db: &Database, name: &str) -> bool {
    let table = HistoryTable::new(name, db.backend()).unwrap();
    let mut conn = db.acquire().await.unwrap();
    table.exists(&mut conn, db).await.unwrap()
}

async fn history(db: &Database) -> Vec<AppliedMigration> {
    let table = HistoryTable::new(DEFAULT_HISTORY_TABLE, db.backend()).unwrap();
    let mut conn = db.acquire().await.unwrap();
    table.read(&mut conn, db).await.unwrap()
}

mod cases;
mod import;
mod kinds;
mod locking;

/// Containers and services often run with no `USER`: the history still names the OS user the
/// migration ran as, not a placeholder.
#[cfg(unix)]
#[test]
fn the_os_user_is_found_without_a_user_variable() {
    let name = os_user_name().expect("the process's user is in /etc/passwd");
    assert!(!name.is_empty() && name != "flowhost", "{name}");
}
