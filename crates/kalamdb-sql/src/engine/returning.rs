//! RETURNING on INSERT, UPDATE and DELETE.
//!
//! DataFusion plans the write without the clause; the clause is then evaluated over exactly
//! the rows the statement writes (the new rows for INSERT and UPDATE, defaults filled in; the
//! deleted rows for DELETE), before they are written, so an error in it writes nothing. The
//! rows are the caller's scope's only: they are the rows the statement computed through its
//! own scoped table.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::memory::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DfStatement;
use kalamdb_core::{Error, Result, TableDef};
use sqlparser::ast::{Expr, SelectItem, Statement as SqlStatement, TableObject};

use super::output::StatementOutput;
use super::router::Engine;
use super::session::StatementSession;
use crate::df::provider::table_schema;
use crate::df::system_tables::CATALOG_NAME;
use crate::planning::errors::from_datafusion;

/// A statement's RETURNING clause, taken out of it before planning.
#[derive(Debug, Clone)]
pub(crate) struct Returning {
    items: Vec<SelectItem>,
    /// The target as the statement names it, with its alias, so that `RETURNING t.id` and
    /// `RETURNING x.id` (`UPDATE t AS x`) resolve as they would in PostgreSQL.
    target: String,
}

/// Take the RETURNING clause out of an INSERT, UPDATE or DELETE (None for anything else).
pub(crate) fn take_returning(statement: &mut DfStatement) -> Result<Option<Returning>> {
    let DfStatement::Statement(s) = statement else {
        return Ok(None);
    };
    let (items, target) = match s.as_mut() {
        SqlStatement::Insert(insert) => {
            let Some(items) = insert.returning.take() else {
                return Ok(None);
            };
            let TableObject::TableName(name) = &insert.table else {
                return Err(Error::Unsupported("RETURNING of a table function".into()));
            };
            let target = match &insert.table_alias {
                Some(a) => format!("{name} AS {}", a.alias),
                None => name.to_string(),
            };
            (items, target)
        }
        SqlStatement::Update(update) => match update.returning.take() {
            Some(items) => (items, update.table.relation.to_string()),
            None => return Ok(None),
        },
        SqlStatement::Delete(delete) => {
            let Some(items) = delete.returning.take() else {
                return Ok(None);
            };
            let tables = match &delete.from {
                sqlparser::ast::FromTable::WithFromKeyword(t)
                | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
            };
            match tables.as_slice() {
                [t] => (items, t.relation.to_string()),
                _ => {
                    return Err(Error::Unsupported(
                        "RETURNING of a multi-table DELETE".into(),
                    ))
                }
            }
        }
        _ => return Ok(None),
    };
    if items.iter().any(reads_other_rows) {
        return Err(Error::Unsupported(
            "subqueries in RETURNING are not supported; RETURNING reads the rows written".into(),
        ));
    }
    Ok(Some(Returning { items, target }))
}

/// Does a RETURNING item hold a subquery (which would read rows other than those written)?
fn reads_other_rows(item: &SelectItem) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(item, |e| {
        found |= matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        );
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

impl Engine {
    /// The RETURNING clause over `batches`, the rows the statement is about to write (in the
    /// table's columns; `_rowid` dropped), planned and run as a query with the statement's
    /// limits and parameters.
    pub(super) async fn returning_rows(
        &self,
        session: &Arc<StatementSession>,
        state: &SessionState,
        def: &TableDef,
        batches: &[RecordBatch],
        returning: &Returning,
        params: &[ScalarValue],
    ) -> Result<StatementOutput> {
        let schema = table_schema(def, false);
        let rows = vec![conform_to(&schema, batches)?];
        let written = MemTable::try_new(schema.clone(), vec![rows]).map_err(from_datafusion)?;
        let state = in_memory_state(state, &def.namespace, vec![(def.name.clone(), written)])?;
        let items: Vec<String> = returning.items.iter().map(|i| i.to_string()).collect();
        let sql = format!("SELECT {} FROM {}", items.join(", "), returning.target);
        let plan = plan_clause(&state, &sql, "RETURNING", params).await?;
        let df = DataFrame::new(state, plan);
        let (schema, batches, row_count) = self.collect_bounded(df, None, session).await?;
        Ok(StatementOutput::Rows {
            schema,
            batches,
            row_count,
        })
    }
}

/// Batches as one batch in exactly `schema`'s columns and types.
pub(super) fn conform_to(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let mut parts = Vec::with_capacity(batches.len());
    for b in batches {
        let columns = schema
            .fields()
            .iter()
            .map(|f| -> Result<ArrayRef> {
                let column = b.column_by_name(f.name()).ok_or_else(|| {
                    Error::Internal(format!("written rows lack column '{}'", f.name()))
                })?;
                arrow::compute::cast(column, f.data_type())
                    .map_err(|e| Error::Internal(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        parts.push(
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
    }
    arrow::compute::concat_batches(schema, &parts).map_err(|e| Error::Internal(e.to_string()))
}

/// PostgreSQL's rule for clauses evaluated per written row (RETURNING, ON CONFLICT DO UPDATE):
/// no aggregate or window function, which would compute over all the rows instead.
pub(super) fn refuse_aggregates(
    plan: &datafusion::logical_expr::LogicalPlan,
    clause: &str,
) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;
    let mut found = false;
    let _ = plan.apply(|node| {
        found |= matches!(node, LogicalPlan::Aggregate(_) | LogicalPlan::Window(_));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    if found {
        return Err(Error::invalid_sql(format!(
            "aggregate and window functions are not allowed in {clause}"
        )));
    }
    Ok(())
}

/// A state whose only tables are `tables`, in schema `namespace` of the one catalog, with the
/// statement's functions, limits and start time: the clauses evaluated over a write's rows.
pub(super) fn in_memory_state(
    state: &SessionState,
    namespace: &str,
    tables: Vec<(String, MemTable)>,
) -> Result<SessionState> {
    let schema = Arc::new(MemorySchemaProvider::new());
    for (name, table) in tables {
        schema
            .register_table(name, Arc::new(table))
            .map_err(from_datafusion)?;
    }
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog
        .register_schema(namespace, schema)
        .map_err(from_datafusion)?;
    let catalogs = Arc::new(datafusion::catalog::MemoryCatalogProviderList::new());
    datafusion::catalog::CatalogProviderList::register_catalog(
        catalogs.as_ref(),
        CATALOG_NAME.to_string(),
        catalog,
    );
    Ok(SessionStateBuilder::new_from_existing(state.clone())
        .with_catalog_list(catalogs)
        .build())
}

/// Plan a clause's query (`clause` names it in errors) with the statement's parameters.
pub(super) async fn plan_clause(
    state: &SessionState,
    sql: &str,
    clause: &str,
    params: &[ScalarValue],
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let plan = state
        .create_logical_plan(sql)
        .await
        .map_err(from_datafusion)?;
    refuse_aggregates(&plan, clause)?;
    if params.is_empty() {
        return Ok(plan);
    }
    plan.with_param_values(ParamValues::from(params.to_vec()))
        .map_err(from_datafusion)
}
