use super::*;
use std::time::Duration;

/// A directory with a `.env` and other files, plus options pointing at it.
struct Fixture {
    dir: tempfile::TempDir,
    opts: LoadOptions,
}

impl Fixture {
    fn new(dotenv: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = dotenv {
            std::fs::write(dir.path().join(".env"), text).unwrap();
        }
        let opts = LoadOptions {
            dotenv_dir: Some(dir.path().to_path_buf()),
            data_dir: dir.path().join(".flowhost"),
            ..LoadOptions::default()
        };
        Fixture { dir, opts }
    }

    fn extra(mut self, name: &str, text: &str) -> Self {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        self.opts.extra_env_files.push(path);
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.opts
            .process_env
            .insert(key.to_string(), value.to_string());
        self
    }

    fn load(&self) -> Config {
        Config::load(&self.opts).unwrap()
    }
}

fn pg_host(c: &DatabaseConfig) -> &str {
    match &c.target {
        DatabaseTarget::Postgres { host, .. } => host,
        other => panic!("not postgres: {other}"),
    }
}

#[test]
fn process_env_wins_over_files_and_later_files_win() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_A_CONNECTION_STRING=postgresql://dotenv/db\n\
         DEVELOPMENT_GLOBAL_B_CONNECTION_STRING=postgresql://dotenv/db\n\
         DEVELOPMENT_GLOBAL_C_CONNECTION_STRING=postgresql://dotenv/db\n",
    ))
    .extra(
        "one.env",
        "DEVELOPMENT_GLOBAL_B_CONNECTION_STRING=postgresql://one/db\n\
         DEVELOPMENT_GLOBAL_C_CONNECTION_STRING=postgresql://one/db\n",
    )
    .extra(
        "two.env",
        "DEVELOPMENT_GLOBAL_C_CONNECTION_STRING=postgresql://two/db\n",
    )
    .env(
        "DEVELOPMENT_GLOBAL_A_CONNECTION_STRING",
        "postgresql://process/db",
    );
    let c = f.load();
    assert_eq!(pg_host(&c.database("a").unwrap()), "process");
    assert_eq!(pg_host(&c.database("b").unwrap()), "one");
    assert_eq!(pg_host(&c.database("c").unwrap()), "two");
    assert_eq!(c.database_names(), vec!["a", "b", "c"]);
}

#[test]
fn environment_selection() {
    let text = "FLOWHOST_ENV=staging\n\
                STAGING_GLOBAL_DB_CONNECTION_STRING=postgresql://staging/db\n\
                PRODUCTION_GLOBAL_DB_CONNECTION_STRING=postgresql://prod/db\n";
    let f = Fixture::new(Some(text));
    assert_eq!(f.load().environment, "staging");
    let f = Fixture::new(Some(text)).env("FLOWHOST_ENV", "Production");
    let c = f.load();
    assert_eq!(c.environment, "production");
    assert_eq!(pg_host(&c.database("db").unwrap()), "prod");
    let mut f = Fixture::new(Some(text)).env("FLOWHOST_ENV", "staging");
    f.opts.env_override = Some("PRODUCTION".into());
    assert_eq!(f.load().environment, "production");
    assert_eq!(Fixture::new(None).load().environment, "development");
    let mut f = Fixture::new(None);
    f.opts.env_override = Some("prod;rm".into());
    assert!(matches!(
        Config::load(&f.opts),
        Err(ConfigError::InvalidEnvironment { .. })
    ));
}

