//! Checksums of migration files, recorded with the algorithm that made them.
//!
//! flowhost's own checksum is SHA-256 over the normalised text (UTF-8 BOM stripped, CRLF written
//! as LF), so checking a file out on Windows does not make it "changed". The algorithm is stored
//! beside the value so histories imported from Pyway (CRC32 of the raw bytes) or Flyway (CRC32 of
//! the line contents) can be verified with their own algorithm later: each is one more
//! [`ChecksumAlgorithm`] variant.

use std::borrow::Cow;
use std::fmt;

use sha2::{Digest, Sha256};

/// How a checksum was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// SHA-256 of the normalised content, lowercase hex. flowhost's own.
    Sha256,
}

impl ChecksumAlgorithm {
    /// The name stored in the history table's `checksum_algorithm` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
        }
    }

    /// The algorithm a history table names, if this build knows it.
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Some(ChecksumAlgorithm::Sha256),
            _ => None,
        }
    }

    /// The checksum of a file's raw bytes under this algorithm.
    pub fn compute(self, raw: &[u8]) -> Checksum {
        let value = match self {
            ChecksumAlgorithm::Sha256 => hex::encode(Sha256::digest(normalise(raw))),
        };
        Checksum {
            algorithm: self,
            value,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checksum and the algorithm that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
}

impl Checksum {
    /// flowhost's checksum of a file's raw bytes.
    pub fn of(raw: &[u8]) -> Checksum {
        ChecksumAlgorithm::Sha256.compute(raw)
    }

    /// Whether a recorded value equals this one (hex case does not matter).
    pub fn matches(&self, other: &Checksum) -> bool {
        self.algorithm == other.algorithm && self.value.eq_ignore_ascii_case(&other.value)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.value)
    }
}

/// The content checksums and execution see: UTF-8 byte order mark removed, CRLF as LF.
pub fn normalise(raw: &[u8]) -> Cow<'_, [u8]> {
    let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    if !body.windows(2).any(|w| w == b"\r\n") {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_bom_and_lf_versions_have_one_checksum() {
        let lf = b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n";
        let crlf = b"CREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\r\n";
        let bom = b"\xEF\xBB\xBFCREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\n";
        assert_eq!(Checksum::of(lf), Checksum::of(crlf));
        assert_eq!(Checksum::of(lf), Checksum::of(bom));
        assert_eq!(normalise(crlf).as_ref(), lf.as_slice());
    }

    #[test]
    fn a_changed_byte_changes_the_checksum() {
        let a = Checksum::of(b"CREATE TABLE t (id int);\n");
        let b = Checksum::of(b"CREATE TABLE t (id bigint);\n");
        assert_ne!(a, b);
        assert!(!a.matches(&b));
        // A lone CR is content, not a line ending we normalise.
        assert_ne!(Checksum::of(b"a\rb"), Checksum::of(b"a\nb"));
    }

    #[test]
    fn checksum_is_sha256_hex_of_normalised_text() {
        // sha256("abc")
        let c = Checksum::of(b"\xEF\xBB\xBFabc");
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha256);
        assert_eq!(
            c.value,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(c.to_string(), format!("sha256:{}", c.value));
        let upper = Checksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: c.value.to_uppercase(),
        };
        assert!(c.matches(&upper));
    }

    #[test]
    fn algorithm_names_round_trip() {
        assert_eq!(
            ChecksumAlgorithm::from_name("sha256"),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(
            ChecksumAlgorithm::from_name(" SHA256 "),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(ChecksumAlgorithm::from_name("crc32"), None);
        assert_eq!(ChecksumAlgorithm::Sha256.as_str(), "sha256");
    }
}
