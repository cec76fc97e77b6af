//! Conversion between Arrow arrays and the codec's typed [`Value`]s.
//!
//! Writes arrive from DataFusion as Arrow batches already cast to the table's Arrow schema;
//! scans build Arrow batches from decoded rows. This module is the one place that knows how
//! each contract type maps onto an Arrow array.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, Time64MicrosecondArray, Time64MicrosecondBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType as ArrowType;

use crate::error::{Error, Result};
use crate::types::{DataType, Value};

/// Rows per Arrow batch produced by scans.
pub const SCAN_BATCH_ROWS: usize = 8192;

/// About the most bytes of values one scan batch holds: a batch ends early when its rows are
/// wide (500 rows of 1 MB were one batch, over a 128 MiB query memory limit, for any query
/// that read the column). Up to four batches of a scan are alive at once (the one the reader
/// builds, the one it is handing over, the one in the channel and the one the consumer reads:
/// `query::provider::HotScan`), and a filter copies what it keeps: with 16 MiB batches and a
/// channel of two, a range query over 1 MB rows held 78 MB under a 64 MiB limit. Rows up to
/// 1 KB still fill 8,192-row batches.
pub const SCAN_BATCH_BYTES: usize = 8 << 20;

/// Cast `array` to the Arrow type of `dt` if it is not already of that type, by PostgreSQL's
/// assignment rules:
///
/// - a value that does not convert (`'notint'`, 3000000000 into INT) is an error, never a
///   NULL (arrow's default cast is the "safe" one that turns failures into NULLs);
/// - a fraction stored in an integer is rounded half away from zero (1.5 -> 2, 2.5 -> 3);
/// - a finite DOUBLE beyond REAL's range is an error, not Infinity;
/// - a number is not a date, a time, a timestamp or bytes, and a fraction is not a BOOLEAN
///   ([`assignment_refused`]).
///
/// The planned path applies the same rules to its casts (kalamdb-sql's `checked` module).
pub fn conform(array: &ArrayRef, dt: &DataType) -> Result<ArrayRef> {
    let want = dt.arrow_type();
    let from = array.data_type();
    if from == &want {
        return Ok(array.clone());
    }
    if let Some(refusal) = assignment_refused(from, &want) {
        return Err(Error::TypeMismatch(refusal));
    }
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |a: &ArrayRef| {
        arrow::compute::cast_with_options(a, &want, &options).map_err(|e| {
            Error::TypeMismatch(format!("cannot convert {} to {dt}: {e}", array.data_type()))
        })
    };
    if let (true, ArrowType::Decimal128(p, s)) = (is_integer(&want), from) {
        if *s > 0 {
            // Arrow truncates a decimal cast to an integer; to scale 0 it rounds.
            let whole = arrow::compute::cast_with_options(
                array,
                &ArrowType::Decimal128(*p, 0),
                &options,
            )
            .map_err(|e| Error::TypeMismatch(format!("cannot convert {from} to {dt}: {e}")))?;
            return cast(&whole);
        }
    }
    if is_integer(&want) && matches!(from, ArrowType::Float32 | ArrowType::Float64) {
        return cast(&rounded(array)?);
    }
    if *dt == DataType::Real && matches!(from, ArrowType::Float64 | ArrowType::Utf8) {
        // Text is read as a DOUBLE first, so '1e39' is out of range rather than Infinity.
        let doubles = match from {
            ArrowType::Utf8 => {
                arrow::compute::cast_with_options(array, &ArrowType::Float64, &options).map_err(
                    |e| Error::TypeMismatch(format!("cannot convert {from} to {dt}: {e}")),
                )?
            }
            _ => array.clone(),
        };
        return doubles_to_reals(&doubles);
    }
    cast(array)
}

/// Floats rounded half away from zero, as DOUBLEs (before a cast to an integer).
pub fn rounded(array: &ArrayRef) -> Result<ArrayRef> {
    let doubles = arrow::compute::cast(array, &ArrowType::Float64)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let doubles = downcast::<Float64Array>(&doubles)?;
    Ok(Arc::new(
        doubles.unary::<_, arrow::datatypes::Float64Type>(f64::round),
    ))
}

