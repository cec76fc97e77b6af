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

use arrow::array::{Array, ArrayRef, Int64Array, LargeStringArray};
use arrow::datatypes::{DataType as ArrowType, FieldRef, IntervalUnit, TimeUnit};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use kalamdb_core::Error;

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

/// `array_resize(a, n)`: n not negative ("failed to convert size to usize").
fn size_not_negative(args: &[ArrayRef], rows: usize) -> Result<(), String> {
    match ints(args.get(1), rows)
        .into_iter()
        .flatten()
        .find(|&n| n < 0)
    {
        Some(n) => Err(format!("array_resize() size must not be negative, got {n}")),
        None => Ok(()),
    }
}

/// `array_position(a, x, from)`: from at least 1 (i64::MIN overflowed in `from - 1`).
fn start_position(args: &[ArrayRef], rows: usize) -> Result<(), String> {
    match ints(args.get(2), rows)
        .into_iter()
        .flatten()
        .find(|&n| n < 1)
    {
        Some(n) => Err(format!(
            "array_position() start position must be at least 1, got {n}"
        )),
        None => Ok(()),
    }
}

/// `levenshtein(a, b)`: len(a) x len(b) steps in one uninterruptible call (two 100,000-
/// character strings kept a query thread busy for minutes after their 408, and every other
/// statement waited behind it). PostgreSQL's allows 255 characters each; here the product is
/// capped.
fn levenshtein_cost(args: &[ArrayRef], rows: usize) -> Result<(), String> {
    const MAX_STEPS: u128 = 100_000_000;
    let (a, b) = (lens(args.first(), rows), lens(args.get(1), rows));
    match a.iter().zip(&b).find_map(|(a, b)| Some((*a)? as u128 * (*b)? as u128).filter(|&n| n > MAX_STEPS)) {
        Some(n) => Err(format!(
            "levenshtein() of these strings takes {n} steps (their lengths multiplied); at most {MAX_STEPS} are allowed"
        )),
        None => Ok(()),
    }
}

/// `make_array(...)`, `array_concat(...)`: as large as all their arguments together (each
/// may be up to the limit: 30 arguments of 16 MB built one 480 MB value).
fn all_arguments(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    (0..rows)
        .map(|i| Some(args.iter().map(|a| range_bytes(a.as_ref(), i, i + 1)).sum()))
        .collect()
}

/// `array_to_string(a, delimiter [, null])`: the elements and a delimiter between each two.
fn joined_elements(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    use arrow::array::AsArray;
    let delimiter = lens(args.get(1), rows);
    let null = lens(args.get(2), rows);
    (0..rows)
        .map(|i| {
            let a = args.first()?;
            let elements = match a.data_type() {
                ArrowType::List(_) => {
                    let o = a.as_list::<i32>().value_offsets();
                    (o[i + 1] - o[i]) as u128
                }
                ArrowType::LargeList(_) => {
                    let o = a.as_list::<i64>().value_offsets();
                    (o[i + 1] - o[i]) as u128
                }
                _ => 1,
            };
            let per_element = delimiter[i].unwrap_or(0).max(null[i].unwrap_or(0)) as u128;
            Some(range_bytes(a.as_ref(), i, i + 1) + elements * per_element)
        })
        .collect()
}

/// A function whose result is not larger than its arguments.
fn no_larger(_: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    vec![None; rows]
}

/// `lpad(s, n [, fill])`, `rpad`: n characters of up to 4 bytes.
fn padded(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    ints(args.get(1), rows)
        .into_iter()
        .map(|n| n.map(|n| n.max(0) as u128 * 4))
        .collect()
}

/// `repeat(s, n)`: len(s) x n.
fn repeated(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let (s, n) = (lens(args.first(), rows), ints(args.get(1), rows));
    s.into_iter()
        .zip(n)
        .map(|(s, n)| Some(s? as u128 * n?.max(0) as u128))
        .collect()
}

