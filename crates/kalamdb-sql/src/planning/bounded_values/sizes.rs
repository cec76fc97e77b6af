//! How large each bounded function's result would be, computed from its arguments before it
//! runs, and the argument checks DataFusion's own functions lack.

use arrow::array::{Array, ArrayRef, Int64Array, LargeStringArray};
use arrow::datatypes::{DataType as ArrowType, IntervalUnit, TimeUnit};

/// `array_resize(a, n)`: n not negative ("failed to convert size to usize").
pub(super) fn size_not_negative(args: &[ArrayRef], rows: usize) -> Result<(), String> {
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
pub(super) fn start_position(args: &[ArrayRef], rows: usize) -> Result<(), String> {
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
pub(super) fn levenshtein_cost(args: &[ArrayRef], rows: usize) -> Result<(), String> {
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
pub(super) fn all_arguments(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    (0..rows)
        .map(|i| Some(args.iter().map(|a| range_bytes(a.as_ref(), i, i + 1)).sum()))
        .collect()
}

/// `array_to_string(a, delimiter [, null])`: the elements and a delimiter between each two.
pub(super) fn joined_elements(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
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
pub(super) fn no_larger(_: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    vec![None; rows]
}

/// `lpad(s, n [, fill])`, `rpad`: n characters of up to 4 bytes.
pub(super) fn padded(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    ints(args.get(1), rows)
        .into_iter()
        .map(|n| n.map(|n| n.max(0) as u128 * 4))
        .collect()
}

/// `repeat(s, n)`: len(s) x n.
pub(super) fn repeated(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let (s, n) = (lens(args.first(), rows), ints(args.get(1), rows));
    s.into_iter()
        .zip(n)
        .map(|(s, n)| Some(s? as u128 * n?.max(0) as u128))
        .collect()
}

/// `replace(s, from, to)`: at most len(s) / len(from) replacements.
pub(super) fn replaced(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
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
pub(super) fn regexp_replaced(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
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
pub(super) fn concatenated(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let parts: Vec<Vec<Option<usize>>> = args.iter().map(|a| lens(Some(a), rows)).collect();
    (0..rows)
        .map(|i| Some(parts.iter().map(|p| p[i].unwrap_or(0) as u128).sum()))
        .collect()
}

/// `concat_ws(sep, a, b, ...)`: the parts and a separator between each two.
pub(super) fn concatenated_with_separator(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    let sep = lens(args.first(), rows);
    let parts = concatenated(args.get(1..).unwrap_or(&[]), rows);
    let n = args.len().saturating_sub(2) as u128;
    (0..rows)
        .map(|i| Some(parts[i].unwrap_or(0) + sep[i].unwrap_or(0) as u128 * n))
        .collect()
}

/// `encode(b, format)`: hex two characters per byte, base64 four per three, escape at most
/// four per byte (a nested encode doubled per level: five levels around 16 MB built 512 MB).
pub(super) fn encoded(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
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
pub(super) fn range(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    series(args, rows, false)
}

/// `generate_series(...)`: as range, with its end included.
pub(super) fn generate_series(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
    series(args, rows, true)
}

/// `array_repeat(x, n)`: n copies of x (its bytes, at least 8: a nested array or a string
/// element is as large as it is; counting 8 bytes an element let
/// `array_repeat(array_repeat(array_repeat(1, 1000), 1000), 1000)` build 8 GB).
pub(super) fn array_repeated(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
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
pub(super) fn array_resized(args: &[ArrayRef], rows: usize) -> Vec<Option<u128>> {
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
pub(super) fn element_bytes(array: &dyn Array, i: usize) -> u128 {
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
pub(super) fn range_bytes(array: &dyn Array, start: usize, end: usize) -> u128 {
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

pub(super) fn series(args: &[ArrayRef], rows: usize, inclusive: bool) -> Vec<Option<u128>> {
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
pub(super) fn ordinal(a: &ArrayRef, rows: usize) -> Option<Vec<Option<i128>>> {
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
pub(super) fn step_of(a: &ArrayRef, rows: usize) -> Vec<Option<i128>> {
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

pub(super) fn ints(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<i64>> {
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

pub(super) fn texts(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<String>> {
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
pub(super) fn byte_lens(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<usize>> {
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

pub(super) fn lens(a: Option<&ArrayRef>, rows: usize) -> Vec<Option<usize>> {
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
