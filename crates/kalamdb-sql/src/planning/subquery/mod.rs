//! Subqueries that DataFusion cannot plan by itself, evaluated once per distinct outer row.
//!
//! DataFusion decorrelates the common shapes (an `IN`/`EXISTS` in a WHERE clause, a scalar
//! subquery correlated by equalities) into joins, and those stay its job: they are fast. It
//! refuses the rest, which PostgreSQL answers: a scalar subquery correlated by `<` or `<>`,
//! one that is not aggregated, `IN`/`EXISTS` in the select list or in CASE, subqueries in
//! ORDER BY or JOIN ON. Two rules catch exactly those (ADR 0007):
//!
//! - an analyzer rule, last in DataFusion's analyzer, rewrites the subqueries DataFusion's
//!   own validity check ([`check_subquery_expr`]) would refuse;
//! - an optimizer rule, last in DataFusion's optimizer, rewrites whatever subquery the
//!   decorrelation rules left in the plan (the physical planner cannot execute one).
//!
//! A rewritten subquery becomes a call of a [`SubqueryFunction`]: a volatile scalar function
//! whose arguments are the outer columns the subquery reads (and the probe value of an `IN`
//! or `op ANY/ALL`). For each distinct tuple of outer values it substitutes them into the
//! subquery's plan as literals, runs that plan with the statement's own session (same caller,
//! same scope, same memory pool, same `NOW()`), and caches the result for the statement. An
//! expression in CASE is only evaluated for the rows its branch selects, so a subquery in a
//! branch that is not taken never runs. The work is bounded by the statement's deadline and
//! by `limits.max_result_rows` per subquery result.

mod function;

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, Result as DfResult};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Exists, InSubquery, SetComparison};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    check_subquery_expr, Expr, LogicalPlan, Operator, Projection, Sort,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

pub(crate) use function::StatementContext;
use function::{to_function, StatementSession};
/// The two rules, for a statement's session.
pub(crate) fn rules(
    session: &Arc<dyn StatementContext>,
) -> (
    Arc<dyn AnalyzerRule + Send + Sync>,
    Arc<dyn OptimizerRule + Send + Sync>,
) {
    (
        Arc::new(RefusedSubqueries(session.clone())),
        Arc::new(LeftoverSubqueries(session.clone())),
    )
}

/// Analyzer rule: subqueries DataFusion's validity check refuses become [`SubqueryFunction`]s.
#[derive(Debug)]
struct RefusedSubqueries(Arc<StatementSession>);

impl AnalyzerRule for RefusedSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let plan = plan.transform_up_with_subqueries(widen_sort)?.data;
        rewrite_plan(plan, &self.0, Which::Refused).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kalamdb_refused_subqueries"
    }
}

/// Optimizer rule: subqueries the decorrelation rules left become [`SubqueryFunction`]s.
#[derive(Debug)]
struct LeftoverSubqueries(Arc<StatementSession>);

impl OptimizerRule for LeftoverSubqueries {
    fn name(&self) -> &str {
        "kalamdb_leftover_subqueries"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        rewrite_plan(plan, &self.0, Which::All)
    }
}

