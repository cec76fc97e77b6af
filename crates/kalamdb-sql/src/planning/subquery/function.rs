//! The function a rewritten subquery becomes: [`SubqueryFunction`] runs the subquery's plan
//! once per distinct tuple of outer values, with the statement's own session, under its
//! deadline and row limit, caching the results for the statement.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType as ArrowType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DFSchemaRef, DataFusionError, ParamValues, Result as DfResult, ScalarValue,
};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::expr::{
    Exists, InSubquery, Placeholder, SetComparison, SetQuantifier,
};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Subquery, Volatility,
};
use kalamdb_core::Error;
use parking_lot::Mutex;

/// What evaluating subqueries needs of the statement they run in. The statement's session
/// implements it: this module never names the session that installs its rules, so the two do
/// not import each other.
pub(crate) trait StatementContext: std::fmt::Debug + Send + Sync {
    /// Every subquery is evaluated per outer row (the fallback when DataFusion's
    /// decorrelation of one fails).
    fn evaluate_all_subqueries(&self) -> bool;
    fn account(&self) -> &Arc<kalamdb_core::Account>;
    fn deadline(&self) -> Instant;
    fn max_rows(&self) -> usize;
    /// A DataFusion state for the statement, these rules in it.
    fn new_state(self: Arc<Self>) -> SessionState;
}

pub(super) type StatementSession = dyn StatementContext;

/// Most distinct outer tuples whose subquery results one subquery keeps for the statement;
/// beyond it results are computed and not kept (the answer is the same, only slower).
const MAX_CACHED_KEYS: usize = 4096;

/// Run a subquery plan to completion from inside an expression evaluation (which is
/// synchronous), on the query runtime the statement runs on, before the statement's deadline.
fn run(state: &SessionState, deadline: Instant, plan: LogicalPlan) -> DfResult<Vec<RecordBatch>> {
    // `plan` is optimized already (SubqueryFunction::prepare): only the physical planning runs.
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        DataFusionError::Internal("a subquery was evaluated outside the query runtime".into())
    })?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(DataFusionError::Internal(
            "a subquery was evaluated outside the multi-threaded query runtime".into(),
        ));
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let fut = async {
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, state)
            .await?;
        datafusion::physical_plan::collect(physical, state.task_ctx()).await
    };
    match tokio::task::block_in_place(|| handle.block_on(tokio::time::timeout(remaining, fut))) {
        Ok(result) => result,
        Err(_) => Err(timeout()),
    }
}

fn timeout() -> DataFusionError {
    DataFusionError::External(Box::new(Error::Timeout(
        "the statement ran longer than its timeout (the request's timeout_ms, else limits.statement_timeout_secs) and was stopped"
            .into(),
    )))
}

/// The kind of subquery a [`SubqueryFunction`] evaluates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    /// `(SELECT x ...)`: NULL for no row, the value for one, an error for more.
    Scalar,
    /// `[NOT] EXISTS (SELECT ...)`.
    Exists { negated: bool },
    /// `probe [NOT] IN (SELECT ...)`, three-valued.
    In { negated: bool },
    /// `probe op ANY|ALL (SELECT ...)`, three-valued.
    Compare { op: Operator, all: bool },
}

/// Replace one subquery expression by a call of its [`SubqueryFunction`].
pub(super) fn to_function(
    e: Expr,
    scopes: &[DFSchemaRef],
    ctx: &Arc<StatementSession>,
) -> DfResult<Expr> {
    let name = e.schema_name().to_string();
    let (kind, subquery, probe) = match split_subquery(e) {
        Ok(parts) => parts,
        Err(other) => return Ok(other),
    };
    let Subquery { subquery: plan, .. } = subquery;
    let plan = match kind {
        // EXISTS reads only whether a row comes back; its select list may even be empty.
        Kind::Exists { .. } => Arc::new(
            LogicalPlanBuilder::from(plan.as_ref().clone())
                .project(vec![datafusion::logical_expr::lit(true).alias("exists")])?
                .build()?,
        ),
        _ if plan.schema().fields().len() != 1 => {
            return datafusion::common::plan_err!("subquery must return only one column");
        }
        _ => plan,
    };
    let value_field = plan.schema().field(0).clone();
    let (data_type, nullable) = match kind {
        Kind::Scalar => (value_field.data_type().clone(), true),
        Kind::Exists { .. } => (ArrowType::Boolean, false),
        Kind::In { .. } | Kind::Compare { .. } => (ArrowType::Boolean, true),
    };
    let outer_refs = outer_references(&plan)?;
    let mut args = Vec::with_capacity(outer_refs.len() + 1);
    if let Some(p) = probe {
        args.push(p);
    }
    // Those this node's inputs provide become plain columns; the others belong to an
    // enclosing query and stay outer references, which that query substitutes when it runs
    // this one.
    for (f, c) in &outer_refs {
        let here = scopes.iter().any(|s| s.has_column(c));
        args.push(if here {
            Expr::Column(c.clone())
        } else {
            Expr::OuterReferenceColumn(f.clone(), c.clone())
        });
    }
    let has_probe = matches!(kind, Kind::In { .. } | Kind::Compare { .. });
    let outer_types: Vec<ArrowType> = outer_refs
        .iter()
        .map(|(f, _)| f.data_type().clone())
        .collect();
    let arity = args.len();
    let function = SubqueryFunction {
        signature: if arity == 0 {
            Signature::nullary(Volatility::Volatile)
        } else {
            Signature::any(arity, Volatility::Volatile)
        },
        name,
        kind,
        plan,
        outer: outer_refs.iter().map(|(_, c)| c.clone()).collect(),
        has_probe,
        field: Arc::new(Field::new("subquery", data_type, nullable)),
        ctx: ctx.clone(),
        state: Arc::new(std::sync::OnceLock::new()),
        prepared: Arc::new(std::sync::OnceLock::new()),
        outer_types,
        cache: Arc::new(Mutex::new(HashMap::new())),
    };
    Ok(ScalarUDF::new_from_impl(function).call(args))
}

