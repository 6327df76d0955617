//! SQL Server's own connection-string dialects: ADO.NET / ODBC `Key=Value;` strings and JDBC
//! `sqlserver://host;key=value` URLs. Keys are case-insensitive and have many synonyms, so they
//! are compared with case, spaces and underscores removed.

use super::secret::Secret;
use super::url::{DatabaseTarget, UrlError, parse_port};

/// Accumulates the parts of a SQL Server target from any dialect.
#[derive(Default)]
pub(crate) struct Builder {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub instance: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub options: Vec<(String, String)>,
}

fn compact(key: &str) -> String {
    key.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Normalises an option name to snake_case so the backend sees one spelling per setting.
pub(crate) fn option_key(key: &str) -> String {
    let known = match compact(key).as_str() {
        "encrypt" => "encrypt",
        "trustservercertificate" => "trust_server_certificate",
        "app" | "applicationname" => "application_name",
        "connecttimeout" | "connectiontimeout" | "timeout" | "logintimeout" => "connect_timeout",
        "applicationintent" => "application_intent",
        "multisubnetfailover" => "multi_subnet_failover",
        "integratedsecurity" | "trustedconnection" => "integrated_security",
        "hostnameincertificate" => "host_name_in_certificate",
        "multipleactiveresultsets" => "multiple_active_result_sets",
        "driver" | "provider" => "driver",
        _ => "",
    };
    if known.is_empty() {
        key.trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    } else {
        known.to_string()
    }
}

impl Builder {
    /// Applies one `key=value`, whatever the dialect's spelling of the key.
    pub fn set(&mut self, key: &str, value: String) -> Result<(), UrlError> {
        match compact(key).as_str() {
            "server" | "datasource" | "address" | "addr" | "networkaddress" => {
                let (host, instance, port) = server_spec(&value)?;
                self.host = Some(host);
                if instance.is_some() {
                    self.instance = instance;
                }
                if port.is_some() {
                    self.port = port;
                }
            }
            "servername" | "host" => self.host = Some(value),
            "instancename" | "instance" => self.instance = Some(value),
            "port" | "portnumber" => self.port = parse_port(&value)?,
            "database" | "initialcatalog" | "databasename" => self.database = Some(value),
            "userid" | "uid" | "user" | "username" => self.user = Some(value),
            // Kept out of `options`, which `Debug` prints.
            "password" | "pwd" => self.password = Some(value),
            _ => self.options.push((option_key(key), value)),
        }
        Ok(())
    }

    /// The target, with SQL Server's default port.
    pub fn finish(self) -> Result<DatabaseTarget, UrlError> {
        let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(DatabaseTarget::SqlServer {
            host: non_empty(self.host).ok_or(UrlError::MissingHost)?,
            port: self.port.unwrap_or(1433),
            instance: non_empty(self.instance),
            database: non_empty(self.database),
            user: non_empty(self.user),
            password: self.password.filter(|p| !p.is_empty()).map(Secret::new),
            options: self.options,
        })
    }
}

/// ADO.NET's `Server=` value: `[tcp:]host[\instance][,port]`, `(local)` and `.` meaning this
/// machine.
fn server_spec(value: &str) -> Result<(String, Option<String>, Option<u16>), UrlError> {
    let mut v = value.trim();
    if let Some((protocol, rest)) = v.split_once(':')
        && !protocol.is_empty()
        && protocol.chars().all(|c| c.is_ascii_alphabetic())
    {
        if !protocol.eq_ignore_ascii_case("tcp") {
            return Err(UrlError::UnsupportedProtocol {
                protocol: protocol.to_string(),
            });
        }
        v = rest;
    }
    let (host_instance, port) = match v.rsplit_once(',') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (v, None),
    };
    let (host, instance) = match host_instance.split_once('\\') {
        Some((h, i)) => (
            h.trim(),
            Some(i.trim().to_string()).filter(|i| !i.is_empty()),
        ),
        None => (host_instance.trim(), None),
    };
    if host.contains(',') {
        return Err(UrlError::MultipleHosts);
    }
    let host = match host {
        "" => return Err(UrlError::MissingHost),
        "." | "(local)" => "localhost",
        h => h,
    };
    Ok((host.to_string(), instance, port))
}

