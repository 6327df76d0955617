//! The tiberius configuration a SQL Server target asks for: login, encryption as ODBC, ADO.NET
//! and JDBC spell it, certificates, application name and intent.

use tiberius::{AuthMethod, EncryptionLevel};

use crate::config::DatabaseTarget;

/// The tiberius configuration for a target: encryption as the connection string asks (the ODBC
/// driver's default when it does not: Driver 18 encrypts, 17 and older encrypt only the login),
/// application name `flowhost`.
pub fn connect_config(target: &DatabaseTarget) -> Result<tiberius::Config, String> {
    let DatabaseTarget::SqlServer {
        host,
        port,
        instance,
        database,
        user,
        password,
        options,
    } = target
    else {
        unreachable!("sqlserver::connect_config called for {target}");
    };
    let mut config = tiberius::Config::new();
    config.host(host);
    config.port(*port);
    if let Some(instance) = instance {
        config.instance_name(instance);
    }
    if let Some(database) = database {
        config.database(database);
    }
    config.application_name("flowhost");
    let option = |key: &str| {
        options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if let Some(v) = option("integrated_security")
        && truthy(v) == Some(true)
    {
        return Err(
            "integrated security (Windows authentication) is not supported; \
                    use a SQL Server login with a user and password"
                .into(),
        );
    }
    match (user, password) {
        (Some(user), Some(password)) => {
            config.authentication(AuthMethod::sql_server(user, password.expose()))
        }
        (Some(user), None) => config.authentication(AuthMethod::sql_server(user, "")),
        (None, _) => {
            return Err(
                "no user in the connection string; SQL Server needs a login \
                        (user and password)"
                    .into(),
            );
        }
    }
    let driver_encrypts = option("driver").is_some_and(|d| {
        d.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .is_ok_and(|n| n >= 18)
    });
    let encryption = match option("encrypt") {
        None if driver_encrypts => EncryptionLevel::Required,
        None => EncryptionLevel::Off,
        Some(v) => encryption_level(v)?,
    };
    config.encryption(encryption);
    // Encrypting the login only is what ODBC's `Encrypt=no` means, and ODBC does not validate
    // the certificate then (TrustServerCertificate is ignored): the users' strings that work
    // with Driver 17 today must work here too. Everything else validates unless told not to.
    let login_only = matches!(encryption, EncryptionLevel::Off);
    if login_only {
        config.trust_cert();
    }
    if let Some(v) = option("trust_server_certificate") {
        match truthy(v) {
            Some(true) => config.trust_cert(),
            Some(false) => {}
            None => {
                return Err(format!(
                    "TrustServerCertificate must be yes or no, not '{v}'"
                ));
            }
        }
    }
    if let Some(ca) = option("trust_server_certificate_ca")
        .or(option("sslrootcert"))
        .filter(|_| !login_only)
    {
        config.trust_cert_ca(ca);
    }
    if let Some(h) = option("host_name_in_certificate") {
        config.hostname_in_certificate(h);
    }
    if let Some(name) = option("application_name") {
        config.application_name(name);
    }
    if let Some(intent) = option("application_intent") {
        config.readonly(intent.eq_ignore_ascii_case("readonly"));
    }
    Ok(config)
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Some(true),
        "no" | "false" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// `Encrypt=` as ODBC, ADO.NET and JDBC spell it.
fn encryption_level(v: &str) -> Result<EncryptionLevel, String> {
    Ok(match v.trim().to_ascii_lowercase().as_str() {
        "strict" => EncryptionLevel::Strict,
        "yes" | "true" | "mandatory" | "1" | "on" | "required" => EncryptionLevel::Required,
        "no" | "false" | "optional" | "0" | "off" => EncryptionLevel::Off,
        "disable" | "disabled" | "not_supported" | "notsupported" => EncryptionLevel::NotSupported,
        other => {
            return Err(format!(
                "Encrypt must be yes, no, strict or disable, not '{other}'"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn target(options: &[(&str, &str)]) -> DatabaseTarget {
        DatabaseTarget::SqlServer {
            host: "db.example.com".into(),
            port: 1433,
            instance: None,
            database: Some("survey_hub".into()),
            user: Some("etl".into()),
            password: Some(Secret::new("s3cret")),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn encryption(options: &[(&str, &str)]) -> String {
        let config = connect_config(&target(options)).unwrap();
        format!("{config:?}")
    }

    #[test]
    fn encryption_follows_the_connection_string_and_the_odbc_drivers_default() {
        assert!(
            encryption(&[]).contains("encryption: Off"),
            "{}",
            encryption(&[])
        );
        assert!(encryption(&[("driver", "ODBC Driver 17 for SQL Server")]).contains("Off"));
        assert!(encryption(&[("driver", "ODBC Driver 18 for SQL Server")]).contains("Required"));
        assert!(encryption(&[("encrypt", "yes")]).contains("Required"));
        assert!(
            encryption(&[
                ("driver", "ODBC Driver 18 for SQL Server"),
                ("encrypt", "no")
            ])
            .contains("encryption: Off")
        );
        assert!(encryption(&[("encrypt", "strict")]).contains("Strict"));
        assert!(encryption(&[("encrypt", "disable")]).contains("NotSupported"));
    }

    #[test]
    fn the_certificate_is_validated_unless_only_the_login_is_encrypted_or_trust_is_asked() {
        let bypass = |options: &[(&str, &str)]| encryption(options).contains("bypass: true");
        // ODBC Driver 17's default, Encrypt=no: the login is encrypted, the certificate not
        // validated, as ODBC does.
        assert!(bypass(&[("driver", "ODBC Driver 17 for SQL Server")]));
        assert!(bypass(&[("encrypt", "no")]));
        assert!(!bypass(&[("encrypt", "yes")]));
        assert!(!bypass(&[("driver", "ODBC Driver 18 for SQL Server")]));
        assert!(!bypass(&[("encrypt", "strict")]));
        assert!(bypass(&[
            ("encrypt", "yes"),
            ("trust_server_certificate", "yes")
        ]));
        assert!(!bypass(&[
            ("encrypt", "yes"),
            ("trust_server_certificate", "no")
        ]));
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_write_instead() {
        let err = connect_config(&target(&[("encrypt", "maybe")])).unwrap_err();
        assert!(err.contains("yes, no, strict or disable"), "{err}");
        let err = connect_config(&target(&[("trust_server_certificate", "perhaps")])).unwrap_err();
        assert!(err.contains("yes or no"), "{err}");
        let err = connect_config(&target(&[("integrated_security", "true")])).unwrap_err();
        assert!(err.contains("SQL Server login"), "{err}");
        let mut no_user = target(&[]);
        if let DatabaseTarget::SqlServer { user, .. } = &mut no_user {
            *user = None;
        }
        assert!(connect_config(&no_user).unwrap_err().contains("no user"));
    }

    #[test]
    fn the_password_never_shows_in_the_configuration_debug_form() {
        let text = encryption(&[("trust_server_certificate", "yes")]);
        assert!(!text.contains("s3cret"), "{text}");
    }
}
