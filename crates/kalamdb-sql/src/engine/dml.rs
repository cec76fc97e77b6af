//! INSERT, UPDATE and DELETE: the rows DataFusion computes, written through the row store as
//! one atomic synced batch per statement; read-modify-write statements serialise per scope.

use super::session::StatementSession;
use crate::df::provider::KalamTable;
use crate::planning::errors::from_datafusion;
use arrow::array::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::prelude::DataFrame;
use kalamdb_core::{Error, Result, ROWID_COLUMN};
use std::sync::Arc;

use super::limits::*;
use super::output::*;
use super::router::Engine;

/// The clauses of a write taken out of it before DataFusion planned it.
#[derive(Clone, Copy, Default)]
pub(super) struct Clauses<'a> {
    pub(super) returning: Option<&'a super::returning::Returning>,
    pub(super) on_conflict: Option<&'a super::on_conflict::OnConflict>,
}

impl Engine {
    pub(super) async fn execute_dml(
        &self,
        session: &Arc<StatementSession>,
        state: &SessionState,
        dml: DmlStatement,
        clauses: Clauses<'_>,
        params: &[datafusion::common::ScalarValue],
    ) -> Result<StatementOutput> {
        let provider = datafusion::catalog::default_table_source::source_as_provider(&dml.target)
            .map_err(from_datafusion)?;
        let table = written_table(provider.as_ref(), &dml)?;
        let def = table.def().clone();
        let scope = table.scope().clone();
        // Write (and read) permission: checked on the plan before it got here (check_plan_access).
        if matches!(dml.op, WriteOp::Update) {
            check_key_not_assigned(
                &dml.input,
                def.primary_key.as_deref().unwrap_or(ROWID_COLUMN),
            )?;
        }
        let with_rowid = table.has_rowid();
        let transaction = session.transaction().cloned();
        // A transaction reads its snapshot and is checked at COMMIT instead (ADR 0014).
        let _serial = if transaction.is_none() && needs_scope_lock(&dml, &def, clauses) {
            Some(
                self.lock_scope_for_dml(def.id, &scope, session.deadline())
                    .await?,
            )
        } else {
            None
        };
        let input = Arc::unwrap_or_clone(dml.input);
        let fallback = crate::planning::subquery::has_subqueries(&input)
            .then(|| (session.clone(), input.clone()));
        let df = DataFrame::new(state.clone(), input);
        let (_, batches, _) = self.collect_bounded(df, fallback, session).await?;
        let returning = clauses.returning;
        if let (WriteOp::Insert(_), Some(on_conflict)) = (&dml.op, clauses.on_conflict) {
            return self
                .upsert(
                    session,
                    state,
                    def,
                    scope,
                    batches,
                    on_conflict,
                    returning,
                    params,
                )
                .await;
        }
        // RETURNING first: an error in it writes nothing.
        let returned = match returning {
            Some(r) => Some(
                self.returning_rows(session, state, &def, &batches, r, params)
                    .await?,
            ),
            None => None,
        };
        let written = match &transaction {
            Some(t) => {
                self.write_in_transaction(t, def, scope, dml.op.clone(), batches, with_rowid)
                    .await?
            }
            None => {
                self.write_rows(def, scope, dml.op.clone(), batches, with_rowid)
                    .await?
            }
        };
        Ok(returned.unwrap_or(written))
    }

    /// Wait (until the statement's deadline) for the scope's read-modify-write lock.
    pub(super) async fn lock_scope_for_dml(
        &self,
        table_id: u64,
        scope: &kalamdb_core::Scope,
        deadline: std::time::Instant,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self.dml_locks.lock();
            if locks.len() > 10_000 {
                // Bound memory: drop the locks nobody holds or waits for right now.
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry((table_id, scope.clone())).or_default().clone()
        };
        match tokio::time::timeout_at(deadline.into(), lock.lock_owned()).await {
            Ok(guard) => Ok(guard),
            Err(_) => Err(timed_out(self.limits.statement_timeout)),
        }
    }