/// DOUBLEs as REALs; a finite value beyond REAL's range is an error ([`double_to_real`]).
pub fn doubles_to_reals(array: &ArrayRef) -> Result<ArrayRef> {
    let doubles = downcast::<Float64Array>(array)?;
    let mut out = Vec::with_capacity(doubles.len());
    for v in doubles.iter() {
        out.push(v.map(double_to_real).transpose()?);
    }
    Ok(Arc::new(Float32Array::from(out)))
}

/// Whether `t` is an Arrow integer type.
pub fn is_integer(t: &ArrowType) -> bool {
    t.is_integer()
}

/// Why a value of Arrow type `from` may not be stored as (or cast to) `to`, or `None` when it
/// may: PostgreSQL has no cast from a number to a date, a time, a timestamp or bytea.
pub fn assignment_refused(from: &ArrowType, to: &ArrowType) -> Option<String> {
    let number = from.is_integer() || from.is_floating() || from.is_decimal();
    let temporal_or_bytes = matches!(
        to,
        ArrowType::Date32
            | ArrowType::Date64
            | ArrowType::Time32(_)
            | ArrowType::Time64(_)
            | ArrowType::Timestamp(_, _)
            | ArrowType::Binary
            | ArrowType::LargeBinary
            | ArrowType::BinaryView
    );
    // A fraction is not a truth value (PostgreSQL refuses every number; the planned path
    // refuses DECIMAL, which a literal with a point is, and the bypass must answer alike).
    let fraction_to_bool = (from.is_floating() || from.is_decimal()) && to == &ArrowType::Boolean;
    (number && temporal_or_bytes || fraction_to_bool).then(|| {
        format!(
            "cannot convert a {} to {}",
            DataType::name_of_arrow(from).to_lowercase(),
            DataType::name_of_arrow(to).to_lowercase()
        )
    })
}

/// A DOUBLE as a REAL; a finite value beyond REAL's range is an error (Infinity and NaN stay).
pub fn double_to_real(d: f64) -> Result<f32> {
    let r = d as f32;
    if d.is_finite() && !r.is_finite() {
        return Err(Error::TypeMismatch(format!(
            "value out of range for REAL: {d:e}"
        )));
    }
    Ok(r)
}

fn downcast<'a, T: 'static>(array: &'a ArrayRef) -> Result<&'a T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::Internal("unexpected arrow array type".into()))
}

/// The value at `row` of an array already conformed to `dt`.
pub fn value_at(array: &ArrayRef, row: usize, dt: &DataType) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match dt {
        DataType::Boolean => Value::Boolean(downcast::<BooleanArray>(array)?.value(row)),
        DataType::SmallInt => Value::SmallInt(downcast::<Int16Array>(array)?.value(row)),
        DataType::Int => Value::Int(downcast::<Int32Array>(array)?.value(row)),
        DataType::BigInt => Value::BigInt(downcast::<Int64Array>(array)?.value(row)),
        DataType::Real => Value::Real(downcast::<Float32Array>(array)?.value(row)),
        DataType::Double => Value::Double(downcast::<Float64Array>(array)?.value(row)),
        DataType::Decimal { .. } => Value::Decimal(downcast::<Decimal128Array>(array)?.value(row)),
        DataType::Text | DataType::Json | DataType::Uuid => {
            Value::Text(downcast::<StringArray>(array)?.value(row).to_owned())
        }
        DataType::Bytea => Value::Bytes(downcast::<BinaryArray>(array)?.value(row).to_vec()),
        DataType::Date => Value::Date(downcast::<Date32Array>(array)?.value(row)),
        DataType::Time => Value::Time(downcast::<Time64MicrosecondArray>(array)?.value(row)),
        DataType::Timestamp | DataType::TimestampTz => {
            Value::Timestamp(downcast::<TimestampMicrosecondArray>(array)?.value(row))
        }
    })
}

