//! `make bench-mssql`: how `execute-batch` should write rows to SQL Server, measured (the
//! figures behind db/sqlserver_bulk.rs).
//!
//! Multi-row parameterised `INSERT ... VALUES (@P1, ...), (...)` statements, as flowhost sends
//! them (rows per statement capped by SQL Server's 2,100 parameters), against tiberius's bulk
//! load (`INSERT BULK`, the TDS bulk copy), both inside one transaction, on the server
//! `FLOWHOST_TEST_MSSQL_URL` names. Prints medians and the ratio; needs a login that may create
//! a database.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use tiberius::{Client, IntoSql, Query, TokenRow};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

const REPEAT: usize = 5;
const PARAMS_PER_STATEMENT: usize = 2_098;
const COLUMNS: usize = 4;

type Tds = Client<Compat<TcpStream>>;

fn main() {
    let Ok(url) = std::env::var("FLOWHOST_TEST_MSSQL_URL") else {
        eprintln!(
            "FLOWHOST_TEST_MSSQL_URL is not set: nothing to measure (see README, SQL Server)"
        );
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut admin = connect(&url, None).await;
        let version: String = admin
            .simple_query("SELECT @@VERSION")
            .await
            .unwrap()
            .into_row()
            .await
            .unwrap()
            .and_then(|r| r.get::<&str, _>(0).map(str::to_owned))
            .unwrap_or_default();
        let db = format!("fh_bench_{}", std::process::id());
        exec(&mut admin, &format!("CREATE DATABASE [{db}]")).await;
        let mut client = connect(&url, Some(&db)).await;
        println!(
            "SQL Server execute-batch: multi-row INSERT vs bulk load, median of {REPEAT}\nserver: {}\n",
            version.lines().next().unwrap_or("")
        );
        println!(
            "  rows    multi-row INSERT  bulk load   INSERT / bulk  (rows per INSERT: {})",
            PARAMS_PER_STATEMENT / COLUMNS
        );
        for rows in [1_000usize, 10_000, 50_000] {
            let insert = median(&mut client, rows, Method::MultiRowInsert).await;
            let bulk = median(&mut client, rows, Method::BulkLoad).await;
            println!(
                "  {rows:<7} {:>10.1} ms     {:>8.1} ms  {:.2}x",
                ms(insert),
                ms(bulk),
                insert.as_secs_f64() / bulk.as_secs_f64()
            );
        }
        drop(client);
        exec(&mut admin, &format!("DROP DATABASE [{db}]")).await;
    });
}

async fn connect(url: &str, database: Option<&str>) -> Tds {
    let target = flowhost::config::DatabaseTarget::parse(url, None, std::path::Path::new("."))
        .expect("FLOWHOST_TEST_MSSQL_URL is a SQL Server URL");
    let mut config = flowhost::db::sqlserver::connect_config(&target).unwrap();
    if let Some(db) = database {
        config.database(db);
    }
    let tcp = TcpStream::connect(config.get_addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    Client::connect(config, tcp.compat_write()).await.unwrap()
}

async fn exec(client: &mut Tds, sql: &str) {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Row `i`: an id, a name, an amount and a time, the shape rpa1 writes. The amount is whole
/// cents, not `decimal`: Babelfish 4.2 misreads a `decimal` sent by tiberius's bulk load.
fn row(i: usize) -> (i32, String, i32, NaiveDateTime) {
    let at = NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        + chrono::Duration::seconds(i as i64);
    (
        i as i32,
        format!("respondent {i}"),
        (i % 500) as i32 + 100,
        at,
    )
}

#[derive(Clone, Copy)]
enum Method {
    MultiRowInsert,
    BulkLoad,
}

async fn median(client: &mut Tds, rows: usize, method: Method) -> Duration {
    let mut times = Vec::new();
    for _ in 0..=REPEAT {
        exec(
            client,
            "DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows (id INT PRIMARY KEY, \
             name NVARCHAR(100) NOT NULL, amount_cents INT NOT NULL, at DATETIME2 NOT NULL)",
        )
        .await;
        let start = Instant::now();
        exec(client, "BEGIN TRANSACTION").await;
        match method {
            Method::MultiRowInsert => multi_row_insert(client, rows).await,
            Method::BulkLoad => bulk_load(client, rows).await,
        }
        exec(client, "COMMIT TRANSACTION").await;
        times.push(start.elapsed());
        let count: i32 = client
            .simple_query("SELECT COUNT(*) FROM bench_rows")
            .await
            .unwrap()
            .into_row()
            .await
            .unwrap()
            .and_then(|r| r.get(0))
            .unwrap();
        assert_eq!(count as usize, rows, "every row was written");
    }
    times.remove(0); // warm-up
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn multi_row_insert(client: &mut Tds, rows: usize) {
    let per_statement = PARAMS_PER_STATEMENT / COLUMNS;
    let mut start = 0;
    while start < rows {
        let end = (start + per_statement).min(rows);
        let mut sql = String::from("INSERT INTO bench_rows (id, name, amount_cents, at) VALUES ");
        for (k, _) in (start..end).enumerate() {
            let p = k * COLUMNS;
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(@P{}, @P{}, @P{}, @P{})",
                p + 1,
                p + 2,
                p + 3,
                p + 4
            ));
        }
        let mut query = Query::new(sql);
        for i in start..end {
            let (id, name, amount, at) = row(i);
            query.bind(id);
            query.bind(name);
            query.bind(amount);
            query.bind(at);
        }
        query.execute(client).await.unwrap();
        start = end;
    }
}

async fn bulk_load(client: &mut Tds, rows: usize) {
    let mut request = client.bulk_insert("bench_rows").await.unwrap();
    for i in 0..rows {
        let (id, name, amount, at) = row(i);
        let mut token = TokenRow::new();
        token.push(id.into_sql());
        token.push(name.into_sql());
        token.push(amount.into_sql());
        token.push(at.into_sql());
        request.send(token).await.unwrap();
    }
    request.finalize().await.unwrap();
}
