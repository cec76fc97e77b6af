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

/// Alias repeated select-list names in `statement` (with `every_expression`, also every
/// unaliased item, for when the loose guess below missed a repeat DataFusion found). Returns
/// the user's own alias of each aliased item that had one, or `None` when nothing changed.
pub(crate) fn alias_duplicates<S: VisitMut>(statement: &mut S, every_expression: bool) -> Option<HashMap<String, String>> {
    let mut v = Aliaser { next: 0, every_expression, explicit: HashMap::new() };
    let _ = statement.visit(&mut v);
    (v.next > 0).then_some(v.explicit)
}

/// Is this DataFusion's refusal of a select list with two items of one name? (Matched by its
/// text only to decide whether to plan again with every item aliased; never to report it.)
pub(crate) fn is_duplicate_name_error(e: &datafusion::common::DataFusionError) -> bool {
    let m = e.to_string();
    m.contains("require unique expression names") || m.contains("which would be ambiguous")
}

struct Aliaser {
    next: usize,
    every_expression: bool,
    explicit: HashMap<String, String>,
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
                    let (key, unnamed) = match item {
                        SelectItem::UnnamedExpr(e) => (expr_key(e), true),
                        SelectItem::ExprWithAlias { alias, .. } => (normalize(alias), false),
                        _ => continue,
                    };
                    // An unaliased scalar subquery is named after its own column, which may be
                    // a name the outer query has qualified (`e.name, (SELECT d.name ...)`):
                    // DataFusion finds that ambiguous, so it is always aliased.
                    let subquery = matches!(item, SelectItem::UnnamedExpr(SqlExpr::Subquery(_)));
                    let repeated = !seen.insert(key);
                    if !repeated && !subquery && !(self.every_expression && unnamed) {
                        continue;
                    }
                    let marker = format!("{MARKER}{}", self.next);
                    self.next += 1;
                    let expr = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
                        SelectItem::UnnamedExpr(e) => e,
                        SelectItem::ExprWithAlias { expr, alias } => {
                            self.explicit.insert(marker.clone(), normalize(&alias));
                            expr
                        }
                        other => {
                            *item = other;
                            continue;
                        }
                    };
                    *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', marker) };
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

/// Private alias -> the name the item would have had: the user's alias (`explicit`), else the
/// name DataFusion gives the aliased expression, read from the plan.
pub(crate) fn renames(plan: &LogicalPlan, explicit: HashMap<String, String>) -> HashMap<String, String> {
    let mut out = explicit;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Alias(a) = e {
                    if a.name.starts_with(MARKER) && !out.contains_key(&a.name) {
                        let name = match a.expr.as_ref() {
                            Expr::Column(c) => c.name.clone(),
                            // PostgreSQL names a scalar subquery's column after the
                            // subquery's own column.
                            Expr::ScalarSubquery(s) => s.subquery.schema().field(0).name().clone(),
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

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn aliased(sql: &str, every: bool) -> String {
        let mut stmts = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        super::alias_duplicates(&mut stmts[0], every);
        stmts[0].to_string()
    }

    #[test]
    fn repeated_names_and_scalar_subqueries_get_private_aliases() {
        assert_eq!(aliased("SELECT d, d FROM t", false), "SELECT d, d AS \"__kalamdb_dup_0\" FROM t");
        assert_eq!(
            aliased("SELECT e.name, (SELECT d.name FROM dept d) FROM emp e", false),
            "SELECT e.name, (SELECT d.name FROM dept d) AS \"__kalamdb_dup_0\" FROM emp e"
        );
        assert_eq!(aliased("SELECT a + 1, b FROM t", false), "SELECT a + 1, b FROM t");
        assert_eq!(aliased("SELECT a AS x, b AS x FROM t", false), "SELECT a AS x, b AS \"__kalamdb_dup_0\" FROM t");
    }
}
