//! Secrets stay secret: a recognisable password sits in every connection-string form flowhost
//! reads, and every command is driven through successes and failures (connections refused,
//! databases missing, queries rejected, migrations failing, health checks, `--json` records)
//! at the most verbose log level. No output channel may contain the password.

use std::process::Output;

use serde_json::json;

use crate::support::*;

const PASSWORD: &str = "Xyzzy-S3cr3t-Pw9";
/// The same password as it appears percent-encoded in a URL (`@` and `:` escaped).
const RAW_PASSWORD: &str = "p@ss:Xyzzy-Encoded";
const ENCODED_PASSWORD: &str = "p%40ss%3AXyzzy-Encoded";

fn assert_no_secret(what: &str, out: &Output) {
    let all = format!("{}{}", stdout(out), stderr(out));
    for secret in [PASSWORD, RAW_PASSWORD, ENCODED_PASSWORD, "Xyzzy"] {
        assert!(!all.contains(secret), "{what}: '{secret}' leaked:\n{all}");
    }
}

#[test]
fn no_output_channel_ever_shows_a_password() {
    let db = PgDatabase::create();
    db.exec("CREATE TABLE t (id int PRIMARY KEY)");
    let name = &db.name;
    let project = Project::new();
    // Working URLs (trust auth ignores the password but the URL carries it) and failing ones.
    project.write(
        ".env",
        &format!(
            "DB_PASSWORD={PASSWORD}\n\
             DEVELOPMENT_GLOBAL_PLAIN_CONNECTION_STRING=postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{name}\n\
             DEVELOPMENT_GLOBAL_ALCHEMY_CONNECTION_STRING=postgresql+psycopg2://postgres:{ENCODED_PASSWORD}@127.0.0.1:5432/{name}?sslmode=disable\n\
             DEVELOPMENT_GLOBAL_JDBC_CONNECTION_STRING=jdbc:postgresql://127.0.0.1:5432/{name}?user=postgres&password={PASSWORD}\n\
             DEVELOPMENT_GLOBAL_INTERPOLATED_CONNECTION_STRING=postgresql://postgres:${{DB_PASSWORD}}@127.0.0.1:5432/{name}\n\
             DEVELOPMENT_GLOBAL_READER_CONNECTION_STRING=postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{name}\n\
             DEVELOPMENT_GLOBAL_READER_READONLY_CONNECTION_STRING=postgresql://postgres:{ENCODED_PASSWORD}@127.0.0.1:5432/{name}\n\
             DEVELOPMENT_GLOBAL_REFUSED_CONNECTION_STRING=postgresql://etl:{PASSWORD}@127.0.0.1:1/x\n\
             DEVELOPMENT_GLOBAL_REFUSED_CONNECT_TIMEOUT=2\n\
             DEVELOPMENT_GLOBAL_MISSING_CONNECTION_STRING=postgresql://postgres:{PASSWORD}@127.0.0.1:5432/no_such_db_{name}\n\
             DEVELOPMENT_GLOBAL_MSSQL_CONNECTION_STRING=mssql+pyodbc://sa:{PASSWORD}@127.0.0.1:1433/x?driver=ODBC+Driver+18\n\
             DEVELOPMENT_GLOBAL_ADO_CONNECTION_STRING=Server=127.0.0.1,1433;Database=x;User Id=sa;Password={PASSWORD};\n"
        ),
    );
    project.write("migrations/plain/V1__ok.sql", "CREATE TABLE m (id int);\n");
    project.write(
        "migrations/plain/V2__fails.sql",
        "INSERT INTO m VALUES (1);\nSELECT no_such_column FROM m;\n",
    );

    for args in [
        &["-vv", "health"][..],
        &["-vv", "health", "--json"],
        &["-vv", "migrate", "plain"],
        &["-vv", "migrate", "info", "plain"],
        &["-vv", "migrate", "plain", "missing", "refused"],
    ] {
        let out = project.flowhost(args);
        assert_no_secret(&args.join(" "), &out);
    }

    let steps = json!([
        { "op": "query", "db": "plain", "sql": "SELECT 1" },
        { "op": "query", "db": "alchemy", "sql": "SELECT no_such_column FROM t" },
        { "op": "execute", "db": "jdbc", "sql": "INSERT INTO t VALUES (1), (1)" },
        { "op": "query", "db": "interpolated", "sql": "SELECT current_setting('application_name')" },
        { "op": "query", "db": "reader", "sql": "SELECT pg_read_file('/etc/passwd')" },
        { "op": "execute", "db": "reader", "sql": "DELETE FROM t" },
        { "op": "query", "db": "plain", "sql": "SELECT 1/0" },
    ]);
    let grants = [
        ("plain", "read-write"),
        ("alchemy", "read-only"),
        ("jdbc", "read-write"),
        ("interpolated", "read-only"),
        ("reader", "read-only"),
    ];
    for extra in [&[][..], &["--json"]] {
        let input = project.write("steps.json", &json!({ "steps": steps }).to_string());
        let manifest = write_manifest(&project, &grants);
        let mut args = vec![
            "-vv",
            "run",
            "--manifest",
            manifest.as_str(),
            "--input-file",
        ];
        args.push(input.to_str().unwrap());
        args.extend_from_slice(extra);
        let wasm = probe_wasm();
        args.push(wasm.to_str().unwrap());
        let out = project.flowhost(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_no_secret("run", &out);
        // Failing grants: each fails before or during the run, and says so without the password.
        for failing in ["refused", "missing", "mssql", "ado"] {
            let manifest = write_manifest(&project, &[(failing, "read-only")]);
            let out = project.flowhost(&[
                "-vv",
                "run",
                "--manifest",
                &manifest,
                wasm.to_str().unwrap(),
            ]);
            assert!(!out.status.success(), "{failing} should fail");
            assert_no_secret(failing, &out);
        }
    }
}

fn write_manifest(project: &Project, grants: &[(&str, &str)]) -> String {
    let mut text = "[flow]\nname = \"secrets\"\n[limits]\ntimeout-seconds = 20\n".to_owned();
    for (name, access) in grants {
        text.push_str(&format!("[databases.{name}]\naccess = \"{access}\"\n"));
    }
    project
        .write("secrets.toml", &text)
        .to_str()
        .unwrap()
        .to_owned()
}
