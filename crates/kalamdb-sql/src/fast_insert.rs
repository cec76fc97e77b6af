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
//! Anything else — expressions, placeholders, DEFAULT, a column without a literal default,
//! mixed literal kinds in one column (integers and decimals included), unknown columns, a width
//! mismatch, RETURNING, ON CONFLICT, `VALUE`, optimizer hints —
//! returns `None` and the statement takes the planned path, which also produces its errors.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::util::display::FormatOptions;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr as DfExpr;
use kalamdb_core::access::Principal;
use kalamdb_core::db::Db;
use kalamdb_core::provider::KalamTable;
use kalamdb_core::Result;
use sqlparser::ast::{
    Expr, Insert, SetExpr, TableObject, UnaryOperator, Value,
};

use crate::errors::from_datafusion;
use crate::fast_path::{is_bare, kalam_table, name_parts};

/// A VALUES list ready to write: the table and the batch in its schema.
pub struct LiteralInsert {
    provider: Arc<dyn TableProvider>,
    pub batch: RecordBatch,
}

impl LiteralInsert {
    pub fn table(&self) -> &KalamTable {
        self.provider.downcast_ref::<KalamTable>().expect("checked in prepare")
    }
}

/// One literal, classified by the Arrow type DataFusion gives it.
enum Lit<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

fn literal(e: &Expr) -> Option<Lit<'_>> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Null => Some(Lit::Null),
            Value::SingleQuotedString(s) => Some(Lit::Str(s)),
            Value::Boolean(b) => Some(Lit::Bool(*b)),
            Value::Number(n, false) => number(n, false),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, false) => number(n, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn number(text: &str, negative: bool) -> Option<Lit<'static>> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = text.parse().ok()?;
        Some(Lit::Int(if negative { v.checked_neg()? } else { v }))
    } else {
        let v: f64 = text.parse().ok()?;
        v.is_finite().then_some(Lit::Float(if negative { -v } else { v }))
    }
}

/// The literal rows of `insert`, or `None` when the statement needs planning.
pub async fn prepare(
    db: &Arc<Db>,
    principal: &Principal,
    namespace: &str,
    insert: &Insert,
) -> Option<Result<LiteralInsert>> {
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
    let SetExpr::Values(values) = query.body.as_ref() else { return None };
    if values.explicit_row || values.value_keyword || values.rows.is_empty() {
        return None;
    }
    let TableObject::TableName(name) = &insert.table else { return None };
    let provider = kalam_table(db, principal, namespace, name).await?;
    let table = provider.downcast_ref::<KalamTable>()?;
    let table_schema = table.schema();

    // Which table column each VALUES position fills.
    let positions: Vec<usize> = if insert.columns.is_empty() {
        (0..table_schema.fields().len()).collect()
    } else {
        let mut out = Vec::with_capacity(insert.columns.len());
        for c in &insert.columns {
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
    if values.rows.iter().any(|r| r.len() != width) {
        return None;
    }
    let n = values.rows.len();

    let mut columns: Vec<Option<ArrayRef>> = vec![None; table_schema.fields().len()];
    for (pos, &col) in positions.iter().enumerate() {
        let lits: Vec<Lit> = values.rows.iter().map(|r| literal(&r[pos])).collect::<Option<_>>()?;
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
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    let mut arrays = Vec::with_capacity(columns.len());
    for (array, field) in columns.into_iter().zip(table_schema.fields()) {
        let array = array?;
        if array.data_type() == field.data_type() {
            arrays.push(array);
            continue;
        }
        match cast_with_options(&array, field.data_type(), &options) {
            Ok(a) => arrays.push(a),
            Err(e) => return Some(Err(from_datafusion(DataFusionError::ArrowError(Box::new(e), None), db))),
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
            Lit::Float(_) => floats = true,
            Lit::Bool(_) => bools = true,
        }
    }
    // DataFusion casts each literal to the column type on its own; one array per kind is the
    // same only when the column holds one kind. Integers and decimals are two kinds (an
    // integer through f64 would become '1.0' in a TEXT column, or lose digits in a BIGINT),
    // except for a DOUBLE column, where each integer goes through f64 either way.
    let numbers_as_double = ints && floats && *target == arrow::datatypes::DataType::Float64;
    let kinds = strs as u8 + bools as u8 + if numbers_as_double { 1 } else { ints as u8 + floats as u8 };
    if kinds > 1 {
        return None;
    }
    Some(if strs {
        Arc::new(StringArray::from_iter(lits.iter().map(|l| match l {
            Lit::Str(s) => Some(*s),
            _ => None,
        })))
    } else if floats {
        Arc::new(Float64Array::from_iter(lits.iter().map(|l| match l {
            Lit::Float(f) => Some(*f),
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
