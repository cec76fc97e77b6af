//! A statement's `$N` placeholders, checked against the parameters the request binds before
//! anything is planned: a placeholder without a parameter is the client's mistake, answered
//! at once (a huge `$N` once made the planner allocate per number up to N).

use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use kalamdb_core::{Error, Result};
use sqlparser::ast::{visit_expressions, Expr, Value};
use std::ops::ControlFlow;

/// Every placeholder of `statement` must be `$1` ..= `$bound`.
pub(crate) fn check(statement: &DfStatement, bound: usize) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => check_sql(s.as_ref(), bound),
        DfStatement::Explain(e) => check(&e.statement, bound),
        _ => Ok(()),
    }
}

fn check_sql(statement: &sqlparser::ast::Statement, bound: usize) -> Result<()> {
    let mut used = vec![false; bound];
    let flow = visit_expressions(statement, |expr| match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => match number(p) {
                Some(n) if (1..=bound).contains(&n) => {
                    used[n - 1] = true;
                    ControlFlow::Continue(())
                }
                _ => ControlFlow::Break(p.clone()),
            },
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    });
    if let ControlFlow::Break(p) = flow {
        return Err(Error::InvalidParameter(describe(&p, bound)));
    }
    // As PostgreSQL: a param no placeholder uses is a mistake (its type cannot be known).
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(Error::InvalidParameter(format!(
            "param ${} is bound but the statement does not use it (the request binds {bound})",
            unused + 1
        )));
    }
    Ok(())
}

/// `$7` -> 7; anything else (`?`, `$name`, `$0`, a number past usize) -> None.
fn number(placeholder: &str) -> Option<usize> {
    let digits = placeholder.strip_prefix('$')?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n >= 1)
}

fn describe(placeholder: &str, bound: usize) -> String {
    let shown = kalamdb_core::truncate_for_message(placeholder);
    let bound_text = match bound {
        0 => "the request binds no params".to_string(),
        1 => "the request binds 1 param ($1)".to_string(),
        n => format!("the request binds {n} params ($1 to ${n})"),
    };
    if number(placeholder).is_some() {
        format!("there is no parameter {shown}: {bound_text}")
    } else {
        format!("placeholder {shown} is not supported: use $1, $2, ... ({bound_text})")
    }
}

/// A JSON request parameter as a DataFusion scalar.
pub(crate) fn json_to_scalar(v: &serde_json::Value) -> Result<ScalarValue> {
    Ok(match v {
        serde_json::Value::Null => ScalarValue::Null,
        serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int64(Some(i))
            } else if let Some(f) = n.as_f64() {
                ScalarValue::Float64(Some(f))
            } else {
                return Err(Error::InvalidParameter(format!(
                    "parameter {n} is out of range"
                )));
            }
        }
        serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        _ => {
            return Err(Error::InvalidParameter(
                "parameters must be null, booleans, numbers or strings".into(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn placeholder_numbers() {
        assert_eq!(number("$1"), Some(1));
        assert_eq!(number("$99999999999"), Some(99_999_999_999));
        assert_eq!(number("$0"), None);
        assert_eq!(number("?"), None);
        assert_eq!(number("$x"), None);
        assert_eq!(number("$99999999999999999999999"), None);
    }
}
