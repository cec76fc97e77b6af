//! `sum()` of integers and decimals fails when the sum does not fit its type, instead of wrapping.
//!
//! DataFusion sums BIGINTs and DECIMALs with wrapping adds: `sum(x)` over 9223372036854775807
//! and 1 answered -9223372036854775808, two DECIMAL(38,0) values of 9e37 a negative number.
//! PostgreSQL sums BIGINTs into NUMERIC and never overflows; KalamDB keeps BIGINT as the result
//! type of an integer sum (the contract's) and DECIMAL(min(38, p + 10), s) for a decimal one.
//! Sums are kept in 128 bits (no BIGINT sum can leave them), so the answer does not depend on
//! the order of the rows or on a window frame's intermediate sums, and a sum that does not fit
//! its result type is TYPE_MISMATCH "value out of range" when it is returned, like `+`
//! (crate::planning::checked). The function keeps its name and everything else of DataFusion's `sum`;
//! only the BIGINT and DECIMAL(<=38) accumulators (plain, grouped and sliding windows) are
//! replaced, and their partial state is a DECIMAL(38). `sum(DISTINCT x)` keeps DataFusion's
//! state (the distinct values) and adds them the same way.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array};
use arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{format_state_name, AggregateOrderSensitivity};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature,
};
use kalamdb_core::Error;

/// Replace DataFusion's `sum` in `registry` by the checked one.
pub(crate) fn install(registry: &mut dyn FunctionRegistry) -> kalamdb_core::Result<()> {
    let inner = registry
        .udaf("sum")
        .map_err(|e| Error::Internal(e.to_string()))?;
    registry
        .register_udaf(Arc::new(AggregateUDF::new_from_impl(CheckedSum {
            inner: inner.inner().clone(),
        })))
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(())
}

fn out_of_range(what: &str) -> DataFusionError {
    DataFusionError::External(Box::new(Error::TypeMismatch(format!(
        "value out of range: the sum does not fit {what}"
    ))))
}

/// The result type of a sum kept in 128 bits.
#[derive(Debug, Clone, Copy)]
enum Sum {
    Bigint,
    Decimal { precision: u8, scale: i8 },
}

impl Sum {
    /// The sums replaced here: BIGINT and DECIMAL(<=38) results, without DISTINCT.
    fn of(result: &DataType, distinct: bool) -> Option<Sum> {
        match result {
            _ if distinct => None,
            DataType::Int64 => Some(Sum::Bigint),
            DataType::Decimal128(precision, scale) => Some(Sum::Decimal {
                precision: *precision,
                scale: *scale,
            }),
            _ => None,
        }
    }

    fn type_name(self) -> String {
        match self {
            Sum::Bigint => "BIGINT".into(),
            Sum::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
        }
    }

    /// A partial sum travels as a DECIMAL(38) of the result's scale.
    const STATE_PRECISION: u8 = 38;

    fn state_scale(self) -> i8 {
        match self {
            Sum::Bigint => 0,
            Sum::Decimal { scale, .. } => scale,
        }
    }

    fn state_type(self) -> DataType {
        DataType::Decimal128(Self::STATE_PRECISION, self.state_scale())
    }

    /// The sum as its result type, or TYPE_MISMATCH.
    fn fits(self, sum: i128) -> DfResult<i128> {
        match self {
            Sum::Bigint if i64::try_from(sum).is_err() => Err(out_of_range(&self.type_name())),
            Sum::Decimal { precision, .. }
                if sum.unsigned_abs() >= 10u128.pow(precision as u32) =>
            {
                Err(out_of_range(&self.type_name()))
            }
            _ => Ok(sum),
        }
    }

    fn scalar(self, sum: Option<i128>) -> DfResult<ScalarValue> {
        let sum = sum.map(|s| self.fits(s)).transpose()?;
        Ok(match self {
            Sum::Bigint => ScalarValue::Int64(sum.map(|s| s as i64)),
            Sum::Decimal { precision, scale } => ScalarValue::Decimal128(sum, precision, scale),
        })
    }

