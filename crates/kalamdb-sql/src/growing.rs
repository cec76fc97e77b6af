//! Aggregates whose value grows with their input check the statement's memory as they grow.
//!
//! `string_agg` and `array_agg` build one value from all the rows they see. As window
//! functions over a growing frame (`string_agg(v, ',') OVER (ORDER BY id)`) they build one such
//! value per row, together the square of the rows, all inside one batch of the window
//! operator: 6,000 rows of 107 bytes built 5 GB and answered 200 under a 256 MiB limit, and
//! 200,000 rows took the server past 6 GB, since the memory limit is checked between batches.
//! Wrapped here, their accumulators check the statement's account
//! (`kalamdb_core::memory::check_current`) after every value they produce and every batch
//! they take in, so such a query is refused near the limit, as any query over it is. The
//! functions keep their names, signatures, orderings and grouped forms (the grouped
//! accumulators are DataFusion's own: their state is checked between batches).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature,
};
use kalamdb_core::Error;

/// The aggregates replaced.
const GROWING: [&str; 2] = ["string_agg", "array_agg"];

/// Replace DataFusion's aggregates named above in `registry` by checked ones.
pub(crate) fn install(registry: &mut dyn FunctionRegistry) -> kalamdb_core::Result<()> {
    for name in GROWING {
        let inner = registry.udaf(name).map_err(|e| Error::Internal(e.to_string()))?;
        registry
            .register_udaf(Arc::new(AggregateUDF::new_from_impl(Growing { inner: inner.inner().clone() })))
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    Ok(())
}

fn check() -> DfResult<()> {
    kalamdb_core::memory::check_current().map_err(|e| DataFusionError::External(Box::new(e)))
}

/// One of DataFusion's aggregates, its accumulators checked.
#[derive(Debug)]
struct Growing {
    inner: Arc<dyn AggregateUDFImpl>,
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
    fn wrap(inner: Arc<dyn AggregateUDFImpl>) -> Arc<dyn AggregateUDFImpl> {
        Arc::new(Growing { inner })
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
        Ok(Box::new(Checked(self.inner.accumulator(args)?)))
    }
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Checked(self.inner.create_sliding_accumulator(args)?)))
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }
    fn with_beneficial_ordering(self: Arc<Self>, beneficial_ordering: bool) -> DfResult<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(self.inner.clone().with_beneficial_ordering(beneficial_ordering)?.map(Growing::wrap))
    }
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.reverse_expr() {
            ReversedUDAF::Reversed(udaf) => {
                ReversedUDAF::Reversed(Arc::new(AggregateUDF::new_from_shared_impl(Growing::wrap(udaf.inner().clone()))))
            }
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

/// An accumulator that checks the statement's memory after each value and batch.
#[derive(Debug)]
struct Checked(Box<dyn Accumulator>);

impl Accumulator for Checked {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.0.update_batch(values)?;
        check()
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let value = self.0.evaluate()?;
        check()?;
        Ok(value)
    }
    fn size(&self) -> usize {
        self.0.size()
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.0.state()
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.0.merge_batch(states)?;
        check()
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.0.retract_batch(values)
    }
    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }
}
