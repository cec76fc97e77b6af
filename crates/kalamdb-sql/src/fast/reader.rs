//! Literal INSERTs read without sqlparser's AST: from the SQL text ([`from_text`], strictest)
//! or from the tokens ([`from_tokens`]); both take only the exact shape and hand anything
//! else to the next reader (ADR 0006).

use sqlparser::ast::{Ident, ObjectName};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use super::literals::{number, Lit, LiteralRows};

/// Recognise `INSERT INTO name [(col, ...)] VALUES (literal, ...), ... [;]` straight from the
/// tokens, without building sqlparser's AST: for a 1,000-row INSERT, parsing spent a third
/// of the server's CPU (every value first tried as a type name, each failed try formatting
/// an error message). Only the exact shape is taken — anything else, a comment included,
/// returns `None` and goes through the parser and [`from_ast`] (or planning), so what is
/// accepted, refused and how it is written does not change.
pub fn from_tokens(tokens: &[TokenWithSpan]) -> Option<LiteralRows<'_>> {
    let comment = |t: &TokenWithSpan| {
        matches!(
            t.token,
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
            )
        )
    };
    if tokens.iter().any(comment) {
        return None; // maybe an optimizer hint
    }
    read_shape(Tokens { tokens, i: 0 })
}

/// Unquoted words sqlparser reads as keywords right after `INSERT INTO` (`INSERT INTO TABLE
/// t`, `INSERT INTO FUNCTION f`, `INSERT INTO LOCAL DIRECTORY '...'`), never as a table name.
const SPECIAL_AFTER_INTO: &[&str] = &["TABLE", "FUNCTION", "LOCAL", "DIRECTORY"];

/// The same shape as [`from_tokens`], read from the SQL text without tokenizing it: with the
/// AST gone, sqlparser's tokenizer (a `Token` with a location and an owned `String` per value)
/// was 39% of the server's CPU in batched ingest. Stricter than [`from_tokens`] — ASCII
/// identifiers, strings without `''` or backslashes, plain decimal numbers, no comments —
/// and `None` for anything else, which then takes the tokenizer path. A proptest holds it
/// to the token reader's answer on every statement it accepts.
pub fn from_text(sql: &str) -> Option<LiteralRows<'_>> {
    read_shape(Text { sql, i: 0 })
}

/// Punctuation of the statement shape.
#[derive(Clone, Copy)]
enum Punct {
    Dot,
    LParen,
    RParen,
    Comma,
}

/// What [`read_shape`] needs from a reader: the text reader and the token reader differ only
/// in how they see words, literals and punctuation.
trait Cursor<'a> {
    /// An unquoted word equal to `k` (upper case).
    fn keyword(&mut self, k: &str) -> Option<()>;
    fn identifier(&mut self) -> Option<Ident>;
    fn eat(&mut self, p: Punct) -> bool;
    /// After a part of the table name: `Some(true)` when a `.` follows (another part comes),
    /// `Some(false)` when not, `None` when the statement is better left to the next reader.
    fn name_dot(&mut self) -> Option<bool> {
        Some(self.eat(Punct::Dot))
    }
    fn literal(&mut self) -> Option<Lit<'a>>;
    /// Nothing but `;` is left.
    fn at_end(&mut self) -> bool;
}