    fn array(self, sums: Vec<Option<i128>>) -> DfResult<ArrayRef> {
        let sums = sums
            .into_iter()
            .map(|s| s.map(|s| self.fits(s)).transpose())
            .collect::<DfResult<Vec<_>>>()?;
        Ok(match self {
            Sum::Bigint => Arc::new(
                sums.into_iter()
                    .map(|s| s.map(|s| s as i64))
                    .collect::<Int64Array>(),
            ),
            Sum::Decimal { precision, scale } => Arc::new(
                sums.into_iter()
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(precision, scale)?,
            ),
        })
    }

    fn state_scalar(self, sum: Option<i128>) -> ScalarValue {
        ScalarValue::Decimal128(sum, Self::STATE_PRECISION, self.state_scale())
    }

    fn state_array(self, sums: Vec<Option<i128>>) -> DfResult<ArrayRef> {
        let array = sums.into_iter().collect::<Decimal128Array>();
        Ok(Arc::new(array.with_precision_and_scale(
            Self::STATE_PRECISION,
            self.state_scale(),
        )?))
    }
}

/// Each non-NULL value of a BIGINT or DECIMAL(<=38) array (an input or a partial state), as
/// 128 bits, with its row.
fn each_value(values: &ArrayRef, mut f: impl FnMut(usize, i128) -> DfResult<()>) -> DfResult<()> {
    match values.data_type() {
        DataType::Int64 => {
            let values = values.as_primitive::<Int64Type>();
            for row in 0..values.len() {
                if values.is_valid(row) {
                    f(row, values.value(row) as i128)?;
                }
            }
        }
        DataType::Decimal128(..) => {
            let values = values.as_primitive::<Decimal128Type>();
            for row in 0..values.len() {
                if values.is_valid(row) {
                    f(row, values.value(row))?;
                }
            }
        }
        other => {
            return Err(DataFusionError::Internal(format!(
                "a checked sum of {other}"
            )))
        }
    }
    Ok(())
}

fn add(sum: i128, value: i128, sum_of: Sum) -> DfResult<i128> {
    sum.checked_add(value)
        .ok_or_else(|| out_of_range(&sum_of.type_name()))
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

fn replaced(args: &AccumulatorArgs) -> Option<Sum> {
    Sum::of(args.return_type(), args.is_distinct)
}

/// `sum(DISTINCT x)` of BIGINTs and DECIMAL(<=38)s (DataFusion's state, a list of the values).
fn replaced_distinct(args: &AccumulatorArgs) -> Option<Sum> {
    args.is_distinct
        .then(|| Sum::of(args.return_type(), false))
        .flatten()
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
        match Sum::of(args.return_type(), args.is_distinct) {
            Some(sum) => Ok(vec![Field::new(
                format_state_name(args.name, "sum"),
                sum.state_type(),
                true,
            )
            .into()]),
            None => self.inner.state_fields(args),
        }
    }
    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if let Some(sum) = replaced(&args) {
            return Ok(Box::new(SumAccumulator::new(sum)));
        }
        if let Some(sum) = replaced_distinct(&args) {
            return Ok(Box::new(DistinctSums::new(sum)));
        }
        self.inner.accumulator(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        if let Some(sum) = replaced(&args) {
            return Ok(Box::new(GroupSums::new(sum)));
        }
        self.inner.create_groups_accumulator(args)
    }
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if let Some(sum) = replaced(&args) {
            return Ok(Box::new(SumAccumulator::new(sum)));
        }
        if let Some(sum) = replaced_distinct(&args) {
            return Ok(Box::new(DistinctSums::new(sum)));
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

/// One sum; also a sliding window's (values leave the frame by subtraction).
#[derive(Debug)]
struct SumAccumulator {
    of: Sum,
    sum: i128,
    /// Values in the sum (in the frame, for a window): none is NULL.
    count: u64,
}

impl SumAccumulator {
    fn new(of: Sum) -> SumAccumulator {
        SumAccumulator {
            of,
            sum: 0,
            count: 0,
        }
    }

    fn current(&self) -> Option<i128> {
        (self.count > 0).then_some(self.sum)
    }
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let of = self.of;
        each_value(&values[0], |_, v| {
            self.sum = add(self.sum, v, of)?;
            self.count += 1;
            Ok(())
        })
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let of = self.of;
        each_value(&values[0], |_, v| {
            self.sum = add(
                self.sum,
                v.checked_neg()
                    .ok_or_else(|| out_of_range(&of.type_name()))?,
                of,
            )?;
            self.count = self.count.saturating_sub(1);
            Ok(())
        })
    }
    fn supports_retract_batch(&self) -> bool {
        true
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.of.state_scalar(self.current())])
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.of.scalar(self.current())
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// `sum(DISTINCT x)`: each value once, added in 128 bits when the sum is returned; values
/// leave a window frame by their count.
#[derive(Debug)]
struct DistinctSums {
    of: Sum,
    values: HashMap<i128, u64>,
}

impl DistinctSums {
    fn new(of: Sum) -> DistinctSums {
        DistinctSums {
            of,
            values: HashMap::new(),
        }
    }
}

impl Accumulator for DistinctSums {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        each_value(&values[0], |_, v| {
            *self.values.entry(v).or_insert(0) += 1;
            Ok(())
        })
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        each_value(&values[0], |_, v| {
            if let Entry::Occupied(mut seen) = self.values.entry(v) {
                *seen.get_mut() -= 1;
                if *seen.get() == 0 {
                    seen.remove();
                }
            }
            Ok(())
        })
    }
    fn supports_retract_batch(&self) -> bool {
        true
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for list in states[0].as_list::<i32>().iter().flatten() {
            self.update_batch(&[list])?;
        }
        Ok(())
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values = self
            .of
            .array(self.values.keys().map(|&v| Some(v)).collect())?;
        Ok(vec![
            SingleRowListArrayBuilder::new(values).build_list_scalar()
        ])
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let mut sum = 0i128;
        for &v in self.values.keys() {
            sum = add(sum, v, self.of)?;
        }
        self.of.scalar((!self.values.is_empty()).then_some(sum))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * 32
    }
}

