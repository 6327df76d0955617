//! Pool settings: SQLAlchemy's knobs translated to what a Rust pool (sqlx, deadpool) takes.

use std::time::Duration;

use super::ConfigError;
use super::interpolate::Origin;
use super::keys::Setting;

/// How the pool of one database behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// `CONNECTION_POOL_SIZE + MAX_OVERFLOW`: the most connections open at once.
    pub max_connections: u32,
    /// Connections kept open while idle. Always 0: SQLAlchemy opens connections on demand and so
    /// do we; `idle_timeout` trims the extras.
    pub min_connections: u32,
    /// `POOL_TIMEOUT`: how long a caller waits for a free connection.
    pub acquire_timeout: Duration,
    /// `POOL_RECYCLE`: a connection older than this is closed instead of reused.
    pub max_lifetime: Option<Duration>,
    /// `POOL_IDLE_TIMEOUT`: an idle connection older than this is closed.
    pub idle_timeout: Option<Duration>,
    /// `POOL_PRE_PING`: check a connection is alive before handing it out.
    pub test_before_acquire: bool,
    /// `DATABASE_TIMEOUT`: per-statement limit, applied by the backend.
    pub statement_timeout: Option<Duration>,
    /// `CONNECT_TIMEOUT`: how long opening one connection may take.
    pub connect_timeout: Duration,
    /// `REFUSE_PRIVILEGED_ROLE`: refuse to run flows on a connection whose role is a superuser
    /// or may read server files or run server programs (otherwise: a warning).
    pub refuse_privileged: bool,
    /// SQLite only: closing a connection leaves the write-ahead log as it is instead of
    /// checkpointing it into the database file (two `fsync`s) and deleting it (which makes the
    /// next process create it again, one more `fsync` of the file and one of its folder). For
    /// flowhost's own run history, written twice by every `flowhost run`; never for a flow's
    /// databases, whose file should hold every committed row once flowhost exits.
    pub keep_wal_on_close: bool,
}

/// Defaults, in SQLAlchemy's terms.
pub mod defaults {
    use std::time::Duration;

    /// `CONNECTION_POOL_SIZE`
    pub const POOL_SIZE: u32 = 5;
    /// `MAX_OVERFLOW`
    pub const MAX_OVERFLOW: u32 = 5;
    /// `POOL_TIMEOUT`
    pub const POOL_TIMEOUT: Duration = Duration::from_secs(30);
    /// `POOL_IDLE_TIMEOUT`
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// `CONNECT_TIMEOUT`
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: defaults::POOL_SIZE + defaults::MAX_OVERFLOW,
            min_connections: 0,
            acquire_timeout: defaults::POOL_TIMEOUT,
            max_lifetime: None,
            idle_timeout: Some(defaults::IDLE_TIMEOUT),
            test_before_acquire: false,
            statement_timeout: None,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            refuse_privileged: false,
            keep_wal_on_close: false,
        }
    }
}

/// A setting's resolved text and where it came from.
pub(crate) struct Found {
    pub key: String,
    pub text: String,
    pub origin: Origin,
}

/// Builds the settings; `get` returns the per-database value, else the global one, else `None`.
pub(crate) fn build(
    mut get: impl FnMut(Setting) -> Result<Option<Found>, ConfigError>,
) -> Result<PoolSettings, ConfigError> {
    let d = PoolSettings::default();
    let pool_size = match get(Setting::PoolSize)? {
        Some(f) => {
            let n = integer(&f)?;
            if n < 1 {
                return Err(invalid(
                    &f,
                    "must be at least 1 (SQLAlchemy's 0 = unlimited is not supported)",
                ));
            }
            to_u32(&f, n)?
        }
        None => defaults::POOL_SIZE,
    };
    let overflow = match get(Setting::MaxOverflow)? {
        Some(f) => {
            let n = integer(&f)?;
            if n < 0 {
                return Err(invalid(
                    &f,
                    "must be 0 or more (SQLAlchemy's -1 = unlimited overflow is not supported)",
                ));
            }
            to_u32(&f, n)?
        }
        None => defaults::MAX_OVERFLOW,
    };
    // Absurd sizes saturate rather than wrap; no server accepts 4 billion connections anyway.
    let max_connections = pool_size.saturating_add(overflow);
    Ok(PoolSettings {
        max_connections,
        min_connections: 0,
        acquire_timeout: required_seconds(get(Setting::PoolTimeout)?, d.acquire_timeout)?,
        max_lifetime: optional_seconds(get(Setting::PoolRecycle)?, d.max_lifetime)?,
        idle_timeout: optional_seconds(get(Setting::PoolIdleTimeout)?, d.idle_timeout)?,
        test_before_acquire: match get(Setting::PoolPrePing)? {
            Some(f) => boolean(&f)?,
            None => d.test_before_acquire,
        },
        statement_timeout: optional_seconds(get(Setting::DatabaseTimeout)?, d.statement_timeout)?,
        connect_timeout: required_seconds(get(Setting::ConnectTimeout)?, d.connect_timeout)?,
        refuse_privileged: match get(Setting::RefusePrivilegedRole)? {
            Some(f) => boolean(&f)?,
            None => d.refuse_privileged,
        },
        keep_wal_on_close: false,
    })
}