/// `replace(s, from, to)`: at most len(s) / len(from) replacements.
fn replaced(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let (s, from, to) = (
        lens(args.first(), rows),
        lens(args.get(1), rows),
        lens(args.get(2), rows),
    );
    (0..rows)
        .map(|i| {
            let (s, from, to) = (s[i]? as u128, from[i]? as u128, to[i]? as u128);
            Some(if from == 0 { s } else { s + s / from * to })
        })
        .collect()
}

/// `regexp_replace(s, pattern, repl [, flags])`: at most len(s) + 1 matches, each replaced by
/// the replacement's text, and every group reference in it (`\1`, `$1`) adds at most all of
/// s over all matches (matches do not overlap).
fn regexp_replaced(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let s = lens(args.first(), rows);
    let repl = texts(args.get(2), rows);
    (0..rows)
        .map(|i| {
            let s = s[i]? as u128;
            let repl = repl[i].as_ref()?;
            let refs = (repl.matches('\\').count() + repl.matches('$').count()) as u128;
            Some(s + (s + 1) * repl.len() as u128 + refs * s)
        })
        .collect()
}

/// `concat(a, b, ...)`: the sum of the parts (each a value under the limit, many of them not).
fn concatenated(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let parts: Vec<Vec<Option<usize>>> = args.iter().map(|a| lens(Some(a), rows)).collect();
    (0..rows)
        .map(|i| Some(parts.iter().map(|p| p[i].unwrap_or(0) as u128).sum()))
        .collect()
}

/// `concat_ws(sep, a, b, ...)`: the parts and a separator between each two.
fn concatenated_with_separator(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let sep = lens(args.first(), rows);
    let parts = concatenated(args.get(1..).unwrap_or(&[]), rows);
    let n = args.len().saturating_sub(2) as u128;
    (0..rows)
        .map(|i| Some(parts[i].unwrap_or(0) + sep[i].unwrap_or(0) as u128 * n))
        .collect()
}

/// `encode(b, format)`: hex two characters per byte, base64 four per three, escape at most
/// four per byte (a nested encode doubled per level: five levels around 16 MB built 512 MB).
fn encoded(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let (b, format) = (byte_lens(args.first(), rows), texts(args.get(1), rows));
    (0..rows)
        .map(|i| {
            let n = b[i]? as u128;
            Some(
                match format[i].as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("hex") => n * 2,
                    Some("base64") => n.div_ceil(3) * 4,
                    _ => n * 4,
                },
            )
        })
        .collect()
}

/// `range(stop)`, `range(start, stop [, step])`: the number of elements, x 8.
fn range(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    series(args, rows, false)
}

/// `generate_series(...)`: as range, with its end included.
fn generate_series(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    series(args, rows, true)
}

/// `array_repeat(x, n)`: n copies of x (its bytes, at least 8: a nested array or a string
/// element is as large as it is; counting 8 bytes an element let
/// `array_repeat(array_repeat(array_repeat(1, 1000), 1000), 1000)` build 8 GB).
fn array_repeated(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let n = ints(args.get(1), rows);
    (0..rows)
        .map(|i| {
            let width = args
                .first()
                .map_or(8, |x| range_bytes(x.as_ref(), i, i + 1).max(8));
            n[i].map(|n| n.max(0) as u128 * width)
        })
        .collect()
}

/// `array_resize(a, n [, fill])`: n elements as wide as a's widest or the fill.
fn array_resized(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let n = ints(args.get(1), rows);
    (0..rows)
        .map(|i| {
            let elements = args.first().map_or(8, |a| element_bytes(a.as_ref(), i));
            let fill = args.get(2).map_or(8, |f| range_bytes(f.as_ref(), i, i + 1));
            n[i].map(|n| n.max(0) as u128 * elements.max(fill).max(8))
        })
        .collect()
}

