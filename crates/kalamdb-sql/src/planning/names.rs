//! Select lists that name two columns alike: `SELECT d, d FROM t`, `SELECT a+1, a+1 FROM t`.
//!
//! PostgreSQL returns both columns under the same name; DataFusion refuses the plan
//! ("Projections require unique expression names"). Before planning, every select-list item
//! whose name repeats an earlier one of the same SELECT gets a private alias; the result's
//! schema is renamed back, so the client sees the names PostgreSQL would give.

use std::collections::{HashMap, HashSet};

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use sqlparser::ast::{
    Expr as SqlExpr, Ident, Insert, OrderBy, OrderByKind, Query, SelectItem, SetExpr, Statement,
    TableFactor, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

use crate::fast::path::normalize;

/// Prefix of the private aliases (quoted identifiers, so no user name collides by accident).
const MARKER: &str = "__kalamdb_dup_";

/// Alias repeated select-list names in `statement`'s outermost query (with
/// `every_expression`, also every unaliased item, for when the loose guess below missed a
/// repeat DataFusion found). Returns the user's own alias of each aliased item that had one,
/// or `None` when nothing changed. Only the outermost select list is touched: its names reach
/// only the client, whereas a derived table's or subquery's names are read by the query
/// around it, where two columns of one name are ambiguous (PostgreSQL refuses them there, and
/// so does DataFusion). An `ORDER BY` naming two different items of the outermost list is
/// refused as PostgreSQL does.
pub(crate) fn alias_duplicates(
    statement: &mut Statement,
    every_expression: bool,
) -> kalamdb_core::Result<Option<HashMap<String, String>>> {
    let query = match statement {
        Statement::Query(q) => q.as_mut(),
        Statement::Insert(Insert {
            source: Some(q), ..
        }) => q.as_mut(),
        Statement::Explain { statement, .. } => {
            return alias_duplicates(statement, every_expression)
        }
        _ => return Ok(None),
    };
    let mut v = Aliaser {
        next: 0,
        every_expression,
        explicit: HashMap::new(),
        ambiguous: HashSet::new(),
    };
    v.query(query);
    // Queries whose columns the construct around them renames (`WITH r(n, sq) AS (SELECT 1,
    // 1 ...)`, `FROM (SELECT a, a ...) AS s(x, y)`): their own names are never read.
    let mut renamed = RenamedQueries(Aliaser {
        next: v.next,
        every_expression,
        explicit: HashMap::new(),
        ambiguous: HashSet::new(),
    });
    let _ = VisitMut::visit(&mut *query, &mut renamed);
    v.next = renamed.0.next;
    if let Some(OrderBy {
        kind: OrderByKind::Expressions(items),
        ..
    }) = &query.order_by
    {
        for item in items {
            if let SqlExpr::Identifier(i) = &item.expr {
                if v.ambiguous.contains(&normalize(i)) {
                    return Err(kalamdb_core::Error::invalid_sql(format!(
                        "ORDER BY \"{}\" is ambiguous: the select list has two different columns of that name",
                        i.value
                    )));
                }
            }
        }
    }
    Ok((v.next > 0).then_some(v.explicit))
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
    /// Names given to two different items of the select list.
    ambiguous: HashSet<String>,
}

struct RenamedQueries(Aliaser);

impl VisitorMut for RenamedQueries {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = query.with.as_mut() {
            for cte in with
                .cte_tables
                .iter_mut()
                .filter(|c| !c.alias.columns.is_empty())
            {
                self.0.query(&mut cte.query);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            subquery,
            alias: Some(alias),
            ..
        } = factor
        {
            if !alias.columns.is_empty() {
                self.0.query(subquery);
            }
        }
        ControlFlow::Continue(())
    }
}

impl Aliaser {
    fn query(&mut self, query: &mut Query) {
        self.set_expr(&mut query.body);
    }

    fn set_expr(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                let mut seen: HashMap<String, String> = HashMap::new();
                for item in select.projection.iter_mut() {
                    let (key, text, unnamed) = match item {
                        SelectItem::UnnamedExpr(e) => (expr_key(e), e.to_string(), true),
                        SelectItem::ExprWithAlias { alias, expr } => {
                            (normalize(alias), expr.to_string(), false)
                        }
                        _ => continue,
                    };
                    // An unaliased scalar subquery is named after its own column, which may be
                    // a name the outer query has qualified (`e.name, (SELECT d.name ...)`):
                    // DataFusion finds that ambiguous, so it is always aliased.
                    let subquery = matches!(item, SelectItem::UnnamedExpr(SqlExpr::Subquery(_)));
                    let repeated = match seen.get(&key) {
                        Some(earlier) => {
                            if *earlier != text {
                                self.ambiguous.insert(key.clone());
                            }
                            true
                        }
                        None => {
                            seen.insert(key, text);
                            false
                        }
                    };
                    if !repeated && !subquery && !(self.every_expression && unnamed) {
                        continue;
                    }
                    let marker = format!("{MARKER}{}", self.next);
                    self.next += 1;
                    let expr =
                        match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
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
                    *item = SelectItem::ExprWithAlias {
                        expr,
                        alias: Ident::with_quote('"', marker),
                    };
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            SetExpr::Query(q) => self.query(q),
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
        other => other
            .to_string()
            .to_lowercase()
            .split_whitespace()
            .collect(),
    }
}

/// Private alias -> the name the item would have had: the user's alias (`explicit`), else the
/// name DataFusion gives the aliased expression, read from the plan.
pub(crate) fn renames(
    plan: &LogicalPlan,
    explicit: HashMap<String, String>,
) -> HashMap<String, String> {
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
                            Expr::ScalarSubquery(s) => match s.subquery.schema().fields().first() {
                                Some(f) => f.name().clone(),
                                None => a.expr.schema_name().to_string(),
                            },
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
    if renames.is_empty()
        || !schema
            .fields()
            .iter()
            .any(|f| renames.contains_key(f.name()))
    {
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
        super::alias_duplicates(&mut stmts[0], every).unwrap();
        stmts[0].to_string()
    }

    #[test]
    fn repeated_names_and_scalar_subqueries_get_private_aliases() {
        assert_eq!(
            aliased("SELECT d, d FROM t", false),
            "SELECT d, d AS \"__kalamdb_dup_0\" FROM t"
        );
        assert_eq!(
            aliased(
                "SELECT e.name, (SELECT d.name FROM dept d) FROM emp e",
                false
            ),
            "SELECT e.name, (SELECT d.name FROM dept d) AS \"__kalamdb_dup_0\" FROM emp e"
        );
        assert_eq!(
            aliased("SELECT a + 1, b FROM t", false),
            "SELECT a + 1, b FROM t"
        );
        assert_eq!(
            aliased("SELECT a AS x, b AS x FROM t", false),
            "SELECT a AS x, b AS \"__kalamdb_dup_0\" FROM t"
        );
        // Names inside are read by the query around them: left for DataFusion to judge.
        assert_eq!(
            aliased("SELECT x FROM (SELECT a AS x, b AS x FROM t) s", false),
            "SELECT x FROM (SELECT a AS x, b AS x FROM t) s"
        );
        assert_eq!(
            aliased("SELECT a, a FROM t ORDER BY a", false),
            "SELECT a, a AS \"__kalamdb_dup_0\" FROM t ORDER BY a"
        );
        assert_eq!(
            aliased("WITH r(n, m) AS (SELECT 1, 1) SELECT n, m FROM r", false),
            "WITH r (n, m) AS (SELECT 1, 1 AS \"__kalamdb_dup_0\") SELECT n, m FROM r"
        );
        assert_eq!(
            aliased("SELECT x FROM (SELECT a, a FROM t) AS s(x, y)", false),
            "SELECT x FROM (SELECT a, a AS \"__kalamdb_dup_0\" FROM t) AS s (x, y)"
        );
        let mut stmts = Parser::parse_sql(
            &GenericDialect {},
            "SELECT a AS x, b AS x FROM t ORDER BY x",
        )
        .unwrap();
        assert!(
            super::alias_duplicates(&mut stmts[0], false).is_err(),
            "ORDER BY x is ambiguous"
        );
    }
}
