//! A SQL Server to test against, when `FLOWHOST_TEST_MSSQL_URL` names one: a fresh database per
//! test, created and dropped through tiberius directly (not through flowhost, so what a test
//! reads back does not depend on the code under test).
//!
//! The URL is SQLAlchemy-style, `mssql://user:password@host:1433/master?TrustServerCertificate=yes`;
//! the login must be allowed to create databases.

use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::support::block_on;

pub const MSSQL_URL_VAR: &str = "FLOWHOST_TEST_MSSQL_URL";

/// The server's URL, or `None` after printing why the calling test is skipped.
pub fn mssql_url(test: &str) -> Option<String> {
    match std::env::var(MSSQL_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped {test}: {MSSQL_URL_VAR} is not set, so there is no SQL Server to test \
                 against (README: \"Testing against SQL Server\")"
            );
            None
        }
    }
}

/// Takes a fresh database on the test server, or returns from the test after saying it was
/// skipped.
macro_rules! require_mssql {
    ($test:expr) => {
        match crate::sqlserver_support::MsDatabase::create($test) {
            Some(db) => db,
            None => return,
        }
    };
}
pub(crate) use require_mssql;

pub type Client = tiberius::Client<tokio_util::compat::Compat<TcpStream>>;

/// A fresh database on the test server, dropped when this value is.
pub struct MsDatabase {
    pub name: String,
    server_url: String,
}

/// `url` with its database (path) replaced by `database`, query kept.
fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority..].find('/') {
        Some(slash) => &head[..authority + slash],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

async fn connect(url: &str) -> Client {
    let target = flowhost::config::DatabaseTarget::parse(url, None, std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{MSSQL_URL_VAR} is not a SQL Server URL: {e}"));
    let config = flowhost::db::sqlserver::connect_config(&target).unwrap();
    let tcp = TcpStream::connect(config.get_addr())
        .await
        .unwrap_or_else(|e| panic!("the SQL Server in {MSSQL_URL_VAR} does not answer: {e}"));
    tcp.set_nodelay(true).unwrap();
    tiberius::Client::connect(config, tcp.compat_write())
        .await
        .unwrap_or_else(|e| panic!("cannot log in to the SQL Server in {MSSQL_URL_VAR}: {e}"))
}

/// Serialises database creation and removal (see `MsDatabase::create`).
static CATALOG: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl MsDatabase {
    pub fn create(test: &str) -> Option<MsDatabase> {
        let server_url = mssql_url(test)?;
        let name = format!(
            "fh_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        // One CREATE/DROP DATABASE at a time: Babelfish's catalog fails concurrent ones with
        // "tuple concurrently updated" (tests run in parallel threads).
        let _one_at_a_time = CATALOG.lock().unwrap_or_else(|e| e.into_inner());
        block_on(async {
            let mut admin = connect(&server_url).await;
            admin
                .simple_query(format!("CREATE DATABASE [{name}]"))
                .await
                .and_then_drain()
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        });
        Some(MsDatabase { name, server_url })
    }

    /// The URL of this database, SQLAlchemy's `mssql://` form.
    pub fn url(&self) -> String {
        with_database(&self.server_url, &self.name)
    }

    /// This database in the form the users' configurations have it:
    /// `mssql+pyodbc://...?driver=ODBC+Driver+17+for+SQL+Server`.
    pub fn pyodbc_url(&self) -> String {
        let url = self.url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let sep = if rest.contains('?') { '&' } else { '?' };
        format!("mssql+pyodbc://{rest}{sep}driver=ODBC+Driver+17+for+SQL+Server")
    }

    /// The login's password, which no output may contain.
    pub fn password(&self) -> String {
        let rest = self.server_url.split_once("://").unwrap().1;
        let userinfo = rest.split_once('@').map_or("", |(u, _)| u);
        userinfo.split_once(':').map_or("", |(_, p)| p).to_owned()
    }

    /// Runs a batch (several statements, no `GO`).
    pub fn exec(&self, sql: &str) {
        block_on(async {
            let mut c = connect(&self.url()).await;
            c.simple_query(sql)
                .await
                .and_then_drain()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    }

    /// The first column of every row, as text (`CAST` in the query where it is not text).
    pub fn column(&self, sql: &str) -> Vec<Option<String>> {
        block_on(async {
            let mut c = connect(&self.url()).await;
            let rows = c
                .simple_query(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .into_first_result()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter()
                .map(|r| r.get::<&str, _>(0).map(str::to_owned))
                .collect()
        })
    }

    /// Whether the server is Babelfish for PostgreSQL rather than SQL Server.
    pub fn is_babelfish(&self) -> bool {
        let version = self.column("SELECT @@VERSION");
        version
            .first()
            .and_then(|v| v.as_deref())
            .is_some_and(|v| v.contains("Babelfish"))
    }

    pub fn count(&self, from: &str) -> i64 {
        self.column(&format!(
            "SELECT CAST(COUNT(*) AS NVARCHAR(20)) FROM {from}"
        ))[0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for MsDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.server_url.clone(), self.name.clone());
        let _one_at_a_time = CATALOG.lock().unwrap_or_else(|e| e.into_inner());
        block_on(async move {
            let mut admin = connect(&url).await;
            let _ = admin
                .simple_query(format!("DROP DATABASE IF EXISTS [{name}]"))
                .await
                .and_then_drain()
                .await;
        });
    }
}

/// Reads a batch's whole response, so the connection is ready for the next.
trait Drain {
    async fn and_then_drain(self) -> tiberius::Result<()>;
}

impl Drain for tiberius::Result<tiberius::QueryStream<'_>> {
    async fn and_then_drain(self) -> tiberius::Result<()> {
        self?.into_results().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_query_kept() {
        assert_eq!(
            with_database("mssql://u:p@h:1433/master?TrustServerCertificate=yes", "x"),
            "mssql://u:p@h:1433/x?TrustServerCertificate=yes"
        );
        assert_eq!(with_database("mssql://u:p@h", "x"), "mssql://u:p@h/x");
    }
}
