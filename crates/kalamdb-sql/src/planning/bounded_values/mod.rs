//! Functions that build values from a count refuse, before they allocate, a value beyond
//! `limits.max_value_bytes`.
//!
//! `lpad('x', 2000000000)` or `range(200000000)` is one call of one kernel: nothing can stop
//! it once it runs (a statement timeout cannot interrupt a single allocation and copy), and the
//! memory pool does not see the value it builds. So the arguments are checked first, row by
//! row: the size the result would have is computed from them, and a result over the limit is
//! INVALID_PARAMETER naming the function and the limit. The functions keep their names,
//! signatures and behaviour otherwise (each wraps DataFusion's own).
//!
//! A call's whole result (all its rows: `repeat('x', 10000000)` over 8,192 rows is 80 GB of
//! values under the limit each) must also fit the queries' memory pool
//! (`limits.query_memory_bytes`) while it is built; otherwise the statement fails as any
//! query over the pool does.
//!
//! Which functions: those whose result can be much larger than their arguments: `lpad`,
//! `rpad`, `repeat`, `replace`, `regexp_replace`, `range`, `generate_series` (the array
//! functions; the table functions of those names stream their rows and are stopped by the
//! timeout and the row limit), `array_repeat`, `array_resize`, `concat`, `concat_ws`,
//! `encode`, and those that join many values each under the limit (`make_array`,
//! `array_concat`, `array_to_string`). The others produce values no larger than their inputs together. `array_resize`
//! and `array_position` also have arguments checked that DataFusion's own do not (a negative
//! size was an internal error, a start position of i64::MIN an arithmetic overflow).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType as ArrowType, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use kalamdb_core::Error;

mod sizes;
use sizes::*;

/// Replace DataFusion's functions named above with bounded ones in `registry`; a call's
/// whole result (all its rows) is also reserved in `pool`, the queries' memory pool, while
/// it is built.
pub(crate) fn install(
    registry: &mut dyn FunctionRegistry,
    max_value_bytes: usize,
    pool: Arc<dyn MemoryPool>,
) -> kalamdb_core::Result<()> {
    let functions: [(&str, SizeOf, Option<ArgCheck>); 17] = [
        ("lpad", padded, None),
        ("rpad", padded, None),
        ("repeat", repeated, None),
        ("replace", replaced, None),
        ("regexp_replace", regexp_replaced, None),
        ("range", range, None),
        ("generate_series", generate_series, None),
        ("array_repeat", array_repeated, None),
        ("array_resize", array_resized, Some(size_not_negative)),
        ("concat", concatenated, None),
        ("concat_ws", concatenated_with_separator, None),
        ("encode", encoded, None),
        ("array_position", no_larger, Some(start_position)),
        ("make_array", all_arguments, None),
        ("array_concat", all_arguments, None),
        ("array_to_string", joined_elements, None),
        ("levenshtein", no_larger, Some(levenshtein_cost)),
    ];
    for (name, size, check) in functions {
        let inner = registry
            .udf(name)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let bounded = Bounded {
            inner: inner.inner().clone(),
            size,
            check,
            max_value_bytes,
            pool: pool.clone(),
        };
        registry
            .register_udf(Arc::new(ScalarUDF::new_from_impl(bounded)))
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    Ok(())
}

/// How large each row's result of a function can be (bytes; elements x 8 for arrays), from
/// its arguments, or `None` where that cannot be told (a NULL argument, an argument type this
/// check does not read).
type SizeOf = fn(&[ArrayRef], usize) -> Vec<Option<u128>>;

/// Arguments DataFusion's function does not check (its error is an internal one, a 500, or
/// an arithmetic overflow): the message of an INVALID_PARAMETER, or Ok.
type ArgCheck = fn(&[ArrayRef], usize) -> Result<(), String>;

/// A DataFusion function whose result size is checked before it runs.
#[derive(Debug)]
struct Bounded {
    inner: Arc<dyn ScalarUDFImpl>,
    size: SizeOf,
    check: Option<ArgCheck>,
    max_value_bytes: usize,
    pool: Arc<dyn MemoryPool>,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name() && self.max_value_bytes == other.max_value_bytes
    }
}
impl Eq for Bounded {}
impl std::hash::Hash for Bounded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.max_value_bytes.hash(state);
    }
}

impl Bounded {
    /// Each row's result size, or the refusal of arguments that fail their check or would
    /// build a value over the limit.
    fn refused(&self, arrays: &[ArrayRef], rows: usize) -> DfResult<Vec<Option<u128>>> {
        if let Some(Err(message)) = self.check.map(|check| check(arrays, rows)) {
            return Err(DataFusionError::External(Box::new(
                Error::InvalidParameter(message),
            )));
        }
        let limit = self.max_value_bytes as u128;
        let sizes = (self.size)(arrays, rows);
        if let Some(size) = sizes.iter().flatten().find(|&&s| s > limit) {
            return Err(DataFusionError::External(Box::new(Error::InvalidParameter(format!(
                "{}() would build a value of about {} bytes; at most {} are allowed (limits.max_value_bytes)",
                self.inner.name(),
                size,
                self.max_value_bytes
            )))));
        }
        Ok(sizes)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        #[allow(deprecated)]
        self.inner.display_name(args)
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.inner.schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[ArrowType]) -> DfResult<ArrowType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }
    // Not DataFusion's own `simplify` (concat's folds literal arguments into the result at
    // planning, around the size check; constant folding calls `invoke_with_args` instead).
    // Literal arguments whose result is over the limit fail the statement here, at once:
    // constant folding swallows the refusal and tries again in every pass of every rule
    // (a refused `encode()` of a 13 MB literal took 20 s of planning in a debug build, its
    // allowed 12 MB form 0.3 s).
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let literals: Option<Vec<ArrayRef>> = args
            .iter()
            .map(|a| match a {
                Expr::Literal(v, _) => v.to_array_of_size(1).ok(),
                _ => None,
            })
            .collect();
        if let Some(arrays) = literals {
            self.refused(&arrays, 1)?;
        }
        Ok(ExprSimplifyResult::Original(args))
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn coerce_types(&self, arg_types: &[ArrowType]) -> DfResult<Vec<ArrowType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows.max(1);
        let arrays = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Array(a) => Ok(a.clone()),
                ColumnarValue::Scalar(s) => s.to_array_of_size(rows),
            })
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let sizes = self.refused(&arrays, rows)?;
        drop(arrays);
        // Many values under the limit make one large batch: the batch is built only if the
        // memory pool has room for it (held while it is built; the operators that keep it
        // account for it from there).
        let total: u128 = sizes.iter().flatten().sum();
        let reservation =
            MemoryConsumer::new(format!("{}() result", self.inner.name())).register(&self.pool);
        reservation.try_grow(usize::try_from(total).unwrap_or(usize::MAX))?;
        if total > i32::MAX as u128 {
            // One Arrow string or list array holds at most 2 GiB (i32 offsets).
            return Err(DataFusionError::External(Box::new(Error::InvalidParameter(format!(
                "{}() would build about {total} bytes in one batch of rows; at most {} are possible",
                self.inner.name(),
                i32::MAX
            )))));
        }
        let result = self.inner.invoke_with_args(args);
        reservation.free();
        result
    }
}
