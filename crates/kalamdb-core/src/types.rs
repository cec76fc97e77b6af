//! The contract's column types and the typed values the row codec stores.
//!
//! Every type CREATE TABLE accepts is listed in [`DataType`]; each has exactly one Arrow
//! representation ([`DataType::arrow_type`]) so hot rows, query results and (later) Parquet
//! agree bit for bit. Nothing here touches storage or SQL text.

use std::fmt;

use arrow::datatypes::{DataType as ArrowType, TimeUnit};
use serde::{Deserialize, Serialize};

/// Arrow field metadata key that carries the contract type name of a column, so JSON and
/// UUID columns (stored as Arrow Utf8) are reported with their own names.
pub const TYPE_METADATA_KEY: &str = "kalamdb.type";

/// A column type of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum DataType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Real,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Text,
    Bytea,
    Date,
    /// Time of day, microsecond precision.
    Time,
    /// Timestamp without time zone, microsecond precision.
    Timestamp,
    /// Timestamp in UTC, microsecond precision.
    TimestampTz,
    /// Text that must parse as JSON.
    Json,
    /// Canonical lowercase hyphenated UUID text.
    Uuid,
}

/// Largest DECIMAL precision we accept (Arrow Decimal128).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

impl DataType {
    /// The Arrow type used for this column everywhere (hot scans, results, Parquet).
    pub fn arrow_type(&self) -> ArrowType {
        match self {
            DataType::Boolean => ArrowType::Boolean,
            DataType::SmallInt => ArrowType::Int16,
            DataType::Int => ArrowType::Int32,
            DataType::BigInt => ArrowType::Int64,
            DataType::Real => ArrowType::Float32,
            DataType::Double => ArrowType::Float64,
            DataType::Decimal { precision, scale } => ArrowType::Decimal128(*precision, *scale),
            DataType::Text | DataType::Json | DataType::Uuid => ArrowType::Utf8,
            DataType::Bytea => ArrowType::Binary,
            DataType::Date => ArrowType::Date32,
            DataType::Time => ArrowType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DataType::TimestampTz => {
                ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }

    /// The contract name of the Arrow type of a computed result column.
    pub fn name_of_arrow(t: &ArrowType) -> String {
        match t {
            ArrowType::Null => "NULL".into(),
            ArrowType::Boolean => "BOOLEAN".into(),
            ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => "SMALLINT".into(),
            ArrowType::Int32 | ArrowType::UInt16 => "INT".into(),
            ArrowType::Int64 | ArrowType::UInt32 | ArrowType::UInt64 => "BIGINT".into(),
            ArrowType::Float16 | ArrowType::Float32 => "REAL".into(),
            ArrowType::Float64 => "DOUBLE".into(),
            ArrowType::Decimal32(p, s)
            | ArrowType::Decimal64(p, s)
            | ArrowType::Decimal128(p, s)
            | ArrowType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => "TEXT".into(),
            ArrowType::Binary
            | ArrowType::LargeBinary
            | ArrowType::BinaryView
            | ArrowType::FixedSizeBinary(_) => "BYTEA".into(),
            ArrowType::Date32 | ArrowType::Date64 => "DATE".into(),
            ArrowType::Time32(_) | ArrowType::Time64(_) => "TIME".into(),
            ArrowType::Timestamp(_, None) => "TIMESTAMP".into(),
            ArrowType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
            ArrowType::Interval(_) => "INTERVAL".into(),
            ArrowType::Duration(_) => "INTERVAL".into(),
            ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(_, _) => {
                "ARRAY".into()
            }
            ArrowType::Struct(_) => "STRUCT".into(),
            ArrowType::Map(_, _) => "MAP".into(),
            ArrowType::Dictionary(_, v) => Self::name_of_arrow(v),
            other => other.to_string().to_uppercase(),
        }
    }

    /// Parse a contract type name (already split into its words and optional arguments).
    ///
    /// `words` is the upper-cased type name, possibly several words
    /// (`DOUBLE PRECISION`, `TIMESTAMP WITH TIME ZONE`); `args` are the numbers in parentheses.
    pub fn from_sql(words: &[String], args: &[u64]) -> Result<DataType, String> {
        let joined = words.join(" ");
        let no_args = |t: DataType| {
            if args.is_empty() {
                Ok(t)
            } else {
                Err(format!("type {joined} takes no arguments"))
            }
        };
        match joined.as_str() {
            "BOOLEAN" | "BOOL" => no_args(DataType::Boolean),
            "SMALLINT" | "INT2" => no_args(DataType::SmallInt),
            "INT" | "INTEGER" | "INT4" => no_args(DataType::Int),
            "BIGINT" | "INT8" => no_args(DataType::BigInt),
            "REAL" | "FLOAT4" | "FLOAT" => no_args(DataType::Real),
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" => no_args(DataType::Double),
            "DECIMAL" | "NUMERIC" => {
                let (precision, scale) = match args {
                    [] => (38, 10),
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return Err("DECIMAL takes at most (precision, scale)".into()),
                };
                if precision == 0 || precision > MAX_DECIMAL_PRECISION as u64 {
                    return Err(format!(
                        "DECIMAL precision must be between 1 and {MAX_DECIMAL_PRECISION}"
                    ));
                }
                if scale > precision {
                    return Err("DECIMAL scale must not exceed its precision".into());
                }
                Ok(DataType::Decimal {
                    precision: precision as u8,
                    scale: scale as i8,
                })
            }
            // VARCHAR(n) is accepted for script compatibility; the length is not enforced.
            "TEXT" | "VARCHAR" | "STRING" | "CHARACTER VARYING" => {
                if args.len() > 1 {
                    Err("VARCHAR takes at most one argument".into())
                } else {
                    Ok(DataType::Text)
                }
            }
            "BYTEA" | "BLOB" | "VARBINARY" => no_args(DataType::Bytea),
            "DATE" => no_args(DataType::Date),
            "TIME" | "TIME WITHOUT TIME ZONE" => no_args(DataType::Time),
            "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" | "DATETIME" => {
                no_args(DataType::Timestamp)
            }
            "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => no_args(DataType::TimestampTz),
            "JSON" | "JSONB" => no_args(DataType::Json),
            "UUID" => no_args(DataType::Uuid),
            _ => Err(format!("type '{joined}' is not supported")),
        }
    }

    /// Whether a column of this type may be a primary key.
    pub fn can_be_primary_key(&self) -> bool {
        !matches!(self, DataType::Json | DataType::Real | DataType::Double)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::SmallInt => f.write_str("SMALLINT"),
            DataType::Int => f.write_str("INT"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Real => f.write_str("REAL"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            DataType::Text => f.write_str("TEXT"),
            DataType::Bytea => f.write_str("BYTEA"),
            DataType::Date => f.write_str("DATE"),
            DataType::Time => f.write_str("TIME"),
            DataType::Timestamp => f.write_str("TIMESTAMP"),
            DataType::TimestampTz => f.write_str("TIMESTAMPTZ"),
            DataType::Json => f.write_str("JSON"),
            DataType::Uuid => f.write_str("UUID"),
        }
    }
}

/// One typed cell as the row codec stores it.
///
/// Integers, floats and temporal values keep their exact bits; DATE is days since the Unix
/// epoch, TIME microseconds since midnight, TIMESTAMP/TIMESTAMPTZ microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    SmallInt(i16),
    Int(i32),
    BigInt(i64),
    Real(f32),
    Double(f64),
    Decimal(i128),
    Text(String),
    Bytes(Vec<u8>),
    Date(i32),
    Time(i64),
    Timestamp(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// One version of a row, from the hot buffer or a Parquet segment.
#[derive(Debug, Clone, PartialEq)]
pub struct RowVersion {
    /// Order-preserving primary-key encoding.
    pub pk: Vec<u8>,
    pub seq: u64,
    /// Schema version whose layout `values` follow.
    pub schema_version: u32,
    /// None for a tombstone.
    pub values: Option<Vec<Value>>,
}

/// Check a value against its column type's rules (JSON must parse, UUIDs are normalised).
pub fn check_value(dt: &DataType, v: Value) -> crate::error::Result<Value> {
    match (dt, v) {
        (DataType::Json, Value::Text(s)) => {
            serde_json::from_str::<serde::de::IgnoredAny>(&s).map_err(|e| {
                crate::error::Error::TypeMismatch(format!("invalid JSON value: {e}"))
            })?;
            Ok(Value::Text(s))
        }
        (DataType::Uuid, Value::Text(s)) => {
            let u = uuid::Uuid::parse_str(&s).map_err(|_| {
                crate::error::Error::TypeMismatch(format!(
                    "invalid UUID value '{}'",
                    crate::error::truncate_for_message(&s)
                ))
            })?;
            Ok(Value::Text(u.hyphenated().to_string()))
        }
        // A time of day is below 24:00:00 (chrono reads the leap second '23:59:60' as
        // 86,400 s, which later writers and readers cannot represent).
        (DataType::Time, Value::Time(us)) if !(0..86_400_000_000).contains(&us) => {
            Err(crate::error::Error::TypeMismatch(
                "time of day out of range: must be from 00:00:00 to 23:59:59.999999".into(),
            ))
        }
        (_, v) => Ok(v),
    }
}
