//! `.env` parsing, compatible with the python-dotenv files the seeds used.
//!
//! Accepted per line: `KEY=VALUE`, an optional `export ` prefix, blank lines, `#` comments
//! (whole lines, and after an unquoted value when the `#` follows whitespace, so `a#b` stays a
//! value), single-quoted values (literal: no escapes, no interpolation), double-quoted values (with
//! `\n \t \r \" \\ \' \a \b \f \v` escapes; other backslashes are kept, so Windows paths survive)
//! and quoted values spanning several lines. A bare `KEY` with no `=` is accepted and ignored, as
//! python-dotenv does. Anything else is an error naming the file and line.

use std::path::Path;

use super::ConfigError;

/// One assignment read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// `None` for a bare `KEY` line.
    pub value: Option<String>,
    /// Line (1-based) the key starts on.
    pub line: usize,
    /// Single-quoted values are taken literally: no `${VAR}` interpolation.
    pub literal: bool,
}

/// Parses the text of one `.env` file; `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, ConfigError> {
    // Quoted values may span lines; normalising CRLF first keeps `\r` out of them.
    let text = text.replace("\r\n", "\n");
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        path,
    };
    let mut entries = Vec::new();
    loop {
        p.skip_blank();
        match p.peek() {
            None => break,
            Some('\n') => {
                p.bump();
                continue;
            }
            Some('#') => {
                p.skip_to_eol();
                continue;
            }
            Some(_) => entries.push(p.statement()?),
        }
    }
    Ok(entries)
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    path: &'a Path,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces and tabs (not newlines); says whether anything was skipped.
    fn skip_blank(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn skip_to_eol(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.pos += 1;
        }
    }

    fn error(&self, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            path: self.path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    fn statement(&mut self) -> Result<Entry, ConfigError> {
        let line = self.line;
        if self.starts_with("export") && matches!(self.peek_at(6), Some(' ' | '\t')) {
            self.pos += 6;
            self.skip_blank();
        }
        let key = self.key()?;
        self.skip_blank();
        match self.peek() {
            None | Some('\n') | Some('#') => {
                self.skip_to_eol();
                return Ok(Entry {
                    key,
                    value: None,
                    line,
                    literal: false,
                });
            }
            Some('=') => {
                self.bump();
            }
            Some(_) => {
                return Err(self.error(line, format!("expected '=' after key '{key}'")));
            }
        }
        let spaced = self.skip_blank();
        let (value, literal) = match self.peek() {
            Some('\'') => (self.single_quoted()?, true),
            Some('"') => (self.double_quoted()?, false),
            _ => (self.unquoted(spaced), false),
        };
        Ok(Entry {
            key,
            value: Some(value),
            line,
            literal,
        })
    }

    fn starts_with(&self, word: &str) -> bool {
        word.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn key(&mut self) -> Result<String, ConfigError> {
        let line = self.line;
        if self.peek() == Some('\'') {
            // python-dotenv allows single-quoted keys.
            self.bump();
            let mut key = String::new();
            loop {
                match self.bump() {
                    Some('\'') => break,
                    Some('\n') | None => {
                        return Err(self.error(line, "unterminated single-quoted key"));
                    }
                    Some(c) => key.push(c),
                }
            }
            if key.is_empty() {
                return Err(self.error(line, "empty key"));
            }
            return Ok(key);
        }
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == '=' || c == '#' {
                break;
            }
            key.push(c);
            self.pos += 1;
        }
        if key.is_empty() {
            return Err(self.error(line, "expected a key before '='"));
        }
        Ok(key)
    }

    /// After a closing quote only blanks and a comment may follow on that line.
    fn end_of_quoted(&mut self, line: usize) -> Result<(), ConfigError> {
        self.skip_blank();
        match self.peek() {
            None | Some('\n') => Ok(()),
            Some('#') => {
                self.skip_to_eol();
                Ok(())
            }
            Some(_) => Err(self.error(line, "unexpected text after the closing quote")),
        }
    }

    fn single_quoted(&mut self) -> Result<String, ConfigError> {
        let open_line = self.line;
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('\'') => break,
                Some(c) => value.push(c),
                None => {
                    return Err(self.error(open_line, "unterminated single-quoted value"));
                }
            }
        }
        let line = self.line;
        self.end_of_quoted(line)?;
        Ok(value)
    }

    fn double_quoted(&mut self) -> Result<String, ConfigError> {
        let open_line = self.line;
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('"') => break,
                Some('\\') => match self.peek() {
                    Some(e @ ('n' | 't' | 'r' | '"' | '\\' | '\'' | 'a' | 'b' | 'f' | 'v')) => {
                        self.bump();
                        value.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'a' => '\u{7}',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            'v' => '\u{b}',
                            other => other,
                        });
                    }
                    // Unknown escapes stay as written (python-dotenv does the same), which
                    // keeps `"C:\data\x.db"` intact.
                    _ => value.push('\\'),
                },
                Some(c) => value.push(c),
                None => {
                    return Err(self.error(open_line, "unterminated double-quoted value"));
                }
            }
        }
        let line = self.line;
        self.end_of_quoted(line)?;
        Ok(value)
    }

    fn unquoted(&mut self, spaced_before: bool) -> String {
        let mut value = String::new();
        let mut prev_blank = spaced_before;
        while let Some(c) = self.peek() {
            if c == '\n' || (c == '#' && prev_blank) {
                break;
            }
            prev_blank = c == ' ' || c == '\t';
            value.push(c);
            self.pos += 1;
        }
        self.skip_to_eol();
        value.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<(String, Option<String>, usize, bool)> {
        parse(text, Path::new("test.env"))
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.line, e.literal))
            .collect()
    }

    fn values(text: &str) -> Vec<(String, String)> {
        parse_ok(text)
            .into_iter()
            .map(|(k, v, _, _)| (k, v.unwrap()))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn plain_export_and_comments() {
        let text = "# header\n\nA=1\nexport B = two words  \nC=x # trailing\nD=a#b\nE=\nF= # only comment\n  # indented comment\n";
        assert_eq!(
            values(text),
            vec![
                pair("A", "1"),
                pair("B", "two words"),
                pair("C", "x"),
                pair("D", "a#b"),
                pair("E", ""),
                pair("F", ""),
            ]
        );
    }

    #[test]
    fn export_is_a_key_when_not_a_prefix() {
        assert_eq!(values("export=1\n"), vec![pair("export", "1")]);
    }

    #[test]
    fn single_quotes_are_literal() {
        let got = parse_ok("P='a\\nb ${X} # not comment' # comment\n");
        assert_eq!(
            got,
            vec![("P".into(), Some("a\\nb ${X} # not comment".into()), 1, true)]
        );
    }

    #[test]
    fn double_quote_escapes() {
        assert_eq!(
            values(r#"Q="line1\nline2 \"quoted\" back\\slash C:\data\x""#),
            vec![pair("Q", "line1\nline2 \"quoted\" back\\slash C:\\data\\x")]
        );
    }

    #[test]
    fn multi_line_values_keep_line_numbers() {
        let got = parse_ok("A=\"first\nsecond\"\nB='x\ny'\nC=3\n");
        assert_eq!(got[0], ("A".into(), Some("first\nsecond".into()), 1, false));
        assert_eq!(got[1], ("B".into(), Some("x\ny".into()), 3, true));
        assert_eq!(got[2], ("C".into(), Some("3".into()), 5, false));
    }

    #[test]
    fn crlf_files() {
        assert_eq!(
            values("A=1\r\nB=\"x\r\ny\"\r\n"),
            vec![pair("A", "1"), pair("B", "x\ny")]
        );
    }

    #[test]
    fn bare_key_has_no_value() {
        assert_eq!(
            parse_ok("LONELY\n"),
            vec![("LONELY".into(), None, 1, false)]
        );
    }

    fn error_text(text: &str) -> String {
        parse(text, Path::new("conf/.env")).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = error_text("A=1\n\nB C\n");
        assert!(e.contains("conf/.env:3"), "{e}");
        assert!(e.contains("expected '='"), "{e}");

        let e = error_text("A=1\nB=\"never closed\nC=2\n");
        assert!(e.contains("conf/.env:2"), "{e}");
        assert!(e.contains("unterminated double-quoted"), "{e}");

        let e = error_text("A='x' y\n");
        assert!(
            e.contains("conf/.env:1") && e.contains("after the closing quote"),
            "{e}"
        );

        let e = error_text("A=1\n=2\n");
        assert!(
            e.contains("conf/.env:2") && e.contains("expected a key"),
            "{e}"
        );
    }
}
