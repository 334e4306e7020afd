//! The query language of archival mode's `ore search` (docs/ARCHIVAL.md): terms on an object's
//! properties, combined with `and`, `or`, `not` and parentheses.
//!
//! ```text
//! query  := or
//! or     := and ("or" and)*
//! and    := not (["and"] not)*         two terms side by side mean both
//! not    := "not" not | atom
//! atom   := "(" query ")" | term
//! term   := KEY op VALUE | KEY ":" VALUE
//! op     := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"
//! ```
//!
//! Keys are case-insensitive (kept lower-cased); a value is a bare word or a double-quoted
//! string (`\"` and `\\` inside). What a value means — text, an integer, a date — is decided
//! when the query is run, by the type the tag records for its key, so the parser keeps the
//! value as written. A query that does not parse names the byte offset where it went wrong
//! and what was expected there, since queries are typed by hand and quoted by shells.
//!
//! Queries come from the command line, but also from scripts that build them: nesting is
//! bounded ([`MAX_DEPTH`]), so no input can exhaust the stack.

use thiserror::Error;

/// Parentheses and `not`s nested at most this deep.
pub const MAX_DEPTH: usize = 64;

/// How a term compares a property with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~`: the value is a word (or words) of the property.
    Words,
    /// `:`: the value is one of a list property's elements.
    Has,
}

/// One comparison of a property with a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// Lower-cased.
    pub key: String,
    pub op: Op,
    /// As written, without its quotes.
    pub value: String,
    /// Where the term starts in the query (a byte offset), for errors found when it is run.
    pub at: usize,
    /// Where its value starts (a byte offset), for errors in the value found when it is run.
    pub value_at: usize,
}

/// A parsed query. `and` and `or` hold all their operands side by side (two or more), so a
/// long flat query is a wide node, never a deep chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Every current object (`ore search TAG` without a query; no text parses to it).
    All,
    Term(Term),
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
}

/// Why a query does not parse: where, and what was expected there.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("at {at}: {what}")]
pub struct QueryError {
    /// A byte offset into the query.
    pub at: usize,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(Op),
    Open,
    Close,
}

/// Parses `text` into a query.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        depth: 0,
    };
    let q = p.or()?;
    match p.toks.get(p.pos) {
        None => Ok(q),
        Some((at, Tok::Close)) => Err(err(*at, "a `)` without its `(`")),
        Some((at, _)) => Err(err(*at, "expected `and`, `or` or the end of the query")),
    }
}

fn err(at: usize, what: impl Into<String>) -> QueryError {
    QueryError {
        at,
        what: what.into(),
    }
}