    /// Write a DML statement's rows through the row store, off the async runtime.
    pub(super) async fn write_rows(
        &self,
        def: Arc<kalamdb_core::TableDef>,
        scope: kalamdb_core::Scope,
        op: WriteOp,
        batches: Vec<RecordBatch>,
        with_rowid: bool,
    ) -> Result<StatementOutput> {
        if !matches!(op, WriteOp::Delete) {
            for b in &batches {
                values_within(b, self.limits.max_value_bytes)?;
            }
        }
        let rows_store = self.db.rows.clone();
        tokio::task::spawn_blocking(move || -> Result<StatementOutput> {
            let rows_of = |batches: &[RecordBatch],
                           with_rowid: bool|
             -> Result<Vec<Vec<kalamdb_core::Value>>> {
                let mut rows = Vec::new();
                for b in batches {
                    rows.extend(kalamdb_core::rows_from_batch(&def, b, with_rowid)?);
                }
                Ok(rows)
            };
            match op {
                WriteOp::Insert(_) => {
                    let n = rows_store.insert(&def, &scope, rows_of(&batches, false)?)?;
                    Ok(StatementOutput::Affected {
                        row_count: n,
                        message: format!("Inserted {n} row(s)"),
                    })
                }
                WriteOp::Update => {
                    let n = rows_store.update(&def, &scope, rows_of(&batches, with_rowid)?)?;
                    Ok(StatementOutput::Affected {
                        row_count: n,
                        message: format!("Updated {n} row(s)"),
                    })
                }
                WriteOp::Delete => {
                    let key_index = match &def.primary_key {
                        Some(pk) => def.live_columns().position(|c| &c.name == pk),
                        None => Some(def.live_columns().count()),
                    }
                    .ok_or_else(|| Error::Internal("primary key column missing".into()))?;
                    let keys: Vec<_> = rows_of(&batches, with_rowid)?
                        .into_iter()
                        .filter_map(|mut r| (key_index < r.len()).then(|| r.swap_remove(key_index)))
                        .collect();
                    let n = rows_store.delete(&def, &scope, keys)?;
                    Ok(StatementOutput::Affected {
                        row_count: n,
                        message: format!("Deleted {n} row(s)"),
                    })
                }
                other => Err(Error::Unsupported(format!("{other} is not supported"))),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("write task failed: {e}")))?
    }
}

/// The table a write writes: views and the server's own tables are read-only.
fn written_table<'a>(
    provider: &'a dyn datafusion::catalog::TableProvider,
    dml: &DmlStatement,
) -> Result<&'a KalamTable> {
    if provider
        .downcast_ref::<datafusion::catalog::view::ViewTable>()
        .is_some()
    {
        return Err(Error::Unsupported(format!(
            "'{}' is a view, and views are read-only: write to its table",
            dml.table_name
        )));
    }
    provider
        .downcast_ref::<KalamTable>()
        .ok_or_else(|| Error::PermissionDenied(format!("table '{}' is read-only", dml.table_name)))
}

/// Whether a write takes its scope's read-modify-write lock. UPDATE and DELETE read the rows
/// they then write, and so do an upsert and an INSERT whose query reads its own table
/// (`INSERT ... SELECT ... WHERE NOT EXISTS (...)`): no other such statement of the scope may
/// write between the read and the write (a lost update, or a duplicate, otherwise). Other
/// INSERTs (VALUES, params, other tables) never wait.
fn needs_scope_lock(
    dml: &DmlStatement,
    def: &kalamdb_core::TableDef,
    clauses: Clauses<'_>,
) -> bool {
    let reads_target = || {
        let mut found = false;
        let _ = dml.input.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                found |= scan.table_name.table() == def.name
                    && scan
                        .table_name
                        .schema()
                        .is_none_or(|ns| ns == def.namespace);
            }
            Ok(if found {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        found
    };
    match dml.op {
        WriteOp::Update | WriteOp::Delete => true,
        WriteOp::Insert(_) => clauses.on_conflict.is_some() || reads_target(),
        _ => false,
    }
}

/// Refuse an UPDATE that assigns the row's key column (primary key or `_rowid`).
fn check_key_not_assigned(input: &LogicalPlan, key: &str) -> Result<()> {
    let LogicalPlan::Projection(p) = input else {
        return Ok(());
    };
    for e in &p.expr {
        if let Expr::Alias(a) = e {
            let identity = matches!(a.expr.as_ref(), Expr::Column(c) if c.name == key);
            if a.name == key && !identity {
                return Err(Error::Unsupported(format!(
                    "updating the primary key column '{key}' is not supported; delete and insert the row instead"
                )));
            }
        }
    }
    Ok(())
}
