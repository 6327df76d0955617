//! The one SQL tokenizer behind placeholder rewriting, classification and splitting.
//!
//! It must be exact about where strings, quoted identifiers, comments and placeholders
//! begin and end, because a mistake there lets a keyword hidden in a string change a
//! statement's classification or corrupts a literal during rewriting. Operators need no
//! meaning downstream, so they stay single-byte `Punct` tokens. Work is byte-wise: every
//! byte >= 0x80 counts as an identifier character, so spans always fall on UTF-8 boundaries.

use super::{Backend, SqlError};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A run of ASCII whitespace.
    Whitespace,
    /// `-- ...` up to, not including, the newline.
    LineComment,
    /// `/* ... */` (nested in Postgres and SQL Server, flat in SQLite).
    BlockComment,
    /// Unquoted identifier or keyword; in SQL Server also `#temp` names.
    Word,
    /// `"ident"`, `[ident]` (SQL Server, SQLite) or `` `ident` `` (SQLite), or Postgres `U&"..."`.
    QuotedIdent,
    /// `'...'`, optionally prefixed by `E` (Postgres), `N`, `X`, `B` or `U&` (Postgres).
    String,
    /// Postgres `$$...$$` or `$tag$...$tag$`.
    DollarString,
    /// A numeric literal.
    Number,
    /// A `:name` placeholder.
    NamedParam,
    /// A `$n` positional placeholder.
    PositionalParam,
    /// SQLite's native `?` or `?NNN` placeholder.
    QuestionParam,
    /// SQL Server `@name`/`@@name`, or SQLite's native `@name`/`$name` placeholders.
    Variable,
    /// `::` (Postgres cast, SQL Server scope operator).
    Cast,
    /// `;`.
    Semicolon,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `.`.
    Dot,
    /// Any other single ASCII byte (operators, commas, brackets that are not quotes).
    Punct,
}

/// One token: its kind and its byte span `start..end` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

impl Token {
    /// The token's text within `src`, the string it was lexed from.
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }

    /// Whether the token is whitespace or a comment, i.e. has no meaning to the server.
    pub fn is_trivia(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment
        )
    }

    /// Whether the token is the unquoted word `kw`, compared case-insensitively.
    pub fn is_word(&self, src: &str, kw: &str) -> bool {
        self.kind == TokenKind::Word && self.text(src).eq_ignore_ascii_case(kw)
    }
}

/// Lazily tokenizes SQL text; yields one error and then stops if a construct is unterminated.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    dialect: Backend,
    failed: bool,
}

/// Tokens of `sql`, including whitespace and comments, without allocating.
pub fn tokens(sql: &str, dialect: Backend) -> Lexer<'_> {
    Lexer {
        src: sql,
        pos: 0,
        dialect,
        failed: false,
    }
}

/// All tokens of `sql`, including whitespace and comments, or the first lexing error.
pub fn tokenize(sql: &str, dialect: Backend) -> Result<Vec<Token>, SqlError> {
    // Typical SQL averages three to five bytes per token; reserving up front avoids the
    // repeated regrowth that otherwise costs as much as the lexing itself.
    let mut out = Vec::with_capacity(sql.len() / 3 + 4);
    for tok in tokens(sql, dialect) {
        out.push(tok?);
    }
    Ok(out)
}

