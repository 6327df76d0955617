//! Checksums of migration files, recorded with the algorithm that made them.
//!
//! flowhost's own checksum is SHA-256 over the normalised text (UTF-8 BOM stripped, CRLF written
//! as LF), so checking a file out on Windows does not make it "changed". The algorithm is stored
//! beside the value so histories imported from Pyway (CRC32 of the raw bytes) or Flyway (CRC32 of
//! the line contents) are verified with their own algorithm: each is a [`ChecksumAlgorithm`]
//! variant, and the planner recomputes a file's checksum with whatever algorithm the history
//! row names.

use std::borrow::Cow;
use std::fmt;

use sha2::{Digest, Sha256};

/// How a checksum was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ChecksumAlgorithm {
    /// SHA-256 of the normalised content, lowercase hex. flowhost's own.
    #[serde(rename = "sha256")]
    Sha256,
    /// Pyway's (`Utils.load_checksum_from_name`): `zlib.crc32` chained over the file's lines read
    /// in binary mode, i.e. the CRC-32 of the raw bytes (BOM and CR included), written `"%X"`:
    /// uppercase hex, no zero padding, no prefix (`3A4779`, not `003A4779`).
    #[serde(rename = "pyway-crc32")]
    PywayCrc32,
    /// Flyway's (`ChecksumCalculator`): CRC-32 updated with the UTF-8 bytes of each line as
    /// `BufferedReader.readLine` returns them (without `\n`, `\r\n` or `\r`), a BOM removed
    /// from the first line; stored as a signed 32-bit INTEGER, here its decimal text
    /// (`-1519053999`). Line endings and a BOM do not change it. Flyway computes versioned SQL
    /// migrations' checksums before placeholder replacement, so this matches them whatever
    /// placeholders they use.
    #[serde(rename = "flyway-crc32")]
    FlywayCrc32,
}

impl ChecksumAlgorithm {
    /// The name stored in the history table's `checksum_algorithm` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::PywayCrc32 => "pyway-crc32",
            ChecksumAlgorithm::FlywayCrc32 => "flyway-crc32",
        }
    }

    /// The algorithm a history table names, if this build knows it.
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Some(ChecksumAlgorithm::Sha256),
            "pyway-crc32" => Some(ChecksumAlgorithm::PywayCrc32),
            "flyway-crc32" => Some(ChecksumAlgorithm::FlywayCrc32),
            _ => None,
        }
    }

    /// The checksum of a file's raw bytes under this algorithm.
    pub fn compute(self, raw: &[u8]) -> Checksum {
        let value = match self {
            ChecksumAlgorithm::Sha256 => hex::encode(Sha256::digest(normalise(raw))),
            ChecksumAlgorithm::PywayCrc32 => format!("{:X}", crc32fast::hash(raw)),
            ChecksumAlgorithm::FlywayCrc32 => flyway_crc32(raw).to_string(),
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

/// Flyway's checksum of a file's bytes, as the signed INTEGER its history table stores.
///
/// `readLine` ends a line at `\n`, `\r\n` or a lone `\r` and returns the line without them, so
/// hashing the lines one after another hashes every byte except the CRs and LFs (empty lines add
/// nothing). The UTF-8 BOM Flyway filters from the first line is the file's first character.
/// CR and LF never occur inside a multi-byte UTF-8 sequence, so working on bytes gives what Java
/// gets from the decoded text. (Flyway refuses files that are not valid in their encoding;
/// flowhost refuses non-UTF-8 files before any checksum is compared.)
fn flyway_crc32(raw: &[u8]) -> i32 {
    let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let mut hasher = crc32fast::Hasher::new();
    for line in body.split(|&b| b == b'\r' || b == b'\n') {
        hasher.update(line);
    }
    hasher.finalize() as i32
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
        for a in [
            ChecksumAlgorithm::Sha256,
            ChecksumAlgorithm::PywayCrc32,
            ChecksumAlgorithm::FlywayCrc32,
        ] {
            assert_eq!(ChecksumAlgorithm::from_name(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert_eq!(ChecksumAlgorithm::PywayCrc32.as_str(), "pyway-crc32");
        assert_eq!(ChecksumAlgorithm::FlywayCrc32.as_str(), "flyway-crc32");
        assert_eq!(
            ChecksumAlgorithm::from_name("Flyway-CRC32"),
            Some(ChecksumAlgorithm::FlywayCrc32)
        );
    }

    /// Files and the checksums the real algorithms give them: the Pyway column from Pyway's
    /// `Utils.load_checksum_from_name` run by Python, the Flyway column from a Java program doing
    /// what `ChecksumCalculator.calculateChecksumForResource` does (a `FileSystemResource`
    /// reader, `BufferedReader.readLine`, `BomFilter`, `java.util.zip.CRC32`, `(int)` cast).
    const KNOWN: &[(&[u8], &str, &str)] = &[
        (b"abc", "352441C2", "891568578"),
        (
            b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n",
            "32B4BDF2",
            "169406234",
        ),
        (
            b"CREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\r\n",
            "271FDF3C",
            "169406234",
        ),
        (
            b"\xEF\xBB\xBFCREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\r\n",
            "C2D61FB5",
            "169406234",
        ),
        (b"a\rb\r\r\nc", "3B273C3A", "891568578"),
        (b"", "0", "0"),
        (b"SELECT 49;\n", "3A4779", "892143916"),
        (
            "-- caf\u{e9} \u{2028} x\nSELECT '\u{fc}';\n\n\n".as_bytes(),
            "EEA7D8B2",
            "-1519053999",
        ),
        (b"\xEF\xBB\xBF\nSELECT 1;", "BA0BAC6A", "78787420"),
    ];

    #[test]
    fn pyway_checksum_is_unpadded_uppercase_hex_crc32_of_the_raw_bytes() {
        for (raw, pyway, _) in KNOWN {
            let c = ChecksumAlgorithm::PywayCrc32.compute(raw);
            assert_eq!(c.algorithm, ChecksumAlgorithm::PywayCrc32);
            assert_eq!(c.value, *pyway, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn flyway_checksum_is_signed_crc32_of_the_lines() {
        for (raw, _, flyway) in KNOWN {
            let c = ChecksumAlgorithm::FlywayCrc32.compute(raw);
            assert_eq!(c.algorithm, ChecksumAlgorithm::FlywayCrc32);
            assert_eq!(c.value, *flyway, "{:?}", String::from_utf8_lossy(raw));
        }
        // Line endings and the BOM do not count; a changed character does.
        let f = |b: &[u8]| ChecksumAlgorithm::FlywayCrc32.compute(b).value;
        assert_eq!(f(b"x\ny"), f(b"\xEF\xBB\xBFx\r\ny\r\n"));
        assert_ne!(f(b"x\ny"), f(b"x\nz"));
        // A BOM later in the file is content.
        assert_ne!(f(b"x\n\xEF\xBB\xBFy"), f(b"x\ny"));
        // ...and for Pyway every byte counts.
        let p = |b: &[u8]| ChecksumAlgorithm::PywayCrc32.compute(b).value;
        assert_ne!(p(b"x\ny"), p(b"x\r\ny"));
    }
}
