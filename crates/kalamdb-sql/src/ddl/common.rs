//! What the DDL statements share: names resolved against the request, results as text rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use kalamdb_core::{Db, Error, Result, TableDef, UserDef};

use crate::engine::{text_schema, Caller, StatementOutput};

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

/// A table DDL or DESCRIBE names (`doing`: what the statement would do, for the message),
/// through the one resolver. The server's views (`system.*`, `information_schema.*`) are not
/// tables: one that exists is refused as UNSUPPORTED, one that does not is TABLE_NOT_FOUND,
/// as a query of it would answer.
pub(super) fn lookup(db: &Db, ns: &str, name: &str, doing: &str) -> Result<Arc<TableDef>> {
    refuse_views(ns, name, doing)?;
    db.catalog.resolve_table(ns, name)
}

/// UNSUPPORTED for a view of the server's state, TABLE_NOT_FOUND for a name in its
/// namespaces that is none; Ok for any other namespace.
pub(super) fn refuse_views(ns: &str, name: &str, doing: &str) -> Result<()> {
    let views = match ns {
        "system" => crate::df::system_tables::SYSTEM_TABLES,
        "information_schema" => crate::df::system_tables::INFORMATION_SCHEMA_TABLES,
        _ => return Ok(()),
    };
    if !views.contains(&name) {
        return Err(Error::TableNotFound(format!("{ns}.{}", short(name))));
    }
    Err(Error::Unsupported(format!(
        "{ns}.{name} is a view of the server's state and cannot be {doing}"
    )))
}
