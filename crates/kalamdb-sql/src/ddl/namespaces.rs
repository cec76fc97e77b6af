//! CREATE, DROP and SHOW NAMESPACES.

use kalamdb_core::{Db, Result};

use super::common::{message, rows};
use crate::engine::{Caller, StatementOutput};

/// CREATE NAMESPACE [IF NOT EXISTS] (dba+).
pub(super) fn create(
    db: &Db,
    caller: &Caller,
    name: String,
    if_not_exists: bool,
) -> Result<StatementOutput> {
    let p = &caller.principal;
    p.check_admin("create namespaces")?;
    let created = db.catalog.create_namespace(&name, if_not_exists)?;
    Ok(message(if created {
        format!("Namespace '{name}' created")
    } else {
        format!("Namespace '{name}' already exists")
    }))
}

/// DROP NAMESPACE [IF EXISTS] [CASCADE] (dba+): its tables' rows and files go with it.
pub(super) fn drop(
    db: &Db,
    caller: &Caller,
    name: String,
    if_exists: bool,
    cascade: bool,
) -> Result<StatementOutput> {
    let p = &caller.principal;
    p.check_admin("drop namespaces")?;
    let dropped = db.drop_namespace(&name, if_exists, cascade)?;
    Ok(message(if dropped {
        format!("Namespace '{name}' dropped")
    } else {
        format!("Namespace '{name}' does not exist")
    }))
}

/// SHOW NAMESPACES.
pub(super) fn show(db: &Db) -> Result<StatementOutput> {
    let names: Vec<String> = db
        .catalog
        .namespaces()
        .into_iter()
        .map(|n| n.name)
        .collect();
    rows(&["namespace"], vec![names])
}