/// `ORDER BY (SELECT ... WHERE x.g = t.g)` in a query that does not select `t.g`: DataFusion
/// sorts above the projection, which has dropped `t.g`. The projection is widened by the
/// columns the sort's subqueries read, and the extra columns dropped again above the sort.
fn widen_sort(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let LogicalPlan::Sort(sort) = &node else {
        return Ok(Transformed::no(node));
    };
    let LogicalPlan::Projection(projection) = sort.input.as_ref() else {
        return Ok(Transformed::no(node));
    };
    let mut missing: Vec<Column> = Vec::new();
    for e in &sort.expr {
        e.expr.apply(|x| {
            let plan = match x {
                Expr::ScalarSubquery(s) => Some(&s.subquery),
                Expr::Exists(Exists { subquery, .. })
                | Expr::InSubquery(InSubquery { subquery, .. })
                | Expr::SetComparison(SetComparison { subquery, .. }) => Some(&subquery.subquery),
                _ => None,
            };
            if let Some(plan) = plan {
                plan.apply_with_subqueries(|p| {
                    p.apply_expressions(|ex| {
                        ex.apply(|ex| {
                            if let Expr::OuterReferenceColumn(_, c) = ex {
                                if !projection.schema.has_column(c)
                                    && projection.input.schema().has_column(c)
                                    && !missing.contains(c)
                                {
                                    missing.push(c.clone());
                                }
                            }
                            Ok(TreeNodeRecursion::Continue)
                        })
                    })
                })?;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    if missing.is_empty() {
        return Ok(Transformed::no(node));
    }
    let kept: Vec<Expr> = projection
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let mut widened = projection.expr.clone();
    widened.extend(missing.into_iter().map(Expr::Column));
    let widened = LogicalPlan::Projection(Projection::try_new(widened, projection.input.clone())?);
    let sorted = LogicalPlan::Sort(Sort {
        expr: sort.expr.clone(),
        input: Arc::new(widened),
        fetch: sort.fetch,
    });
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(kept, Arc::new(sorted))?,
    )))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Which {
    /// Those `check_subquery_expr` refuses.
    Refused,
    /// Every subquery expression still in the plan.
    All,
}

/// Rewrite subquery expressions in `plan`, innermost first (a subquery's own plan is
/// rewritten before the expression that holds it is considered).
fn rewrite_plan(
    plan: LogicalPlan,
    ctx: &Arc<StatementSession>,
    which: Which,
) -> DfResult<Transformed<LogicalPlan>> {
    plan.transform_up_with_subqueries(|node| rewrite_node(node, ctx, which))
}

/// Does the plan hold a subquery expression anywhere?
pub(crate) fn has_subqueries(plan: &LogicalPlan) -> bool {
    plan_has_expr(plan, is_subquery)
}

/// Does any expression of the plan (its subqueries' plans included) hold a node matching `hit`?
fn plan_has_expr(plan: &LogicalPlan, hit: fn(&Expr) -> bool) -> bool {
    let mut found = false;
    let stop_once_found = |found: bool| {
        if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        }
    };
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            let _ = e.apply(|x| {
                found |= hit(x);
                Ok(stop_once_found(found))
            });
            Ok(stop_once_found(found))
        })?;
        Ok(stop_once_found(found))
    });
    found
}

fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_)
    )
}

