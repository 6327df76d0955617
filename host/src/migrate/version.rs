//! Migration versions: dotted (or underscored) digit groups that compare numerically part by
//! part, the way Flyway's `MigrationVersion` does: `2 < 10`, `1.2 < 1.10 < 2`, `001 == 1`,
//! `1.0 == 1`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A migration version. Equality and order are numeric; the text is kept (with `_` written as
/// `.`) for display and for the history table, so `V001__x.sql` is recorded as `001` as Flyway
/// and Pyway record it, and still matches a history row that says `1`.
///
/// Only the validated text is stored (the value stays small inside errors); comparisons walk
/// its parts without allocating.
#[derive(Debug, Clone)]
pub struct Version {
    /// As written, with `_` separators turned into `.`; validated digits and dots.
    text: String,
}

/// Why a version string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("the version is empty")]
    Empty,
    #[error("'{0}' is not a version: use digits separated by '.' or '_' (like 1, 001, 1.2 or 1_2)")]
    Invalid(String),
}

impl Version {
    /// Parses `1`, `001`, `1.2`, `1_2`, `2024.01.15.1`. Separators must sit between digits.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let valid = text
            .split(['.', '_'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Err(VersionError::Invalid(text.to_owned()));
        }
        Ok(Version {
            text: text.replace('_', "."),
        })
    }

    /// The version as written (with `.` separators), e.g. `001` or `1.2`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The numeric parts: digits without leading zeros (`"0"` for zero).
    fn parts(&self) -> impl Iterator<Item = &str> {
        self.text.split('.').map(|p| {
            let digits = p.trim_start_matches('0');
            if digits.is_empty() { "0" } else { digits }
        })
    }
}

/// Numeric comparison of two digit strings without leading zeros, of any length.
fn cmp_digits(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // A missing part counts as zero: 1 == 1.0 < 1.0.1.
        let (mut a, mut b) = (self.parts(), other.parts());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (x, y) => match cmp_digits(x.unwrap_or("0"), y.unwrap_or("0")) {
                    Ordering::Equal => continue,
                    unequal => return unequal,
                },
            }
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Zero parts count only when a non-zero part follows, so 1 and 1.0 (equal) hash alike.
        let mut zeros = 0usize;
        for part in self.parts() {
            if part == "0" {
                zeros += 1;
                continue;
            }
            for _ in 0..std::mem::take(&mut zeros) {
                "0".hash(state);
            }
            part.hash(state);
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s.trim())
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn numeric_order_part_by_part() {
        assert!(v("2") < v("10"));
        assert!(v("1.2") < v("1.10"));
        assert!(v("1.10") < v("2"));
        assert!(v("1_2") < v("1_10"));
        assert!(v("1.9.9") < v("1.10"));
        assert!(v("1") < v("1.1"));
        let mut list: Vec<Version> = ["10", "2", "1.10", "1.2", "1", "001.1", "3"]
            .iter()
            .map(|s| v(s))
            .collect();
        list.sort();
        let texts: Vec<&str> = list.iter().map(Version::as_str).collect();
        assert_eq!(texts, ["1", "001.1", "1.2", "1.10", "2", "3", "10"]);
    }

    #[test]
    fn leading_and_trailing_zeros_do_not_change_the_version() {
        assert_eq!(v("001"), v("1"));
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("01.01"), v("1.1"));
        assert_eq!(v("1_2"), v("1.2"));
        assert_eq!(v("0"), v("0.0"));
        let set: HashSet<Version> = [v("001"), v("1.0"), v("1")].into_iter().collect();
        assert_eq!(set.len(), 1);
        let set: HashSet<Version> = [v("1.0.1"), v("1.0.1.0"), v("1.1"), v("0"), v("0.0")]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 3);
        assert!(v("1.0.1") > v("1") && v("1.0.1") < v("1.1"));
    }

    #[test]
    fn text_is_kept_with_dots() {
        assert_eq!(v("001").to_string(), "001");
        assert_eq!(v("1_2_3").to_string(), "1.2.3");
        assert_eq!(serde_json::to_string(&v("1_10")).unwrap(), "\"1.10\"");
    }

    #[test]
    fn huge_parts_compare_numerically() {
        assert!(v("99999999999999999999999") < v("100000000000000000000000"));
        assert!(v("20240115093000") > v("9"));
    }

    #[test]
    fn malformed_versions_are_refused() {
        assert_eq!(Version::parse(""), Err(VersionError::Empty));
        for bad in ["1.", ".1", "1..2", "1__2", "a", "1a", "1-2", " 1", "1.x"] {
            assert!(
                matches!(Version::parse(bad), Err(VersionError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
        assert_eq!(" 1.2 ".parse::<Version>().unwrap(), v("1.2"));
    }
}
