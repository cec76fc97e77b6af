//! Rows a statement wants to write, from Arrow batches to checked values: each column conformed
//! to its type (PostgreSQL's assignment rules), each value checked (JSON, UUID, time of day),
//! NOT NULL enforced.

use arrow::array::{ArrayRef, RecordBatch};

use crate::catalog::TableDef;
use crate::encoding::arrow_values::{conform, value_at};
use crate::error::{Error, Result};
use crate::types::{check_value, DataType, Value};

/// Convert a batch whose columns are the table's live columns (plus `_rowid` last when
/// `with_rowid`) into checked rows of values.
pub fn rows_from_batch(
    def: &TableDef,
    batch: &RecordBatch,
    with_rowid: bool,
) -> Result<Vec<Vec<Value>>> {
    let cols: Vec<_> = def.live_columns().collect();
    let expected = cols.len() + with_rowid as usize;
    if batch.num_columns() != expected {
        return Err(Error::Internal(format!(
            "write batch has {} columns, table has {expected}",
            batch.num_columns()
        )));
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(expected);
    for (i, c) in cols.iter().enumerate() {
        arrays.push(conform(batch.column(i), &c.data_type).map_err(|e| match e {
            Error::TypeMismatch(m) => Error::TypeMismatch(format!("column '{}': {m}", c.name)),
            other => other,
        })?);
    }
    if with_rowid {
        arrays.push(conform(batch.column(cols.len()), &DataType::BigInt)?);
    }
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut row = Vec::with_capacity(expected);
        for (i, c) in cols.iter().enumerate() {
            let v = check_value(&c.data_type, value_at(&arrays[i], r, &c.data_type)?)?;
            if v.is_null() && !c.nullable {
                return Err(Error::ConstraintViolation(format!(
                    "column '{}' of table '{}' must not be NULL",
                    c.name,
                    def.qualified_name()
                )));
            }
            row.push(v);
        }
        if with_rowid {
            row.push(value_at(&arrays[cols.len()], r, &DataType::BigInt)?);
        }
        rows.push(row);
    }
    Ok(rows)
}
