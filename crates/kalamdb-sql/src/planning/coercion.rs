//! Type rules PostgreSQL applies and DataFusion 55 does not, fixed before DataFusion's type
//! coercion runs (an analyzer rule placed first):
//!
//! - **TIME values of two precisions compare.** TIME columns hold microseconds; SQL's TIME
//!   literals, `CURRENT_TIME` and casts to TIME are nanoseconds, and DataFusion finds no common
//!   type for the two (`t > TIME '12:00:00'` failed). Comparisons, BETWEEN, IN lists and CASE
//!   results mixing them compare as nanoseconds (exact: every microsecond is a nanosecond).
//! - **UUIDs compare as UUIDs.** They are stored in their canonical text form (lower-case,
//!   hyphenated); a string compared with a UUID column is read as a UUID first, so
//!   `u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'` finds the row, and a string that is no
//!   UUID is a TYPE_MISMATCH (PostgreSQL: invalid input syntax for type uuid).
//! - **A string compared with a boolean is read as a boolean** (`ok = 'true'`, `ok <> 'f'`),
//!   as PostgreSQL reads boolean input; another string is a TYPE_MISMATCH.

use arrow::datatypes::{DataType as ArrowType, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{
    Column, DFSchema, DataFusionError, ExprSchema, Result as DfResult, ScalarValue,
};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Between, Case, InList};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::analyzer::AnalyzerRule;
use kalamdb_core::{Error, TYPE_METADATA_KEY};

/// The analyzer rule (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct PostgresTypeRules;

impl AnalyzerRule for PostgresTypeRules {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = scope_of(&node);
            node.map_expressions(|e| e.transform_up(|e| rewrite(e, &schema)))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kalamdb_postgres_type_rules"
    }
}

/// The columns a node's expressions may name.
pub(crate) fn scope_of(node: &LogicalPlan) -> DFSchema {
    let inputs = node.inputs();
    match inputs.as_slice() {
        [] => node.schema().as_ref().clone(),
        [one] => one.schema().as_ref().clone(),
        [first, rest @ ..] => {
            let mut merged = first.schema().as_ref().clone();
            for other in rest {
                merged.merge(other.schema());
            }
            merged
        }
    }
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

// long: one arm per expression kind PostgreSQL types differently (comparisons, BETWEEN, IN,
// literals); each arm is that kind's rule.
fn rewrite(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
            let (left_uuid, right_uuid) = (uuid_column(&left, schema), uuid_column(&right, schema));
            let left = if right_uuid {
                canonical_uuid_literal(*left)?
            } else {
                *left
            };
            let right = if left_uuid {
                canonical_uuid_literal(*right)?
            } else {
                *right
            };
            let (left_bool, right_bool) = (is_boolean(&left, schema), is_boolean(&right, schema));
            let left = if right_bool {
                boolean_literal(left)?
            } else {
                left
            };
            let right = if left_bool {
                boolean_literal(right)?
            } else {
                right
            };
            let mut pair = [left, right];
            align_times(&mut pair, schema);
            let [left, right] = pair;
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(left),
                op,
                right: Box::new(right),
            })))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let mut all = vec![*expr, *low, *high];
            if !align_times(&mut all, schema) {
                let high = all.pop();
                let low = all.pop();
                let expr = all.pop();
                return match (expr, low, high) {
                    (Some(expr), Some(low), Some(high)) => {
                        Ok(Transformed::no(Expr::Between(Between {
                            expr: Box::new(expr),
                            negated,
                            low: Box::new(low),
                            high: Box::new(high),
                        })))
                    }
                    _ => Err(DataFusionError::Internal("BETWEEN lost an operand".into())),
                };
            }
            let mut it = all.into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some(expr), Some(low), Some(high)) => {
                    Ok(Transformed::yes(Expr::Between(Between {
                        expr: Box::new(expr),
                        negated,
                        low: Box::new(low),
                        high: Box::new(high),
                    })))
                }
                _ => Err(DataFusionError::Internal("BETWEEN lost an operand".into())),
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let uuid = uuid_column(&expr, schema);
            let mut all = Vec::with_capacity(list.len() + 1);
            all.push(*expr);
            for item in list {
                all.push(if uuid {
                    canonical_uuid_literal(item)?
                } else {
                    item
                });
            }
            align_times(&mut all, schema);
            let mut it = all.into_iter();
            let expr = it
                .next()
                .ok_or_else(|| DataFusionError::Internal("IN lost its operand".into()))?;
            Ok(Transformed::yes(Expr::InList(InList {
                expr: Box::new(expr),
                list: it.collect(),
                negated,
            })))
        }
        Expr::Case(case) => case_results(case, schema),
        other => Ok(Transformed::no(other)),
    }
}

