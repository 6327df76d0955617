//! Splitting `{ENV}_GLOBAL_...` keys into database name and setting.

use std::collections::BTreeMap;

use super::interpolate::RawValue;

/// A setting a key can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Setting {
    Type,
    ConnectionString,
    PoolSize,
    MaxOverflow,
    PoolTimeout,
    PoolRecycle,
    PoolIdleTimeout,
    PoolPrePing,
    DatabaseTimeout,
    ConnectTimeout,
    ReadonlyConnectionString,
    RefusePrivilegedRole,
}

/// Known suffixes, longest first: database names may contain `_`, so the longest suffix that
/// matches decides where the name ends (`X_CONNECTION_POOL_SIZE` is X's pool size).
pub(crate) const SUFFIXES: &[(&str, Setting)] = &[
    (
        "READONLY_CONNECTION_STRING",
        Setting::ReadonlyConnectionString,
    ),
    ("REFUSE_PRIVILEGED_ROLE", Setting::RefusePrivilegedRole),
    ("CONNECTION_POOL_SIZE", Setting::PoolSize),
    ("CONNECTION_STRING", Setting::ConnectionString),
    ("POOL_IDLE_TIMEOUT", Setting::PoolIdleTimeout),
    ("DATABASE_TIMEOUT", Setting::DatabaseTimeout),
    ("CONNECT_TIMEOUT", Setting::ConnectTimeout),
    ("POOL_PRE_PING", Setting::PoolPrePing),
    ("MAX_OVERFLOW", Setting::MaxOverflow),
    ("POOL_RECYCLE", Setting::PoolRecycle),
    ("POOL_TIMEOUT", Setting::PoolTimeout),
    ("POOL_SIZE", Setting::PoolSize),
    ("TYPE", Setting::Type),
];

impl Setting {
    /// The suffix used in messages (the first spelling when there are aliases).
    pub fn suffix(self) -> &'static str {
        SUFFIXES
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }

    /// TYPE and CONNECTION_STRING only make sense for one database.
    fn allowed_globally(self) -> bool {
        !matches!(
            self,
            Setting::Type | Setting::ConnectionString | Setting::ReadonlyConnectionString
        )
    }
}

/// One key that set a setting.
#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    pub key: String,
    pub value: RawValue,
}

/// The keys of one environment, sorted out.
#[derive(Clone, Default, Debug)]
pub(crate) struct EnvKeys {
    /// By normalised database name (`RPA_DB`).
    pub databases: BTreeMap<String, BTreeMap<Setting, Assignment>>,
    pub globals: BTreeMap<Setting, Assignment>,
    /// Keys under the prefix that mean nothing to flowhost.
    pub unknown: Vec<String>,
    pub warnings: Vec<String>,
}

enum Parsed<'a> {
    Global(Setting),
    Database(&'a str, Setting),
    /// `{ENV}_GLOBAL_TYPE`: a per-database setting with no database.
    NoDatabase(Setting),
    Unknown,
}

fn classify(rest: &str) -> Parsed<'_> {
    if let Some(&(_, setting)) = SUFFIXES.iter().find(|(s, _)| *s == rest) {
        return if setting.allowed_globally() {
            Parsed::Global(setting)
        } else {
            Parsed::NoDatabase(setting)
        };
    }
    for &(suffix, setting) in SUFFIXES {
        if let Some(name) = rest
            .strip_suffix(suffix)
            .and_then(|head| head.strip_suffix('_'))
            && !name.is_empty()
        {
            return Parsed::Database(name, setting);
        }
    }
    Parsed::Unknown
}