/// A subquery expression's kind, plan and probe (the left side of IN or of a comparison);
/// any other expression back as it was.
fn split_subquery(e: Expr) -> Result<(Kind, Subquery, Option<Expr>), Expr> {
    Ok(match e {
        Expr::ScalarSubquery(s) => (Kind::Scalar, s, None),
        Expr::Exists(Exists { subquery, negated }) => (Kind::Exists { negated }, subquery, None),
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => (Kind::In { negated }, subquery, Some(*expr)),
        Expr::SetComparison(SetComparison {
            expr,
            subquery,
            op,
            quantifier,
        }) => (
            Kind::Compare {
                op,
                all: matches!(quantifier, SetQuantifier::All),
            },
            subquery,
            Some(*expr),
        ),
        other => return Err(other),
    })
}

/// Every outer reference anywhere inside `plan` (nested subqueries included), once each.
fn outer_references(plan: &LogicalPlan) -> DfResult<Vec<(FieldRef, Column)>> {
    let mut outer_refs: Vec<(FieldRef, Column)> = Vec::new();
    plan.apply_with_subqueries(|p| {
        p.apply_expressions(|ex| {
            ex.apply(|ex| {
                if let Expr::OuterReferenceColumn(f, c) = ex {
                    if !outer_refs.iter().any(|(_, seen)| seen == c) {
                        outer_refs.push((f.clone(), c.clone()));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(outer_refs)
}

/// A subquery as a scalar function of the outer values it reads (see the module docs).
#[derive(Debug)]
struct SubqueryFunction {
    /// The replaced expression's name, so every plan schema stays as DataFusion named it.
    name: String,
    signature: Signature,
    kind: Kind,
    /// The subquery's plan, analyzed, outer references still in place.
    plan: Arc<LogicalPlan>,
    /// The outer references `plan` holds, in argument order (after the probe, if any).
    outer: Vec<Column>,
    has_probe: bool,
    field: FieldRef,
    ctx: Arc<StatementSession>,
    /// The session the subquery runs with, built once (on first use) for all its tuples.
    state: Arc<std::sync::OnceLock<SessionState>>,
    /// The optimized, parameterized plan (see [`SubqueryFunction::prepare`]), made once.
    prepared: Arc<std::sync::OnceLock<Result<LogicalPlan, Arc<DataFusionError>>>>,
    /// The type of each outer reference's placeholder.
    outer_types: Vec<ArrowType>,
    /// Subquery results by outer tuple, for this statement.
    cache: Arc<Mutex<HashMap<Vec<ScalarValue>, Arc<ArrayRef>>>>,
}

impl PartialEq for SubqueryFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.plan == other.plan
            && self.outer == other.outer
    }
}

impl Eq for SubqueryFunction {}

impl Hash for SubqueryFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.kind.hash(state);
        self.plan.hash(state);
        self.outer.hash(state);
    }
}

impl ScalarUDFImpl for SubqueryFunction {
    fn name(&self) -> &str {
        "kalamdb_subquery"
    }

    fn display_name(&self, _args: &[Expr]) -> DfResult<String> {
        Ok(self.name.clone())
    }

    fn schema_name(&self, _args: &[Expr]) -> DfResult<String> {
        Ok(self.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(self.field.data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(self.field.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<DfResult<Vec<_>>>()?;
        let (probe, outer) = if self.has_probe {
            (arrays.first(), &arrays[1..])
        } else {
            (None, &arrays[..])
        };
        let mut out = Vec::with_capacity(n);
        // The answers are repeated for every row of the batch: a 1 MB answer for 3,000 rows
        // is a 3 GB column (built twice: as values, then as the array). Refused before it is
        // built when the column alone is over the statement's memory limit.
        let limit = self.ctx.account().limit();
        let mut bytes = 0usize;
        for row in 0..n {
            let key = outer
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<DfResult<Vec<_>>>()?;
            let values = self.values_for(key)?;
            if let Kind::Scalar = self.kind {
                bytes += values.get_array_memory_size() / values.len().max(1);
                if bytes.saturating_mul(2) > limit {
                    return Err(DataFusionError::External(Box::new(Error::InvalidParameter(format!(
                        "the query needs more memory than the server allows (limits.query_memory_bytes = {limit} bytes): \
                         a subquery's answer repeated for {n} rows is over it"
                    )))));
                }
            }
            out.push(match self.kind {
                Kind::Scalar => {
                    match values.len() {
                        0 => ScalarValue::try_from(self.field.data_type())?,
                        1 => ScalarValue::try_from_array(values.as_ref(), 0)?,
                        _ => return Err(DataFusionError::External(Box::new(
                            Error::InvalidParameter(
                                "more than one row returned by a subquery used as an expression"
                                    .into(),
                            ),
                        ))),
                    }
                }
                Kind::Exists { negated } => {
                    ScalarValue::Boolean(Some(values.is_empty() == negated))
                }
                Kind::In { negated } => {
                    let probe = probe
                        .ok_or_else(|| DataFusionError::Internal("IN without a probe".into()))?;
                    let r = quantified(probe, row, &values, Operator::Eq, false)?;
                    ScalarValue::Boolean(if negated { r.map(|b| !b) } else { r })
                }
                Kind::Compare { op, all } => {
                    let probe = probe.ok_or_else(|| {
                        DataFusionError::Internal("comparison without a probe".into())
                    })?;
                    ScalarValue::Boolean(quantified(probe, row, &values, op, all)?)
                }
            });
        }
        if n == 1 {
            return Ok(ColumnarValue::Scalar(
                out.pop().unwrap_or(ScalarValue::Null),
            ));
        }
        let array = if out.is_empty() {
            arrow::array::new_empty_array(self.field.data_type())
        } else {
            ScalarValue::iter_to_array(out)?
        };
        Ok(ColumnarValue::Array(array))
    }
}

impl SubqueryFunction {
    /// The subquery's result column for one tuple of outer values (cached per statement).
    fn values_for(&self, key: Vec<ScalarValue>) -> DfResult<Arc<ArrayRef>> {
        if let Some(v) = self.cache.lock().get(&key) {
            return Ok(v.clone());
        }
        if Instant::now() >= self.ctx.deadline() {
            return Err(timeout());
        }
        let state = self.state.get_or_init(|| self.ctx.clone().new_state());
        let prepared = self
            .prepared
            .get_or_init(|| self.prepare(state).map_err(Arc::new));
        let prepared = prepared
            .as_ref()
            .map_err(|e| DataFusionError::Shared(e.clone()))?;
        let values = key
            .iter()
            .zip(&self.outer_types)
            .map(|(v, t)| cast_literal(v.clone(), t))
            .collect::<DfResult<Vec<_>>>()?;
        let plan = prepared
            .clone()
            .with_param_values(ParamValues::from(values))?;
        let batches = run(state, self.ctx.deadline(), plan)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows > self.ctx.max_rows() {
            return Err(DataFusionError::External(Box::new(
                crate::engine::too_many_rows(self.ctx.max_rows()),
            )));
        }
        let columns: Vec<ArrayRef> = batches
            .iter()
            .filter(|b| b.num_columns() > 0)
            .map(|b| b.column(0).clone())
            .collect();
        let values = match columns.as_slice() {
            [] => arrow::array::new_empty_array(self.plan.schema().field(0).data_type()),
            [one] => one.clone(),
            many => {
                let refs: Vec<&dyn Array> = many.iter().map(|a| a.as_ref()).collect();
                arrow::compute::concat(&refs)?
            }
        };
        let values = Arc::new(values);
        let mut cache = self.cache.lock();
        if cache.len() < MAX_CACHED_KEYS {
            cache.insert(key, values.clone());
        }
        Ok(values)
    }

    /// The subquery's plan, optimized once, each outer reference of this level a typed
    /// placeholder (`$1` for the first of [`SubqueryFunction::outer`]): each tuple then only
    /// binds its values and plans the physical execution.
    fn prepare(&self, state: &SessionState) -> DfResult<LogicalPlan> {
        let placeholder = |c: &Column| {
            self.outer
                .iter()
                .position(|o| o == c)
                .map(|i| format!("${}", i + 1))
        };
        let parameterized = self
            .plan
            .as_ref()
            .clone()
            .transform_up_with_subqueries(|node| {
                // An expression that names an output column keeps its name (a parent refers to
                // `max(t2.y + outer_ref(t1.x))`, not to `max(t2.y + $1)`), as DataFusion's own
                // parameter binding does.
                let names = NamePreserver::new(&node);
                node.map_expressions(|e| {
                    let name = names.save(&e);
                    let rewritten = e.transform_up(|e| match e {
                        Expr::OuterReferenceColumn(f, c) => match placeholder(&c) {
                            Some(id) => Ok(Transformed::yes(Expr::Placeholder(Placeholder {
                                id,
                                field: Some(f),
                            }))),
                            None => Ok(Transformed::no(Expr::OuterReferenceColumn(f, c))),
                        },
                        // A nested subquery no longer depends on what was just parameterized.
                        Expr::ScalarSubquery(s) => Ok(Transformed::yes(Expr::ScalarSubquery(
                            unbind(s, &self.outer),
                        ))),
                        Expr::Exists(Exists { subquery, negated }) => {
                            Ok(Transformed::yes(Expr::Exists(Exists {
                                subquery: unbind(subquery, &self.outer),
                                negated,
                            })))
                        }
                        Expr::InSubquery(InSubquery {
                            expr,
                            subquery,
                            negated,
                        }) => Ok(Transformed::yes(Expr::InSubquery(InSubquery {
                            expr,
                            subquery: unbind(subquery, &self.outer),
                            negated,
                        }))),
                        Expr::SetComparison(SetComparison {
                            expr,
                            subquery,
                            op,
                            quantifier,
                        }) => Ok(Transformed::yes(Expr::SetComparison(SetComparison {
                            expr,
                            subquery: unbind(subquery, &self.outer),
                            op,
                            quantifier,
                        }))),
                        e => Ok(Transformed::no(e)),
                    })?;
                    Ok(if rewritten.transformed {
                        rewritten.update_data(|e| name.restore(e))
                    } else {
                        rewritten
                    })
                })
            })?;
        let plan = parameterized.data.recompute_schema()?;
        // A scalar subquery needs to know only whether there is a second row, EXISTS only
        // whether there is a first.
        let plan = match self.kind {
            Kind::Scalar => LogicalPlanBuilder::from(plan).limit(0, Some(2))?.build()?,
            Kind::Exists { .. } => LogicalPlanBuilder::from(plan).limit(0, Some(1))?.build()?,
            _ => plan,
        };
        state.optimize(&plan)
    }
}

/// `subquery` without the outer references that were just bound to literals.
fn unbind(mut subquery: Subquery, bound: &[Column]) -> Subquery {
    subquery
        .outer_ref_columns
        .retain(|e| !matches!(e, Expr::OuterReferenceColumn(_, c) if bound.contains(c)));
    subquery
}

/// A literal of the type the outer reference was planned with.
fn cast_literal(v: ScalarValue, to: &ArrowType) -> DfResult<ScalarValue> {
    if &v.data_type() == to {
        Ok(v)
    } else {
        v.cast_to(to)
    }
}

/// `probe op ANY (values)` or `probe op ALL (values)` in three-valued logic; `None` is NULL.
fn quantified(
    probe: &ArrayRef,
    row: usize,
    values: &ArrayRef,
    op: Operator,
    all: bool,
) -> DfResult<Option<bool>> {
    if values.is_empty() {
        // Nothing to compare with: ANY is false, ALL is true, whatever the probe.
        return Ok(Some(all));
    }
    let mut p = probe.slice(row, 1);
    if p.data_type() != values.data_type() {
        p = arrow::compute::cast(&p, values.data_type())?;
    }
    let p = arrow::array::Scalar::new(p);
    let hits: BooleanArray = match op {
        Operator::Eq => cmp::eq(values, &p)?,
        Operator::NotEq => cmp::neq(values, &p)?,
        Operator::Lt => cmp::gt(values, &p)?, // probe < v  <=>  v > probe
        Operator::LtEq => cmp::gt_eq(values, &p)?,
        Operator::Gt => cmp::lt(values, &p)?,
        Operator::GtEq => cmp::lt_eq(values, &p)?,
        other => {
            return Err(DataFusionError::External(Box::new(Error::Unsupported(
                format!("the operator {other} cannot compare with ANY/ALL"),
            ))))
        }
    };
    let (mut any_true, mut any_false, mut any_null) = (false, false, false);
    for i in 0..hits.len() {
        if hits.is_null(i) {
            any_null = true;
        } else if hits.value(i) {
            any_true = true;
        } else {
            any_false = true;
        }
    }
    Ok(if all {
        if any_false {
            Some(false)
        } else if any_null {
            None
        } else {
            Some(true)
        }
    } else if any_true {
        Some(true)
    } else if any_null {
        None
    } else {
        Some(false)
    })
}