/// CASE: the results (THEN and ELSE) agree on the TIME precision.
fn case_results(case: Case, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Case {
        expr,
        when_then_expr,
        else_expr,
    } = case;
    let n = when_then_expr.len();
    let (whens, mut results): (Vec<Box<Expr>>, Vec<Expr>) =
        when_then_expr.into_iter().map(|(w, t)| (w, *t)).unzip();
    let has_else = else_expr.is_some();
    if let Some(e) = else_expr {
        results.push(*e);
    }
    let changed = align_times(&mut results, schema);
    let else_expr = if has_else {
        results.pop().map(Box::new)
    } else {
        None
    };
    let when_then_expr = whens
        .into_iter()
        .zip(results.into_iter().map(Box::new))
        .collect::<Vec<_>>();
    debug_assert_eq!(when_then_expr.len(), n);
    let case = Expr::Case(Case {
        expr,
        when_then_expr,
        else_expr,
    });
    Ok(if changed {
        Transformed::yes(case)
    } else {
        Transformed::no(case)
    })
}

fn time_unit(e: &Expr, schema: &DFSchema) -> Option<TimeUnit> {
    match e.get_type(schema) {
        Ok(ArrowType::Time64(u)) => Some(u),
        _ => None,
    }
}

/// If the expressions mix TIME precisions, cast the coarser ones to nanoseconds.
fn align_times(exprs: &mut [Expr], schema: &DFSchema) -> bool {
    let units: Vec<Option<TimeUnit>> = exprs.iter().map(|e| time_unit(e, schema)).collect();
    if !units.iter().flatten().any(|u| *u != TimeUnit::Nanosecond)
        || !units.iter().flatten().any(|u| *u == TimeUnit::Nanosecond)
    {
        return false;
    }
    for (e, unit) in exprs.iter_mut().zip(units) {
        if matches!(unit, Some(u) if u != TimeUnit::Nanosecond) {
            let inner = std::mem::replace(e, Expr::Literal(ScalarValue::Null, None));
            *e = Expr::Cast(Cast::new(
                Box::new(inner),
                ArrowType::Time64(TimeUnit::Nanosecond),
            ));
        }
    }
    true
}

/// Is `e` a boolean expression (other than a string literal)?
fn is_boolean(e: &Expr, schema: &DFSchema) -> bool {
    !matches!(e, Expr::Literal(..)) && matches!(e.get_type(schema), Ok(ArrowType::Boolean))
}

/// A string literal compared with a boolean, read as PostgreSQL reads boolean input
/// (`'t'`, `'true'`, `'yes'`, `'on'`, `'1'` and their opposites, any case).
fn boolean_literal(e: Expr) -> DfResult<Expr> {
    let text = match &e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => s.clone(),
        _ => return Ok(e),
    };
    let b = match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => true,
        "f" | "false" | "n" | "no" | "off" | "0" => false,
        _ => {
            return Err(DataFusionError::External(Box::new(Error::TypeMismatch(
                format!(
                    "invalid input for type BOOLEAN: '{}'",
                    kalamdb_core::truncate_for_message(&text)
                ),
            ))))
        }
    };
    Ok(Expr::Literal(ScalarValue::Boolean(Some(b)), None))
}

/// Is `e` a column declared UUID?
fn uuid_column(e: &Expr, schema: &DFSchema) -> bool {
    let Expr::Column(c) = e else { return false };
    column_type(c, schema).as_deref() == Some("UUID")
}

fn column_type(c: &Column, schema: &DFSchema) -> Option<String> {
    schema
        .field_from_column(c)
        .ok()?
        .metadata()
        .get(TYPE_METADATA_KEY)
        .cloned()
}

/// A string literal as the canonical text of the UUID it spells.
fn canonical_uuid_literal(e: Expr) -> DfResult<Expr> {
    let text = match &e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => s.clone(),
        _ => return Ok(e),
    };
    match uuid::Uuid::parse_str(text.trim()) {
        Ok(u) => Ok(Expr::Literal(
            ScalarValue::Utf8(Some(u.hyphenated().to_string())),
            None,
        )),
        Err(_) => Err(DataFusionError::External(Box::new(Error::TypeMismatch(
            format!(
                "invalid input for type UUID: '{}'",
                kalamdb_core::truncate_for_message(&text)
            ),
        )))),
    }
}