/// Sorts the keys (already filtered to `prefix`) into databases and globals.
pub(crate) fn collect(prefix: &str, keys: BTreeMap<String, RawValue>) -> EnvKeys {
    let mut out = EnvKeys::default();
    for (key, value) in keys {
        let rest = &key[prefix.len()..];
        match classify(rest) {
            Parsed::Global(setting) => {
                let slot = &mut out.globals;
                insert(slot, setting, key, value, &mut out.warnings);
            }
            Parsed::Database(name, setting) => {
                let slot = out.databases.entry(name.to_string()).or_default();
                insert(slot, setting, key, value, &mut out.warnings);
            }
            Parsed::NoDatabase(setting) => {
                out.warnings.push(format!(
                    "{key} ({}) names no database and is ignored: per-database settings look \
                     like {prefix}<NAME>_{}",
                    value.origin,
                    setting.suffix()
                ));
                out.unknown.push(key);
            }
            Parsed::Unknown => {
                let hint = suggest(rest)
                    .map(|s| format!("; did you mean {prefix}{s}?"))
                    .unwrap_or_else(|| {
                        format!(
                            "; known settings: {}",
                            SUFFIXES
                                .iter()
                                .map(|(s, _)| *s)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                out.warnings.push(format!(
                    "{key} ({}) is not a flowhost setting and is ignored{hint}",
                    value.origin
                ));
                out.unknown.push(key);
            }
        }
    }
    drop_misspelt_globals(prefix, &mut out);
    out
}

/// A "database" with no connection string whose only keys are near misses of global settings
/// is a typo, not a database: `CONECTION_POOL_SIZE` splits as database `CONECTION`'s
/// `POOL_SIZE`, and would show up as a phantom database that fails every health check.
fn drop_misspelt_globals(prefix: &str, out: &mut EnvKeys) {
    let phantoms: Vec<String> = out
        .databases
        .iter()
        .filter(|(_, settings)| {
            !settings.contains_key(&Setting::ConnectionString)
                && !settings.contains_key(&Setting::ReadonlyConnectionString)
                && !settings.contains_key(&Setting::Type)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in phantoms {
        let settings = out.databases.get_mut(&name).expect("listed above");
        let misspelt: Vec<(Setting, &'static str)> = settings
            .iter()
            .filter_map(|(setting, a)| Some((*setting, near_global(&a.key[prefix.len()..])?)))
            .collect();
        for (setting, meant) in misspelt {
            let a = settings.remove(&setting).expect("listed above");
            out.warnings.push(format!(
                "{} ({}) is not a flowhost setting and is ignored; did you mean {prefix}{meant}?",
                a.key, a.value.origin
            ));
            out.unknown.push(a.key);
        }
        if settings.is_empty() {
            out.databases.remove(&name);
        }
    }
}

/// The global setting `rest` is a near miss of, if any: a letter or two wrong, not a name put
/// in front (`A_POOL_TIMEOUT` is database A's).
fn near_global(rest: &str) -> Option<&'static str> {
    SUFFIXES
        .iter()
        .filter(|(suffix, setting)| {
            setting.allowed_globally() && rest.len().abs_diff(suffix.len()) <= 1
        })
        .map(|(suffix, _)| (distance(rest, suffix), *suffix))
        .filter(|(d, suffix)| *d > 0 && *d <= (suffix.len() / 5).clamp(1, 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, suffix)| suffix)
}

fn insert(
    slot: &mut BTreeMap<Setting, Assignment>,
    setting: Setting,
    key: String,
    value: RawValue,
    warnings: &mut Vec<String>,
) {
    match slot.get(&setting) {
        // Keys arrive sorted, so aliases meet here; the canonical spelling wins.
        Some(existing) => {
            let (kept, dropped) = if key.ends_with(setting.suffix()) {
                let dropped = existing.key.clone();
                slot.insert(setting, Assignment { key, value });
                (slot[&setting].key.clone(), dropped)
            } else {
                (existing.key.clone(), key)
            };
            warnings.push(format!("both {kept} and {dropped} are set; using {kept}"));
        }
        None => {
            slot.insert(setting, Assignment { key, value });
        }
    }
}

/// A close known key for a typo (`RPA_DB_CONECTION_STRING` → `RPA_DB_CONNECTION_STRING`).
fn suggest(rest: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    // Try every split point at an `_` (and the whole rest, for globals).
    let splits = std::iter::once(0).chain(rest.match_indices('_').map(|(i, _)| i + 1));
    for start in splits {
        let (head, tail) = rest.split_at(start);
        for &(suffix, setting) in SUFFIXES {
            if head.is_empty() && !setting.allowed_globally() {
                continue;
            }
            let limit = (suffix.len() / 5).clamp(1, 2);
            let d = distance(tail, suffix);
            if d <= limit && best.as_ref().is_none_or(|(b, _)| d < *b) {
                best = Some((d, format!("{head}{suffix}")));
            }
        }
    }
    best.map(|(_, s)| s)
}

/// Levenshtein distance; the strings are short key parts.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::interpolate::Origin;
    use super::*;

    const P: &str = "DEVELOPMENT_GLOBAL_";

    fn keys(pairs: &[(&str, &str)]) -> EnvKeys {
        let map = pairs
            .iter()
            .map(|(k, v)| {
                (
                    format!("{P}{k}"),
                    RawValue {
                        text: v.to_string(),
                        origin: Origin::Process,
                        literal: true,
                    },
                )
            })
            .collect();
        collect(P, map)
    }

    #[test]
    fn a_misspelt_global_is_not_a_database() {
        let k = keys(&[("CONECTION_POOL_SIZE", "5"), ("A_POOL_TIMEOUT", "3")]);
        assert!(!k.databases.contains_key("CONECTION"), "{:?}", k.databases);
        assert!(k.unknown.contains(&format!("{P}CONECTION_POOL_SIZE")));
        assert!(
            k.warnings
                .iter()
                .any(|w| w.contains("did you mean DEVELOPMENT_GLOBAL_CONNECTION_POOL_SIZE?")),
            "{:?}",
            k.warnings
        );
        // A short database name is still a database: `A_POOL_TIMEOUT` is two edits from the
        // global POOL_TIMEOUT, more than a typo of it.
        assert!(k.databases["A"].contains_key(&Setting::PoolTimeout));
    }

    #[test]
    fn suffixes_are_longest_first() {
        for pair in SUFFIXES.windows(2) {
            assert!(pair[0].0.len() >= pair[1].0.len(), "{pair:?}");
        }
    }

    #[test]
    fn names_with_underscores_and_globals() {
        let k = keys(&[
            ("RPA_DB_TYPE", "postgresql"),
            ("RPA_DB_CONNECTION_STRING", "x"),
            ("RPA_DB_CONNECTION_POOL_SIZE", "3"),
            ("RPA_DB_POOL_IDLE_TIMEOUT", "9"),
            ("SURVEYHUB_POOL_TIMEOUT", "4"),
            ("CONNECTION_POOL_SIZE", "10"),
            ("DATABASE_TIMEOUT", "30"),
        ]);
        let rpa = &k.databases["RPA_DB"];
        assert_eq!(rpa.len(), 4);
        assert_eq!(
            rpa[&Setting::PoolSize].key,
            "DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_POOL_SIZE"
        );
        assert!(rpa.contains_key(&Setting::PoolIdleTimeout));
        assert!(k.databases["SURVEYHUB"].contains_key(&Setting::PoolTimeout));
        assert_eq!(k.databases.len(), 2);
        assert_eq!(
            k.globals.keys().copied().collect::<Vec<_>>(),
            vec![Setting::PoolSize, Setting::DatabaseTimeout]
        );
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        assert!(k.unknown.is_empty());
    }

    #[test]
    fn pool_size_alias_and_conflict() {
        let k = keys(&[("A_POOL_SIZE", "2")]);
        assert!(k.databases["A"].contains_key(&Setting::PoolSize));
        let k = keys(&[("A_POOL_SIZE", "2"), ("A_CONNECTION_POOL_SIZE", "3")]);
        assert_eq!(k.databases["A"][&Setting::PoolSize].value.text, "3");
        assert_eq!(k.warnings.len(), 1);
        assert!(k.warnings[0].contains("using DEVELOPMENT_GLOBAL_A_CONNECTION_POOL_SIZE"));
    }

    #[test]
    fn unknown_suffix_is_a_warning_with_a_suggestion() {
        let k = keys(&[("RPA_DB_CONECTION_STRING", "postgresql://u:pw@h/db")]);
        assert!(k.databases.is_empty());
        assert_eq!(
            k.unknown,
            vec!["DEVELOPMENT_GLOBAL_RPA_DB_CONECTION_STRING"]
        );
        let w = &k.warnings[0];
        assert!(
            w.contains("DEVELOPMENT_GLOBAL_RPA_DB_CONECTION_STRING"),
            "{w}"
        );
        assert!(
            w.contains("did you mean DEVELOPMENT_GLOBAL_RPA_DB_CONNECTION_STRING"),
            "{w}"
        );
        assert!(!w.contains("pw@"), "{w}");

        let k = keys(&[("WHATEVER", "1")]);
        assert!(
            k.warnings[0].contains("known settings"),
            "{}",
            k.warnings[0]
        );
    }

    #[test]
    fn per_database_setting_without_database_is_flagged() {
        let k = keys(&[("TYPE", "sqlite")]);
        assert!(k.databases.is_empty() && k.globals.is_empty());
        assert_eq!(k.unknown.len(), 1);
        assert!(k.warnings[0].contains("names no database"));
    }

    #[test]
    fn levenshtein() {
        assert_eq!(distance("CONECTION_STRING", "CONNECTION_STRING"), 1);
        assert_eq!(distance("", "ABC"), 3);
        assert_eq!(distance("TYPE", "TYPE"), 0);
    }
}