/// A typed Arrow builder for one contract type.
pub enum ColumnBuilder {
    Boolean(BooleanBuilder),
    SmallInt(Int16Builder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Real(Float32Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, bool),
}

impl ColumnBuilder {
    pub fn new(dt: &DataType, capacity: usize) -> ColumnBuilder {
        match dt {
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::SmallInt => ColumnBuilder::SmallInt(Int16Builder::with_capacity(capacity)),
            DataType::Int => ColumnBuilder::Int(Int32Builder::with_capacity(capacity)),
            DataType::BigInt => ColumnBuilder::BigInt(Int64Builder::with_capacity(capacity)),
            DataType::Real => ColumnBuilder::Real(Float32Builder::with_capacity(capacity)),
            DataType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            DataType::Decimal { precision, scale } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity),
                *precision,
                *scale,
            ),
            DataType::Text | DataType::Json | DataType::Uuid => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Bytea => {
                ColumnBuilder::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time => {
                ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                false,
            ),
            DataType::TimestampTz => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), true)
            }
        }
    }

    /// Append a value; a value of the wrong physical type is an error (corrupt data).
    pub fn append(&mut self, v: &Value) -> Result<()> {
        match (self, v) {
            (ColumnBuilder::Boolean(b), Value::Null) => b.append_null(),
            (ColumnBuilder::SmallInt(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Int(b), Value::Null) => b.append_null(),
            (ColumnBuilder::BigInt(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Real(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Double(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Decimal(b, _, _), Value::Null) => b.append_null(),
            (ColumnBuilder::Text(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Bytes(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Date(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Time(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Timestamp(b, _), Value::Null) => b.append_null(),
            (ColumnBuilder::Boolean(b), Value::Boolean(x)) => b.append_value(*x),
            (ColumnBuilder::SmallInt(b), Value::SmallInt(x)) => b.append_value(*x),
            (ColumnBuilder::Int(b), Value::Int(x)) => b.append_value(*x),
            (ColumnBuilder::BigInt(b), Value::BigInt(x)) => b.append_value(*x),
            (ColumnBuilder::Real(b), Value::Real(x)) => b.append_value(*x),
            (ColumnBuilder::Double(b), Value::Double(x)) => b.append_value(*x),
            (ColumnBuilder::Decimal(b, _, _), Value::Decimal(x)) => b.append_value(*x),
            (ColumnBuilder::Text(b), Value::Text(x)) => b.append_value(x),
            (ColumnBuilder::Bytes(b), Value::Bytes(x)) => b.append_value(x),
            (ColumnBuilder::Date(b), Value::Date(x)) => b.append_value(*x),
            (ColumnBuilder::Time(b), Value::Time(x)) => b.append_value(*x),
            (ColumnBuilder::Timestamp(b, _), Value::Timestamp(x)) => b.append_value(*x),
            _ => {
                return Err(Error::Internal(
                    "stored value does not match column type".into(),
                ))
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::SmallInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::BigInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Real(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, p, s) => {
                Arc::new(b.finish().with_precision_and_scale(*p, *s)?)
            }
            // A builder's value buffer grows by doubling: 17 values of 1 MB sat in 32 MB,
            // counted against the query's memory twice over. Give the rest back.
            ColumnBuilder::Text(b) => {
                let mut a = b.finish();
                a.shrink_to_fit();
                Arc::new(a)
            }
            ColumnBuilder::Bytes(b) => {
                let mut a = b.finish();
                a.shrink_to_fit();
                Arc::new(a)
            }
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, tz) => {
                let a = b.finish();
                if *tz {
                    Arc::new(a.with_timezone("UTC"))
                } else {
                    Arc::new(a)
                }
            }
        })
    }
}

/// Convert a literal given as text to a value of `dt` (used for DEFAULT literals).
pub fn value_from_text(text: &str, dt: &DataType) -> Result<Value> {
    let array: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let opts = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = arrow::compute::cast_with_options(&array, &dt.arrow_type(), &opts)
        .map_err(|e| Error::TypeMismatch(format!("'{text}' is not a valid {dt}: {e}")))?;
    let v = value_at(&cast, 0, dt)?;
    crate::types::check_value(dt, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_literals_convert_to_every_type() {
        assert_eq!(
            value_from_text("42", &DataType::Int).unwrap(),
            Value::Int(42)
        );
        assert_eq!(
            value_from_text(
                "12.50",
                &DataType::Decimal {
                    precision: 10,
                    scale: 2
                }
            )
            .unwrap(),
            Value::Decimal(1250)
        );
        assert_eq!(
            value_from_text("1970-01-02", &DataType::Date).unwrap(),
            Value::Date(1)
        );
        assert_eq!(
            value_from_text("1970-01-01T00:00:01.5", &DataType::Timestamp).unwrap(),
            Value::Timestamp(1_500_000)
        );
        assert!(value_from_text("abc", &DataType::Int).is_err());
        assert!(value_from_text("{bad", &DataType::Json).is_err());
    }
}
