//! Corrections to how sqlparser 0.62 reads PostgreSQL syntax, applied to the parsed statement
//! before planning.
//!
//! - **`IS [NOT] DISTINCT FROM` binds tighter than AND and OR.** sqlparser reads the whole rest
//!   of the expression as the right operand, so `a IS DISTINCT FROM b AND c` became
//!   `a IS DISTINCT FROM (b AND c)`. PostgreSQL (and the SQL standard) read
//!   `(a IS DISTINCT FROM b) AND c`. A parenthesised operand stays as written.
//! - **A window that refines a named one keeps the named one's parts.** DataFusion planned
//!   `OVER (w ORDER BY id)` and `OVER (w)` without `w`'s PARTITION BY (and ORDER BY), giving
//!   wrong answers with no error. Such a window is written out in full: the named window's
//!   PARTITION BY, the refinement's ORDER BY (else the named one's), its frame (else the
//!   named one's).
//! - **VALUES inside an INSERT's query is its own relation.** DataFusion types every VALUES
//!   list planned under an INSERT as a row of the target table, also one in the FROM clause of
//!   `INSERT INTO t SELECT ... FROM (VALUES (1), (2)) AS a(n)` ("Inconsistent data length across
//!   values list"). Such a VALUES is written as `SELECT ... UNION ALL SELECT ...` instead.
//!
//! - **A number with a decimal point, or an integer beyond BIGINT, assigned to a column is
//!   exact** (an INSERT's VALUES
//!   item, an UPDATE's SET value): PostgreSQL reads it as numeric, DataFusion as a float, which
//!   lost digits in DECIMAL columns ([`exact_number`]).
//!
//! And refusals DataFusion cannot make itself: an `X'...'` literal with an odd number of hex
//! digits is TYPE_MISMATCH (DataFusion read `X'DEADBEE'` as `X'0DEADBEE'`); a scalar or IN subquery with an empty
//! select list (`(SELECT FROM t)`) made its planner panic; it is INVALID_SQL before planning
//! ([`check`]). `EXISTS (SELECT FROM t)` is fine: it reads no column.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, NamedWindowExpr, Query, SetExpr, VisitMut, VisitorMut, WindowSpec,
    WindowType,
};

