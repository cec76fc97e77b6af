//! The contract's JSON encoding of query results.
//!
//! Integers and floats are numbers (NaN/Infinity as strings), DECIMAL a string, BYTEA base64,
//! DATE `YYYY-MM-DD`, TIME `HH:MM:SS[.fff]`, TIMESTAMP ISO-8601 (with `Z` when the column has
//! a time zone), NULL null. Arrays (from expressions) are JSON arrays, structs JSON objects; other types outside the
//! contract (intervals from expressions) are
//! rendered as their Arrow display text.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, Decimal128Array,
    Float32Array, Float64Array, LargeBinaryArray, LargeStringArray, StringArray, StringViewArray,
};
use arrow::datatypes::{
    DataType as ArrowType, Date32Type, Date64Type, Field, Int16Type, Int32Type, Int64Type,
    Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveTime};
use kalamdb_core::{DataType, TYPE_METADATA_KEY};
use serde_json::{json, Value as Json};

/// Contract type name of a result column.
///
/// A column read from a table carries its declared type in the field metadata (JSON and UUID
/// are stored as text, so only the metadata tells them apart). DataFusion keeps that metadata
/// through some expressions that change the type (`CAST(id AS TEXT)`): it is believed only
/// when it agrees with the Arrow type.
pub fn type_name(field: &Field) -> String {
    let natural = DataType::name_of_arrow(field.data_type());
    match field.metadata().get(TYPE_METADATA_KEY) {
        Some(declared) if *declared == natural => natural,
        Some(declared) if (declared == "JSON" || declared == "UUID") && natural == "TEXT" => {
            declared.clone()
        }
        _ => natural,
    }
}

fn float(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

fn timestamp(nanos: i128, tz: bool) -> Json {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match DateTime::from_timestamp(secs, sub) {
        Some(dt) => {
            let s = dt.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string();
            Json::String(if tz { s + "Z" } else { s })
        }
        None => Json::String(format!("{nanos}ns")),
    }
}

fn time(nanos: i64) -> Json {
    // Past 23:59:59.999999 (`TIME '23:59:60'` is PostgreSQL's 24:00:00), which chrono has no
    // time for: the hours go on counting.
    if nanos >= 86_400_000_000_000 {
        let (secs, sub) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
        let frac = if sub == 0 {
            String::new()
        } else {
            format!(".{:09}", sub).trim_end_matches('0').to_string()
        };
        return Json::String(format!(
            "{:02}:{:02}:{:02}{frac}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ));
    }
    let secs = nanos.div_euclid(1_000_000_000) as u32;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match NaiveTime::from_num_seconds_from_midnight_opt(secs, sub) {
        Some(t) => Json::String(t.format("%H:%M:%S%.f").to_string()),
        None => Json::String(format!("{nanos}ns")),
    }
}

fn date(days: i64) -> Json {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days)))
        .map(|d| Json::String(d.format("%Y-%m-%d").to_string()))
        .unwrap_or_else(|| Json::String(format!("{days} days")))
}