/// `INSERT INTO name [(col, ...)] VALUES (literal, ...), ... [;]`, or `None`.
fn read_shape<'a>(mut t: impl Cursor<'a>) -> Option<LiteralRows<'a>> {
    t.keyword("INSERT")?;
    t.keyword("INTO")?;
    let first = t.identifier()?;
    if first.quote_style.is_none()
        && SPECIAL_AFTER_INTO
            .iter()
            .any(|k| first.value.eq_ignore_ascii_case(k))
    {
        return None;
    }
    let mut parts = vec![first];
    while t.name_dot()? {
        parts.push(t.identifier()?);
    }
    let mut columns = Vec::new();
    if t.eat(Punct::LParen) {
        loop {
            let col = t.identifier()?;
            if col.quote_style.is_none()
                && ["SELECT", "WITH", "VALUES"]
                    .iter()
                    .any(|k| col.value.eq_ignore_ascii_case(k))
            {
                return None; // a subquery, not a column list
            }
            columns.push(ObjectName::from(vec![col]));
            if t.eat(Punct::Comma) {
                continue;
            }
            if t.eat(Punct::RParen) {
                break;
            }
            return None;
        }
    }
    t.keyword("VALUES")?;
    let mut values = Vec::new();
    let mut width = None;
    loop {
        if !t.eat(Punct::LParen) {
            return None;
        }
        let start = values.len();
        loop {
            values.push(t.literal()?);
            if t.eat(Punct::Comma) {
                continue;
            }
            if t.eat(Punct::RParen) {
                break;
            }
            return None;
        }
        let n = values.len() - start;
        if *width.get_or_insert(n) != n {
            return None;
        }
        if !t.eat(Punct::Comma) {
            break;
        }
    }
    if !t.at_end() {
        return None;
    }
    Some(LiteralRows {
        name: ObjectName::from(parts),
        columns,
        width: width?,
        values: Some(values),
    })
}

/// A cursor over SQL text for [`from_text`].
struct Text<'a> {
    sql: &'a str,
    i: usize,
}

impl<'a> Text<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.sql.as_bytes()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.bytes().get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat_byte(&mut self, c: u8) -> bool {
        self.skip_blanks();
        if self.bytes().get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// An unquoted ASCII word `[A-Za-z_][A-Za-z0-9_]*`, not followed by anything the
    /// tokenizer would take as part of a word.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_blanks();
        let b = self.bytes();
        let start = self.i;
        if !matches!(b.get(start), Some(c) if c.is_ascii_alphabetic() || *c == b'_') {
            return None;
        }
        let mut end = start + 1;
        while matches!(b.get(end), Some(c) if c.is_ascii_alphanumeric() || *c == b'_') {
            end += 1;
        }
        if matches!(b.get(end), Some(c) if *c >= 0x80 || matches!(c, b'#' | b'@' | b'$' | b'\'' | b'"'))
        {
            return None;
        }
        self.i = end;
        Some(&self.sql[start..end])
    }

    fn read_identifier(&mut self) -> Option<Ident> {
        self.skip_blanks();
        if self.bytes().get(self.i) != Some(&b'"') {
            return Some(Ident::new(self.word()?));
        }
        let start = self.i + 1;
        let len = self.sql[start..].find('"')?;
        let end = start + len;
        if self.bytes().get(end + 1) == Some(&b'"') || len == 0 {
            return None; // an escaped quote, or an empty name
        }
        self.i = end + 1;
        Some(Ident::with_quote('"', &self.sql[start..end]))
    }

    /// Only literals followed by `,` or `)` (checked by the caller) are taken.
    fn read_literal(&mut self) -> Option<Lit<'a>> {
        self.skip_blanks();
        let b = self.bytes();
        match b.get(self.i)? {
            b'\'' => {
                let start = self.i + 1;
                let len = self.sql[start..].find('\'')?;
                let end = start + len;
                let s = &self.sql[start..end];
                if self.bytes().get(end + 1) == Some(&b'\'') || s.contains('\\') {
                    return None;
                }
                self.i = end + 1;
                Some(Lit::Str(s))
            }
            b'-' => {
                self.i += 1;
                self.skip_blanks();
                let n = self.number()?;
                number(n, true)
            }
            b'0'..=b'9' => {
                let n = self.number()?;
                number(n, false)
            }
            _ => match self.word()?.to_ascii_uppercase().as_str() {
                "NULL" => Some(Lit::Null),
                "TRUE" => Some(Lit::Bool(true)),
                "FALSE" => Some(Lit::Bool(false)),
                _ => None,
            },
        }
    }

    /// `[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)?`, followed by a blank, `,` or `)`.
    fn number(&mut self) -> Option<&'a str> {
        let b = self.bytes();
        let start = self.i;
        let digits = |mut i: usize| {
            let from = i;
            while matches!(b.get(i), Some(c) if c.is_ascii_digit()) {
                i += 1;
            }
            (i > from).then_some(i)
        };
        let mut end = digits(start)?;
        if b.get(end) == Some(&b'.') {
            end = digits(end + 1)?;
        }
        if matches!(b.get(end), Some(b'e' | b'E')) {
            let mut e = end + 1;
            if matches!(b.get(e), Some(b'+' | b'-')) {
                e += 1;
            }
            end = digits(e)?;
        }
        if !matches!(b.get(end), Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b')')) {
            return None;
        }
        self.i = end;
        Some(&self.sql[start..end])
    }
}

