//! The fast path for `INSERT INTO t [(cols)] VALUES (literals), ...`.
//!
//! Planning a VALUES list through DataFusion (one `Expr` per value, type coercion, the
//! optimizer's passes over every expression) cost more than everything else on the write path
//! together: a 1,000-row INSERT spent most of its time there (docs/BENCHMARKS.md). Literal
//! rows need none of it. This module turns them straight into one Arrow batch in the table's
//! schema, with the same conversions DataFusion would apply (each column's literals are
//! gathered into one array of their natural type — Utf8, Int64, Float64, Boolean — and cast
//! to the column's type with arrow's cast kernel, errors on), and hands it to the same row
//! conversion and row store the planned path uses. NOT NULL, primary keys, JSON/UUID checks
//! and access rules are therefore identical.
//!
//! The statement is read by the first of three readers that takes it: [`from_text`] (the
//! SQL text, strictest), [`from_tokens`] (the tokens), [`from_ast`] (sqlparser's AST); the
//! first two skip work that dominated batched ingest (ADR 0006) and are held to the next
//! reader's answer by proptests.
//!
//! Anything else — expressions, placeholders, DEFAULT, a column without a literal default,
//! mixed literal kinds in one column (integers and decimals included), unknown columns, a width
//! mismatch, RETURNING, ON CONFLICT, `VALUE`, optimizer hints —
//! returns `None` and the statement takes the planned path, which also produces its errors.

use std::sync::Arc;

use arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::util::display::FormatOptions;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr as DfExpr;
use kalamdb_core::catalog::access::Principal;
use kalamdb_core::db::Db;
use kalamdb_core::query::provider::KalamTable;
use kalamdb_core::Result;
use sqlparser::ast::{Expr, Ident, Insert, ObjectName, SetExpr, TableObject, UnaryOperator, Value};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use crate::fast::path::{is_bare, kalam_table, name_parts};
use crate::planning::errors::from_datafusion;

/// A VALUES list ready to write: the table and the batch in its schema.
pub struct LiteralInsert {
    provider: Arc<dyn TableProvider>,
    pub batch: RecordBatch,
}

impl LiteralInsert {
    pub fn table(&self) -> &KalamTable {
        self.provider
            .downcast_ref::<KalamTable>()
            .expect("checked in prepare")
    }
}

/// One literal, classified by the Arrow type DataFusion gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lit<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    /// A number with a fraction or an exponent: its value, its digits and its sign (a
    /// DECIMAL column takes the digits, exactly; a float would lose them).
    Float(f64, &'a str, bool),
    Bool(bool),
}

fn literal(e: &Expr) -> Option<Lit<'_>> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Null => Some(Lit::Null),
            Value::SingleQuotedString(s) => Some(Lit::Str(s)),
            Value::Boolean(b) => Some(Lit::Bool(*b)),
            Value::Number(n, false) => number(n, false),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, false) => number(n, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn number(text: &str, negative: bool) -> Option<Lit<'_>> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = text.parse().ok()?;
        Some(Lit::Int(if negative { v.checked_neg()? } else { v }))
    } else {
        let v: f64 = text.parse().ok()?;
        v.is_finite()
            .then_some(Lit::Float(if negative { -v } else { v }, text, negative))
    }
}

/// The parts of a literal INSERT: table name, named columns (empty: all, in table order) and
/// the rows' literals, row after row (`width` per row). `values` is `None` when a value is
/// not a literal or the rows differ in width: such a statement is planned, but only after
/// the write permission check, as for every other INSERT into a table we resolve here.
pub struct LiteralRows<'a> {
    name: ObjectName,
    columns: Vec<ObjectName>,
    width: usize,
    values: Option<Vec<Lit<'a>>>,
}

