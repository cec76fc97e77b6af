//! What the DDL statements share: names resolved against the request, results as text rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use kalamdb_core::{Db, Error, Result, TableDef, UserDef};

use crate::engine::{text_schema, Caller, StatementOutput};
use crate::statement::parser::TableName;

pub(super) fn short(s: &str) -> String {
    kalamdb_core::truncate_for_message(s)
}

/// Only `system` may manage `system`-role users.
pub(super) fn check_outranks(caller: &Caller, target: &UserDef) -> Result<()> {
    caller.principal.check_outranks(target.role)
}

pub(super) fn yes_no(b: bool) -> String {
    if b { "YES" } else { "NO" }.to_string()
}

pub(super) fn message(m: String) -> StatementOutput {
    StatementOutput::Message(m)
}

pub(super) fn rows(names: &[&str], columns: Vec<Vec<String>>) -> Result<StatementOutput> {
    let schema = text_schema(names);
    let row_count = columns.first().map(|c| c.len()).unwrap_or(0);
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(StatementOutput::Rows {
        schema,
        batches: vec![batch],
        row_count,
    })
}

pub(super) fn resolve(caller: &Caller, t: &TableName) -> (String, String) {
    t.qualified(&caller.namespace)
}

/// A table DDL or DESCRIBE names, through the one resolver; the server's views are not
/// tables one can alter or describe this way.
pub(super) fn lookup(db: &Db, ns: &str, name: &str) -> Result<Arc<TableDef>> {
    if ns == "system" || ns == "information_schema" {
        return Err(Error::Unsupported(format!(
            "{ns} tables are described by information_schema.columns"
        )));
    }
    db.catalog.resolve_table(ns, name)
}