/// Encode one column of a batch as JSON values.
// long: one arm per Arrow type, the contract's JSON encoding of each in one table; split up,
// the encodings of related types (the integer widths, the time units) would drift apart.
pub fn column_values(array: &ArrayRef) -> Vec<Json> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! each {
        ($f:expr) => {
            for i in 0..n {
                out.push(if array.is_null(i) { Json::Null } else { $f(i) });
            }
        };
    }
    match array.data_type() {
        ArrowType::Null => out.resize(n, Json::Null),
        ArrowType::Boolean => {
            let a = array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("type checked");
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Int8 => {
            let a = array.as_primitive::<Int8Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Int16 => {
            let a = array.as_primitive::<Int16Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::UInt8 => {
            let a = array.as_primitive::<UInt8Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::UInt16 => {
            let a = array.as_primitive::<UInt16Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::UInt32 => {
            let a = array.as_primitive::<UInt32Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Float32 => {
            let a = array
                .as_any()
                .downcast_ref::<Float32Array>()
                .expect("type checked");
            // Print the shortest decimal that round-trips the f32, not its f64 widening.
            each!(|i| float(a.value(i).to_string().parse::<f64>().unwrap_or(f64::NAN)))
        }
        ArrowType::Float64 => {
            let a = array
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("type checked");
            each!(|i| float(a.value(i)))
        }
        ArrowType::Decimal128(_, _) => {
            let a = array
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .expect("type checked");
            each!(|i| Json::String(a.value_as_string(i)))
        }
        ArrowType::Utf8 => {
            let a = array
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("type checked");
            each!(|i| json!(a.value(i)))
        }
        ArrowType::LargeUtf8 => {
            let a = array
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .expect("type checked");
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Utf8View => {
            let a = array
                .as_any()
                .downcast_ref::<StringViewArray>()
                .expect("type checked");
            each!(|i| json!(a.value(i)))
        }
        ArrowType::Binary => {
            let a = array
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("type checked");
            each!(|i| json!(STANDARD.encode(a.value(i))))
        }
        ArrowType::LargeBinary => {
            let a = array
                .as_any()
                .downcast_ref::<LargeBinaryArray>()
                .expect("type checked");
            each!(|i| json!(STANDARD.encode(a.value(i))))
        }
        ArrowType::BinaryView => {
            let a = array
                .as_any()
                .downcast_ref::<BinaryViewArray>()
                .expect("type checked");
            each!(|i| json!(STANDARD.encode(a.value(i))))
        }
        ArrowType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            each!(|i| date(a.value(i) as i64))
        }
        ArrowType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            each!(|i| date(a.value(i).div_euclid(86_400_000)))
        }
        ArrowType::Time32(TimeUnit::Second) => {
            let a = array.as_primitive::<Time32SecondType>();
            each!(|i| time(a.value(i) as i64 * 1_000_000_000))
        }
        ArrowType::Time32(TimeUnit::Millisecond) => {
            let a = array.as_primitive::<Time32MillisecondType>();
            each!(|i| time(a.value(i) as i64 * 1_000_000))
        }
        ArrowType::Time64(TimeUnit::Microsecond) => {
            let a = array.as_primitive::<Time64MicrosecondType>();
            each!(|i| time(a.value(i) * 1_000))
        }
        ArrowType::Time64(TimeUnit::Nanosecond) => {
            let a = array.as_primitive::<Time64NanosecondType>();
            each!(|i| time(a.value(i)))
        }
        ArrowType::Timestamp(unit, tz) => {
            let tz = tz.is_some();
            match unit {
                TimeUnit::Second => {
                    let a = array.as_primitive::<TimestampSecondType>();
                    each!(|i| timestamp(a.value(i) as i128 * 1_000_000_000, tz))
                }
                TimeUnit::Millisecond => {
                    let a = array.as_primitive::<TimestampMillisecondType>();
                    each!(|i| timestamp(a.value(i) as i128 * 1_000_000, tz))
                }
                TimeUnit::Microsecond => {
                    let a = array.as_primitive::<TimestampMicrosecondType>();
                    each!(|i| timestamp(a.value(i) as i128 * 1_000, tz))
                }
                TimeUnit::Nanosecond => {
                    let a = array.as_primitive::<TimestampNanosecondType>();
                    each!(|i| timestamp(a.value(i) as i128, tz))
                }
            }
        }
        // Arrays are JSON arrays and structs JSON objects, their elements encoded as above
        // (a NULL element, an empty string and a comma inside one stay distinguishable).
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(_, _) => {
            for i in 0..n {
                out.push(if array.is_null(i) {
                    Json::Null
                } else {
                    list_value(array, i)
                });
            }
        }
        ArrowType::Struct(fields) => {
            let a = array.as_struct();
            let children: Vec<Vec<Json>> = a.columns().iter().map(column_values).collect();
            each!(|i: usize| {
                let mut obj = serde_json::Map::new();
                for (f, c) in fields.iter().zip(&children) {
                    obj.insert(f.name().clone(), c[i].clone());
                }
                Json::Object(obj)
            })
        }
        _ => {
            let opts = FormatOptions::default();
            match ArrayFormatter::try_new(array.as_ref(), &opts) {
                Ok(f) => each!(|i| Json::String(f.value(i).to_string())),
                Err(_) => out.resize(n, Json::Null),
            }
        }
    }
    out
}

/// Row `i` of a list array as a JSON array.
fn list_value(array: &ArrayRef, i: usize) -> Json {
    let values = match array.data_type() {
        ArrowType::List(_) => array.as_list::<i32>().value(i),
        ArrowType::LargeList(_) => array.as_list::<i64>().value(i),
        ArrowType::FixedSizeList(_, _) => array.as_fixed_size_list().value(i),
        _ => return Json::Null,
    };
    Json::Array(column_values(&values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float32Array, TimestampMicrosecondArray};

    #[test]
    fn timestamps_follow_the_contract() {
        let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_737_626_400_123_000]));
        assert_eq!(column_values(&a), vec![json!("2025-01-23T10:00:00.123")]);
        let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC"));
        assert_eq!(column_values(&a), vec![json!("1970-01-01T00:00:00Z")]);
    }

    #[test]
    fn lists_are_json_arrays_with_nulls_and_empty_strings_apart() {
        use arrow::array::ListBuilder;
        use arrow::array::StringBuilder;
        let mut b = ListBuilder::new(StringBuilder::new());
        b.values().append_value("a");
        b.values().append_value("");
        b.values().append_null();
        b.values().append_value("b, c");
        b.append(true);
        b.append(false);
        let a: ArrayRef = Arc::new(b.finish());
        assert_eq!(
            column_values(&a),
            vec![json!(["a", "", null, "b, c"]), Json::Null]
        );
    }

    #[test]
    fn floats_are_short_and_nan_is_a_string() {
        let a: ArrayRef = Arc::new(Float32Array::from(vec![0.1, f32::NAN, f32::NEG_INFINITY]));
        assert_eq!(
            column_values(&a),
            vec![json!(0.1), json!("NaN"), json!("-Infinity")]
        );
    }
}