/// Sums per group (GROUP BY).
#[derive(Debug)]
struct GroupSums {
    of: Sum,
    sums: Vec<i128>,
    seen: Vec<bool>,
}

impl GroupSums {
    fn new(of: Sum) -> GroupSums {
        GroupSums {
            of,
            sums: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Option<i128>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        sums.into_iter()
            .zip(seen)
            .map(|(s, seen)| seen.then_some(s))
            .collect()
    }
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
        let of = self.of;
        if let (DataType::Int64, None, 0) =
            (values[0].data_type(), opt_filter, values[0].null_count())
        {
            // The common case in one tight loop: no BIGINT sum can leave 128 bits (it would take
            // 2^64 rows), so the adds need no check here; the result's range is checked when
            // it is returned.
            let values = values[0].as_primitive::<Int64Type>().values();
            for (&group, &v) in group_indices.iter().zip(values.iter()) {
                self.sums[group] += v as i128;
                self.seen[group] = true;
            }
            return Ok(());
        }
        each_value(&values[0], |row, v| {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                return Ok(());
            }
            let group = group_indices[row];
            self.sums[group] = add(self.sums[group], v, of)?;
            self.seen[group] = true;
            Ok(())
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let sums = self.take(emit_to);
        self.of.array(sums)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let sums = self.take(emit_to);
        Ok(vec![self.of.state_array(sums)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        if let (DataType::Int64, None) = (values[0].data_type(), opt_filter) {
            let state: Decimal128Array = values[0].as_primitive::<Int64Type>().unary(|v| v as i128);
            return Ok(vec![Arc::new(
                state.with_precision_and_scale(Sum::STATE_PRECISION, 0)?,
            )]);
        }
        let mut state = vec![None; values[0].len()];
        each_value(&values[0], |row, v| {
            if opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row)) {
                state[row] = Some(v);
            }
            Ok(())
        })?;
        Ok(vec![self.of.state_array(state)?])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.seen.capacity()
    }
}

#[cfg(test)]
#[path = "checked_sum_tests.rs"]
mod tests;