/// Whether `word` is a date followed by the start of a time: `YYYY-MM-DDTHH` or
/// `YYYY-MM-DDTHH:MM` (a year may have a sign).
fn time_so_far(word: &str) -> bool {
    let Some((date, time)) = word.split_once('T') else {
        return false;
    };
    let date = date.strip_prefix('-').unwrap_or(date);
    let parts: Vec<&str> = date.split('-').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let date_ok = parts.len() == 3 && parts.iter().all(|p| digits(p));
    let time_ok = match time.split_once(':') {
        None => time.len() == 2 && digits(time),
        Some((h, m)) => h.len() == 2 && m.len() == 2 && digits(h) && digits(m),
    };
    date_ok && time_ok
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, QueryError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let two = text[at..].get(..2);
        let op = match two {
            Some("!=") => Some((Op::Ne, 2)),
            Some("<=") => Some((Op::Le, 2)),
            Some(">=") => Some((Op::Ge, 2)),
            _ => match c {
                '=' => Some((Op::Eq, 1)),
                '<' => Some((Op::Lt, 1)),
                '>' => Some((Op::Gt, 1)),
                '~' => Some((Op::Words, 1)),
                ':' => Some((Op::Has, 1)),
                _ => None,
            },
        };
        if let Some((op, len)) = op {
            for _ in 0..len {
                chars.next();
            }
            out.push((at, Tok::Op(op)));
            continue;
        }
        match c {
            '(' | ')' => {
                chars.next();
                out.push((at, if c == '(' { Tok::Open } else { Tok::Close }));
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err(at, "a quoted value is not closed")),
                        Some((_, '"')) => break,
                        Some((e, '\\')) => match chars.next() {
                            Some((_, q @ ('"' | '\\'))) => s.push(q),
                            _ => return Err(err(e, "expected `\"` or `\\` after `\\`")),
                        },
                        Some((_, ch)) => s.push(ch),
                    }
                }
                out.push((at, Tok::Quoted(s)));
            }
            '!' => return Err(err(at, "expected `=` after `!`")),
            _ => {
                let mut s = String::new();
                while let Some(&(i, ch)) = chars.peek() {
                    // A date's time (`2010-05-03T10:30:00`) keeps its colons: one between
                    // digits, after the `T`, is no list operator.
                    let in_time = ch == ':'
                        && text[i + 1..].starts_with(|c: char| c.is_ascii_digit())
                        && time_so_far(&s);
                    if !in_time && (ch.is_whitespace() || "()\"=!<>~:".contains(ch)) {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push((at, Tok::Word(s)));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    /// The query's length: where "the end" is.
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(a, _)| *a)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Query, QueryError> {
        let mut all = vec![self.and()?];
        while self.keyword("or") {
            self.pos += 1;
            all.push(self.and()?);
        }
        Ok(one_or(all, Query::Or))
    }

    fn and(&mut self) -> Result<Query, QueryError> {
        let mut all = vec![self.not()?];
        loop {
            if self.keyword("and") {
                self.pos += 1;
            } else if self.keyword("or") || matches!(self.peek(), None | Some(Tok::Close)) {
                return Ok(one_or(all, Query::And));
            }
            all.push(self.not()?);
        }
    }

    fn not(&mut self) -> Result<Query, QueryError> {
        if self.keyword("not") {
            self.pos += 1;
            let q = self.deeper(|p| p.not())?;
            return Ok(Query::Not(Box::new(q)));
        }
        self.atom()
    }

    fn deeper(
        &mut self,
        f: impl FnOnce(&mut Parser) -> Result<Query, QueryError>,
    ) -> Result<Query, QueryError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(self.at(), format!("nested deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        let q = f(self);
        self.depth -= 1;
        q
    }

    fn atom(&mut self) -> Result<Query, QueryError> {
        let at = self.at();
        match self.peek().cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let q = self.deeper(|p| p.or())?;
                match self.peek() {
                    Some(Tok::Close) => {
                        self.pos += 1;
                        Ok(q)
                    }
                    _ => Err(err(
                        self.at(),
                        format!("expected `)` to close the `(` at {at}"),
                    )),
                }
            }
            Some(Tok::Word(key)) if ["and", "or"].iter().any(|w| key.eq_ignore_ascii_case(w)) => {
                Err(err(
                    at,
                    format!("expected a term: `{key}` joins terms, it is no property name"),
                ))
            }
            Some(Tok::Word(key)) => {
                self.pos += 1;
                let op_at = self.at();
                let Some(Tok::Op(op)) = self.peek().cloned() else {
                    return Err(err(
                        op_at,
                        format!("expected an operator (= != < <= > >= ~ :) after `{key}`"),
                    ));
                };
                self.pos += 1;
                let value_at = self.at();
                let value = match self.peek().cloned() {
                    Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => v,
                    _ => {
                        return Err(err(
                            self.at(),
                            format!("expected a value after `{}`", op_text(op)),
                        ))
                    }
                };
                self.pos += 1;
                Ok(Query::Term(Term {
                    key: key.to_lowercase(),
                    op,
                    value,
                    at,
                    value_at,
                }))
            }
            Some(Tok::Quoted(_)) => Err(err(at, "expected a property name, not a quoted value")),
            Some(Tok::Op(op)) => Err(err(
                at,
                format!("expected a property name before `{}`", op_text(op)),
            )),
            Some(Tok::Close) => Err(err(at, "expected a term before `)`")),
            None => Err(err(at, "expected a term")),
        }
    }
}

