//! What the DDL statements share: names resolved against the request, results as text rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use kalamdb_core::catalog::{TableDef, UserDef};
use kalamdb_core::db::Db;
use kalamdb_core::{Error, Result};

use crate::engine::{text_schema, Caller, StatementOutput};
use crate::statement::parser::TableName;

pub(super) fn short(s: &str) -> String {
    kalamdb_core::error::truncate_for_message(s)
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
    (
        t.namespace
            .clone()
            .unwrap_or_else(|| caller.namespace.clone()),
        t.name.clone(),
    )
}

pub(super) fn lookup(db: &Db, ns: &str, name: &str) -> Result<Arc<TableDef>> {
    if ns == "system" || ns == "information_schema" {
        return Err(Error::Unsupported(format!(
            "{ns} tables are described by information_schema.columns"
        )));
    }
    if db.catalog.namespace(ns).is_none() {
        return Err(Error::NamespaceNotFound(ns.to_string()));
    }
    db.catalog
        .table(ns, name)
        .ok_or_else(|| Error::TableNotFound(format!("{ns}.{name}")))
}
