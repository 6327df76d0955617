//! Turning a one-row `INSERT ... VALUES (...)` into a many-row one, so a batch of parameter
//! sets travels to the server as one statement instead of one round trip per row (what
//! SQLAlchemy calls "insertmanyvalues").
//!
//! Works on SQL that has already been rewritten for its backend, whose placeholders are all
//! numbered (`$n`, `?n`, `@Pn`): the row's placeholders are renumbered per copy of the row.

use std::fmt::Write;

use super::Backend;
use super::lexer::{Token, TokenKind, tokenize};

/// A single-row INSERT split around its row, ready to be repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesTemplate {
    head: String,
    row: Vec<Piece>,
    tail: String,
    params_per_row: usize,
    /// The row uses each placeholder once, in order 1..=n: SQLite may then use anonymous `?`.
    sequential: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A placeholder, by its 1-based number within one row.
    Param(usize),
}

impl ValuesTemplate {
    /// The template of `sql` if it is an `INSERT ... VALUES (row)` with exactly one row and
    /// every placeholder inside that row; `None` for anything else (which then runs row by row).
    pub fn parse(sql: &str, dialect: Backend) -> Option<ValuesTemplate> {
        let tokens = tokenize(sql, dialect).ok()?;
        let significant: Vec<&Token> = tokens.iter().filter(|t| !t.is_trivia()).collect();
        if !significant.first()?.is_word(sql, "INSERT") {
            return None;
        }
        let mut depth = 0usize;
        let mut values_at = None;
        for (i, t) in significant.iter().enumerate() {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.checked_sub(1)?,
                _ if depth == 0 && t.is_word(sql, "VALUES") => {
                    values_at = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let open = *significant.get(values_at? + 1)?;
        if open.kind != TokenKind::LParen {
            return None;
        }
        let open_index = significant.iter().position(|t| std::ptr::eq(*t, open))?;
        let mut depth = 0usize;
        let mut close_index = None;
        for (i, t) in significant.iter().enumerate().skip(open_index) {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close_index = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = *significant.get(close_index?)?;
        if significant
            .get(close_index? + 1)
            .is_some_and(|t| t.kind == TokenKind::Punct && t.text(sql) == ",")
        {
            return None; // already several rows
        }

        let mut row = Vec::new();
        let mut text_start = open.start;
        let mut params_per_row = 0;
        for t in &tokens {
            let Some(number) = placeholder_number(t, sql, dialect) else {
                continue;
            };
            if t.start < open.start || t.end > close.end {
                return None; // a placeholder outside the row would need a value per row
            }
            row.push(Piece::Text(sql[text_start..t.start].to_owned()));
            row.push(Piece::Param(number));
            params_per_row = params_per_row.max(number);
            text_start = t.end;
        }
        row.push(Piece::Text(sql[text_start..close.end].to_owned()));
        let numbers: Vec<usize> = row
            .iter()
            .filter_map(|p| match p {
                Piece::Param(n) => Some(*n),
                Piece::Text(_) => None,
            })
            .collect();
        let sequential = numbers.iter().enumerate().all(|(i, n)| *n == i + 1);
        Some(ValuesTemplate {
            head: sql[..open.start].to_owned(),
            row,
            tail: sql[close.end..].to_owned(),
            params_per_row,
            sequential,
        })
    }

    /// For a row that is exactly its placeholders in order, `($1, $2, ..., $n)`: the statement
    /// before `VALUES`, the number of columns, and what follows the row. Such rows can travel
    /// as one array per column (`SELECT * FROM UNNEST(...)`) instead of as VALUES rows.
    pub fn plain_row(&self) -> Option<(&str, usize, &str)> {
        let n = self.params_per_row;
        if !self.sequential || n == 0 || self.row.len() != 2 * n + 1 {
            return None;
        }
        let last = self.row.len() - 1;
        for (i, piece) in self.row.iter().enumerate() {
            if let Piece::Text(text) = piece {
                let expected = match i {
                    0 => "(",
                    i if i == last => ")",
                    _ => ",",
                };
                if text.trim() != expected {
                    return None;
                }
            }
        }
        let head = self.head.trim_end();
        let cut = head.len().checked_sub("VALUES".len())?;
        let keyword = head.get(cut..)?;
        let before = &head[..cut];
        let separated = before.ends_with(|c: char| c.is_whitespace() || c == ')');
        (keyword.eq_ignore_ascii_case("VALUES") && separated).then_some((before, n, &self.tail))
    }

    /// How many parameters one row binds.
    pub fn params_per_row(&self) -> usize {
        self.params_per_row
    }

    /// The statement inserting `rows` rows; row k's placeholders are numbered after row k-1's.
    pub fn render(&self, rows: usize, dialect: Backend) -> String {
        let mut out = String::with_capacity(self.head.len() + self.tail.len() + rows * 16);
        out.push_str(&self.head);
        for k in 0..rows {
            if k > 0 {
                out.push_str(", ");
            }
            for piece in &self.row {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    // SQLite looks a numbered parameter's name up by a linear scan, so thousands
                    // of `?NNN` make binding quadratic (measured: 15x slower at 3000); anonymous
                    // `?` bind positionally and mean the same when the row is sequential.
                    Piece::Param(_) if dialect == Backend::Sqlite && self.sequential => {
                        out.push('?')
                    }
                    Piece::Param(n) => {
                        let prefix = match dialect {
                            Backend::Postgres => "$",
                            Backend::Sqlite => "?",
                            Backend::SqlServer => "@P",
                        };
                        let _ = write!(out, "{prefix}{}", n + k * self.params_per_row);
                    }
                }
            }
        }
        out.push_str(&self.tail);
        out
    }
}

/// The number of a rewritten placeholder (`$3`, `?3`, `@P3`).
fn placeholder_number(t: &Token, sql: &str, dialect: Backend) -> Option<usize> {
    let text = t.text(sql);
    match (dialect, t.kind) {
        (Backend::Postgres, TokenKind::PositionalParam) => text[1..].parse().ok(),
        (Backend::Sqlite, TokenKind::QuestionParam) => text[1..].parse().ok(),
        (Backend::SqlServer, TokenKind::Variable) => text.strip_prefix("@P")?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_row_insert_repeats_with_renumbered_placeholders() {
        let sql = "INSERT INTO t (a, b) VALUES ($1, $2::int) ON CONFLICT (a) DO NOTHING";
        let t = ValuesTemplate::parse(sql, Backend::Postgres).unwrap();
        assert_eq!(t.params_per_row(), 2);
        assert_eq!(t.render(1, Backend::Postgres), sql);
        assert_eq!(
            t.render(3, Backend::Postgres),
            "INSERT INTO t (a, b) VALUES ($1, $2::int), ($3, $4::int), ($5, $6::int) ON CONFLICT (a) DO NOTHING"
        );
    }

    #[test]
    fn sqlite_sequential_rows_use_anonymous_placeholders() {
        let t = ValuesTemplate::parse("insert into t values (?1, ?2)", Backend::Sqlite).unwrap();
        assert_eq!(
            t.render(2, Backend::Sqlite),
            "insert into t values (?, ?), (?, ?)"
        );
    }

    #[test]
    fn sqlite_numbered_placeholders_and_reused_names() {
        let sql = "insert into t values (?1, ?2, ?1)";
        let t = ValuesTemplate::parse(sql, Backend::Sqlite).unwrap();
        assert_eq!(
            t.render(2, Backend::Sqlite),
            "insert into t values (?1, ?2, ?1), (?3, ?4, ?3)"
        );
    }

    #[test]
    fn nested_parentheses_and_literals_inside_the_row_are_kept() {
        let sql = "INSERT INTO t VALUES (lower($1), '($2)', (SELECT 1))";
        let t = ValuesTemplate::parse(sql, Backend::Postgres).unwrap();
        assert_eq!(
            t.render(2, Backend::Postgres),
            "INSERT INTO t VALUES (lower($1), '($2)', (SELECT 1)), (lower($2), '($2)', (SELECT 1))"
        );
    }

    #[test]
    fn statements_that_cannot_be_repeated_are_left_alone() {
        for sql in [
            "UPDATE t SET a = $1",
            "INSERT INTO t SELECT $1",
            "INSERT INTO t VALUES ($1), ($2)",
            "INSERT INTO t VALUES ($1) ON CONFLICT (a) DO UPDATE SET b = $2",
            "WITH x AS (SELECT $1) INSERT INTO t VALUES ($2)",
        ] {
            assert_eq!(ValuesTemplate::parse(sql, Backend::Postgres), None, "{sql}");
        }
    }

    #[test]
    fn a_row_without_placeholders_repeats_as_is() {
        let t = ValuesTemplate::parse("INSERT INTO t VALUES (1)", Backend::Sqlite).unwrap();
        assert_eq!(t.params_per_row(), 0);
        assert_eq!(
            t.render(2, Backend::Sqlite),
            "INSERT INTO t VALUES (1), (1)"
        );
    }

    #[test]
    fn only_a_row_of_its_placeholders_in_order_travels_as_arrays() {
        let plain = |sql: &str| {
            ValuesTemplate::parse(sql, Backend::Postgres).and_then(|t| {
                t.plain_row()
                    .map(|(h, n, tail)| (h.to_owned(), n, tail.to_owned()))
            })
        };
        assert_eq!(
            plain("INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO NOTHING"),
            Some((
                "INSERT INTO t (a, b) ".to_owned(),
                2,
                " ON CONFLICT (a) DO NOTHING".to_owned()
            ))
        );
        assert_eq!(
            plain("insert into t values($1)"),
            Some(("insert into t ".to_owned(), 1, String::new()))
        );
        for other in [
            "INSERT INTO t (a, b) VALUES ($2, $1)",
            "INSERT INTO t (a, b) VALUES ($1, now())",
            "INSERT INTO t (a, b) VALUES ($1, $1)",
            "INSERT INTO t (a, b) VALUES ($1, lower($2))",
            "INSERT INTO t (a) VALUES (1)",
        ] {
            assert_eq!(plain(other), None, "{other}");
        }
    }
}
