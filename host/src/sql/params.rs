//! Rewrites the portable placeholder syntax flow authors write (`:name` or `$n`) into the
//! syntax each backend binds natively.
//!
//! This runs on every guest database call, so it streams over the lexer without
//! collecting tokens, borrows names from the input until the end, and skips lexing
//! entirely when the text cannot contain a placeholder.

use super::lexer::{TokenKind, line_at, tokens};
use super::{Backend, SqlError};

/// SQL rewritten for one backend, plus what the caller has to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The statement in the backend's placeholder syntax.
    pub sql: String,
    /// How the statement's parameters are addressed.
    pub placeholders: Placeholders,
}

/// How the parameters of a rewritten statement are addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholders {
    /// No `:name` or `$n` placeholders (SQLite's native `?` may still be present).
    None,
    /// Distinct `:name`s in first-appearance order; index i is bound as parameter i+1.
    Named(Vec<String>),
    /// `$n` placeholders; the value is the highest n used.
    Positional(usize),
}

/// Highest parameter number accepted: the Postgres wire protocol cannot bind more.
const MAX_POSITION: usize = 65_535;

/// Rewrites `:name` and `$n` placeholders in `sql` for `dialect`, leaving everything else
/// byte-for-byte intact (a space is added where a placeholder would fuse with its neighbour).
pub fn rewrite(sql: &str, dialect: Backend) -> Result<Rewritten, SqlError> {
    // Every placeholder this function rewrites contains one of these bytes.
    if !sql.bytes().any(|b| b == b':' || b == b'$') {
        return Ok(unchanged(sql, Placeholders::None));
    }

    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut names: Vec<&str> = Vec::new();
    let mut max_position = 0usize;
    let mut native = false;

    for tok in tokens(sql, dialect) {
        let tok = tok?;
        let index = match tok.kind {
            TokenKind::NamedParam => {
                let name = &sql[tok.start + 1..tok.end];
                match names.iter().position(|n| *n == name) {
                    Some(i) => i + 1,
                    None => {
                        names.push(name);
                        names.len()
                    }
                }
            }
            TokenKind::PositionalParam => {
                let n = parse_position(&sql[tok.start + 1..tok.end]).map_err(|reason| {
                    SqlError::InvalidPlaceholder {
                        line: line_at(sql, tok.start),
                        reason,
                    }
                })?;
                max_position = max_position.max(n);
                if dialect == Backend::Postgres {
                    continue;
                }
                n
            }
            // SQLite numbers these after the highest explicit index, so combined with our
            // rewritten `?k` they would silently receive the wrong values.
            TokenKind::QuestionParam | TokenKind::Variable if dialect == Backend::Sqlite => {
                native = true;
                continue;
            }
            _ => continue,
        };
        if !names.is_empty() && max_position > 0 {
            return Err(SqlError::MixedPlaceholders);
        }
        let buf = out.get_or_insert_with(|| String::with_capacity(sql.len() + 16));
        buf.push_str(&sql[copied..tok.start]);
        let bytes = sql.as_bytes();
        // `S:z` must become `S $1`, not the identifier `S$1`: keep the placeholder its own token.
        if tok.start > 0 && joins(bytes[tok.start - 1], dialect) {
            buf.push(' ');
        }
        buf.push_str(match dialect {
            Backend::Postgres => "$",
            Backend::Sqlite => "?",
            Backend::SqlServer => "@P",
        });
        push_decimal(buf, index);
        if bytes.get(tok.end).is_some_and(|&b| joins(b, dialect)) {
            buf.push(' ');
        }
        copied = tok.end;
    }

    let placeholders = match (names.is_empty(), max_position) {
        (true, 0) => Placeholders::None,
        (false, 0) => Placeholders::Named(names.iter().map(|n| (*n).to_owned()).collect()),
        (true, n) => Placeholders::Positional(n),
        (false, _) => return Err(SqlError::MixedPlaceholders),
    };
    if native && placeholders != Placeholders::None {
        return Err(SqlError::MixedPlaceholders);
    }
    Ok(match out {
        Some(mut buf) => {
            buf.push_str(&sql[copied..]);
            Rewritten {
                sql: buf,
                placeholders,
            }
        }
        None => unchanged(sql, placeholders),
    })
}

fn unchanged(sql: &str, placeholders: Placeholders) -> Rewritten {
    Rewritten {
        sql: sql.to_owned(),
        placeholders,
    }
}

