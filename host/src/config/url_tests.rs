use super::*;

fn parse(s: &str) -> Result<DatabaseTarget, UrlError> {
    DatabaseTarget::parse(s, None, Path::new("/srv/app"))
}

/// host, port, database, user, password, options
type PgFields = (
    String,
    u16,
    String,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
);

fn pg(s: &str) -> PgFields {
    match parse(s).unwrap() {
        DatabaseTarget::Postgres {
            host,
            port,
            database,
            user,
            password,
            options,
        } => (
            host,
            port,
            database,
            user,
            password.map(|p| p.expose().to_string()),
            options,
        ),
        other => panic!("not postgres: {other}"),
    }
}

fn sqlite(s: &str) -> (PathBuf, bool, bool) {
    match parse(s).unwrap() {
        DatabaseTarget::Sqlite {
            path,
            in_memory,
            create_if_missing,
        } => (path, in_memory, create_if_missing),
        other => panic!("not sqlite: {other}"),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn postgres_schemes() {
    for scheme in [
        "postgresql",
        "postgres",
        "postgresql+psycopg2",
        "postgresql+psycopg",
        "postgresql+asyncpg",
        "postgresql+pg8000",
    ] {
        let got = pg(&format!("{scheme}://flow:pw@127.0.0.1:5433/flows"));
        assert_eq!(
            got,
            (
                "127.0.0.1".into(),
                5433,
                "flows".into(),
                s("flow"),
                s("pw"),
                vec![]
            ),
            "{scheme}"
        );
    }
}

#[test]
fn postgres_defaults_and_options() {
    let got = pg("postgresql://db.example.com/flows?sslmode=require&application_name=flow+host");
    assert_eq!(got.0, "db.example.com");
    assert_eq!(got.1, 5432);
    assert_eq!((got.3, got.4), (None, None));
    assert_eq!(
        got.5,
        vec![
            ("sslmode".into(), "require".into()),
            ("application_name".into(), "flow host".into())
        ]
    );
    // libpq's rule: no database means the user's name.
    assert_eq!(pg("postgres://alice@h").2, "alice");
    assert_eq!(parse("postgres://h:5432"), Err(UrlError::MissingDatabase));
}

#[test]
fn percent_encoding_and_awkward_passwords() {
    assert_eq!(pg("postgresql://us%65r:p%40ss@h/my%20db").4, s("p@ss"));
    assert_eq!(pg("postgresql://us%65r:p%40ss@h/my%20db").3, s("user"));
    assert_eq!(pg("postgresql://us%65r:p%40ss@h/my%20db").2, "my db");
    // Unencoded '@', ':', '/' and '?' in passwords still parse (SQLAlchemy accepts the latter).
    assert_eq!(pg("postgresql://u:p@ss@h/db").4, s("p@ss"));
    assert_eq!(pg("postgresql://u:a:b/c?d@h/db").4, s("a:b/c?d"));
    let got = pg("postgresql://u:p@h/db?application_name=me@x");
    assert_eq!((got.0.as_str(), got.4), ("h", s("p")));
    // An '@' in the path or query without userinfo is not a userinfo.
    for url in [
        "postgresql://h/db?application_name=me@x",
        "postgresql://h:5432/db?application_name=me@x",
        "postgresql://[::1]/db?application_name=me@x",
    ] {
        let got = pg(url);
        assert_eq!((got.2.as_str(), got.3, got.4), ("db", None, None), "{url}");
        assert_eq!(got.5[0].1, "me@x", "{url}");
    }
    assert_eq!(
        parse("postgresql://u:p%FF@h/db"),
        Err(UrlError::InvalidPercentEncoding { part: "password" })
    );
}

#[test]
fn ipv6_hosts() {
    let got = pg("postgresql://u@[::1]:6543/db");
    assert_eq!((got.0.as_str(), got.1), ("::1", 6543));
    assert_eq!(pg("postgresql://[fe80::1]/db").1, 5432);
    assert_eq!(
        parse("postgresql://[::1]:6543/db").unwrap().to_string(),
        "postgresql at [::1]:6543/db"
    );
    assert_eq!(
        parse("postgresql://[::1/db"),
        Err(UrlError::UnterminatedIpv6)
    );
}

#[test]
fn libpq_query_parameters() {
    let got =
        pg("postgresql:///flows?host=/var/run/postgresql&user=me&password=pw&sslmode=disable");
    assert_eq!(got.0, "/var/run/postgresql");
    assert_eq!((got.3, got.4), (s("me"), s("pw")));
    assert_eq!(got.5, vec![("sslmode".into(), "disable".into())]);
    assert_eq!(
        parse("postgresql://u:a@h/db?password=b"),
        Err(UrlError::Duplicate { part: "password" })
    );
    assert_eq!(pg("postgresql://h?dbname=x&port=7000").1, 7000);
}

#[test]
fn bad_ports_and_schemes() {
    for bad in [
        "postgresql://h:port/db",
        "postgresql://h:0/db",
        "postgresql://h:70000/db",
        "postgresql://u:pa/ss@h:x/db",
    ] {
        assert_eq!(parse(bad), Err(UrlError::InvalidPort), "{bad}");
    }
    assert_eq!(
        parse("mysql://h/db"),
        Err(UrlError::UnknownScheme {
            scheme: "mysql".into()
        })
    );
    assert_eq!(parse("just words"), Err(UrlError::NoScheme));
    assert_eq!(
        parse("host=h port=5432 dbname=d"),
        Err(UrlError::PostgresKeyValue)
    );
    assert_eq!(
        DatabaseTarget::parse("host=h", Some(Backend::Postgres), Path::new("")),
        Err(UrlError::PostgresKeyValue)
    );
    assert_eq!(parse("  "), Err(UrlError::Empty));
    assert_eq!(
        parse("postgresql:h/db"),
        Err(UrlError::MissingSlashes {
            scheme: "postgresql".into()
        })
    );
    assert_eq!(parse("postgresql://a,b/db"), Err(UrlError::MultipleHosts));
}

#[test]
fn sqlite_forms() {
    let base = PathBuf::from("/srv/app");
    assert_eq!(
        sqlite("sqlite:///rel.db"),
        (base.join("rel.db"), false, true)
    );
    assert_eq!(
        sqlite("sqlite+pysqlite:///data/x.db"),
        (base.join("data/x.db"), false, true)
    );
    assert_eq!(
        sqlite("sqlite:////abs/x.db"),
        (PathBuf::from("/abs/x.db"), false, true)
    );
    assert_eq!(sqlite("sqlite:rel.db"), (base.join("rel.db"), false, true));
    assert_eq!(
        sqlite("sqlite://rel.db"),
        (base.join("rel.db"), false, true)
    );
    assert_eq!(sqlite("sqlite:///my%20file.db").0, base.join("my file.db"));
    assert_eq!(
        sqlite("sqlite:///x.db?mode=ro"),
        (base.join("x.db"), false, false)
    );
    let memory = (PathBuf::from(":memory:"), true, false);
    for m in [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite:///x.db?mode=memory",
    ] {
        assert_eq!(sqlite(m), memory, "{m}");
    }
    assert_eq!(
        parse("sqlite:///x.db?mode=bogus"),
        Err(UrlError::InvalidSqliteMode)
    );
}

#[test]
fn sqlite_paths_with_declared_type() {
    let t = DatabaseTarget::parse("data/rpa.db", Some(Backend::Sqlite), Path::new("/e")).unwrap();
    assert_eq!(t.to_string(), "sqlite file /e/data/rpa.db");
    let t = DatabaseTarget::parse(":memory:", Some(Backend::Sqlite), Path::new("/e")).unwrap();
    assert_eq!(t.to_string(), "sqlite in memory");
    // An empty base leaves relative paths relative to the working directory.
    let t = DatabaseTarget::parse("sqlite:///x.db", None, Path::new("")).unwrap();
    assert_eq!(t.to_string(), "sqlite file x.db");
}

#[test]
fn mssql_urls() {
    let t = parse(
        "mssql+pyodbc://sa:p%40ss@db.example.com:1433/Surveys\
         ?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes",
    )
    .unwrap();
    let DatabaseTarget::SqlServer {
        host,
        port,
        instance,
        database,
        user,
        password,
        options,
    } = &t
    else {
        panic!("{t}")
    };
    assert_eq!(
        (host.as_str(), *port, instance),
        ("db.example.com", 1433, &None)
    );
    assert_eq!(
        (database.as_deref(), user.as_deref()),
        (Some("Surveys"), Some("sa"))
    );
    assert_eq!(password.as_ref().map(Secret::expose), Some("p@ss"));
    assert_eq!(
        options,
        &vec![
            (
                "driver".to_string(),
                "ODBC Driver 18 for SQL Server".to_string()
            ),
            ("trust_server_certificate".to_string(), "yes".to_string())
        ]
    );
    assert_eq!(t.to_string(), "sqlserver at db.example.com:1433/Surveys");

    let t = parse("mssql+pymssql://u:p@h\\SQLEXPRESS/db").unwrap();
    assert_eq!(t.to_string(), "sqlserver at h\\SQLEXPRESS:1433/db");
    let t = parse("mssql://h:1500").unwrap();
    assert_eq!(t.to_string(), "sqlserver at h:1500");
    let t = parse("sqlserver://u:p@h/db").unwrap();
    assert_eq!(t.kind(), Backend::SqlServer);
    let t = parse(
        "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC+Driver+18%7D%3BSERVER%3Dh%2C1444%3BDATABASE%3Dd",
    )
    .unwrap();
    assert_eq!(t.to_string(), "sqlserver at h:1444/d");
    assert_eq!(parse("mssql+pyodbc:///db"), Err(UrlError::MissingHost));
}

#[test]
fn kinds() {
    assert_eq!(Backend::parse("PostgreSQL"), Some(Backend::Postgres));
    assert_eq!(Backend::parse("postgres"), Some(Backend::Postgres));
    assert_eq!(Backend::parse("SQLite"), Some(Backend::Sqlite));
    assert_eq!(Backend::parse("MSSQL"), Some(Backend::SqlServer));
    assert_eq!(Backend::parse("sqlserver"), Some(Backend::SqlServer));
    assert_eq!(Backend::parse("oracle"), None);
}

/// Every variant, every formatting: the password never shows.
#[test]
fn secrets_never_print() {
    const PW: &str = "Sup3rS3cretPW";
    let targets = [
        parse(&format!(
            "postgresql://flow:{PW}@127.0.0.1/flows?sslpassword={PW}"
        ))
        .unwrap(),
        parse(&format!("postgresql:///db?password={PW}&host=/tmp")).unwrap(),
        parse("sqlite:///rpa.db").unwrap(),
        parse("sqlite://").unwrap(),
        parse(&format!(
            "mssql+pyodbc://sa:{PW}@h/db?driver=x&AccessToken={PW}"
        ))
        .unwrap(),
        parse(&format!(
            "Server=h;Database=d;User Id=u;Password={PW};Encrypt=true"
        ))
        .unwrap(),
        parse(&format!("sqlserver://h;user=u;password={PW}")).unwrap(),
    ];
    for t in &targets {
        for text in [format!("{t}"), format!("{t:?}"), format!("{t:#?}")] {
            assert!(!text.contains(PW), "leaked: {text}");
            assert!(!text.contains("flow:"), "user shown: {text}");
        }
        // The password is still there for the driver.
        if let DatabaseTarget::Postgres {
            password: Some(p), ..
        }
        | DatabaseTarget::SqlServer {
            password: Some(p), ..
        } = t
        {
            assert_eq!(p.expose(), PW);
        }
    }
    assert_eq!(targets[0].to_string(), "postgresql at 127.0.0.1:5432/flows");
    assert!(format!("{:?}", targets[0]).contains("password: Some(***)"));
}

#[test]
fn errors_never_contain_the_password() {
    const PW: &str = "Sup3rS3cretPW";
    for bad in [
        format!("postgresql://u:{PW}@h:port/db"),
        format!("postgresql://u:{PW}/x@h:0/db"),
        format!("mssql://u:{PW}@h:99999/db"),
        format!("Server=np:h;Password={PW}"),
        format!("Server=h;Password='{PW}"),
        format!("oracle://u:{PW}@h/db"),
        format!("u:{PW}@h/db"),
    ] {
        let e = parse(&bad).unwrap_err().to_string();
        assert!(!e.contains(PW), "{e}");
    }
}
