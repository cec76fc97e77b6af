//! The rows every scenario uses, generated identically for KalamDB, PostgreSQL and the raw paths.
//!
//! Row shape: `id BIGINT PRIMARY KEY, user_key TEXT, body TEXT (40 bytes), v DOUBLE,
//! ts TIMESTAMP, b BOOLEAN`. Row `i` is a pure function of `i`, so PostgreSQL can generate the
//! same rows server-side with [`pg_select`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

/// Distinct `user_key` values (the GROUP BY key of the analytics scenario).
pub const USER_KEYS: i64 = 1000;
/// 2025-01-01T00:00:00Z in microseconds.
const TS_BASE_US: i64 = 1_735_689_600_000_000;

pub const COLUMNS: &str =
    "id BIGINT PRIMARY KEY, user_key TEXT, body TEXT, v DOUBLE, ts TIMESTAMP, b BOOLEAN";
pub const PG_COLUMNS: &str =
    "id bigint PRIMARY KEY, user_key text, body text, v double precision, ts timestamp, b boolean";

pub fn user_key(i: i64) -> String {
    format!("u{}", i % USER_KEYS)
}

pub fn body(i: i64) -> String {
    // 40 bytes: "event body text of forty bytes #" (32) + 8 digits.
    format!("event body text of forty bytes #{:08}", i % 100_000_000)
}

pub fn v(i: i64) -> f64 {
    (i % 10_000) as f64 * 0.25
}

pub fn ts_us(i: i64) -> i64 {
    TS_BASE_US + i * 1_000_000
}

pub fn b(i: i64) -> bool {
    i % 3 == 0
}

fn ts_literal(i: i64) -> String {
    let dt = chrono::DateTime::from_timestamp_micros(ts_us(i)).expect("timestamp in range");
    dt.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `(id, 'user_key', 'body', v, 'ts', b)`
pub fn tuple(i: i64) -> String {
    format!(
        "({i}, '{}', '{}', {}, '{}', {})",
        user_key(i),
        body(i),
        v(i),
        ts_literal(i),
        b(i)
    )
}

/// `('user', id, 'body', v, 'ts', b)`: a row of the PostgreSQL tables keyed by (user_key, id).
pub fn user_tuple(user: &str, i: i64) -> String {
    format!(
        "('{user}', {i}, '{}', {}, '{}', {})",
        body(i),
        v(i),
        ts_literal(i),
        b(i)
    )
}

/// `INSERT INTO {table} VALUES` with rows `ids`: the same text is sent to KalamDB and PostgreSQL.
pub fn insert_sql(table: &str, ids: impl Iterator<Item = i64>) -> String {
    let mut s = format!("INSERT INTO {table} VALUES ");
    for (n, i) in ids.enumerate() {
        if n > 0 {
            s.push_str(", ");
        }
        s.push_str(&tuple(i));
    }
    s
}

/// A PostgreSQL `SELECT` producing rows `from..to` exactly as [`tuple`] does.
pub fn pg_select(from: i64, to_exclusive: i64) -> String {
    format!(
        "SELECT i, 'u' || (i % {USER_KEYS}), 'event body text of forty bytes #' || lpad((i % 100000000)::text, 8, '0'), \
         (i % 10000) * 0.25, timestamp '2025-01-01 00:00:00' + i * interval '1 second', i % 3 = 0 \
         FROM generate_series({from}::bigint, {}::bigint) AS i",
        to_exclusive - 1
    )
}

pub fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("user_key", DataType::Utf8, true),
        Field::new("body", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("b", DataType::Boolean, true),
    ]))
}

/// Rows `ids` as one Arrow batch (the raw ArrowWriter and DataFusion baselines).
pub fn batch(ids: &[i64]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.iter().copied())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|&i| user_key(i)),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|&i| body(i)))),
        Arc::new(Float64Array::from_iter_values(ids.iter().map(|&i| v(i)))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            ids.iter().map(|&i| ts_us(i)),
        )),
        Arc::new(BooleanArray::from_iter(ids.iter().map(|&i| Some(b(i))))),
    ];
    RecordBatch::try_new(arrow_schema(), cols).expect("columns match the schema")
}