impl<'a> Cursor<'a> for Text<'a> {
    fn keyword(&mut self, k: &str) -> Option<()> {
        self.word()?.eq_ignore_ascii_case(k).then_some(())
    }

    fn identifier(&mut self) -> Option<Ident> {
        self.read_identifier()
    }

    fn eat(&mut self, p: Punct) -> bool {
        self.eat_byte(match p {
            Punct::Dot => b'.',
            Punct::LParen => b'(',
            Punct::RParen => b')',
            Punct::Comma => b',',
        })
    }

    /// `ns.t` only: the tokenizer reads a `.` after whitespace differently (`ns ._t` fails).
    fn name_dot(&mut self) -> Option<bool> {
        let blank = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t' | b'\n' | b'\r'));
        if blank(self.bytes().get(self.i)) {
            return if self.eat_byte(b'.') {
                None
            } else {
                Some(false)
            };
        }
        if self.bytes().get(self.i) != Some(&b'.') {
            return Some(false);
        }
        self.i += 1;
        if blank(self.bytes().get(self.i)) {
            return None;
        }
        Some(true)
    }

    fn literal(&mut self) -> Option<Lit<'a>> {
        self.read_literal()
    }

    fn at_end(&mut self) -> bool {
        while self.eat_byte(b';') {}
        self.skip_blanks();
        self.i == self.sql.len()
    }
}

/// A cursor over tokens that skips whitespace.
struct Tokens<'a> {
    tokens: &'a [TokenWithSpan],
    i: usize,
}

impl<'a> Tokens<'a> {
    fn peek(&mut self) -> Option<&'a Token> {
        while matches!(
            self.tokens.get(self.i),
            Some(TokenWithSpan {
                token: Token::Whitespace(_),
                ..
            })
        ) {
            self.i += 1;
        }
        self.tokens.get(self.i).map(|t| &t.token)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.peek()?;
        self.i += 1;
        Some(t)
    }
}

impl<'a> Cursor<'a> for Tokens<'a> {
    fn keyword(&mut self, k: &str) -> Option<()> {
        match self.next()? {
            Token::Word(w)
                if w.quote_style.is_none()
                    && w.keyword != Keyword::NoKeyword
                    && w.value.eq_ignore_ascii_case(k) =>
            {
                Some(())
            }
            _ => None,
        }
    }

    fn eat(&mut self, p: Punct) -> bool {
        let want = match p {
            Punct::Dot => Token::Period,
            Punct::LParen => Token::LParen,
            Punct::RParen => Token::RParen,
            Punct::Comma => Token::Comma,
        };
        if self.peek() == Some(&want) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&mut self) -> bool {
        while let Some(tok) = self.next() {
            if !matches!(tok, Token::SemiColon | Token::EOF) {
                return false;
            }
        }
        true
    }

    fn identifier(&mut self) -> Option<Ident> {
        match self.next()? {
            Token::Word(w) if matches!(w.quote_style, None | Some('"')) => Some(Ident {
                value: w.value.clone(),
                quote_style: w.quote_style,
                span: sqlparser::tokenizer::Span::empty(),
            }),
            _ => None,
        }
    }

    fn literal(&mut self) -> Option<Lit<'a>> {
        match self.next()? {
            Token::Number(n, false) => number(n, false),
            Token::Minus => match self.next()? {
                Token::Number(n, false) => number(n, true),
                _ => None,
            },
            Token::SingleQuotedString(s) => Some(Lit::Str(s)),
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::NULL => Some(Lit::Null),
                Keyword::TRUE => Some(Lit::Bool(true)),
                Keyword::FALSE => Some(Lit::Bool(false)),
                _ => None,
            },
            _ => None,
        }
    }
}
