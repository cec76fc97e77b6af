//! Aggregates whose value grows with their input check the statement's memory as they grow.
//!
//! `string_agg` and `array_agg` build one value from all the rows they see. As window
//! functions over a growing frame (`string_agg(v, ',') OVER (ORDER BY id)`) they build one such
//! value per row, together the square of the rows, all inside one batch of the window
//! operator: 6,000 rows of 107 bytes built 5 GB and answered 200 under a 256 MiB limit, and
//! 200,000 rows took the server past 6 GB, since the memory limit is checked between batches.
//! Wrapped here, their accumulators check the statement's account
//! (`kalamdb_core::check_current`) after every value they produce and every batch
//! they take in, so such a query is refused near the limit, as any query over it is. The
//! functions keep their names, signatures, orderings and grouped forms (the grouped
//! accumulators are DataFusion's own: their state is checked between batches).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature,
};
use datafusion::logical_expr::{Expr, LogicalPlan, WindowFunctionDefinition};
use datafusion::optimizer::analyzer::AnalyzerRule;
use kalamdb_core::Error;

/// The aggregates replaced.
const GROWING: [&str; 2] = ["string_agg", "array_agg"];

/// Replace DataFusion's aggregates named above in `registry` by checked ones.
pub(crate) fn install(registry: &mut dyn FunctionRegistry) -> kalamdb_core::Result<()> {
    for name in GROWING {
        let inner = registry
            .udaf(name)
            .map_err(|e| Error::Internal(e.to_string()))?;
        registry
            .register_udaf(Arc::new(AggregateUDF::new_from_impl(Growing {
                inner: inner.inner().clone(),
                in_window: false,
            })))
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    Ok(())
}

fn check() -> DfResult<()> {
    kalamdb_core::check_current().map_err(|e| DataFusionError::External(Box::new(e)))
}

/// One of DataFusion's aggregates, its accumulators checked.
#[derive(Debug)]
struct Growing {
    inner: Arc<dyn AggregateUDFImpl>,
    /// Called as a window function ([`InWindows`]): its value may be repeated for many rows.
    in_window: bool,
}

impl PartialEq for Growing {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name()
    }
}
impl Eq for Growing {}
impl std::hash::Hash for Growing {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

impl Growing {
    fn wrap(&self, inner: Arc<dyn AggregateUDFImpl>) -> Arc<dyn AggregateUDFImpl> {
        Arc::new(Growing {
            inner,
            in_window: self.in_window,
        })
    }
}

/// The analyzer rule that marks the growing aggregates called as window functions, so their
/// accumulators size the copies a window makes of their value ([`Checked::evaluate`]); as
/// plain aggregates their one value is one row.
#[derive(Debug)]
pub(crate) struct InWindows;

impl AnalyzerRule for InWindows {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let mark = |e: Expr| -> DfResult<Transformed<Expr>> {
            let Expr::WindowFunction(mut w) = e else {
                return Ok(Transformed::no(e));
            };
            let marked = match &w.fun {
                WindowFunctionDefinition::AggregateUDF(udaf) => (udaf.inner().as_ref()
                    as &dyn std::any::Any)
                    .downcast_ref::<Growing>()
                    .filter(|g| !g.in_window)
                    .map(|g| Growing {
                        inner: g.inner.clone(),
                        in_window: true,
                    }),
                _ => None,
            };
            match marked {
                Some(g) => {
                    w.fun = WindowFunctionDefinition::AggregateUDF(Arc::new(
                        AggregateUDF::new_from_impl(g),
                    ));
                    Ok(Transformed::yes(Expr::WindowFunction(w)))
                }
                None => Ok(Transformed::no(Expr::WindowFunction(w))),
            }
        };
        plan.transform_up_with_subqueries(|node| node.map_expressions(|e| e.transform_up(mark)))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kalamdb_growing_aggregates_in_windows"
    }
}

impl AggregateUDFImpl for Growing {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field(&self, arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        self.inner.return_field(arg_fields)
    }
    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Checked::new(
            self.inner.accumulator(args)?,
            self.in_window,
        )))
    }
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Checked::new(
            self.inner.create_sliding_accumulator(args)?,
            self.in_window,
        )))
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }
    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> DfResult<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(self
            .inner
            .clone()
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| self.wrap(inner)))
    }
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.reverse_expr() {
            ReversedUDAF::Reversed(udaf) => ReversedUDAF::Reversed(Arc::new(
                AggregateUDF::new_from_shared_impl(self.wrap(udaf.inner().clone())),
            )),
            other => other,
        }
    }
    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }
    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }
    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        self.inner.default_value(data_type)
    }
    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// An accumulator that checks the statement's memory after each value and batch, and sizes
/// the copies a window makes of its value.
#[derive(Debug)]
struct Checked {
    inner: Box<dyn Accumulator>,
    /// The rows in its frame (taken in minus retracted).
    rows: usize,
    /// A window function's: its value may be repeated for every row of its frame.
    in_window: bool,
}

impl Checked {
    fn new(inner: Box<dyn Accumulator>, in_window: bool) -> Checked {
        Checked {
            inner,
            rows: 0,
            in_window,
        }
    }
}

impl Accumulator for Checked {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.update_batch(values)?;
        self.rows += values.first().map_or(0, |v| v.len());
        check()
    }
    /// A window over the whole partition (`OVER ()`, `... UNBOUNDED FOLLOWING`) evaluates
    /// once and repeats the value for every row of its frame: 3,000 copies of a 600 KB array
    /// were built after any check (3.6 GB under a 256 MiB limit). So a value that many copies
    /// of would not fit the limit is refused before it is returned (for a growing frame this
    /// errs high by about twice: its values grow one row at a time).
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let value = self.inner.evaluate()?;
        check()?;
        let copies = (value.size() as u128).saturating_mul(self.rows.max(1) as u128);
        let limit = kalamdb_core::current_limit();
        if self.in_window && self.rows > 1 && limit.is_some_and(|limit| copies > limit as u128) {
            return Err(DataFusionError::External(Box::new(Error::InvalidParameter(format!(
                "the query needs more memory than the server allows (limits.query_memory_bytes = {} bytes \
                 for all running queries): a window repeats a value of {} bytes for {} rows",
                limit.unwrap_or(0),
                value.size(),
                self.rows
            )))));
        }
        Ok(value)
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.inner.state()
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.inner.merge_batch(states)?;
        check()
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.retract_batch(values)?;
        self.rows = self
            .rows
            .saturating_sub(values.first().map_or(0, |v| v.len()));
        Ok(())
    }
    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}