/// Whether byte `b` next to a rewritten placeholder would fuse with it into one token: a name
/// character before `$1` or `@P1` (every engine allows `$` in names, T-SQL also `@` and `#`),
/// or `$` after `$1` (PostgreSQL's "trailing junk after parameter"). SQLite's `?1` fuses with
/// nothing.
fn joins(b: u8, dialect: Backend) -> bool {
    let name = b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 || b == b'$';
    match dialect {
        Backend::Postgres => name,
        Backend::SqlServer => name || b == b'@' || b == b'#',
        Backend::Sqlite => false,
    }
}

fn parse_position(digits: &str) -> Result<usize, &'static str> {
    let mut n = 0usize;
    for b in digits.bytes() {
        n = n * 10 + usize::from(b - b'0');
        if n > MAX_POSITION {
            return Err("positional placeholders cannot exceed $65535");
        }
    }
    if n == 0 {
        return Err("positional placeholders start at $1, not $0");
    }
    Ok(n)
}

/// Appends `n` in decimal; `write!` would go through the formatting machinery per call.
fn push_decimal(buf: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        buf.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Backend::{Postgres, SqlServer, Sqlite};

    fn rw(sql: &str, d: Backend) -> (String, Placeholders) {
        let r = rewrite(sql, d).unwrap();
        (r.sql, r.placeholders)
    }

    fn named(names: &[&str]) -> Placeholders {
        Placeholders::Named(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn named_per_dialect_with_repeats() {
        let sql = "select * from t where a = :a and b = :b or a2 = :a";
        assert_eq!(
            rw(sql, Postgres),
            (
                "select * from t where a = $1 and b = $2 or a2 = $1".into(),
                named(&["a", "b"])
            )
        );
        assert_eq!(
            rw(sql, Sqlite),
            (
                "select * from t where a = ?1 and b = ?2 or a2 = ?1".into(),
                named(&["a", "b"])
            )
        );
        assert_eq!(
            rw(sql, SqlServer),
            (
                "select * from t where a = @P1 and b = @P2 or a2 = @P1".into(),
                named(&["a", "b"])
            )
        );
    }

    #[test]
    fn names_are_case_sensitive_and_many() {
        let (_, p) = rw("select :Id, :id", Postgres);
        assert_eq!(p, named(&["Id", "id"]));
        let sql: String = (1..=12).map(|i| format!(":p{i},")).collect();
        let (out, _) = rw(&sql, SqlServer);
        assert!(out.ends_with("@P10,@P11,@P12,"), "{out}");
    }

    #[test]
    fn positional_per_dialect() {
        let sql = "select $1, $2, $1, $10";
        assert_eq!(
            rw(sql, Postgres),
            (sql.into(), Placeholders::Positional(10))
        );
        assert_eq!(
            rw(sql, Sqlite),
            (
                "select ?1, ?2, ?1, ?10".into(),
                Placeholders::Positional(10)
            )
        );
        assert_eq!(
            rw(sql, SqlServer),
            (
                "select @P1, @P2, @P1, @P10".into(),
                Placeholders::Positional(10)
            )
        );
    }

    #[test]
    fn quoted_and_commented_text_is_untouched() {
        let cases = [
            "select ':x', 'it''s :y' from t",
            r"select E'it\'s :x' from t",
            "select \"col:x\" from t",
            "select 1 -- :x\n",
            "select /* :x /* nested */ :y */ 1",
            "select $$ :x $$",
            "create function f() returns int as $fn$ select :x; $$ :y $$ $fn$ language sql",
            "select U&'\\0061 :x'",
        ];
        for sql in cases {
            assert_eq!(
                rw(sql, Postgres),
                (sql.to_string(), Placeholders::None),
                "{sql}"
            );
        }
        assert_eq!(rw("select [a:b], `c:d`", Sqlite).1, Placeholders::None);
        assert_eq!(rw("select [a:b]", SqlServer).1, Placeholders::None);
    }

    #[test]
    fn placeholder_next_to_quoted_text() {
        let sql = "select ':a' || :a || $$:a$$ -- :a\n, :b";
        assert_eq!(
            rw(sql, Postgres).0,
            "select ':a' || $1 || $$:a$$ -- :a\n, $2"
        );
        let sql = r"select E'\\', :v";
        assert_eq!(rw(sql, Postgres).0, r"select E'\\', $1");
    }

    #[test]
    fn casts_and_slices() {
        assert_eq!(
            rw("select :x::int, y::text", Postgres).0,
            "select $1::int, y::text"
        );
        assert_eq!(rw("select :x::int", SqlServer).0, "select @P1::int");
        assert_eq!(
            rw("select a[1:2], a[:3], a[lo : hi] from t", Postgres),
            (
                "select a[1:2], a[:3], a[lo : hi] from t".into(),
                Placeholders::None
            )
        );
        assert_eq!(rw("select a[1:2], :n", Postgres).0, "select a[1:2], $1");
        assert_eq!(
            rw("select geography::Point(1, 2, 4326)", SqlServer).1,
            Placeholders::None
        );
    }

    #[test]
    fn question_marks_are_left_alone() {
        // jsonb operators in Postgres.
        let sql = "select j ? 'k', j ?| array['a'], j ?& array['b'] from t where id = :id";
        assert_eq!(
            rw(sql, Postgres),
            (
                "select j ? 'k', j ?| array['a'], j ?& array['b'] from t where id = $1".into(),
                named(&["id"])
            )
        );
        // SQLite's own placeholders pass through when used alone.
        assert_eq!(
            rw("select ?, ?2 from t", Sqlite),
            ("select ?, ?2 from t".into(), Placeholders::None)
        );
        assert_eq!(rw("select ? from t", SqlServer).1, Placeholders::None);
    }

    #[test]
    fn mixing_styles_is_rejected() {
        for (sql, d) in [
            ("select :a, $1", Postgres),
            ("select $1, :a", Sqlite),
            ("select :a, $2", SqlServer),
            ("select :a, ?", Sqlite),
            ("select ?, $1", Sqlite),
            ("select @x, :a", Sqlite),
            ("select $x, $1", Sqlite),
        ] {
            assert_eq!(rewrite(sql, d), Err(SqlError::MixedPlaceholders), "{sql}");
        }
        assert!(
            SqlError::MixedPlaceholders
                .to_string()
                .contains("one style")
        );
    }

    #[test]
    fn invalid_positions() {
        let err = rewrite("select\n$0", Postgres).unwrap_err();
        assert!(
            matches!(err, SqlError::InvalidPlaceholder { line: 2, .. }),
            "{err}"
        );
        let err = rewrite("select $65536", Sqlite).unwrap_err();
        assert!(matches!(err, SqlError::InvalidPlaceholder { line: 1, .. }));
        let err = rewrite("select $99999999999999999999999", Sqlite).unwrap_err();
        assert!(matches!(err, SqlError::InvalidPlaceholder { .. }));
        assert_eq!(rw("select $65535", SqlServer).0, "select @P65535");
    }

    #[test]
    fn no_placeholders_fast_path_and_errors() {
        assert_eq!(
            rw("select 1", Postgres),
            ("select 1".into(), Placeholders::None)
        );
        assert_eq!(rw("", Sqlite), (String::new(), Placeholders::None));
        // Lexing errors surface only when the text could hold placeholders.
        assert!(matches!(
            rewrite("select ':x", Postgres),
            Err(SqlError::Unterminated { .. })
        ));
    }

    #[test]
    fn output_is_otherwise_byte_identical() {
        let sql = "INSERT INTO \"Tä\" (a,b)\r\nVALUES (:a,\t:b) -- ü\n RETURNING *;";
        let (out, _) = rw(sql, SqlServer);
        assert_eq!(
            out,
            "INSERT INTO \"Tä\" (a,b)\r\nVALUES (@P1,\t@P2) -- ü\n RETURNING *;"
        );
    }

    #[test]
    fn placeholder_after_a_name_stays_a_placeholder() {
        // Found by fuzz/rewrite: `S:z` became `S$1`, a single identifier in PostgreSQL, so the
        // server saw no parameter (and `$:z` became `$$1`, the start of a dollar-quoted string).
        assert_eq!(rw("S:z", Postgres).0, "S $1");
        assert_eq!(rw("$:z", Postgres).0, "$ $1");
        assert_eq!(rw(":z$x", Postgres).0, "$1 $x");
        assert_eq!(rw("S:z", SqlServer).0, "S @P1");
        assert_eq!(rw("@$1", SqlServer).0, "@ @P1");
        assert_eq!(rw(":z#t", SqlServer).0, "@P1 #t");
        assert_eq!(rw("S:z", Sqlite).0, "S?1");
    }

    #[test]
    fn decimal_formatting() {
        for n in [0, 7, 10, 99, 65535, usize::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
