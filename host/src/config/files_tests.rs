//! Finding the users' files (`.env.<env>`, `core/envs/`, `FLOWHOST_ENV_DIR`) and refusing to
//! fall back to the embedded default when another environment is configured.

use super::*;

/// A project folder; `write` puts files in it, `load` reads configuration as the CLI would
/// from inside it.
struct Project {
    dir: tempfile::TempDir,
    opts: LoadOptions,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let opts = LoadOptions {
            dotenv_dir: Some(dir.path().to_path_buf()),
            data_dir: dir.path().join(".flowhost"),
            ..LoadOptions::default()
        };
        Project { dir, opts }
    }

    fn write(self, name: &str, text: &str) -> Self {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.opts.process_env.insert(key.into(), value.into());
        self
    }

    fn flag(mut self, name: &str) -> Self {
        self.opts.extra_env_files.push(self.dir.path().join(name));
        self
    }

    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.opts)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn host_of(c: &Config, name: &str) -> String {
    match c.database(name).unwrap().target {
        DatabaseTarget::Postgres { host, .. } => host,
        other => panic!("not postgres: {other}"),
    }
}

#[test]
fn per_environment_files_are_found_by_the_environment_name_and_later_ones_win() {
    let p = Project::new()
        .write(".env", "FLOWHOST_ENV=production\nPRODUCTION_GLOBAL_A_CONNECTION_STRING=postgresql://dotenv/a\n")
        .write(
            ".env.production",
            "PRODUCTION_GLOBAL_A_CONNECTION_STRING=postgresql://cwd/a\n\
             PRODUCTION_GLOBAL_B_CONNECTION_STRING=postgresql://cwd/b\n\
             PRODUCTION_GLOBAL_C_CONNECTION_STRING=postgresql://cwd/c\n",
        )
        .write(
            "core/envs/.env.production",
            "PRODUCTION_GLOBAL_B_CONNECTION_STRING=postgresql://seed/b\n\
             PRODUCTION_GLOBAL_C_CONNECTION_STRING=postgresql://seed/c\n",
        )
        // Another environment's file is not read.
        .write(
            "core/envs/.env.development",
            "PRODUCTION_GLOBAL_C_CONNECTION_STRING=postgresql://wrong/c\n",
        )
        .env("PRODUCTION_GLOBAL_C_CONNECTION_STRING", "postgresql://process/c");
    let c = p.load().unwrap();
    assert_eq!(c.environment, "production");
    assert_eq!(c.selected_by(), "FLOWHOST_ENV in a file");
    assert_eq!(host_of(&c, "a"), "cwd");
    assert_eq!(host_of(&c, "b"), "seed");
    assert_eq!(host_of(&c, "c"), "process");
    let read: Vec<(PathBuf, FoundAs)> = c
        .files()
        .iter()
        .map(|f| (f.path.clone(), f.found_as))
        .collect();
    assert_eq!(
        read,
        vec![
            (p.path(".env"), FoundAs::Dotenv),
            (p.path(".env.production"), FoundAs::EnvironmentFile),
            (p.path("core/envs/.env.production"), FoundAs::SeedLayout),
        ]
    );
    let mut where_from = c.configured_databases();
    where_from.sort();
    assert_eq!(
        where_from,
        vec![
            ("A".to_owned(), Some(p.path(".env.production"))),
            ("B".to_owned(), Some(p.path("core/envs/.env.production"))),
            ("C".to_owned(), None),
        ]
    );
}

#[test]
fn flowhost_env_dir_names_one_more_folder_whose_file_must_exist() {
    let p = Project::new()
        .write(
            "elsewhere/.env.staging",
            "STAGING_GLOBAL_A_CONNECTION_STRING=postgresql://dir/a\n",
        )
        .env("FLOWHOST_ENV", "staging")
        .env(ENV_DIR_VAR, "elsewhere");
    let c = p.load().unwrap();
    assert_eq!(host_of(&c, "a"), "dir");
    assert_eq!(c.files().last().unwrap().found_as, FoundAs::EnvDir);

    let missing = p.env("FLOWHOST_ENV", "production");
    let err = missing.load().unwrap_err().to_string();
    assert!(err.contains(".env.production"), "{err}");
}

/// The first report: a production file passed with `--env-file`, no environment
/// selected. Running the embedded demo databases instead exited 0.
#[test]
fn an_env_file_for_another_environment_is_refused_and_says_how_to_select_it() {
    let p = Project::new()
        .write(
            "core/envs/.env.production",
            "PRODUCTION_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://prod/rpa\n",
        )
        .flag("core/envs/.env.production");
    let err = p.load().unwrap_err();
    assert!(
        matches!(err, ConfigError::EnvFileForOtherEnvironment { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("configures production"), "{message}");
    assert!(message.contains("--env production"), "{message}");
    assert!(message.contains("'development'"), "{message}");

    // Selecting the environment the file is for makes it work.
    let mut p = p;
    p.opts.env_override = Some("production".into());
    let c = p.load().unwrap();
    assert_eq!(host_of(&c, "rpa_db"), "prod");
    assert_eq!(c.selected_by(), "--env");
}

#[test]
fn configuration_for_another_environment_only_turns_the_embedded_default_off() {
    let p = Project::new().write(
        "core/envs/.env.production",
        "PRODUCTION_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://prod/rpa\n",
    );
    let c = p.load().unwrap();
    assert_eq!(c.environment, "development");
    assert!(!c.is_embedded_default());
    let err = c.database("SurveyHub").unwrap_err();
    assert!(
        matches!(err, ConfigError::EnvironmentNotConfigured { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("'SurveyHub'"), "{message}");
    assert!(message.contains("production (in "), "{message}");
    assert!(message.contains(".env.production"), "{message}");
    assert!(message.contains("--env production"), "{message}");
    assert_eq!(
        c.environments().keys().collect::<Vec<_>>(),
        vec!["production"]
    );

    // The process environment counts as configuration too.
    let p = Project::new().env("STAGING_GLOBAL_X_CONNECTION_STRING", "postgresql://s/x");
    let c = p.load().unwrap();
    assert!(!c.is_embedded_default());
    let message = c.database("x").unwrap_err().to_string();
    assert!(
        message.contains("staging (in the process environment)"),
        "{message}"
    );
}

#[test]
fn nothing_configured_anywhere_keeps_the_embedded_default() {
    // Keys that configure no database (pool defaults, placeholders) do not count.
    let p = Project::new().write(
        ".env",
        "PRODUCTION_GLOBAL_CONNECTION_POOL_SIZE=3\nFLOWHOST_PLACEHOLDER_OWNER=me\n",
    );
    let c = p.load().unwrap();
    assert!(c.is_embedded_default());
    assert!(c.database("rpa_db").unwrap().embedded);
    assert!(c.environments().is_empty());
}

#[test]
fn a_development_file_in_the_seed_layout_is_used_without_flags() {
    let p = Project::new().write(
        "core/envs/.env.development",
        "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://dev/rpa\n\
         PRODUCTION_GLOBAL_RPA_DB_CONNECTION_STRING=postgresql://prod/rpa\n",
    );
    let c = p.load().unwrap();
    assert_eq!(c.selected_by(), "the default");
    assert_eq!(host_of(&c, "rpa_db"), "dev");
}