/// The bytes of the widest element of row `i` of a list array (8 for other arrays).
fn element_bytes(array: &dyn Array, i: usize) -> u128 {
    use arrow::array::AsArray;
    let (values, start, end) = match array.data_type() {
        ArrowType::List(_) => {
            let l = array.as_list::<i32>();
            (
                l.values(),
                l.value_offsets()[i] as usize,
                l.value_offsets()[i + 1] as usize,
            )
        }
        ArrowType::LargeList(_) => {
            let l = array.as_list::<i64>();
            (
                l.values(),
                l.value_offsets()[i] as usize,
                l.value_offsets()[i + 1] as usize,
            )
        }
        _ => return 8,
    };
    (start..end)
        .map(|j| range_bytes(values.as_ref(), j, j + 1))
        .max()
        .unwrap_or(8)
}

/// The bytes the values of rows `start..end` of an array hold (their data, offsets and
/// nested children; at least 1 a value), computed from the offsets, without reading values.
fn range_bytes(array: &dyn Array, start: usize, end: usize) -> u128 {
    use arrow::array::AsArray;
    if end <= start || end > array.len() {
        return 0;
    }
    let rows = (end - start) as u128;
    match array.data_type() {
        ArrowType::Utf8 => {
            let o = array.as_string::<i32>().value_offsets();
            (o[end] - o[start]) as u128 + rows * 4
        }
        ArrowType::LargeUtf8 => {
            let o = array.as_string::<i64>().value_offsets();
            (o[end] - o[start]) as u128 + rows * 8
        }
        ArrowType::Binary => {
            let o = array.as_binary::<i32>().value_offsets();
            (o[end] - o[start]) as u128 + rows * 4
        }
        ArrowType::LargeBinary => {
            let o = array.as_binary::<i64>().value_offsets();
            (o[end] - o[start]) as u128 + rows * 8
        }
        ArrowType::Utf8View => array
            .as_string_view()
            .lengths()
            .skip(start)
            .take(end - start)
            .map(|l| l as u128 + 16)
            .sum(),
        ArrowType::BinaryView => array
            .as_binary_view()
            .lengths()
            .skip(start)
            .take(end - start)
            .map(|l| l as u128 + 16)
            .sum(),
        ArrowType::List(_) => {
            let l = array.as_list::<i32>();
            let o = l.value_offsets();
            rows * 4 + range_bytes(l.values().as_ref(), o[start] as usize, o[end] as usize)
        }
        ArrowType::LargeList(_) => {
            let l = array.as_list::<i64>();
            let o = l.value_offsets();
            rows * 8 + range_bytes(l.values().as_ref(), o[start] as usize, o[end] as usize)
        }
        ArrowType::FixedSizeList(_, n) => {
            let n = (*n).max(0) as usize;
            range_bytes(
                array.as_fixed_size_list().values().as_ref(),
                start * n,
                end * n,
            )
        }
        ArrowType::Struct(_) => {
            let fields: u128 = array
                .as_struct()
                .columns()
                .iter()
                .map(|c| range_bytes(c.as_ref(), start, end))
                .sum();
            fields.max(rows)
        }
        other => rows * other.primitive_width().unwrap_or(16).max(1) as u128,
    }
}

fn series(args: &[ArrayRef], rows: usize, inclusive: bool) -> Vec<Option<u128>> {
    let (start, stop, step) = match args {
        [stop] => (None, ordinal(stop, rows), None),
        [start, stop] => (ordinal(start, rows), ordinal(stop, rows), None),
        [start, stop, step] => (
            ordinal(start, rows),
            ordinal(stop, rows),
            Some(step_of(step, rows)),
        ),
        _ => return vec![None; rows],
    };
    let Some(stop) = stop else {
        return vec![None; rows];
    };
    (0..rows)
        .map(|i| {
            let from = match &start {
                Some(s) => s[i]?,
                None => 0,
            };
            let by = match &step {
                Some(s) => s[i]?,
                None => 1,
            };
            let span = (stop[i]? - from).unsigned_abs();
            let count = span / by.unsigned_abs().max(1) + inclusive as u128;
            Some(count * 8)
        })
        .collect()
}

