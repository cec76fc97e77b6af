//! Literal rows of an INSERT as the readers (`fast::reader`, `fast::insert::from_ast`) find
//! them: each literal classified by the Arrow type DataFusion gives it.

use sqlparser::ast::{Expr, ObjectName, UnaryOperator, Value};

/// One literal, classified by the Arrow type DataFusion gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Lit<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    /// A number with a fraction or an exponent: its value, its digits and its sign (a
    /// DECIMAL column takes the digits, exactly; a float would lose them).
    Float(f64, &'a str, bool),
    Bool(bool),
}

pub(crate) fn literal(e: &Expr) -> Option<Lit<'_>> {
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

pub(crate) fn number(text: &str, negative: bool) -> Option<Lit<'_>> {
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
    pub(crate) name: ObjectName,
    pub(crate) columns: Vec<ObjectName>,
    pub(crate) width: usize,
    pub(crate) values: Option<Vec<Lit<'a>>>,
}
