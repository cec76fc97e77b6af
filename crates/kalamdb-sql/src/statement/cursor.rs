//! A cursor over a statement's tokens (whitespace dropped), with the small matchers the
//! statement parser is written in.

use kalamdb_core::{Error, Result};
use sqlparser::tokenizer::Token;

use super::ast::TableName;

pub(crate) struct Cursor {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
}

impl Cursor {
    pub(super) fn new(tokens: Vec<Token>) -> Cursor {
        let tokens = tokens
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        Cursor { tokens, pos: 0 }
    }

    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    pub(super) fn peek_word_upper_at(&self, offset: usize) -> Option<String> {
        match self.tokens.get(self.pos + offset) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    pub(super) fn peek_word_upper(&self) -> Option<String> {
        self.peek_word_upper_at(0)
    }

    pub(super) fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    pub(super) fn found(&self) -> String {
        match self.peek() {
            None => "end of statement".to_string(),
            Some(t) => format!("'{}'", kalamdb_core::truncate_for_message(&t.to_string())),
        }
    }

    pub(super) fn error<T>(&self, expected: &str) -> Result<T> {
        Err(Error::invalid_sql(format!(
            "expected {expected}, found {}",
            self.found()
        )))
    }

    pub(super) fn is_kw(&self, kw: &str) -> bool {
        self.peek_word_upper().as_deref() == Some(kw)
    }

    pub(super) fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn eat_kws(&mut self, kws: &[&str]) -> bool {
        let all = kws
            .iter()
            .enumerate()
            .all(|(i, k)| self.peek_word_upper_at(i).as_deref() == Some(*k));
        if all {
            self.pos += kws.len();
        }
        all
    }

    pub(super) fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.error(kw)
        }
    }

    pub(super) fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, t: &Token) -> Result<()> {
        if self.eat(t) {
            Ok(())
        } else {
            self.error(&format!("'{t}'"))
        }
    }

    /// An identifier: unquoted ones are lower-cased, quoted ones kept as written.
    pub(super) fn ident(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let v = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                self.pos += 1;
                Ok(v)
            }
            _ => self.error(what),
        }
    }

    pub(super) fn table_name(&mut self) -> Result<TableName> {
        let first = self.ident("a table name")?;
        if self.eat(&Token::Period) {
            let name = self.ident("a table name after '.'")?;
            Ok(TableName {
                namespace: Some(first),
                name,
            })
        } else {
            Ok(TableName {
                namespace: None,
                name: first,
            })
        }
    }

    /// A quoted string, or a bare word (user names may be written either way).
    pub(super) fn string_or_word(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            Some(Token::Word(w)) => {
                let s = w.value.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => self.error(what),
        }
    }

    pub(super) fn string(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => self.error(what),
        }
    }

    pub(super) fn number(&mut self, what: &str) -> Result<u64> {
        match self.peek() {
            Some(Token::Number(n, _)) => {
                let v = n
                    .parse::<u64>()
                    .map_err(|_| Error::invalid_sql(format!("invalid number '{n}'")))?;
                self.pos += 1;
                Ok(v)
            }
            _ => self.error(what),
        }
    }

    pub(super) fn expect_end(&mut self) -> Result<()> {
        while self.eat(&Token::SemiColon) {}
        if self.peek().is_none() || self.peek() == Some(&Token::EOF) {
            Ok(())
        } else {
            self.error("end of statement")
        }
    }
}