/// The one query of `all`, or all of them under `node`.
fn one_or(mut all: Vec<Query>, node: fn(Vec<Query>) -> Query) -> Query {
    match all.len() {
        1 => all.remove(0),
        _ => node(all),
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Words => "~",
        Op::Has => ":",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A term as written without spaces: its value right after its operator.
    fn term(key: &str, op: Op, value: &str, at: usize) -> Query {
        Query::Term(Term {
            key: key.into(),
            op,
            value: value.into(),
            at,
            value_at: at + key.len() + op_text(op).len(),
        })
    }

    #[test]
    fn terms_combine_with_and_binding_tighter_than_or() {
        let q = parse(r#"Creator=Bach or title~"sonata" and date>=2019-01-01"#).unwrap();
        assert_eq!(
            q,
            Query::Or(vec![
                term("creator", Op::Eq, "Bach", 0),
                Query::And(vec![
                    term("title", Op::Words, "sonata", 16),
                    term("date", Op::Ge, "2019-01-01", 35),
                ]),
            ])
        );
    }

    #[test]
    fn two_terms_side_by_side_mean_both_and_not_and_parentheses_nest() {
        let q = parse("tags:holiday not (type=video or size>1000000)").unwrap();
        let Query::And(both) = q else {
            panic!("not an and: {q:?}")
        };
        assert_eq!(both[0], term("tags", Op::Has, "holiday", 0));
        let Query::Not(inner) = &both[1] else {
            panic!("not a not: {both:?}")
        };
        assert!(
            matches!(**inner, Query::Or(ref v) if v.len() == 2),
            "{inner:?}"
        );
    }

    #[test]
    fn a_date_with_a_time_keeps_its_colons_unquoted() {
        // Found by a newcomer: the time's colons were read as list operators.
        for (text, value) in [
            ("date>=2010-05-03T00:00", "2010-05-03T00:00"),
            ("date<2010-05-03T10:30:59", "2010-05-03T10:30:59"),
            ("date=-0044-03-15T12:00", "-0044-03-15T12:00"),
        ] {
            let Query::Term(t) = parse(text).unwrap() else {
                panic!("{text}: not one term")
            };
            assert_eq!(t.value, value, "{text}");
        }
        // A colon elsewhere is still the list operator.
        let q = parse("tags:holiday and date>=2019-01-01").unwrap();
        let Query::And(both) = q else { panic!("{q:?}") };
        assert_eq!(both[0], term("tags", Op::Has, "holiday", 0));
    }

    #[test]
    fn quoted_values_keep_spaces_operators_and_escaped_quotes() {
        let q = parse(r#"title="a \"b\" = (c) \\ d""#).unwrap();
        assert_eq!(q, term("title", Op::Eq, r#"a "b" = (c) \ d"#, 0));
    }

    #[test]
    fn each_malformed_query_names_the_position_and_what_was_expected() {
        let cases: &[(&str, usize, &str)] = &[
            ("date>=", 6, "expected a value after `>=`"),
            ("creator Bach", 8, "expected an operator"),
            ("(a=1 or b=2", 11, "expected `)` to close the `(` at 0"),
            ("a=1)", 3, "a `)` without its `(`"),
            ("=1", 0, "expected a property name before `=`"),
            (r#"title="open"#, 6, "a quoted value is not closed"),
            ("a!1", 1, "expected `=` after `!`"),
            ("a=1 or", 6, "expected a term"),
            ("", 0, "expected a term"),
            ("not", 3, "expected a term"),
            (
                r#""x"=1"#,
                0,
                "expected a property name, not a quoted value",
            ),
            (r#"t="a\b""#, 4, "expected `\"` or `\\` after `\\`"),
        ];
        for (q, at, what) in cases {
            let e = parse(q).expect_err(q);
            assert_eq!(e.at, *at, "{q}: {e}");
            assert!(e.what.contains(what), "{q}: {e}");
        }
    }

    #[test]
    fn a_query_nested_past_the_limit_is_refused_not_a_stack_overflow() {
        let deep = format!("{}a=1{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = parse(&deep).unwrap_err();
        assert!(e.what.contains("nested deeper than"), "{e}");
        let nots = format!("{}a=1", "not ".repeat(100_000));
        assert!(parse(&nots).unwrap_err().what.contains("nested deeper"));
        let fine = format!("{}a=1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn a_query_that_starts_with_and_or_or_is_refused_at_that_word() {
        for q in ["and=1", "x=1 or OR=2", "(and:a)"] {
            let e = parse(q).expect_err(q);
            assert!(e.to_string().contains("joins terms"), "{q}: {e}");
        }
    }

    #[test]
    fn keywords_are_case_insensitive_and_a_long_flat_query_parses() {
        assert!(parse("a=1 AND b=2 Or NOT c=3").is_ok());
        let flat = vec!["k=v"; 50_000].join(" or ");
        assert!(matches!(parse(&flat), Ok(Query::Or(v)) if v.len() == 50_000));
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_names_a_position_inside_it(q in "[a-z0-9 ()\"\\=!<>~:é]{0,40}") {
            if let Err(e) = parse(&q) {
                proptest::prop_assert!(e.at <= q.len(), "{q:?}: {e}");
                proptest::prop_assert!(q.is_char_boundary(e.at), "{q:?}: {e}");
            }
        }
    }
}