#[test]
fn embedded_default_for_a_fresh_development_checkout() {
    let f = Fixture::new(None);
    let c = f.load();
    assert!(c.is_embedded_default());
    let db = c.database("SurveyHub").unwrap();
    assert!(db.embedded);
    assert_eq!(db.name, "SurveyHub");
    assert_eq!(
        db.target,
        DatabaseTarget::Sqlite {
            path: f.dir.path().join(".flowhost/surveyhub.sqlite"),
            in_memory: false,
            create_if_missing: true,
        }
    );
    assert_eq!(db.pool, PoolSettings::default());
    assert_eq!(
        c.database("rpa_db").unwrap().target.to_string(),
        format!(
            "sqlite file {}",
            f.dir.path().join(".flowhost/rpa_db.sqlite").display()
        )
    );
    // Names come from the files already there.
    assert!(c.database_names().is_empty());
    std::fs::create_dir_all(f.dir.path().join(".flowhost")).unwrap();
    for file in ["rpa_db.sqlite", "surveyhub.sqlite", "notes.txt"] {
        std::fs::write(f.dir.path().join(".flowhost").join(file), "").unwrap();
    }
    assert_eq!(c.database_names(), vec!["rpa_db", "surveyhub"]);
}

#[test]
fn embedded_default_keeps_global_pool_settings() {
    let f = Fixture::new(Some("DEVELOPMENT_GLOBAL_DATABASE_TIMEOUT=30\n"));
    let c = f.load();
    assert!(c.is_embedded_default());
    let db = c.database("rpa_db").unwrap();
    assert_eq!(db.pool.statement_timeout, Some(Duration::from_secs(30)));
}

#[test]
fn no_embedded_default_outside_development_or_once_configured() {
    let mut f = Fixture::new(None);
    f.opts.env_override = Some("production".into());
    let c = f.load();
    assert!(!c.is_embedded_default());
    assert!(c.database_names().is_empty());
    assert_eq!(
        c.database("SurveyHub").unwrap_err().to_string(),
        "database 'SurveyHub' is not configured for environment 'production': set \
         PRODUCTION_GLOBAL_SURVEYHUB_TYPE and PRODUCTION_GLOBAL_SURVEYHUB_CONNECTION_STRING"
    );

    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=sqlite:///rpa.db\n",
    ));
    let c = f.load();
    assert!(!c.is_embedded_default());
    assert!(!c.database("rpa_db").unwrap().embedded);
    assert!(matches!(
        c.database("SurveyHub"),
        Err(ConfigError::UnknownDatabase { .. })
    ));

    // A typo must not silently fall back to SQLite.
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_RPA_DB_CONECTION_STRING=postgresql://h/db\n",
    ));
    let c = f.load();
    assert!(!c.is_embedded_default());
    assert_eq!(c.warnings().len(), 1);
    assert!(
        c.warnings()[0].contains("did you mean"),
        "{:?}",
        c.warnings()
    );
    assert!(c.database("rpa_db").is_err());
}

#[test]
fn full_database_from_dotenv_with_secret_from_process() {
    let f = Fixture::new(Some(
        "# seed config\n\
         export DEVELOPMENT_GLOBAL_RPA_DB_TYPE=postgresql\n\
         DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=\"postgresql+psycopg2://rpa:${RPA_PW}@127.0.0.1:5432/flows\"\n\
         DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_POOL_SIZE=3\n\
         DEVELOPMENT_GLOBAL_CONNECTION_POOL_SIZE=10\n\
         DEVELOPMENT_GLOBAL_DATABASE_TIMEOUT=30\n\
         DEVELOPMENT_GLOBAL_SURVEYHUB_CONNECTION_STRING='Server=tcp:sql,1433;Database=Surveys;User Id=ro;Password=p$x'\n\
         DEVELOPMENT_GLOBAL_SURVEYHUB_DATABASE_TIMEOUT=5\n\
         PRODUCTION_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://u:${PROD_ONLY_SECRET}@prod/db\n",
    ))
    .env("RPA_PW", "s3cr3t");
    let c = f.load();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let rpa = c.database("rpa_db").unwrap();
    match &rpa.target {
        DatabaseTarget::Postgres {
            password, database, ..
        } => {
            assert_eq!(password.as_ref().unwrap().expose(), "s3cr3t");
            assert_eq!(database, "flows");
        }
        other => panic!("{other}"),
    }
    // Per-database pool size wins over the global one; globals fill the rest.
    assert_eq!(rpa.pool.max_connections, 3 + 5);
    assert_eq!(rpa.pool.statement_timeout, Some(Duration::from_secs(30)));
    let hub = c.database("SurveyHub").unwrap();
    assert_eq!(hub.pool.max_connections, 15);
    assert_eq!(hub.pool.statement_timeout, Some(Duration::from_secs(5)));
    assert_eq!(hub.target.to_string(), "sqlserver at sql:1433/Surveys");
    assert_eq!(c.database_names(), vec!["rpa_db", "surveyhub"]);
    let shown = format!("{c:?} {rpa:?} {hub:?} {:?}", f.opts);
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("p$x"),
        "{shown}"
    );
}