/// Whether `s` is a `Key=Value;...` string rather than a URL.
pub(crate) fn looks_like_key_value(s: &str) -> bool {
    s.split_once('=')
        .is_some_and(|(key, _)| !key.trim().is_empty() && !key.contains(['/', ':', '@', '?']))
}

/// Parses an ADO.NET or ODBC connection string.
pub fn parse_key_value(s: &str) -> Result<DatabaseTarget, UrlError> {
    let mut b = Builder::default();
    for (k, v) in split_pairs(s)? {
        b.set(&k, v)?;
    }
    b.finish()
}

/// Parses the part of a JDBC URL after `sqlserver://`.
pub(crate) fn parse_jdbc(body: &str) -> Result<DatabaseTarget, UrlError> {
    let (server, props) = body.split_once(';').unwrap_or((body, ""));
    let mut b = Builder::default();
    if !server.trim().is_empty() {
        let (host_instance, port) = match server.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (server, None),
        };
        let (host, instance) = match host_instance.split_once('\\') {
            Some((h, i)) => (h, Some(i.to_string())),
            None => (host_instance, None),
        };
        b.host = Some(host.trim().to_string());
        b.instance = instance;
        b.port = port;
    }
    for (k, v) in split_pairs(props)? {
        b.set(&k, v)?;
    }
    b.finish()
}