fn rewrite_node(
    node: LogicalPlan,
    ctx: &Arc<StatementSession>,
    which: Which,
) -> DfResult<Transformed<LogicalPlan>> {
    let mut any = false;
    node.apply_expressions(|e| {
        e.apply(|e| {
            any |= is_subquery(e);
            Ok(if any {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })
    })?;
    if !any {
        return Ok(Transformed::no(node));
    }
    // The schemas the subqueries' outer references of this level resolve in.
    let scopes: Vec<DFSchemaRef> = match node.inputs().as_slice() {
        [] => vec![node.schema().clone()],
        inputs => inputs.iter().map(|i| i.schema().clone()).collect(),
    };
    let outer = node.clone();
    // IN and EXISTS DataFusion turns into semi/anti joins, which is right only where a NULL
    // answer counts as false: as a conjunct of a WHERE, not under OR, NOT, IS or CASE.
    let top_level: Vec<Expr> = match &node {
        LogicalPlan::Filter(f) => conjuncts(&f.predicate)
            .into_iter()
            .filter(|c| matches!(c, Expr::InSubquery(_) | Expr::Exists(_)))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    // Names of output columns stay as DataFusion gave them (an aggregate's FILTER or a window's
    // ORDER BY prints the expression it replaces into the column's name).
    let names = NamePreserver::new(&node);
    let rewritten = node.map_expressions(|e| {
        let name = names.save(&e);
        let t = e.transform_up(|e| {
            if !is_subquery(&e) {
                return Ok(Transformed::no(e));
            }
            let convert = match which {
                Which::All => true,
                Which::Refused => {
                    let inner = match &e {
                        Expr::ScalarSubquery(s) => &s.subquery,
                        Expr::Exists(x) => &x.subquery.subquery,
                        Expr::InSubquery(x) => &x.subquery.subquery,
                        Expr::SetComparison(x) => &x.subquery.subquery,
                        _ => return Ok(Transformed::no(e)),
                    };
                    let misplaced = matches!(e, Expr::InSubquery(_) | Expr::Exists(_))
                        && !top_level.contains(&e);
                    ctx.evaluate_all_subqueries()
                        || misplaced
                        || !left_to_datafusion(&outer, inner, &e, &scopes)
                }
            };
            if !convert {
                return Ok(Transformed::no(e));
            }
            to_function(e, &scopes, ctx).map(Transformed::yes)
        })?;
        Ok(if t.transformed {
            t.update_data(|e| name.restore(e))
        } else {
            t
        })
    })?;
    if rewritten.transformed {
        // Output names and types are unchanged (the function is named and typed as the
        // expression it replaces); only derived properties may differ.
        rewritten.map_data(|p| p.recompute_schema())
    } else {
        Ok(rewritten)
    }
}

/// Whether DataFusion's decorrelation is trusted with this subquery. It is with the shapes it
/// is built for, and only those (its rewrites of the others fail, or lose a column, in ways a
/// check afterwards cannot always see):
/// - its own validity check accepts it ([`check_subquery_expr`]);
/// - not `op ANY/ALL`: DataFusion 55 renames that expression and fails its schema check;
/// - every outer reference is one side of an equality conjunct of a filter (`x.k = outer.k`),
///   and is a column of the query right around it (not of one further out);
/// - nothing inside it is a correlated subquery, ours or DataFusion's.
fn left_to_datafusion(
    outer: &LogicalPlan,
    inner: &LogicalPlan,
    e: &Expr,
    scopes: &[DFSchemaRef],
) -> bool {
    if matches!(e, Expr::SetComparison(_)) || check_subquery_expr(outer, inner, e).is_err() {
        return false;
    }
    if plan_has_outer_refs(inner)
        && !decorrelatable_shape(inner, matches!(e, Expr::ScalarSubquery(_)))
    {
        return false;
    }
    let mut simple = true;
    let _ = inner.apply(|node| {
        // Outer references anywhere but in `x = outer` conjuncts of a filter.
        let allowed: Vec<&Expr> = match node {
            LogicalPlan::Filter(f) => conjuncts(&f.predicate)
                .into_iter()
                .filter(|c| is_equality_with_outer(c, scopes))
                .collect(),
            _ => Vec::new(),
        };
        node.apply_expressions(|ex| {
            if allowed.iter().any(|a| std::ptr::eq(*a, ex)) {
                return Ok(TreeNodeRecursion::Continue);
            }
            if let LogicalPlan::Filter(f) = node {
                if std::ptr::eq(&f.predicate, ex) {
                    // Look at the conjuncts one by one.
                    for c in conjuncts(&f.predicate) {
                        if !allowed.iter().any(|a| std::ptr::eq(*a, c)) && correlated(c) {
                            simple = false;
                        }
                    }
                    return Ok(TreeNodeRecursion::Continue);
                }
            }
            if correlated(ex) {
                simple = false;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(if simple {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    simple
}

/// A correlated subquery's plan holds only what DataFusion's decorrelation rewrites right:
/// projections, filters, scans, aliases and joins, and for a scalar subquery its aggregate.
/// (An EXISTS over an aggregate is true even for no row; a LIMIT/OFFSET, a window, a DISTINCT
/// or a sort changes which rows count: DataFusion's joins drop them.)
fn decorrelatable_shape(plan: &LogicalPlan, scalar: bool) -> bool {
    let mut ok = true;
    let _ = plan.apply(|node| {
        ok &= match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Values(_) => true,
            LogicalPlan::Aggregate(_) => scalar,
            _ => false,
        };
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// The conjuncts of a predicate (`a AND b AND c` -> a, b, c), borrowed.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            let mut v = conjuncts(&b.left);
            v.extend(conjuncts(&b.right));
            v
        }
        other => vec![other],
    }
}

/// `inner = outer.col` (either order), the outer column one of the enclosing query's.
fn is_equality_with_outer(e: &Expr, scopes: &[DFSchemaRef]) -> bool {
    let Expr::BinaryExpr(b) = e else { return false };
    if b.op != Operator::Eq {
        return false;
    }
    let here = |x: &Expr| matches!(x, Expr::OuterReferenceColumn(_, c) if scopes.iter().any(|s| s.has_column(c)));
    (here(&b.left) && !correlated(&b.right)) || (here(&b.right) && !correlated(&b.left))
}

/// Does the expression read an outer query's column, itself or through a subquery or one of
/// our subquery functions' arguments?
fn correlated(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        found |= match x {
            Expr::OuterReferenceColumn(..) => true,
            Expr::ScalarSubquery(s) => {
                !s.outer_ref_columns.is_empty() || plan_has_outer_refs(&s.subquery)
            }
            Expr::Exists(Exists { subquery, .. })
            | Expr::InSubquery(InSubquery { subquery, .. })
            | Expr::SetComparison(SetComparison { subquery, .. }) => {
                !subquery.outer_ref_columns.is_empty() || plan_has_outer_refs(&subquery.subquery)
            }
            _ => false,
        };
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

fn plan_has_outer_refs(plan: &LogicalPlan) -> bool {
    plan_has_expr(plan, |x| matches!(x, Expr::OuterReferenceColumn(..)))
}