#[test]
fn missing_variable_is_an_error_naming_var_and_key_only() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://rpa:${RPA_PW}@h/db?x=${OTHER}\n",
    ))
    .env("OTHER", "visible-secret");
    let e = f.load().database("rpa_db").unwrap_err().to_string();
    assert!(e.contains("RPA_PW"), "{e}");
    assert!(
        e.contains("DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING"),
        "{e}"
    );
    assert!(e.contains(".env:1"), "{e}");
    assert!(
        !e.contains("visible-secret") && !e.contains("postgresql://"),
        "{e}"
    );
}

#[test]
fn relative_sqlite_paths_follow_the_file_that_set_them() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_A_CONNECTION_STRING=sqlite:///a.db\n",
    ));
    std::fs::create_dir(f.dir.path().join("conf")).unwrap();
    let f = f.env("DEVELOPMENT_GLOBAL_B_CONNECTION_STRING", "sqlite:b.db");
    let mut f = f;
    let conf = f.dir.path().join("conf/extra.env");
    std::fs::write(
        &conf,
        "DEVELOPMENT_GLOBAL_C_TYPE=sqlite\nDEVELOPMENT_GLOBAL_C_CONNECTION_STRING=data/c.db\n",
    )
    .unwrap();
    f.opts.extra_env_files.push(conf);
    let c = f.load();
    let path = |n: &str| match c.database(n).unwrap().target {
        DatabaseTarget::Sqlite { path, .. } => path,
        other => panic!("{other}"),
    };
    assert_eq!(path("a"), f.dir.path().join("a.db"));
    assert_eq!(path("b"), f.dir.path().join("b.db"));
    assert_eq!(path("c"), f.dir.path().join("conf/data/c.db"));
}

#[test]
fn per_database_errors() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_A_TYPE=mssql\n\
         DEVELOPMENT_GLOBAL_A_CONNECTION_STRING=postgresql://u:pw@h/db\n\
         DEVELOPMENT_GLOBAL_B_POOL_SIZE=3\n\
         DEVELOPMENT_GLOBAL_C_TYPE=oracle\n\
         DEVELOPMENT_GLOBAL_C_CONNECTION_STRING=x\n\
         DEVELOPMENT_GLOBAL_D_CONNECTION_STRING=postgresql://u:Zebra42@h:port/db\n\
         DEVELOPMENT_GLOBAL_E_CONNECTION_STRING=sqlite://\n\
         DEVELOPMENT_GLOBAL_E_POOL_TIMEOUT=soon\n",
    ));
    let c = f.load();
    let err = |n: &str| c.database(n).unwrap_err().to_string();
    assert_eq!(
        err("a"),
        "DEVELOPMENT_GLOBAL_A_TYPE says sqlserver but DEVELOPMENT_GLOBAL_A_CONNECTION_STRING is \
         a postgresql connection string"
    );
    assert!(
        err("b").contains("set DEVELOPMENT_GLOBAL_B_CONNECTION_STRING"),
        "{}",
        err("b")
    );
    assert!(
        err("c").contains("unknown database type 'oracle'"),
        "{}",
        err("c")
    );
    let d = err("d");
    assert!(
        d.contains("DEVELOPMENT_GLOBAL_D_CONNECTION_STRING") && d.contains("port"),
        "{d}"
    );
    assert!(!d.contains("Zebra42"), "{d}");
    let e = err("e");
    assert!(
        e.contains("DEVELOPMENT_GLOBAL_E_POOL_TIMEOUT") && e.contains("'soon'"),
        "{e}"
    );
    assert!(matches!(
        c.database("--"),
        Err(ConfigError::InvalidDatabaseName { .. })
    ));
}