fn invalid(f: &Found, message: &str) -> ConfigError {
    ConfigError::InvalidSetting {
        key: f.key.clone(),
        origin: f.origin.clone(),
        message: message.to_string(),
    }
}

fn not_a(f: &Found, expected: &'static str) -> ConfigError {
    ConfigError::InvalidNumber {
        key: f.key.clone(),
        origin: f.origin.clone(),
        // Pool settings are not secrets; a short excerpt helps find the typo.
        value: f.text.chars().take(40).collect(),
        expected,
    }
}

fn integer(f: &Found) -> Result<i64, ConfigError> {
    f.text
        .trim()
        .parse()
        .map_err(|_| not_a(f, "a whole number"))
}

fn to_u32(f: &Found, n: i64) -> Result<u32, ConfigError> {
    u32::try_from(n).map_err(|_| invalid(f, "is too large"))
}

fn seconds(f: &Found) -> Result<f64, ConfigError> {
    let n: f64 = f
        .text
        .trim()
        .parse()
        .map_err(|_| not_a(f, "a number of seconds"))?;
    if !n.is_finite() {
        return Err(not_a(f, "a number of seconds"));
    }
    Ok(n)
}

/// A timeout that must exist (acquire, connect).
fn required_seconds(found: Option<Found>, default: Duration) -> Result<Duration, ConfigError> {
    let Some(f) = found else { return Ok(default) };
    let n = seconds(&f)?;
    if n <= 0.0 {
        return Err(invalid(&f, "must be more than 0 seconds"));
    }
    Duration::try_from_secs_f64(n).map_err(|_| invalid(&f, "is too large"))
}

/// A limit that may be switched off with 0 or -1 (SQLAlchemy's `pool_recycle=-1`).
fn optional_seconds(
    found: Option<Found>,
    default: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(f) = found else { return Ok(default) };
    let n = seconds(&f)?;
    if n == 0.0 || n == -1.0 {
        return Ok(None);
    }
    if n < 0.0 {
        return Err(invalid(
            &f,
            "must be a number of seconds, or 0 or -1 for none",
        ));
    }
    Duration::try_from_secs_f64(n)
        .map(Some)
        .map_err(|_| invalid(&f, "is too large"))
}

fn boolean(f: &Found) -> Result<bool, ConfigError> {
    match f.text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(not_a(f, "true or false (also 1/0, yes/no, on/off)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(Setting, &str)]) -> Result<PoolSettings, ConfigError> {
        let map: HashMap<Setting, &str> = pairs.iter().copied().collect();
        build(|s| {
            Ok(map.get(&s).map(|v| Found {
                key: format!("DEVELOPMENT_GLOBAL_RPA_DB_{}", s.suffix()),
                text: v.to_string(),
                origin: Origin::Process,
            }))
        })
    }

    #[test]
    fn defaults_are_sqlalchemy_like() {
        let p = with(&[]).unwrap();
        assert_eq!(p, PoolSettings::default());
        assert_eq!(p.max_connections, 10);
        assert_eq!(p.acquire_timeout, Duration::from_secs(30));
        assert_eq!(p.max_lifetime, None);
        assert_eq!(p.idle_timeout, Some(Duration::from_secs(600)));
        assert!(!p.test_before_acquire);
        assert_eq!(p.statement_timeout, None);
        assert_eq!(p.connect_timeout, Duration::from_secs(10));
    }

    #[test]
    fn values_translate() {
        let p = with(&[
            (Setting::PoolSize, "3"),
            (Setting::MaxOverflow, "0"),
            (Setting::PoolTimeout, "2.5"),
            (Setting::PoolRecycle, "3600"),
            (Setting::PoolIdleTimeout, "-1"),
            (Setting::PoolPrePing, "Yes"),
            (Setting::DatabaseTimeout, "30"),
            (Setting::ConnectTimeout, " 5 "),
        ])
        .unwrap();
        assert_eq!(p.max_connections, 3);
        assert_eq!(p.acquire_timeout, Duration::from_millis(2500));
        assert_eq!(p.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(p.idle_timeout, None);
        assert!(p.test_before_acquire);
        assert_eq!(p.statement_timeout, Some(Duration::from_secs(30)));
        assert_eq!(p.connect_timeout, Duration::from_secs(5));
        let p = with(&[
            (Setting::PoolRecycle, "-1"),
            (Setting::DatabaseTimeout, "0"),
        ])
        .unwrap();
        assert_eq!((p.max_lifetime, p.statement_timeout), (None, None));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = with(&[(Setting::PoolSize, "ten")]).unwrap_err().to_string();
        assert!(
            e.contains("DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_POOL_SIZE"),
            "{e}"
        );
        assert!(e.contains("whole number"), "{e}");
        let e = with(&[(Setting::PoolPrePing, "maybe")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("POOL_PRE_PING"), "{e}");
        for bad in [
            (Setting::PoolSize, "0"),
            (Setting::MaxOverflow, "-1"),
            (Setting::PoolTimeout, "0"),
            (Setting::PoolRecycle, "-5"),
            (Setting::ConnectTimeout, "nan"),
            (Setting::PoolSize, "99999999999"),
        ] {
            let e = with(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad.0.suffix()), "{bad:?}: {e}");
        }
    }
}
