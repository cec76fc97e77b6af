//! What the two planner bypasses (`fast_insert`, `fast_select`, ADR 0005) share: resolving a
//! table name exactly as DataFusion would in the caller's catalog, and recognising a query
//! without any clause around its body.

use std::sync::Arc;

use crate::df::provider::KalamTable;
use crate::df::session_catalog::StatementCatalog;
use crate::df::system_tables::CATALOG_NAME;
use datafusion::catalog::{CatalogProvider, TableProvider};
use kalamdb_core::{Db, Principal};
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Query};

/// DataFusion's identifier normalization: unquoted names are lower-cased.
pub(crate) fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

pub(crate) fn name_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(normalize(i)),
            _ => None,
        })
        .collect()
}

/// The caller's `KalamTable` named `name` (through the same `StatementCatalog` the planner
/// uses, so scope and visibility are identical), or `None` for anything else — system and
/// information_schema tables, unknown names — which the planner then handles.
pub(crate) async fn kalam_table(
    db: &Arc<Db>,
    principal: &Principal,
    namespace: &str,
    name: &ObjectName,
) -> Option<Arc<dyn TableProvider>> {
    let (ns, table) = match name_parts(name)?.as_slice() {
        [t] => (namespace.to_string(), t.clone()),
        [ns, t] => (ns.clone(), t.clone()),
        [c, ns, t] if c == CATALOG_NAME => (ns.clone(), t.clone()),
        _ => return None,
    };
    let now = crate::engine::session::statement_time().timestamp_micros();
    let catalog = StatementCatalog::new(
        db.clone(),
        principal.clone(),
        false,
        now,
        Default::default(),
    );
    let provider = catalog.schema(&ns)?.table(&table).await.ok()??;
    provider.downcast_ref::<KalamTable>()?;
    Some(provider)
}

/// A query with no WITH, ORDER BY, LIMIT, FETCH, locks, FOR, settings, FORMAT or pipes.
pub(crate) fn is_bare(query: &Query) -> bool {
    query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty()
        && query.for_clause.is_none()
        && query.settings.is_none()
        && query.format_clause.is_none()
        && query.pipe_operators.is_empty()
}