/// The literal rows of `insert` (already parsed), or `None` when the statement needs planning.
pub fn from_ast(insert: &Insert) -> Option<LiteralRows<'_>> {
    if insert.or.is_some()
        || insert.ignore
        || insert.overwrite
        || insert.table_alias.is_some()
        || !insert.assignments.is_empty()
        || insert.partitioned.is_some()
        || !insert.after_columns.is_empty()
        || insert.on.is_some()
        || insert.returning.is_some()
        || insert.output.is_some()
        || insert.replace_into
        || insert.priority.is_some()
        || insert.insert_alias.is_some()
        || insert.settings.is_some()
        || insert.format_clause.is_some()
        || insert.multi_table_insert_type.is_some()
        || !insert.multi_table_into_clauses.is_empty()
        || !insert.multi_table_when_clauses.is_empty()
        || insert.multi_table_else_clause.is_some()
        || !insert.optimizer_hints.is_empty()
    {
        return None;
    }
    let query = insert.source.as_ref()?;
    if !is_bare(query) {
        return None;
    }
    let SetExpr::Values(values) = query.body.as_ref() else {
        return None;
    };
    if values.explicit_row || values.value_keyword || values.rows.is_empty() {
        return None;
    }
    let TableObject::TableName(name) = &insert.table else {
        return None;
    };
    let width = values.rows[0].len();
    let literals = || {
        let mut lits = Vec::with_capacity(width * values.rows.len());
        for row in &values.rows {
            if row.len() != width {
                return None;
            }
            for e in row.iter() {
                lits.push(literal(e)?);
            }
        }
        Some(lits)
    };
    Some(LiteralRows {
        name: name.clone(),
        columns: insert.columns.clone(),
        width,
        values: literals(),
    })
}

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

/// Turn literal rows into a batch in the table's schema, or `None` when they need planning.
pub async fn prepare_rows(
    db: &Arc<Db>,
    principal: &Principal,
    namespace: &str,
    rows: LiteralRows<'_>,
) -> Option<Result<LiteralInsert>> {
    let name = &rows.name;
    let provider = kalam_table(db, principal, namespace, name).await?;
    let table = provider.downcast_ref::<KalamTable>()?;
    let table_schema = table.schema();

    // Which table column each VALUES position fills.
    let positions: Vec<usize> = if rows.columns.is_empty() {
        (0..table_schema.fields().len()).collect()
    } else {
        let mut out = Vec::with_capacity(rows.columns.len());
        for c in &rows.columns {
            let [col] = name_parts(c)?.try_into().ok()?;
            let i = table_schema.index_of(&col).ok()?;
            if out.contains(&i) {
                return None;
            }
            out.push(i);
        }
        out
    };
    // The planned path checks write permission before it evaluates any value.
    if let Err(e) = table.principal().check_write(table.def()) {
        return Some(Err(e));
    }
    let width = positions.len();
    let values = rows.values?;
    if rows.width != width {
        return None;
    }
    let n = values.len() / width;

    let mut columns: Vec<Option<ArrayRef>> = vec![None; table_schema.fields().len()];
    for (pos, &col) in positions.iter().enumerate() {
        let lits: Vec<Lit> = values.iter().skip(pos).step_by(width).copied().collect();
        let natural = natural_array(&lits, table_schema.field(col).data_type())?;
        columns[col] = Some(natural);
    }
    // Columns not named take their literal default, or NULL.
    for (i, slot) in columns.iter_mut().enumerate() {
        if slot.is_none() {
            let field = table_schema.field(i);
            *slot = Some(match table.get_column_default(field.name()) {
                None => new_null_array(field.data_type(), n),
                Some(DfExpr::Literal(v, _)) => match v.to_array_of_size(n) {
                    Ok(a) => a,
                    Err(_) => return None,
                },
                Some(_) => return None,
            });
        }
    }
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let mut arrays = Vec::with_capacity(columns.len());
    for (array, field) in columns.into_iter().zip(table_schema.fields()) {
        let array = array?;
        if array.data_type() == field.data_type() {
            arrays.push(array);
            continue;
        }
        // The table's own assignment rules (rounding, ranges, refused conversions).
        if let Some(column) = table.def().live_columns().find(|c| c.name == *field.name()) {
            match kalamdb_core::encoding::arrow_values::conform(&array, &column.data_type) {
                Ok(a) => arrays.push(a),
                Err(e) => return Some(Err(e)),
            }
            continue;
        }
        match cast_with_options(&array, field.data_type(), &options) {
            Ok(a) => arrays.push(a),
            Err(e) => {
                return Some(Err(from_datafusion(
                    DataFusionError::ArrowError(Box::new(e), None),
                    db,
                )))
            }
        }
    }
    let batch = match RecordBatch::try_new(table_schema.clone(), arrays) {
        Ok(b) => b,
        Err(_) => return None,
    };
    Some(Ok(LiteralInsert { provider, batch }))
}