/// Refuse what DataFusion's planner would crash on.
pub(crate) fn check(statement: &sqlparser::ast::Statement) -> kalamdb_core::Result<()> {
    let empty =
        |q: &Query| matches!(q.body.as_ref(), SetExpr::Select(s) if s.projection.is_empty());
    let flow = sqlparser::ast::visit_expressions(statement, |e| match e {
        Expr::Subquery(q) | Expr::InSubquery { subquery: q, .. } if empty(q) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    if flow.is_break() {
        return Err(kalamdb_core::Error::invalid_sql(
            "subquery must return only one column",
        ));
    }
    // X'...' is bytes, two hex digits each (DataFusion read an odd count with a leading 0).
    let flow = sqlparser::ast::visit_expressions(statement, |e| match e {
        Expr::Value(v) => match &v.value {
            sqlparser::ast::Value::HexStringLiteral(h) if h.len() % 2 != 0 => {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    });
    if flow.is_break() {
        return Err(kalamdb_core::Error::TypeMismatch(
            "invalid hexadecimal data: X'...' needs an even number of hex digits".into(),
        ));
    }
    let mut depth = QueryDepth {
        now: 0,
        max: 0,
        selects: 0,
        widest_select: 0,
        expanded: 0,
    };
    let _ = sqlparser::ast::Visit::visit(statement, &mut depth);
    if depth.expanded > MAX_EXPANDED_CTES {
        return Err(kalamdb_core::Error::invalid_sql(format!(
            "the statement's CTEs expand to about {} copies (each reference to a CTE plans it again); at most {MAX_EXPANDED_CTES} are allowed",
            depth.expanded
        )));
    }
    if depth.selects > MAX_SELECTS {
        return Err(kalamdb_core::Error::invalid_sql(format!(
            "the statement has {} SELECTs (UNION branches, subqueries); at most {MAX_SELECTS} are allowed",
            depth.selects
        )));
    }
    if depth.widest_select > MAX_SELECT_ITEMS {
        return Err(kalamdb_core::Error::invalid_sql(format!(
            "a SELECT list has {} entries; at most {MAX_SELECT_ITEMS} are allowed",
            depth.widest_select
        )));
    }
    if depth.max > MAX_QUERY_NESTING {
        return Err(kalamdb_core::Error::invalid_sql(format!(
            "queries nest {} levels deep; at most {MAX_QUERY_NESTING} are allowed",
            depth.max
        )));
    }
    Ok(())
}

/// How many entries one SELECT list may hold: PostgreSQL's limit (a target list has at most
/// 1,664 entries). DataFusion 55 plans a select list in time growing with the square of its
/// entries, and planning cannot be interrupted: 20,000 entries answered 408 and kept a core
/// busy 13 s more (debug build); the token cap alone allowed about 80,000.
pub(crate) const MAX_SELECT_ITEMS: usize = 1664;

/// How deep queries may nest (subqueries, derived tables, CTEs inside one another). Planning
/// time grows about twofold per level of nested scalar subqueries in DataFusion 55 (14 levels
/// took 2 s in a debug build, 18 ran past the statement timeout); 12 levels plan in a fraction
/// of a second and are far beyond what applications write.
pub(crate) const MAX_QUERY_NESTING: usize = 12;

/// How many SELECTs one statement may hold. DataFusion 55 plans a statement in time that
/// grows with the square of its SELECTs (a UNION ALL of 300 planned in 0.6 s in a debug build,
/// 1,000 in 4 s, 3,000 past the statement timeout, and planning cannot be interrupted: it kept
/// a core busy after the 408). 500 plan in about a second.
pub(crate) const MAX_SELECTS: usize = 500;

/// How many copies of CTE bodies a statement may plan. A CTE is planned again at each of its
/// references, so `c1 AS (SELECT .. FROM c0 a, c0 b), c2 AS (.. FROM c1 a, c1 b), ...` doubles
/// per level: 29 levels (1 KB of SQL) ran the server to 22 GB inside DataFusion's planner,
/// which cannot be interrupted. Counted on the parsed statement, before planning.
pub(crate) const MAX_EXPANDED_CTES: u64 = 1_000;

struct QueryDepth {
    now: usize,
    max: usize,
    selects: usize,
    /// The most items one SELECT list holds.
    widest_select: usize,
    /// The largest number of CTE body copies one WITH clause expands to.
    expanded: u64,
}

/// How many copies of CTE bodies planning `with` and `body` makes: each CTE costs itself
/// plus every copy of the earlier CTEs it references, and the body references them too.
fn expanded_ctes(with: &sqlparser::ast::With, body: &SetExpr) -> u64 {
    let mut weights: HashMap<String, u64> = HashMap::new();
    let refs = |node: &dyn VisitRelations, weights: &HashMap<String, u64>| -> u64 {
        let mut total = 0u64;
        node.relations(&mut |name: &str| {
            if let Some(w) = weights.get(name) {
                total = total.saturating_add(*w);
            }
        });
        total
    };
    for cte in &with.cte_tables {
        let w = 1u64.saturating_add(refs(cte.query.as_ref(), &weights));
        weights.insert(cte.alias.name.value.to_lowercase(), w);
    }
    refs(body, &weights)
}

/// Every single-part table name a node reads, lower-cased.
trait VisitRelations {
    fn relations(&self, f: &mut dyn FnMut(&str));
}

impl<T: sqlparser::ast::Visit> VisitRelations for T {
    fn relations(&self, f: &mut dyn FnMut(&str)) {
        let _ = sqlparser::ast::visit_relations(self, |name| {
            if let [part] = name.0.as_slice() {
                if let Some(ident) = part.as_ident() {
                    f(&ident.value.to_lowercase());
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
}

impl sqlparser::ast::Visitor for QueryDepth {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.now += 1;
        self.max = self.max.max(self.now);
        if let Some(with) = &query.with {
            self.expanded = self.expanded.max(expanded_ctes(with, &query.body));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.now -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &sqlparser::ast::Select) -> ControlFlow<()> {
        self.selects += 1;
        self.widest_select = self.widest_select.max(select.projection.len());
        ControlFlow::Continue(())
    }
}

/// Apply every correction to `statement`.
pub(crate) fn correct(statement: &mut sqlparser::ast::Statement) {
    if let sqlparser::ast::Statement::Insert(insert) = statement {
        if let Some(source) = insert.source.as_mut() {
            if let SetExpr::Values(values) = source.body.as_mut() {
                for row in values.rows.iter_mut() {
                    row.iter_mut().for_each(exact_number);
                }
            } else {
                let _ = source.visit(&mut NestedValues);
            }
        }
    }
    if let sqlparser::ast::Statement::Update(update) = statement {
        for assignment in update.assignments.iter_mut() {
            exact_number(&mut assignment.value);
        }
    }
    let _ = statement.visit(&mut Corrector);
}

/// A value written with a decimal point (`12345678901234567890.1234567891`) and assigned to a
/// column (an INSERT's VALUES item, an UPDATE's SET value) is an exact number, as PostgreSQL
/// reads it: `CAST('...' AS DECIMAL(p, s))` with exactly its digits. DataFusion reads it as a
/// float, which kept 17 digits of it in a DECIMAL column; the cast to the column's type then
/// converts from the exact value (to DOUBLE it rounds as parsing the text would).
fn exact_number(e: &mut Expr) {
    use sqlparser::ast::{CastKind, DataType, ExactNumberInfo, Value};
    let (negative, inner) = match &*e {
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => (true, expr.as_ref()),
        other => (false, other),
    };
    let Expr::Value(v) = inner else { return };
    let Value::Number(text, false) = &v.value else {
        return;
    };
    // An integer too large for BIGINT is exact too (DataFusion read it as a float:
    // 12345678901234567890123 was stored as 12345678901234567741440).
    let (whole, fraction) = match text.split_once('.') {
        Some(parts) => parts,
        None if text.parse::<i64>().is_err() => (text.as_str(), ""),
        None => return,
    };
    let digits = whole.trim_start_matches('0').len() + fraction.len();
    let integer = !text.contains('.');
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') || (fraction.is_empty() && !integer) {
        return;
    }
    if digits > 38 {
        // Beyond DECIMAL(38): its digits as text, sign included, converted to the column's type
        // by the assignment (a TEXT column keeps them, a DOUBLE reads them, a DECIMAL(38) is
        // out of range); as a float 10^38 was stored as 99999999999999997748809823456034029568.
        let text = if negative {
            format!("-{text}")
        } else {
            text.clone()
        };
        *e = Expr::value(Value::SingleQuotedString(text));
        return;
    }
    let info = ExactNumberInfo::PrecisionAndScale(digits.max(1) as u64, fraction.len() as i64);
    let exact = Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::value(Value::SingleQuotedString(text.clone()))),
        data_type: DataType::Decimal(info),
        array: false,
        format: None,
    };
    match e {
        Expr::UnaryOp { expr, .. } => **expr = exact,
        other => *other = exact,
    }
}

/// Rewrites every VALUES body of a query (see the module docs).
struct NestedValues;

impl VisitorMut for NestedValues {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Values(values) = query.body.as_ref() {
            let text = values
                .rows
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    // Named as VALUES names its columns (column1, column2, ...), which also
                    // keeps two equal items (`VALUES (2, 2)`) apart.
                    let items: Vec<String> = row
                        .iter()
                        .enumerate()
                        .map(|(i, e)| {
                            if r == 0 {
                                format!("{e} AS column{}", i + 1)
                            } else {
                                e.to_string()
                            }
                        })
                        .collect();
                    format!("SELECT {}", items.join(", "))
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_query());
            if let Ok(union) = parsed {
                query.body = union.body;
            }
        }
        ControlFlow::Continue(())
    }
}

struct Corrector;

impl VisitorMut for Corrector {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let distinct = match expr {
            Expr::IsDistinctFrom(_, right) | Expr::IsNotDistinctFrom(_, right) => is_and_or(right),
            _ => false,
        };
        if distinct {
            let taken = std::mem::replace(expr, Expr::Value(sqlparser::ast::Value::Null.into()));
            *expr = rebalance(taken);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            if select.named_window.is_empty() {
                return ControlFlow::Continue(());
            }
            let named = named_windows(&select.named_window);
            let _ = sqlparser::ast::visit_expressions_mut(&mut select.projection, |e| {
                inline_window(e, &named);
                ControlFlow::<()>::Continue(())
            });
            if let Some(order_by) = &mut query.order_by {
                let _ = sqlparser::ast::visit_expressions_mut(order_by, |e| {
                    inline_window(e, &named);
                    ControlFlow::<()>::Continue(())
                });
            }
        }
        ControlFlow::Continue(())
    }
}

/// The named windows of a SELECT, references to other named windows resolved.
fn named_windows(defs: &[sqlparser::ast::NamedWindowDefinition]) -> HashMap<String, WindowSpec> {
    let mut out: HashMap<String, WindowSpec> = HashMap::new();
    // Definitions may refer to earlier ones; a few passes resolve chains.
    for _ in 0..defs.len().max(1) {
        for def in defs {
            let name = def.0.value.to_lowercase();
            let spec = match &def.1 {
                NamedWindowExpr::WindowSpec(spec) => match &spec.window_name {
                    Some(base) => match out.get(&base.value.to_lowercase()) {
                        Some(b) => Some(merged(b, spec)),
                        None => None,
                    },
                    None => Some(spec.clone()),
                },
                NamedWindowExpr::NamedWindow(other) => {
                    out.get(&other.value.to_lowercase()).cloned()
                }
            };
            if let Some(spec) = spec {
                out.insert(name, spec);
            }
        }
    }
    out
}

/// `spec` (which names a base window) written out over `base`.
fn merged(base: &WindowSpec, spec: &WindowSpec) -> WindowSpec {
    WindowSpec {
        window_name: None,
        partition_by: if spec.partition_by.is_empty() {
            base.partition_by.clone()
        } else {
            spec.partition_by.clone()
        },
        order_by: if spec.order_by.is_empty() {
            base.order_by.clone()
        } else {
            spec.order_by.clone()
        },
        window_frame: spec
            .window_frame
            .clone()
            .or_else(|| base.window_frame.clone()),
    }
}

fn inline_window(e: &mut Expr, named: &HashMap<String, WindowSpec>) {
    let Expr::Function(f) = e else { return };
    let Some(WindowType::WindowSpec(spec)) = &mut f.over else {
        return;
    };
    let Some(base_name) = spec
        .window_name
        .as_ref()
        .map(|n: &Ident| n.value.to_lowercase())
    else {
        return;
    };
    if let Some(base) = named.get(&base_name) {
        *spec = merged(base, spec);
    }
}

fn is_and_or(e: &Expr) -> bool {
    matches!(
        e,
        Expr::BinaryOp {
            op: BinaryOperator::And | BinaryOperator::Or,
            ..
        }
    )
}

/// `a IS DISTINCT FROM (l op r)` (op AND/OR, not parenthesised) -> `(a IS DISTINCT FROM l) op r`,
/// again for `l`.
fn rebalance(e: Expr) -> Expr {
    let (left, right, negated) = match e {
        Expr::IsDistinctFrom(l, r) => (l, r, false),
        Expr::IsNotDistinctFrom(l, r) => (l, r, true),
        other => return other,
    };
    match *right {
        Expr::BinaryOp {
            left: inner_left,
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            right: inner_right,
        } => {
            let first = if negated {
                Expr::IsNotDistinctFrom(left, inner_left)
            } else {
                Expr::IsDistinctFrom(left, inner_left)
            };
            Expr::BinaryOp {
                left: Box::new(rebalance(first)),
                op,
                right: inner_right,
            }
        }
        other => {
            if negated {
                Expr::IsNotDistinctFrom(left, Box::new(other))
            } else {
                Expr::IsDistinctFrom(left, Box::new(other))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::{BinaryOperator, Expr, SelectItem, SetExpr, Statement};
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    /// The first select item of `sql`, corrected.
    fn item(sql: &str) -> Expr {
        let mut stmts = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        super::correct(&mut stmts[0]);
        let Statement::Query(q) = &stmts[0] else {
            panic!("not a query")
        };
        let SetExpr::Select(s) = q.body.as_ref() else {
            panic!("not a select")
        };
        let SelectItem::UnnamedExpr(e) = &s.projection[0] else {
            panic!("not an expression")
        };
        e.clone()
    }

    #[test]
    fn is_distinct_from_binds_tighter_than_and_or() {
        // (a IS DISTINCT FROM b) AND c
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            ..
        } = item("SELECT a IS DISTINCT FROM b AND c")
        else {
            panic!("AND is not the root")
        };
        assert!(matches!(*left, Expr::IsDistinctFrom(..)));
        // ((a IS NOT DISTINCT FROM b) AND c) OR d
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            ..
        } = item("SELECT a IS NOT DISTINCT FROM b AND c OR d")
        else {
            panic!("OR is not the root")
        };
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            ..
        } = *left
        else {
            panic!("AND under OR")
        };
        assert!(matches!(*left, Expr::IsNotDistinctFrom(..)));
        // Parentheses are kept: a IS DISTINCT FROM (b AND c).
        assert!(matches!(
            item("SELECT a IS DISTINCT FROM (b AND c)"),
            Expr::IsDistinctFrom(..)
        ));
        // Comparison operators bind tighter than IS in PostgreSQL too: unchanged.
        assert!(matches!(
            item("SELECT a IS DISTINCT FROM b = c"),
            Expr::IsDistinctFrom(..)
        ));
    }

    #[test]
    fn values_inside_an_insert_query_become_a_union() {
        let mut stmts = Parser::parse_sql(
            &GenericDialect {},
            "INSERT INTO t SELECT a.n FROM (VALUES (1), (2)) AS a (n)",
        )
        .unwrap();
        super::correct(&mut stmts[0]);
        assert_eq!(
            stmts[0].to_string(),
            "INSERT INTO t SELECT a.n FROM (SELECT 1 AS column1 UNION ALL SELECT 2) AS a (n)"
        );
        let mut stmts =
            Parser::parse_sql(&GenericDialect {}, "INSERT INTO t VALUES (1), (2)").unwrap();
        super::correct(&mut stmts[0]);
        assert_eq!(
            stmts[0].to_string(),
            "INSERT INTO t VALUES (1), (2)",
            "a plain VALUES insert is left alone"
        );
    }

    #[test]
    fn a_window_refining_a_named_one_is_written_out() {
        let e = item("SELECT row_number() OVER (w ORDER BY id) FROM t WINDOW w AS (PARTITION BY g ORDER BY x DESC)");
        assert_eq!(
            e.to_string(),
            "row_number() OVER (PARTITION BY g ORDER BY id)"
        );
        let e = item("SELECT count(*) OVER (w) FROM t WINDOW w AS (PARTITION BY g)");
        assert_eq!(e.to_string(), "count(*) OVER (PARTITION BY g)");
        let e = item("SELECT sum(v) OVER w FROM t WINDOW w AS (PARTITION BY g)");
        assert_eq!(
            e.to_string(),
            "sum(v) OVER w",
            "a plain named window is DataFusion's to resolve"
        );
    }
}
