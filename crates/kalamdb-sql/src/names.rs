//! Select lists that name two columns alike: `SELECT d, d FROM t`, `SELECT a+1, a+1 FROM t`.
//!
//! PostgreSQL returns both columns under the same name; DataFusion refuses the plan
//! ("Projections require unique expression names"). Before planning, every select-list item
//! whose name repeats an earlier one of the same SELECT gets a private alias; the result's
//! schema is renamed back, so the client sees the names PostgreSQL would give.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use sqlparser::ast::{Expr as SqlExpr, Ident, Query, SelectItem, SetExpr, VisitMut, VisitorMut};

use crate::fast_path::normalize;

/// Prefix of the private aliases (quoted identifiers, so no user name collides by accident).
const MARKER: &str = "__kalamdb_dup_";

/// Alias repeated select-list names in `statement`; true when anything was aliased.
pub(crate) fn alias_duplicates<S: VisitMut>(statement: &mut S) -> bool {
    let mut v = Aliaser { next: 0 };
    let _ = statement.visit(&mut v);
    v.next > 0
}

struct Aliaser {
    next: usize,
}

impl VisitorMut for Aliaser {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

impl Aliaser {
    fn set_expr(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                let mut seen = HashSet::new();
                for item in select.projection.iter_mut() {
                    let key = match item {
                        SelectItem::UnnamedExpr(e) => expr_key(e),
                        SelectItem::ExprWithAlias { alias, .. } => normalize(alias),
                        _ => continue,
                    };
                    if seen.insert(key) {
                        continue;
                    }
                    let alias = Ident::with_quote('"', format!("{MARKER}{}", self.next));
                    self.next += 1;
                    let expr = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
                        SelectItem::UnnamedExpr(e) => e,
                        SelectItem::ExprWithAlias { expr, .. } => expr,
                        other => {
                            *item = other;
                            continue;
                        }
                    };
                    *item = SelectItem::ExprWithAlias { expr, alias };
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            _ => {}
        }
    }
}

/// The name DataFusion is likely to give an unaliased item, loosely: a column by its last
/// name part, anything else by its text. Loose is safe: a needless alias is renamed back.
fn expr_key(e: &SqlExpr) -> String {
    match e {
        SqlExpr::Identifier(i) => normalize(i),
        SqlExpr::CompoundIdentifier(parts) => parts.last().map(normalize).unwrap_or_default(),
        SqlExpr::Nested(inner) => expr_key(inner),
        other => other.to_string().to_lowercase().split_whitespace().collect(),
    }
}

/// Private alias -> the name the aliased expression would have had, read from the plan.
pub(crate) fn renames(plan: &LogicalPlan) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Alias(a) = e {
                    if a.name.starts_with(MARKER) {
                        let name = match a.expr.as_ref() {
                            Expr::Column(c) => c.name.clone(),
                            inner => inner.schema_name().to_string(),
                        };
                        out.insert(a.name.clone(), name);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    out
}

/// `schema` with the private aliases renamed back.
pub(crate) fn rename_schema(schema: SchemaRef, renames: &HashMap<String, String>) -> SchemaRef {
    if renames.is_empty() || !schema.fields().iter().any(|f| renames.contains_key(f.name())) {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match renames.get(f.name()) {
            Some(name) => f.as_ref().clone().with_name(name),
            None => f.as_ref().clone(),
        })
        .collect();
    std::sync::Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}
