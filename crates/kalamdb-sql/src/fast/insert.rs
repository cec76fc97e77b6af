//! The fast path for `INSERT INTO t [(cols)] VALUES (literals), ...`.
//!
//! Planning a VALUES list through DataFusion (one `Expr` per value, type coercion, the
//! optimizer's passes over every expression) cost more than everything else on the write path
//! together: a 1,000-row INSERT spent most of its time there (docs/BENCHMARKS.md). Literal
//! rows need none of it. This module turns them straight into one Arrow batch in the table's
//! schema, with the same conversions DataFusion would apply (each column's literals are
//! gathered into one array of their natural type — Utf8, Int64, Float64, Boolean — and cast
//! to the column's type with arrow's cast kernel, errors on), and hands it to the same row
//! conversion and row store the planned path uses. NOT NULL, primary keys, JSON/UUID checks
//! and access rules are therefore identical.
//!
//! The statement is read by the first of three readers that takes it: `from_text` (the
//! SQL text, strictest), `from_tokens` (the tokens; both in `fast::reader`), [`from_ast`]
//! (sqlparser's AST); the
//! first two skip work that dominated batched ingest (ADR 0006) and are held to the next
//! reader's answer by proptests.
//!
//! Anything else — expressions, placeholders, DEFAULT, a column without a literal default,
//! mixed literal kinds in one column (integers and decimals included), unknown columns, a width
//! mismatch, RETURNING, ON CONFLICT, `VALUE`, optimizer hints —
//! returns `None` and the statement takes the planned path, which also produces its errors.

use std::sync::Arc;

use crate::df::provider::KalamTable;
use arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::util::display::FormatOptions;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr as DfExpr;
use kalamdb_core::{Db, Principal, Result};
use sqlparser::ast::{Insert, SetExpr, TableObject};

pub(crate) use super::literals::LiteralRows;
use super::literals::{literal, Lit};
pub(crate) use super::reader::{from_text, from_tokens};
use crate::fast::path::{is_bare, kalam_table, name_parts};
use crate::planning::errors::from_datafusion;

/// A VALUES list ready to write: the table and the batch in its schema.
pub struct LiteralInsert {
    provider: Arc<dyn TableProvider>,
    pub batch: RecordBatch,
}

impl LiteralInsert {
    pub fn table(&self) -> &KalamTable {
        self.provider
            .downcast_ref::<KalamTable>()
            .expect("checked in prepare")
    }
}

/// The literal rows of `insert` (already parsed), or `None` when the statement needs planning.
pub fn from_ast(insert: &Insert) -> Option<LiteralRows<'_>> {
    if insert.or.is_some()
        || insert.ignore
        || insert.overwrite
        || insert.table_alias.is_some()
        || !insert.assignments.is_empty()
        || insert.partitioned.is_some()
        || !insert.after_columns.is_empty()
        || insert.on.is_some()
        || insert.returning.is_some()
        || insert.output.is_some()
        || insert.replace_into
        || insert.priority.is_some()
        || insert.insert_alias.is_some()
        || insert.settings.is_some()
        || insert.format_clause.is_some()
        || insert.multi_table_insert_type.is_some()
        || !insert.multi_table_into_clauses.is_empty()
        || !insert.multi_table_when_clauses.is_empty()
        || insert.multi_table_else_clause.is_some()
        || !insert.optimizer_hints.is_empty()
    {
        return None;
    }
    let query = insert.source.as_ref()?;
    if !is_bare(query) {
        return None;
    }
    let SetExpr::Values(values) = query.body.as_ref() else {
        return None;
    };
    if values.explicit_row || values.value_keyword || values.rows.is_empty() {
        return None;
    }
    let TableObject::TableName(name) = &insert.table else {
        return None;
    };
    let width = values.rows[0].len();
    let literals = || {
        let mut lits = Vec::with_capacity(width * values.rows.len());
        for row in &values.rows {
            if row.len() != width {
                return None;
            }
            for e in row.iter() {
                lits.push(literal(e)?);
            }
        }
        Some(lits)
    };
    Some(LiteralRows {
        name: name.clone(),
        columns: insert.columns.clone(),
        width,
        values: literals(),
    })
}

