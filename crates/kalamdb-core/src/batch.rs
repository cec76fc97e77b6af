//! Conversion between Arrow arrays and the codec's typed [`Value`]s.
//!
//! Writes arrive from DataFusion as Arrow batches already cast to the table's Arrow schema;
//! scans build Arrow batches from decoded rows. This module is the one place that knows how
//! each contract type maps onto an Arrow array.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder,
    Float64Array, Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder,
    Int64Array, Int64Builder, StringArray, StringBuilder, Time64MicrosecondArray,
    Time64MicrosecondBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};

use crate::error::{Error, Result};
use crate::types::{DataType, Value};

/// Cast `array` to the Arrow type of `dt` if it is not already of that type. A value that
/// does not convert (`'notint'`, 3000000000 into INT) is an error, never a NULL: arrow's
/// default cast is the "safe" one that turns failures into NULLs.
pub fn conform(array: &ArrayRef, dt: &DataType) -> Result<ArrayRef> {
    let want = dt.arrow_type();
    if array.data_type() == &want {
        return Ok(array.clone());
    }
    let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
    arrow::compute::cast_with_options(array, &want, &options).map_err(|e| {
        Error::TypeMismatch(format!("cannot convert {} to {dt}: {e}", array.data_type()))
    })
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
            DataType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            DataType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                false,
            ),
            DataType::TimestampTz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                true,
            ),
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
            _ => return Err(Error::Internal("stored value does not match column type".into())),
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
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytes(b) => Arc::new(b.finish()),
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
    let opts = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let cast = arrow::compute::cast_with_options(&array, &dt.arrow_type(), &opts)
        .map_err(|e| Error::TypeMismatch(format!("'{text}' is not a valid {dt}: {e}")))?;
    let v = value_at(&cast, 0, dt)?;
    crate::rows::check_value(dt, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_literals_convert_to_every_type() {
        assert_eq!(value_from_text("42", &DataType::Int).unwrap(), Value::Int(42));
        assert_eq!(
            value_from_text("12.50", &DataType::Decimal { precision: 10, scale: 2 }).unwrap(),
            Value::Decimal(1250)
        );
        assert_eq!(value_from_text("1970-01-02", &DataType::Date).unwrap(), Value::Date(1));
        assert_eq!(
            value_from_text("1970-01-01T00:00:01.5", &DataType::Timestamp).unwrap(),
            Value::Timestamp(1_500_000)
        );
        assert!(value_from_text("abc", &DataType::Int).is_err());
        assert!(value_from_text("{bad", &DataType::Json).is_err());
    }
}