#[test]
fn bad_global_number_fails_every_database() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_CONNECTION_POOL_SIZE=lots\n\
         DEVELOPMENT_GLOBAL_A_CONNECTION_STRING=sqlite://\n",
    ));
    let e = f.load().database("a").unwrap_err().to_string();
    assert!(e.contains("DEVELOPMENT_GLOBAL_CONNECTION_POOL_SIZE"), "{e}");
}

#[test]
fn names_normalise_to_one_key() {
    assert_eq!(key_name("rpa_db"), "RPA_DB");
    assert_eq!(key_name("SurveyHub"), "SURVEYHUB");
    assert_eq!(key_name("rpa-db.v2"), "RPA_DB_V2");
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=sqlite://\n",
    ));
    let c = f.load();
    for name in ["rpa_db", "RPA_DB", "Rpa-Db"] {
        assert_eq!(c.database(name).unwrap().name, name);
    }
}

#[test]
fn file_problems_are_reported_with_their_path() {
    let f = Fixture::new(Some("OK=1\nNOT VALID\n"));
    let e = Config::load(&f.opts).unwrap_err().to_string();
    assert!(e.contains(".env:2"), "{e}");

    let mut f = Fixture::new(None);
    f.opts
        .extra_env_files
        .push(f.dir.path().join("missing.env"));
    let e = Config::load(&f.opts).unwrap_err().to_string();
    assert!(e.contains("missing.env"), "{e}");

    let f = Fixture::new(Some("LONELY\ndevelopment_global_a_type=sqlite\n"));
    let c = f.load();
    assert_eq!(c.warnings().len(), 2, "{:?}", c.warnings());
    assert!(c.is_embedded_default());
}

#[test]
fn read_only_grants_can_have_their_own_connection_string_and_privileged_roles_can_be_refused() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_HUB_CONNECTION_STRING=postgresql://writer@db/hub\n\
         DEVELOPMENT_GLOBAL_HUB_READONLY_CONNECTION_STRING=postgresql://reader@replica/hub\n\
         DEVELOPMENT_GLOBAL_REFUSE_PRIVILEGED_ROLE=true\n\
         DEVELOPMENT_GLOBAL_OTHER_CONNECTION_STRING=postgresql://writer@db/other\n\
         DEVELOPMENT_GLOBAL_OTHER_REFUSE_PRIVILEGED_ROLE=no\n",
    ));
    let config = f.load();
    let hub = config.database("hub").unwrap();
    assert_eq!(pg_host(&hub), "db");
    match hub.readonly_target.as_ref().expect("a read-only target") {
        DatabaseTarget::Postgres { host, user, .. } => {
            assert_eq!(
                (host.as_str(), user.as_deref()),
                ("replica", Some("reader"))
            );
        }
        other => panic!("not postgres: {other}"),
    }
    assert!(hub.pool.refuse_privileged, "the global setting applies");
    let other = config.database("other").unwrap();
    assert!(other.readonly_target.is_none());
    assert!(
        !other.pool.refuse_privileged,
        "the per-database setting wins"
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn a_read_only_connection_string_of_another_kind_is_an_error() {
    let f = Fixture::new(Some(
        "DEVELOPMENT_GLOBAL_HUB_CONNECTION_STRING=postgresql://writer@db/hub\n\
         DEVELOPMENT_GLOBAL_HUB_READONLY_CONNECTION_STRING=sqlite:///hub.db\n",
    ));
    let err = f.load().database("hub").unwrap_err().to_string();
    assert!(err.contains("HUB_READONLY_CONNECTION_STRING"), "{err}");
}