/// Splits `a=1; b="x;y"; c={p}}q}` into pairs. Values may be quoted with `"` or `'` (the quote
/// doubled inside) or braced with `{}` (`}}` inside), which is how a password holds a `;`.
fn split_pairs(s: &str) -> Result<Vec<(String, String)>, UrlError> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let bad = |message: String| UrlError::InvalidKeyValue { message };
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ';') {
            i += 1;
        }
        if i >= chars.len() {
            return Ok(out);
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ';' {
            i += 1;
        }
        let key: String = chars[start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        if i >= chars.len() || chars[i] == ';' {
            return Err(bad(format!("'{}' has no '=value'", safe_key(&key))));
        }
        if key.is_empty() {
            return Err(bad("a value has no key before '='".into()));
        }
        i += 1;
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let mut value = String::new();
        match chars.get(i) {
            Some(&q @ ('"' | '\'' | '{')) => {
                let close = if q == '{' { '}' } else { q };
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(bad(format!(
                                "the value of '{}' has no closing {close}",
                                safe_key(&key)
                            )));
                        }
                        Some(&c) if c == close => {
                            if chars.get(i + 1) == Some(&close) {
                                value.push(close);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                if i < chars.len() && chars[i] != ';' {
                    return Err(bad(format!(
                        "unexpected text after the quoted value of '{}'",
                        safe_key(&key)
                    )));
                }
            }
            _ => {
                while i < chars.len() && chars[i] != ';' {
                    value.push(chars[i]);
                    i += 1;
                }
                value = value.trim().to_string();
            }
        }
        out.push((key, value));
    }
}

/// A key is shown in errors only if it looks like one: a misplaced quote could make a password
/// look like a key.
fn safe_key(key: &str) -> &str {
    let plausible = key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'));
    if plausible { key } else { "<key>" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(s: &str) -> Result<DatabaseTarget, UrlError> {
        DatabaseTarget::parse(s, None, Path::new("/base"))
    }

    /// host, port, instance, database, user, password
    type Fields<'a> = (
        &'a str,
        u16,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn fields(t: &DatabaseTarget) -> Fields<'_> {
        match t {
            DatabaseTarget::SqlServer {
                host,
                port,
                instance,
                database,
                user,
                password,
                ..
            } => (
                host,
                *port,
                instance.as_deref(),
                database.as_deref(),
                user.as_deref(),
                password.as_ref().map(Secret::expose),
            ),
            other => panic!("not sql server: {other}"),
        }
    }

    fn options(t: &DatabaseTarget) -> Vec<(String, String)> {
        match t {
            DatabaseTarget::SqlServer { options, .. } => options.clone(),
            _ => unreachable!(),
        }
    }

    fn opt(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn ado_net() {
        let t = parse(
            "Server=tcp:db.example.com,1434;Database=Surveys;User Id=u;Password=p;\
             Encrypt=true;TrustServerCertificate=true",
        )
        .unwrap();
        assert_eq!(
            fields(&t),
            (
                "db.example.com",
                1434,
                None,
                Some("Surveys"),
                Some("u"),
                Some("p")
            )
        );
        assert_eq!(
            options(&t),
            vec![
                opt("encrypt", "true"),
                opt("trust_server_certificate", "true")
            ]
        );
        assert_eq!(t.to_string(), "sqlserver at db.example.com:1434/Surveys");
    }

    #[test]
    fn ado_net_synonyms_quotes_and_instances() {
        let t = parse(
            "Data Source=.\\SQLEXPRESS; Initial Catalog = Hub; UID=sa; \
             PWD=\"a;b\"\"c\"; Application Name=flowhost",
        )
        .unwrap();
        assert_eq!(
            fields(&t),
            (
                "localhost",
                1433,
                Some("SQLEXPRESS"),
                Some("Hub"),
                Some("sa"),
                Some("a;b\"c")
            )
        );
        assert_eq!(options(&t), vec![opt("application_name", "flowhost")]);
        let t = parse("Driver={ODBC Driver 18 for SQL Server};Server=h;PWD={x}}y;z}").unwrap();
        assert_eq!(fields(&t).5, Some("x}y;z"));
        assert_eq!(
            options(&t),
            vec![opt("driver", "ODBC Driver 18 for SQL Server")]
        );
    }

    #[test]
    fn jdbc() {
        let t = parse(
            "sqlserver://db.local:1500;databaseName=Surveys;user=u;password={p;w};\
             encrypt=true;trustServerCertificate=false",
        )
        .unwrap();
        assert_eq!(
            fields(&t),
            (
                "db.local",
                1500,
                None,
                Some("Surveys"),
                Some("u"),
                Some("p;w")
            )
        );
        assert_eq!(
            options(&t),
            vec![
                opt("encrypt", "true"),
                opt("trust_server_certificate", "false")
            ]
        );
        let t = parse("jdbc:sqlserver://h\\INST;database=d").unwrap();
        assert_eq!(fields(&t), ("h", 1433, Some("INST"), Some("d"), None, None));
    }

    #[test]
    fn errors_do_not_echo_values() {
        let e = parse("Server=np:\\\\.\\pipe\\sql;PWD=topsecret").unwrap_err();
        assert_eq!(
            e,
            UrlError::UnsupportedProtocol {
                protocol: "np".into()
            }
        );
        let e = parse("Server=h;Password=\"topsecret")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'Password' has no closing"), "{e}");
        assert!(!e.contains("topsecret"), "{e}");
        let e = parse("Server=h,notaport;Password=topsecret").unwrap_err();
        assert_eq!(e, UrlError::InvalidPort);
        let e = parse("Database=d;User Id=u").unwrap_err();
        assert_eq!(e, UrlError::MissingHost);
        let e = parse("Server=h;topsecret").unwrap_err().to_string();
        assert!(
            e.contains("'topsecret' has no"),
            "plausible keys are named: {e}"
        );
        let e = parse("Server=h;top$ecret!").unwrap_err().to_string();
        assert!(!e.contains("ecret"), "{e}");
    }

    #[test]
    fn option_keys_normalise() {
        assert_eq!(
            option_key("TrustServerCertificate"),
            "trust_server_certificate"
        );
        assert_eq!(
            option_key("Trust Server Certificate"),
            "trust_server_certificate"
        );
        assert_eq!(option_key("Connection Timeout"), "connect_timeout");
        assert_eq!(
            option_key("Column Encryption Setting"),
            "column_encryption_setting"
        );
    }
}