/// Turn literal rows into a batch in the table's schema, or `None` when they need planning.
// long: each condition that sends literal rows back to the planner is one early return, in one
// list (ADR 0005), beside the conversion it guards.
pub async fn prepare_rows(
    db: &Arc<Db>,
    principal: &Principal,
    namespace: &str,
    rows: LiteralRows<'_>,
) -> Option<Result<LiteralInsert>> {
    let name = &rows.name;
    let provider = kalam_table(db, principal, namespace, name).await?;
    let table = provider.downcast_ref::<KalamTable>()?;
    let table_schema = table.schema();

    // Which table column each VALUES position fills.
    let positions: Vec<usize> = if rows.columns.is_empty() {
        (0..table_schema.fields().len()).collect()
    } else {
        let mut out = Vec::with_capacity(rows.columns.len());
        for c in &rows.columns {
            let [col] = name_parts(c)?.try_into().ok()?;
            let i = table_schema.index_of(&col).ok()?;
            if out.contains(&i) {
                return None;
            }
            out.push(i);
        }
        out
    };
    // The planned path checks write permission before it evaluates any value.
    if let Err(e) = table.principal().check_write(table.def()) {
        return Some(Err(e));
    }
    let width = positions.len();
    let values = rows.values?;
    if rows.width != width {
        return None;
    }
    let n = values.len() / width;

    let mut columns: Vec<Option<ArrayRef>> = vec![None; table_schema.fields().len()];
    for (pos, &col) in positions.iter().enumerate() {
        let lits: Vec<Lit> = values.iter().skip(pos).step_by(width).copied().collect();
        let natural = natural_array(&lits, table_schema.field(col).data_type())?;
        columns[col] = Some(natural);
    }
    // Columns not named take their literal default, or NULL.
    for (i, slot) in columns.iter_mut().enumerate() {
        if slot.is_none() {
            let field = table_schema.field(i);
            *slot = Some(match table.get_column_default(field.name()) {
                None => new_null_array(field.data_type(), n),
                Some(DfExpr::Literal(v, _)) => match v.to_array_of_size(n) {
                    Ok(a) => a,
                    Err(_) => return None,
                },
                Some(_) => return None,
            });
        }
    }
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let mut arrays = Vec::with_capacity(columns.len());
    for (array, field) in columns.into_iter().zip(table_schema.fields()) {
        let array = array?;
        if array.data_type() == field.data_type() {
            arrays.push(array);
            continue;
        }
        // The table's own assignment rules (rounding, ranges, refused conversions).
        if let Some(column) = table.def().live_columns().find(|c| c.name == *field.name()) {
            match kalamdb_core::conform(&array, &column.data_type) {
                Ok(a) => arrays.push(a),
                Err(e) => return Some(Err(e)),
            }
            continue;
        }
        match cast_with_options(&array, field.data_type(), &options) {
            Ok(a) => arrays.push(a),
            Err(e) => {
                return Some(Err(from_datafusion(DataFusionError::ArrowError(
                    Box::new(e),
                    None,
                ))))
            }
        }
    }
    let batch = match RecordBatch::try_new(table_schema.clone(), arrays) {
        Ok(b) => b,
        Err(_) => return None,
    };
    Some(Ok(LiteralInsert { provider, batch }))
}

/// One column's literals as an array of the type DataFusion would give them, or `None`
/// when they mix kinds DataFusion would coerce differently.
fn natural_array(lits: &[Lit], target: &arrow::datatypes::DataType) -> Option<ArrayRef> {
    let (mut strs, mut ints, mut floats, mut bools) = (false, false, false, false);
    for l in lits {
        match l {
            Lit::Null => {}
            Lit::Str(_) => strs = true,
            Lit::Int(_) => ints = true,
            Lit::Float(..) => floats = true,
            Lit::Bool(_) => bools = true,
        }
    }
    // DataFusion casts each literal to the column type on its own; one array per kind is the
    // same only when the column holds one kind. Integers and decimals are two kinds (an
    // integer through f64 would become '1.0' in a TEXT column, or lose digits in a BIGINT),
    // except for a DOUBLE column, where each integer goes through f64 either way.
    let numbers_as_double = ints && floats && *target == arrow::datatypes::DataType::Float64;
    let kinds = strs as u8
        + bools as u8
        + if numbers_as_double {
            1
        } else {
            ints as u8 + floats as u8
        };
    if kinds > 1 {
        return None;
    }
    let exponents = lits
        .iter()
        .any(|l| matches!(l, Lit::Float(_, digits, _) if digits.contains(['e', 'E'])));
    let exact = matches!(
        target,
        arrow::datatypes::DataType::Decimal128(..) | arrow::datatypes::DataType::Utf8
    );
    if floats && exact && exponents {
        return None;
    }
    // A fraction into an integer column: planned, where it is exact (a float rounds
    // 123456789012345678.5 to ...680).
    if floats && target.is_integer() {
        return None;
    }
    if floats && !strs && !bools && exact {
        // Exactly the digits written (PostgreSQL's numeric literals), never through a float,
        // as the planned path reads them (crate::statement::syntax).
        return Some(Arc::new(StringArray::from_iter(lits.iter().map(
            |l| match l {
                Lit::Float(_, digits, negative) => {
                    Some(format!("{}{digits}", if *negative { "-" } else { "" }))
                }
                Lit::Int(i) => Some(i.to_string()),
                _ => None,
            },
        ))));
    }
    Some(if strs {
        Arc::new(StringArray::from_iter(lits.iter().map(|l| match l {
            Lit::Str(s) => Some(*s),
            _ => None,
        })))
    } else if floats {
        Arc::new(Float64Array::from_iter(lits.iter().map(|l| match l {
            Lit::Float(f, ..) => Some(*f),
            Lit::Int(i) => Some(*i as f64), // only when the column is DOUBLE (checked above)
            _ => None,
        })))
    } else if ints {
        Arc::new(Int64Array::from_iter(lits.iter().map(|l| match l {
            Lit::Int(i) => Some(*i),
            _ => None,
        })))
    } else if bools {
        Arc::new(BooleanArray::from_iter(lits.iter().map(|l| match l {
            Lit::Bool(b) => Some(*b),
            _ => None,
        })))
    } else {
        // Only NULLs: DataFusion types them as Null, which casts to anything.
        new_null_array(&arrow::datatypes::DataType::Null, lits.len())
    })
}

#[cfg(test)]
#[path = "insert_tests.rs"]
mod tests;
