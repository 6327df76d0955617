//! `sql::rewrite` for every dialect. Beyond not panicking: unless the statement had no
//! portable placeholders (then the text is returned unchanged), the output lexes in the same
//! dialect into the same significant tokens as the input (rewriting may add whitespace), with
//! one backend placeholder per portable one, numbered up to the count the caller is told to bind.
#![no_main]

use flowhost::sql::{Backend, Placeholders, Token, TokenKind, rewrite, tokenize};
use libfuzzer_sys::fuzz_target;

const DIALECTS: [Backend; 3] = [Backend::Postgres, Backend::Sqlite, Backend::SqlServer];

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let sql = String::from_utf8_lossy(data);
    for d in DIALECTS {
        let Ok(out) = rewrite(&sql, d) else {
            continue;
        };
        let unchanged = matches!(out.placeholders, Placeholders::None)
            || (d == Backend::Postgres && matches!(out.placeholders, Placeholders::Positional(_)));
        if unchanged {
            assert_eq!(out.sql, *sql, "{d:?}: text changed without placeholders");
            continue;
        }
        let significant = |toks: Vec<Token>| toks.into_iter().filter(|t| !t.is_trivia());
        let before: Vec<Token> =
            significant(tokenize(&sql, d).expect("rewrite accepted text the lexer refuses"))
                .collect();
        let after: Vec<Token> = significant(
            tokenize(&out.sql, d)
                .unwrap_or_else(|e| panic!("{d:?}: rewritten SQL does not lex: {e}\n{}", out.sql)),
        )
        .collect();
        assert_eq!(
            before.len(),
            after.len(),
            "{d:?}: rewriting changed the significant token count\nin:  {sql:?}\nout: {:?}",
            out.sql
        );
        let expected = match &out.placeholders {
            Placeholders::Named(names) => names.len(),
            Placeholders::Positional(n) => *n,
            Placeholders::None => unreachable!(),
        };
        let mut highest = 0;
        for (b, a) in before.iter().zip(&after) {
            let portable = matches!(b.kind, TokenKind::NamedParam | TokenKind::PositionalParam);
            if !portable {
                assert_eq!(
                    b.kind, a.kind,
                    "{d:?}: a non-placeholder token changed kind"
                );
                assert_eq!(
                    b.text(&sql),
                    a.text(&out.sql),
                    "{d:?}: a token's text changed"
                );
                continue;
            }
            let text = a.text(&out.sql);
            let (kind, prefix) = match d {
                Backend::Postgres => (TokenKind::PositionalParam, "$"),
                Backend::Sqlite => (TokenKind::QuestionParam, "?"),
                Backend::SqlServer => (TokenKind::Variable, "@P"),
            };
            assert_eq!(
                a.kind, kind,
                "{d:?}: placeholder became {:?}: {text:?}",
                a.kind
            );
            let n: usize = text
                .strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{d:?}: bad placeholder {text:?}"));
            assert!(n >= 1, "{d:?}: placeholder {text:?}");
            highest = highest.max(n);
        }
        assert_eq!(
            highest, expected,
            "{d:?}: placeholders do not match {:?}",
            out.placeholders
        );
    }
});