/// Whether `word` is one of the uppercase keywords `kws`, ignoring ASCII case.
pub(crate) fn is_keyword(word: &str, kws: &[&str]) -> bool {
    kws.iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// 1-based line number of byte `offset` in `src`.
pub fn line_at(src: &str, offset: usize) -> usize {
    1 + src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token, SqlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.src.len() {
            return None;
        }
        let start = self.pos;
        match self.scan(start) {
            Ok(kind) => Some(Ok(Token {
                kind,
                start,
                end: self.pos,
            })),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

fn skip_while(bytes: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && pred(bytes[i]) {
        i += 1;
    }
    i
}

impl Lexer<'_> {
    fn unterminated(&self, what: &'static str, start: usize) -> SqlError {
        SqlError::Unterminated {
            what,
            line: line_at(self.src, start),
        }
    }

    /// Whether `b` may continue an unquoted word. All three engines accept `$` inside
    /// identifiers, and T-SQL also `@` and `#`.
    fn is_word_char(&self, b: u8) -> bool {
        is_ident_char(b)
            || b == b'$'
            || (self.dialect == Backend::SqlServer && (b == b'@' || b == b'#'))
    }

    fn scan(&mut self, start: usize) -> Result<TokenKind, SqlError> {
        use TokenKind as K;
        let bytes = self.src.as_bytes();
        let c = bytes[start];
        let next = bytes.get(start + 1).copied();
        let d = self.dialect;
        self.pos = start + 1;
        let kind = match c {
            _ if is_space(c) => {
                self.pos = skip_while(bytes, start + 1, is_space);
                K::Whitespace
            }
            b'-' if next == Some(b'-') => {
                // PostgreSQL's scanner ends a `--` comment at `\r` as well as `\n` (scan.l:
                // `non_newline [^\n\r]`), so a comment that ended only at `\n` here would hide
                // text the server runs. SQLite's tokenizer stops at `\n` alone.
                self.pos = match d {
                    Backend::Sqlite => skip_while(bytes, start + 2, |b| b != b'\n'),
                    _ => skip_while(bytes, start + 2, |b| b != b'\n' && b != b'\r'),
                };
                K::LineComment
            }
            b'/' if next == Some(b'*') => self.block_comment(start)?,
            b'\'' | b'"' => self.quoted(start, start, false)?,
            // SQLite has no array subscripts, so `[` always opens an identifier there too.
            b'[' if d != Backend::Postgres => self.quoted(start, start, false)?,
            b'`' if d == Backend::Sqlite => self.quoted(start, start, false)?,
            b'$' => self.dollar(start)?,
            b':' if next == Some(b':') => {
                self.pos = start + 2;
                K::Cast
            }
            // A colon right after another colon belongs to an operator (`a:::b`), and one
            // followed by a digit or space is an array slice (`a[1:2]`).
            b':' if next.is_some_and(is_ident_start)
                && (start == 0 || bytes[start - 1] != b':') =>
            {
                self.pos = skip_while(bytes, start + 1, is_ident_char);
                K::NamedParam
            }
            // In Postgres `?` is a jsonb operator and in T-SQL it is meaningless, so only
            // SQLite treats it as a placeholder.
            b'?' if d == Backend::Sqlite => {
                self.pos = skip_while(bytes, start + 1, |b| b.is_ascii_digit());
                K::QuestionParam
            }
            b'@' if d == Backend::SqlServer
                && next.is_some_and(|b| is_ident_start(b) || b == b'@') =>
            {
                let i = skip_while(bytes, start + 1, |b| b == b'@');
                self.pos = skip_while(bytes, i, |b| self.is_word_char(b));
                K::Variable
            }
            b'@' if d == Backend::Sqlite && next.is_some_and(is_ident_start) => {
                self.pos = skip_while(bytes, start + 1, is_ident_char);
                K::Variable
            }
            b';' => K::Semicolon,
            b'(' => K::LParen,
            b')' => K::RParen,
            b'.' if next.is_some_and(|b| b.is_ascii_digit()) => self.number(start),
            b'.' => K::Dot,
            b'0'..=b'9' => self.number(start),
            _ if is_ident_start(c) || (c == b'#' && d == Backend::SqlServer) => self.word(start)?,
            _ => K::Punct,
        };
        Ok(kind)
    }

    /// Scans a construct whose opening delimiter is at `open` (after any prefix at
    /// `start`); the delimiter decides the closing byte and the token kind.
    fn quoted(
        &mut self,
        start: usize,
        open: usize,
        backslash: bool,
    ) -> Result<TokenKind, SqlError> {
        let bytes = self.src.as_bytes();
        let (close, kind, what) = match bytes[open] {
            b'\'' => (b'\'', TokenKind::String, "string literal"),
            b'"' => (b'"', TokenKind::QuotedIdent, "quoted identifier"),
            b'[' => (b']', TokenKind::QuotedIdent, "bracketed identifier"),
            _ => (b'`', TokenKind::QuotedIdent, "backtick identifier"),
        };
        // Only SQLite's `[...]` cannot contain its closing byte at all.
        let doubling = !(close == b']' && self.dialect == Backend::Sqlite);
        let mut i = open + 1;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\\' && backslash {
                i += 2;
            } else if b == close {
                if doubling && bytes.get(i + 1) == Some(&close) {
                    i += 2;
                } else {
                    self.pos = i + 1;
                    return Ok(kind);
                }
            } else {
                i += 1;
            }
        }
        Err(self.unterminated(what, start))
    }

    fn block_comment(&mut self, start: usize) -> Result<TokenKind, SqlError> {
        let bytes = self.src.as_bytes();
        // SQLite ends a comment at the first `*/`; Postgres and SQL Server nest them.
        let nested = self.dialect != Backend::Sqlite;
        let mut depth = 1usize;
        let mut i = start + 2;
        while i + 1 < bytes.len() {
            match (bytes[i], bytes[i + 1]) {
                (b'*', b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(TokenKind::BlockComment);
                    }
                }
                (b'/', b'*') if nested => {
                    depth += 1;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        Err(self.unterminated("block comment", start))
    }

    fn dollar(&mut self, start: usize) -> Result<TokenKind, SqlError> {
        let bytes = self.src.as_bytes();
        let i = start + 1;
        if bytes.get(i).is_some_and(|b| b.is_ascii_digit()) {
            self.pos = skip_while(bytes, i, |b| b.is_ascii_digit());
            return Ok(TokenKind::PositionalParam);
        }
        match self.dialect {
            Backend::Postgres => {
                // The tag cannot start with a digit (that was `$1` above) nor contain `$`.
                let tag_end = skip_while(bytes, i, is_ident_char);
                if bytes.get(tag_end) != Some(&b'$') {
                    return Ok(TokenKind::Punct);
                }
                let delim = &self.src[start..=tag_end];
                let body = tag_end + 1;
                match self.src[body..].find(delim) {
                    Some(off) => {
                        self.pos = body + off + delim.len();
                        Ok(TokenKind::DollarString)
                    }
                    None => Err(self.unterminated("dollar-quoted string", start)),
                }
            }
            Backend::Sqlite if bytes.get(i).is_some_and(|&b| is_ident_start(b)) => {
                self.pos = skip_while(bytes, i, is_ident_char);
                Ok(TokenKind::Variable)
            }
            _ => Ok(TokenKind::Punct),
        }
    }

    fn number(&mut self, start: usize) -> TokenKind {
        if self.dialect == Backend::SqlServer {
            return self.tsql_number(start);
        }
        let bytes = self.src.as_bytes();
        let radix_prefixed = bytes[start] == b'0'
            && matches!(
                bytes.get(start + 1),
                Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O')
            );
        let mut i = start;
        while i < bytes.len() {
            let b = bytes[i];
            let exponent_sign = (b == b'+' || b == b'-')
                && !radix_prefixed
                && matches!(bytes[i - 1], b'e' | b'E')
                && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit());
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || exponent_sign {
                i += 1;
            } else {
                break;
            }
        }
        self.pos = i;
        TokenKind::Number
    }

    /// A T-SQL number ends where its literal does: SQL Server reads `1a` as `1 AS a` and
    /// `4SELECT 2` as two statements, so letters after the digits start a new token. Forms:
    /// `12`, `1.5`, `.5`, `1e-3`, `0x1F` (binary).
    fn tsql_number(&mut self, start: usize) -> TokenKind {
        let bytes = self.src.as_bytes();
        let digits = |i: usize| skip_while(bytes, i, |b| b.is_ascii_digit());
        if bytes[start] == b'0' && matches!(bytes.get(start + 1), Some(b'x' | b'X')) {
            self.pos = skip_while(bytes, start + 2, |b| b.is_ascii_hexdigit());
            return TokenKind::Number;
        }
        let mut i = digits(start);
        if bytes.get(i) == Some(&b'.') {
            i = digits(i + 1);
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
            if bytes.get(i + 1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                i = digits(i + 1 + sign);
            }
        }
        self.pos = i;
        TokenKind::Number
    }

    fn word(&mut self, start: usize) -> Result<TokenKind, SqlError> {
        let bytes = self.src.as_bytes();
        let end = skip_while(bytes, start + 1, |b| self.is_word_char(b));
        if end - start == 1 {
            let pg = self.dialect == Backend::Postgres;
            let open = match (bytes[start].to_ascii_uppercase(), bytes.get(end)) {
                (b'E', Some(b'\'')) if pg => Some(end),
                (b'N' | b'X' | b'B', Some(b'\'')) => Some(end),
                (b'U', Some(b'&')) if pg && matches!(bytes.get(end + 1), Some(b'\'' | b'"')) => {
                    Some(end + 1)
                }
                _ => None,
            };
            if let Some(open) = open {
                // Only Postgres `E'...'` strings honour backslash escapes.
                return self.quoted(start, open, bytes[start].eq_ignore_ascii_case(&b'E'));
            }
        }
        self.pos = end;
        Ok(TokenKind::Word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Backend::{Postgres, SqlServer, Sqlite};

    /// The non-whitespace tokens as `Kind:text`, separated by single spaces.
    fn show(sql: &str, d: Backend) -> String {
        let toks = tokenize(sql, d).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let shown: Vec<String> = toks
            .iter()
            .filter(|t| t.kind != TokenKind::Whitespace)
            .map(|t| format!("{:?}:{}", t.kind, t.text(sql)))
            .collect();
        shown.join(" ")
    }

    fn pg(sql: &str) -> String {
        show(sql, Postgres)
    }

    #[test]
    fn spans_cover_input_exactly() {
        let sql = "SELECT 'é''x', \"ü\" FROM t -- c\n/* b */ WHERE a=$1::int AND b = [z] `q`";
        for d in [Postgres, Sqlite, SqlServer] {
            let mut pos = 0;
            for t in tokenize(sql, d).unwrap() {
                assert_eq!(t.start, pos, "{d:?}");
                pos = t.end;
            }
            assert_eq!(pos, sql.len());
        }
    }

    #[test]
    fn strings_and_prefixes() {
        assert_eq!(pg("'it''s' x"), "String:'it''s' Word:x");
        assert_eq!(pg(r"E'it\'s :x' y"), r"String:E'it\'s :x' Word:y");
        assert_eq!(pg(r"e'a\\' b"), r"String:e'a\\' Word:b");
        assert_eq!(
            pg("N'a' X'ff' b'01'"),
            "String:N'a' String:X'ff' String:b'01'"
        );
        assert_eq!(
            pg(r#"U&'d\0061' U&"x""#),
            r#"String:U&'d\0061' QuotedIdent:U&"x""#
        );
        // A backslash escapes nothing in a standard string, and `E` is a prefix only in Postgres.
        assert_eq!(pg(r"'a\' b"), r"String:'a\' Word:b");
        assert_eq!(show(r"E'a\' 'b'", Sqlite), r"Word:E String:'a\' String:'b'");
        assert_eq!(show("N'x'", SqlServer), "String:N'x'");
        assert_eq!(pg("SOME'x'"), "Word:SOME String:'x'");
        assert_eq!(pg("U & 'x'"), "Word:U Punct:& String:'x'");
    }

    #[test]
    fn dollar_quotes_and_positional() {
        assert_eq!(pg("$$ a;'b $$ x"), "DollarString:$$ a;'b $$ Word:x");
        assert_eq!(
            pg("$fn$ $$ in $$ $fn$;"),
            "DollarString:$fn$ $$ in $$ $fn$ Semicolon:;"
        );
        assert_eq!(pg("$a$ $A$ $a$"), "DollarString:$a$ $A$ $a$");
        assert_eq!(pg("$_1$x$_1$"), "DollarString:$_1$x$_1$");
        assert_eq!(
            pg("$1+$23"),
            "PositionalParam:$1 Punct:+ PositionalParam:$23"
        );
        assert_eq!(pg("foo$bar $x"), "Word:foo$bar Punct:$ Word:x");
        assert_eq!(show("$$", SqlServer), "Punct:$ Punct:$");
        assert_eq!(
            show("$name $2", Sqlite),
            "Variable:$name PositionalParam:$2"
        );
    }

    #[test]
    fn quoted_identifiers_per_dialect() {
        assert_eq!(pg(r#""a""b" c"#), r#"QuotedIdent:"a""b" Word:c"#);
        assert_eq!(
            show("[a]]b] [c]", SqlServer),
            "QuotedIdent:[a]]b] QuotedIdent:[c]"
        );
        assert_eq!(show("[a]]", Sqlite), "QuotedIdent:[a] Punct:]");
        assert_eq!(show("`a``b`", Sqlite), "QuotedIdent:`a``b`");
        assert_eq!(
            pg("a[1:2]"),
            "Word:a Punct:[ Number:1 Punct:: Number:2 Punct:]"
        );
        assert_eq!(pg("`a`"), "Punct:` Word:a Punct:`");
    }

    #[test]
    fn comments() {
        assert_eq!(pg("a -- x 'y\nb"), "Word:a LineComment:-- x 'y Word:b");
        assert_eq!(
            pg("/* a /* b */ c */ d"),
            "BlockComment:/* a /* b */ c */ Word:d"
        );
        assert_eq!(
            show("/* a /* b */ c */", SqlServer),
            "BlockComment:/* a /* b */ c */"
        );
        assert_eq!(
            show("/* a /* b */ c", Sqlite),
            "BlockComment:/* a /* b */ Word:c"
        );
        assert_eq!(pg("/*/ x */"), "BlockComment:/*/ x */");
        assert_eq!(pg("1-- c"), "Number:1 LineComment:-- c");
        // A carriage return ends a PostgreSQL comment: what follows it is SQL the server runs.
        assert_eq!(pg("--\rCOPY"), "LineComment:-- Word:COPY");
    }

    #[test]
    fn placeholders_and_casts() {
        assert_eq!(pg(":x::int"), "NamedParam::x Cast::: Word:int");
        assert_eq!(pg("a:::b"), "Word:a Cast::: Punct:: Word:b");
        assert_eq!(
            pg("a[lo: hi]"),
            "Word:a Punct:[ Word:lo Punct:: Word:hi Punct:]"
        );
        assert_eq!(
            pg("j ? 'k' ?| a"),
            "Word:j Punct:? String:'k' Punct:? Punct:| Word:a"
        );
        assert_eq!(show("? ?12", Sqlite), "QuestionParam:? QuestionParam:?12");
        let ms = show("@x @@ROWCOUNT #tmp ##g", SqlServer);
        assert_eq!(ms, "Variable:@x Variable:@@ROWCOUNT Word:#tmp Word:##g");
        assert_eq!(show("@x", Sqlite), "Variable:@x");
        assert_eq!(pg("a @> b"), "Word:a Punct:@ Punct:> Word:b");
    }

    #[test]
    fn numbers_and_punctuation() {
        assert_eq!(
            pg("1.5e-3 .5 0x1F 1_000"),
            "Number:1.5e-3 Number:.5 Number:0x1F Number:1_000"
        );
        assert_eq!(pg("0xe-1"), "Number:0xe Punct:- Number:1");
        // T-SQL: a literal ends where its digits do (found by fuzzing: `4SELECT 2`).
        assert_eq!(
            show("1.5e-3 .5 0x1F 4SELECT 1a 2e 3.x", SqlServer),
            "Number:1.5e-3 Number:.5 Number:0x1F Number:4 Word:SELECT Number:1 Word:a \
             Number:2 Word:e Number:3. Word:x"
        );
        assert_eq!(
            pg("t.c;()"),
            "Word:t Dot:. Word:c Semicolon:; LParen:( RParen:)"
        );
    }

    #[test]
    fn unterminated_reports_what_and_line() {
        let cases = [
            ("select\n'abc", Postgres, "string literal", 2),
            ("select\n\n\"abc", Postgres, "quoted identifier", 3),
            ("x /* a /* b */", Postgres, "block comment", 1),
            ("\n$q$ body $Q$", Postgres, "dollar-quoted string", 2),
            ("select E'\\'", Postgres, "string literal", 1),
            ("select [a", SqlServer, "bracketed identifier", 1),
            ("select `a", Sqlite, "backtick identifier", 1),
        ];
        for (sql, d, what, line) in cases {
            let err = tokenize(sql, d).unwrap_err();
            assert_eq!(err, SqlError::Unterminated { what, line }, "{sql}");
            assert!(err.to_string().contains(&format!("line {line}")));
        }
    }

    #[test]
    fn lexer_stops_after_error() {
        let mut lx = tokens("a 'b", Postgres);
        assert!(lx.next().unwrap().is_ok());
        assert!(lx.next().unwrap().is_ok());
        assert!(lx.next().unwrap().is_err());
        assert!(lx.next().is_none());
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 4), 3);
    }
}