/// Integers, dates or timestamps as a number on one scale (nanoseconds for times).
fn ordinal(a: &ArrayRef, rows: usize) -> Option<Vec<Option<i128>>> {
    let scale: i128 = match a.data_type() {
        t if t.is_integer() => 1,
        ArrowType::Date32 => 86_400_000_000_000,
        ArrowType::Date64 => 1_000_000,
        ArrowType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        ArrowType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        ArrowType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        _ => return None,
    };
    let as_int = arrow::compute::cast(a, &ArrowType::Int64).ok()?;
    let ints = as_int.as_any().downcast_ref::<Int64Array>()?;
    Some(
        (0..rows)
            .map(|i| (ints.len() > i && ints.is_valid(i)).then(|| ints.value(i) as i128 * scale))
            .collect(),
    )
}

/// A step: an integer, or an interval as nanoseconds (a month counted as 28 days, so the
/// count is never underestimated).
fn step_of(a: &ArrayRef, rows: usize) -> Vec<Option<i128>> {
    if let ArrowType::Interval(IntervalUnit::MonthDayNano) = a.data_type() {
        let Some(iv) = a
            .as_any()
            .downcast_ref::<arrow::array::IntervalMonthDayNanoArray>()
        else {
            return vec![None; rows];
        };
        const DAY: i128 = 86_400_000_000_000;
        return (0..rows)
            .map(|i| {
                (iv.len() > i && iv.is_valid(i)).then(|| {
                    let v = iv.value(i);
                    (v.months as i128 * 28 * DAY + v.days as i128 * DAY + v.nanoseconds as i128)
                        .abs()
                })
            })
            .collect();
    }
    ordinal(a, rows).unwrap_or_else(|| vec![None; rows])
}

fn ints(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<i64>> {
    let Some(a) = a else { return vec![None; rows] };
    let Ok(cast) = arrow::compute::cast(a, &ArrowType::Int64) else {
        return vec![None; rows];
    };
    let Some(ints) = cast.as_any().downcast_ref::<Int64Array>() else {
        return vec![None; rows];
    };
    (0..rows)
        .map(|i| (ints.len() > i && ints.is_valid(i)).then(|| ints.value(i)))
        .collect()
}

fn texts(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<String>> {
    let Some(a) = a else { return vec![None; rows] };
    let Ok(cast) = arrow::compute::cast(a, &ArrowType::LargeUtf8) else {
        return vec![None; rows];
    };
    let Some(s) = cast.as_any().downcast_ref::<LargeStringArray>() else {
        return vec![None; rows];
    };
    (0..rows)
        .map(|i| (s.len() > i && s.is_valid(i)).then(|| s.value(i).to_string()))
        .collect()
}

/// The byte length of each value of a binary or text argument.
fn byte_lens(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<usize>> {
    let Some(a) = a else { return vec![None; rows] };
    let Ok(cast) = arrow::compute::cast(a, &ArrowType::LargeBinary) else {
        return vec![None; rows];
    };
    let Some(b) = cast
        .as_any()
        .downcast_ref::<arrow::array::LargeBinaryArray>()
    else {
        return vec![None; rows];
    };
    (0..rows)
        .map(|i| (b.len() > i && b.is_valid(i)).then(|| b.value(i).len()))
        .collect()
}

fn lens(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<usize>> {
    let Some(a) = a else { return vec![None; rows] };
    let Ok(cast) = arrow::compute::cast(a, &ArrowType::LargeUtf8) else {
        return vec![None; rows];
    };
    let Some(s) = cast.as_any().downcast_ref::<LargeStringArray>() else {
        return vec![None; rows];
    };
    (0..rows)
        .map(|i| (s.len() > i && s.is_valid(i)).then(|| s.value(i).len()))
        .collect()
}

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