/// One column's literals as an array of the type DataFusion would give them, or `None`
/// when they mix kinds DataFusion would coerce differently.
fn natural_array(lits: &[Lit], target: &arrow::datatypes::DataType) -> Option<ArrayRef> {
    let (mut strs, mut ints, mut floats, mut bools) = (false, false, false, false);
    for l in lits {
        match l {
            Lit::Null => {}
            Lit::Str(_) => strs = true,
            Lit::Int(_) => ints = true,
            Lit::Float(..) => floats = true,
            Lit::Bool(_) => bools = true,
        }
    }
    // DataFusion casts each literal to the column type on its own; one array per kind is the
    // same only when the column holds one kind. Integers and decimals are two kinds (an
    // integer through f64 would become '1.0' in a TEXT column, or lose digits in a BIGINT),
    // except for a DOUBLE column, where each integer goes through f64 either way.
    let numbers_as_double = ints && floats && *target == arrow::datatypes::DataType::Float64;
    let kinds = strs as u8
        + bools as u8
        + if numbers_as_double {
            1
        } else {
            ints as u8 + floats as u8
        };
    if kinds > 1 {
        return None;
    }
    let exponents = lits
        .iter()
        .any(|l| matches!(l, Lit::Float(_, digits, _) if digits.contains(['e', 'E'])));
    let exact = matches!(
        target,
        arrow::datatypes::DataType::Decimal128(..) | arrow::datatypes::DataType::Utf8
    );
    if floats && exact && exponents {
        return None;
    }
    // A fraction into an integer column: planned, where it is exact (a float rounds
    // 123456789012345678.5 to ...680).
    if floats && target.is_integer() {
        return None;
    }
    if floats && !strs && !bools && exact {
        // Exactly the digits written (PostgreSQL's numeric literals), never through a float,
        // as the planned path reads them (crate::statement::syntax).
        return Some(Arc::new(StringArray::from_iter(lits.iter().map(
            |l| match l {
                Lit::Float(_, digits, negative) => {
                    Some(format!("{}{digits}", if *negative { "-" } else { "" }))
                }
                Lit::Int(i) => Some(i.to_string()),
                _ => None,
            },
        ))));
    }
    Some(if strs {
        Arc::new(StringArray::from_iter(lits.iter().map(|l| match l {
            Lit::Str(s) => Some(*s),
            _ => None,
        })))
    } else if floats {
        Arc::new(Float64Array::from_iter(lits.iter().map(|l| match l {
            Lit::Float(f, ..) => Some(*f),
            Lit::Int(i) => Some(*i as f64), // only when the column is DOUBLE (checked above)
            _ => None,
        })))
    } else if ints {
        Arc::new(Int64Array::from_iter(lits.iter().map(|l| match l {
            Lit::Int(i) => Some(*i),
            _ => None,
        })))
    } else if bools {
        Arc::new(BooleanArray::from_iter(lits.iter().map(|l| match l {
            Lit::Bool(b) => Some(*b),
            _ => None,
        })))
    } else {
        // Only NULLs: DataFusion types them as Null, which casts to anything.
        new_null_array(&arrow::datatypes::DataType::Null, lits.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::Tokenizer;

    /// The tokens, or none when the tokenizer refuses the text (then nothing is taken).
    fn tokens(sql: &str) -> Vec<TokenWithSpan> {
        Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap_or_default()
    }

    /// (table name parts, column names, width, literals) as the planner would see them.
    type Shape = (Vec<String>, Vec<Vec<String>>, usize, Option<Vec<String>>);

    fn shape(r: &LiteralRows<'_>) -> Shape {
        (
            name_parts(&r.name).unwrap(),
            r.columns.iter().map(|c| name_parts(c).unwrap()).collect(),
            r.width,
            r.values
                .as_ref()
                .map(|v| v.iter().map(|l| format!("{l:?}")).collect()),
        )
    }

    /// What the parser path writes without planning (`None`: planned).
    fn via_ast(sql: &str) -> Option<Shape> {
        let stmts = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
        let [sqlparser::ast::Statement::Insert(insert)] = stmts.as_slice() else {
            return None;
        };
        from_ast(insert)
            .map(|r| shape(&r))
            .filter(|s| s.3.is_some())
    }

    fn via_tokens(sql: &str) -> Option<Shape> {
        let t = tokens(sql);
        from_tokens(&t).map(|r| shape(&r))
    }

    fn via_text(sql: &str) -> Option<Shape> {
        from_text(sql).map(|r| shape(&r))
    }

    #[test]
    fn literal_inserts_read_from_tokens_as_the_parser_reads_them() {
        for sql in [
            "INSERT INTO t VALUES (1, 'a', NULL, TRUE, false, -2, 1.5, -0.25, 1e3)",
            "insert into NS.\"Mixed\" (id, \"Body\", data, value) values (1,'x''y',null,-9223372036854775807);",
            "INSERT INTO t (a) VALUES (1), (2), (3)",
            "INSERT\n\tINTO t VALUES ( 'multi\nline' , - 5 )",
        ] {
            let expected = via_ast(sql);
            assert!(expected.is_some(), "{sql}: the parser path takes it");
            assert_eq!(via_tokens(sql), expected, "{sql}");
            if !sql.contains("''") {
                assert_eq!(via_text(sql), expected, "{sql}");
            } else {
                assert_eq!(via_text(sql), None, "{sql}: escaped quotes are left to the tokenizer");
            }
        }
    }

    #[test]
    fn anything_but_the_exact_shape_is_left_to_the_parser() {
        for sql in [
            "INSERT INTO t VALUES (1) -- trailing comment",
            "INSERT /*+ hint */ INTO t VALUES (1)",
            "INSERT INTO TABLE t VALUES (1)",
            "INSERT INTO local VALUES (1)",
            "INSERT INTO Directory VALUES (1)",
            "INSERT INTO local.t VALUES (1)",
            "INSERT INTO ns ._t VALUES (1)",
            "INSERT INTO t (SELECT 1)",
            "INSERT INTO t DEFAULT VALUES",
            "INSERT INTO t VALUES (1) RETURNING *",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
            "INSERT INTO t VALUES (+5)",
            "INSERT INTO t VALUES (TIMESTAMP '2024-01-01 00:00:00')",
            "INSERT INTO t VALUES ('a' 'b')",
            "INSERT INTO t VALUES ('1'::int)",
            "INSERT INTO t VALUES (1), (1, 2)",
            "INSERT INTO t VALUE (1)",
            "INSERT INTO t VALUES ()",
            "INSERT INTO t VALUES (1); SELECT 1",
            "INSERT INTO t VALUES (1 + 1)",
            "INSERT INTO t VALUES (- -1)",
            "INSERT INTO t VALUES (ROW(1))",
            "INSERT INTO t VALUES (DEFAULT)",
            "INSERT INTO t VALUES (1L)",
            "INSERT INTO t VALUES (E'x')",
            "INSERT INTO t VALUES (x'00')",
            "INSERT INTO t.c.d.e VALUES (1) extra",
            "INSERT INTO t (t.a) VALUES (1)",
            "INSERT INTO t AS x VALUES (1)",
            "INSERT OR REPLACE INTO t VALUES (1)",
            "INSERT INTO `t` VALUES (1)",
            "REPLACE INTO t VALUES (1)",
            "INSERT INTO t VALUES (?)",
            "INSERT INTO t VALUES ($1)",
        ] {
            assert_eq!(via_tokens(sql), None, "{sql}");
            assert_eq!(via_text(sql), None, "{sql}");
        }
        // Valid, but spaced around the dot: the tokenizer path takes them, the text reader not.
        for sql in [
            "INSERT INTO ns. t VALUES (1)",
            "INSERT INTO ns .t VALUES (1)",
        ] {
            assert!(
                via_tokens(sql).is_some() && via_text(sql).is_none(),
                "{sql}"
            );
        }
    }

    fn literal_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
            (0u32..100).prop_map(|a| format!("- {a}.5e1")),
            "[a-z' ]{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
            prop::sample::select(vec!["NULL", "null", "TRUE", "False"]).prop_map(String::from),
        ]
    }

    fn blank() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", " ", "  ", "\n", "\t "]).prop_map(String::from)
    }

    proptest! {
        /// Random literal INSERTs (case, spacing, quoting, row counts): the token reader takes
        /// exactly those the parser path writes without planning, with the same literals.
        #[test]
        fn the_token_reader_agrees_with_the_parser(
            quoted in any::<bool>(),
            upper in any::<bool>(),
            columns in prop::option::of(prop::collection::vec("[a-z][a-z0-9_]{0,5}", 1..4)),
            rows in prop::collection::vec(prop::collection::vec(literal_text(), 3), 1..5),
            b in blank(),
        ) {
            let name = if quoted { "\"Tbl\"".to_string() } else { "ns.tbl".to_string() };
            let cols = columns.map(|c| format!("({})", c.join(&format!(",{b}")))).unwrap_or_default();
            let rows: Vec<String> = rows.iter().map(|r| format!("({b}{}{b})", r.join(&format!("{b},")))).collect();
            let kw = |k: &str| if upper { k.to_uppercase() } else { k.to_lowercase() };
            let sql = format!("{} {} {name}{b}{cols} {}{b}{}", kw("insert"), kw("into"), kw("values"), rows.join(","));
            prop_assert_eq!(via_tokens(&sql), via_ast(&sql), "{}", sql);
            // The text reader takes all of these unless a string holds a quote.
            let text = via_text(&sql);
            if sql.matches('\'').count() % 2 == 0 && !sql.contains("''") {
                prop_assert!(text.is_some(), "{}", sql);
            }
            if text.is_some() {
                prop_assert_eq!(text, via_tokens(&sql), "{}", sql);
            }
        }

        /// Near-misses built from pieces the tokenizer treats specially: whatever the text
        /// reader accepts, the token reader accepts the same way.
        #[test]
        fn the_text_reader_never_disagrees_with_the_token_reader(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "INSERT", "insert", "INTO", "into", "VALUES", "values", "t", "ns", ".", "\"Q\"", "\"a\"\"b\"", "(", ")", ",", ";",
                "1", "-", "- ", "1.5", "1.", ".5", "1e5", "1e", "1_0", "0x1F", "'s'", "''", "'a''b'", "'x\\y'", "'é'", "é", "NULL", "TRUE",
                "false", "--c\n", "/*c*/", "#", "@a", "a$", "$1", "?", "+", "::", "E'x'", "N'x'", "X'00'", "TABLE", "SELECT", "DEFAULT",
                " ", "\n", "\t", "", "local", "directory", "._t", "FUNCTION",
            ]), 0..24),
        ) {
            let sql = pieces.concat();
            let tokens = via_tokens(&sql);
            if let Some(text) = via_text(&sql) {
                prop_assert_eq!(Some(text), tokens.clone(), "{}", sql);
            }
            if tokens.is_some() {
                prop_assert_eq!(tokens, via_ast(&sql), "{}", sql);
            }
        }

        /// The same, on statements that are right but for one spliced piece.
        #[test]
        fn spliced_statements_never_disagree(
            at in 0usize..60,
            piece in prop::sample::select(vec!["'", "\"", "-", "--", "/*", "e", ".", "é", "#", "$", "''", "\\", "1", ",", "(", ")", " ", "x"]),
        ) {
            let base = "INSERT INTO ns.t (a, \"B\") VALUES (1, 'x'), (-2.5e3, NULL)";
            let at = at.min(base.len());
            let sql = format!("{}{piece}{}", &base[..at], &base[at..]);
            if let Some(text) = via_text(&sql) {
                prop_assert_eq!(Some(text), via_tokens(&sql), "{}", sql);
            }
        }
    }
}
