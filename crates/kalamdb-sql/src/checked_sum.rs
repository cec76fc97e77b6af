//! `sum()` of integers fails on overflow instead of wrapping.
//!
//! DataFusion sums BIGINTs with wrapping adds: `sum(x)` over 9223372036854775807 and 1 answered
//! -9223372036854775808. PostgreSQL sums BIGINTs into NUMERIC and never overflows; KalamDB keeps
//! BIGINT as the result type (the contract's) and answers TYPE_MISMATCH "value out of range" when
//! the sum leaves it, like `+` (crate::checked). The function keeps its name and everything else
//! of DataFusion's `sum`; only the BIGINT accumulators (plain, grouped and sliding windows) are
//! replaced. `sum(DISTINCT x)` of BIGINTs still wraps (DataFusion's distinct accumulator).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature, utils::AggregateOrderSensitivity,
};
use kalamdb_core::Error;

/// Replace DataFusion's `sum` in `registry` by the checked one.
pub(crate) fn install(registry: &mut dyn FunctionRegistry) -> kalamdb_core::Result<()> {
    let inner = registry.udaf("sum").map_err(|e| Error::Internal(e.to_string()))?;
    registry
        .register_udaf(Arc::new(AggregateUDF::new_from_impl(CheckedSum { inner: inner.inner().clone() })))
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(())
}

fn out_of_range() -> DataFusionError {
    DataFusionError::External(Box::new(Error::TypeMismatch("value out of range: bigint sum overflows".into())))
}

fn checked(sum: i64, value: i64) -> DfResult<i64> {
    sum.checked_add(value).ok_or_else(out_of_range)
}

#[derive(Debug)]
struct CheckedSum {
    inner: Arc<dyn AggregateUDFImpl>,
}

impl PartialEq for CheckedSum {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for CheckedSum {}
impl std::hash::Hash for CheckedSum {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "kalamdb_checked_sum".hash(state);
    }
}

/// Whether this call sums BIGINTs without DISTINCT (the accumulators replaced here).
fn sums_bigints(args: &AccumulatorArgs) -> bool {
    !args.is_distinct && args.return_type() == &DataType::Int64
}

impl AggregateUDFImpl for CheckedSum {
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
    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if sums_bigints(&args) {
            return Ok(Box::new(SumAccumulator::default()));
        }
        self.inner.accumulator(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn GroupsAccumulator>> {
        if sums_bigints(&args) {
            return Ok(Box::new(GroupSums::default()));
        }
        self.inner.create_groups_accumulator(args)
    }
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if sums_bigints(&args) {
            return Ok(Box::new(SumAccumulator::default()));
        }
        self.inner.create_sliding_accumulator(args)
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
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
    // No `simplify_expr_op_literal`: DataFusion's turns `sum(x + 1)` into
    // `sum(x) + count(x)`, an unchecked `+` added after the checking rules ran.
}

/// One sum; also a sliding window's (values leave the frame by subtraction, checked too).
#[derive(Debug, Default)]
struct SumAccumulator {
    sum: Option<i64>,
    /// Values in the frame (a sliding window), so an emptied frame sums to NULL again.
    count: u64,
}

impl SumAccumulator {
    fn add(&mut self, values: &ArrayRef, sign: i64) -> DfResult<()> {
        let values = values.as_primitive::<Int64Type>();
        for v in values.iter().flatten() {
            let sum = self.sum.unwrap_or(0);
            self.sum = Some(if sign > 0 { checked(sum, v)? } else { sum.checked_sub(v).ok_or_else(out_of_range)? });
            if sign > 0 {
                self.count += 1;
            } else {
                self.count = self.count.saturating_sub(1);
            }
        }
        if self.count == 0 && sign < 0 {
            self.sum = None;
        }
        Ok(())
    }
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.add(&values[0], 1)
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.add(&values[0], -1)
    }
    fn supports_retract_batch(&self) -> bool {
        true
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.add(&states[0], 1)
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Int64(self.sum))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// Sums per group (GROUP BY).
#[derive(Debug, Default)]
struct GroupSums {
    sums: Vec<i64>,
    seen: Vec<bool>,
}

impl GroupsAccumulator for GroupSums {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.sums.resize(total_num_groups, 0);
        self.seen.resize(total_num_groups, false);
        let values = values[0].as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) || values.is_null(row) {
                continue;
            }
            self.sums[group] = checked(self.sums[group], values.value(row))?;
            self.seen[group] = true;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        let array: Int64Array = sums.into_iter().zip(seen).map(|(s, seen)| seen.then_some(s)).collect();
        Ok(Arc::new(array))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> DfResult<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> DfResult<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<Int64Type>();
        let state: Int64Array = (0..values.len())
            .map(|row| {
                let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
                (kept && values.is_valid(row)).then(|| values.value(row))
            })
            .collect();
        Ok(vec![Arc::new(state)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 8 + self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    #[test]
    fn sums_overflow_into_an_error_and_sliding_frames_subtract() {
        let mut acc = SumAccumulator::default();
        acc.update_batch(&[ints(&[Some(i64::MAX - 1), None])]).unwrap();
        assert!(acc.update_batch(&[ints(&[Some(2)])]).is_err());
        let mut window = SumAccumulator::default();
        window.update_batch(&[ints(&[Some(5), Some(7)])]).unwrap();
        window.retract_batch(&[ints(&[Some(5), Some(7)])]).unwrap();
        assert_eq!(window.evaluate().unwrap(), ScalarValue::Int64(None));
        let mut groups = GroupSums::default();
        groups.update_batch(&[ints(&[Some(1), Some(i64::MAX), None])], &[0, 1, 2], None, 3).unwrap();
        let out = groups.evaluate(EmitTo::All).unwrap();
        assert_eq!(out.as_primitive::<Int64Type>(), &Int64Array::from(vec![Some(1), Some(i64::MAX), None]));
        let mut over = GroupSums::default();
        assert!(over.update_batch(&[ints(&[Some(i64::MAX), Some(1)])], &[0, 0], None, 1).is_err());
    }
}
