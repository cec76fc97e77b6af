//! `INSERT ... ON CONFLICT (pk) DO NOTHING | DO UPDATE SET ... [WHERE ...]`.
//!
//! DataFusion plans the INSERT without the clause. Its rows (defaults filled in) are then split,
//! under the scope's read-modify-write lock, into new rows and rows whose key is live, hot or
//! flushed (a deleted key is new). DO NOTHING writes the new rows. DO UPDATE evaluates SET and
//! WHERE over each conflicting row: a query joining two in-memory tables, the existing rows
//! (named as the target) and the proposed ones (`excluded`). The new rows and the updated ones
//! are written in one synced batch; RETURNING sees both, in the order of the input rows. Row
//! counts are PostgreSQL's: rows inserted plus rows updated.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::{Column, ScalarValue};
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::DataFrame;
use kalamdb_core::{Error, Result, Scope, TableDef, Value};

use super::on_conflict::{Action, OnConflict, EXCLUDED_TABLE, ORDINAL};
use super::returning::{conform_to, in_memory_state, plan_clause, Returning};
use super::router::Engine;
use super::session::StatementSession;
use super::StatementOutput;
use crate::df::provider::table_schema;
use crate::planning::errors::from_datafusion;

/// Which rows repeat the key of an earlier row of the statement: a conflict with that row,
/// which DO NOTHING skips and DO UPDATE refuses (as PostgreSQL does).
fn repeated_keys(rows: &[Vec<Value>], pk_index: usize, action: &Action) -> Result<Vec<bool>> {
    let mut first = HashSet::with_capacity(rows.len());
    let mut repeated = vec![false; rows.len()];
    for (i, row) in rows.iter().enumerate() {
        let mut key = Vec::new();
        if !kalamdb_core::encode_pk(&row[pk_index], &mut key) {
            return Err(Error::ConstraintViolation(
                "the primary key must not be NULL".into(),
            ));
        }
        if !first.insert(key) {
            if matches!(action, Action::Update { .. }) {
                return Err(Error::ConstraintViolation(format!(
                    "ON CONFLICT DO UPDATE cannot affect a row a second time: key {} appears twice among the rows proposed for insertion",
                    kalamdb_core::display_value(&row[pk_index])
                )));
            }
            repeated[i] = true;
        }
    }
    Ok(repeated)
}

/// What an upsert writes, decided before anything is written.
struct Decided {
    inserts: Vec<Vec<Value>>,
    updates: Vec<Vec<Value>>,
    /// The rows written, inserted and updated, in the order of the input rows (RETURNING).
    written: Option<RecordBatch>,
}

/// How often a decision is made again when a plain INSERT made a key live in between.
const ATTEMPTS: usize = 3;

impl Engine {
    /// Run an INSERT's ON CONFLICT clause over the rows the INSERT computed. The caller holds
    /// the scope's read-modify-write lock.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upsert(
        &self,
        session: &Arc<StatementSession>,
        state: &SessionState,
        def: Arc<TableDef>,
        scope: Scope,
        batches: Vec<RecordBatch>,
        on_conflict: &OnConflict,
        returning: Option<&Returning>,
        params: &[ScalarValue],
    ) -> Result<StatementOutput> {
        let pk = on_conflict.check_target(&def)?;
        let schema = table_schema(&def, false);
        let proposed = conform_to(&schema, &batches)?;
        let rows = kalamdb_core::rows_from_batch(&def, &proposed, false)?;
        let pk_index = def
            .live_columns()
            .position(|c| c.name == pk)
            .ok_or_else(|| Error::Internal("primary key column missing".into()))?;
        let repeated = repeated_keys(&rows, pk_index, &on_conflict.action)?;
        let keys: Vec<Value> = rows.iter().map(|r| r[pk_index].clone()).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let view = read_view(session, &def, &scope);
            let live = {
                let (rows_store, def, scope, keys) = (
                    self.db.rows.clone(),
                    def.clone(),
                    scope.clone(),
                    keys.clone(),
                );
                blocking(move || rows_store.live(&def, &scope, &keys, &view)).await?
            };
            let decided = self
                .decide(
                    session,
                    state,
                    &def,
                    &scope,
                    &proposed,
                    &rows,
                    pk_index,
                    &live,
                    &repeated,
                    on_conflict,
                    params,
                )
                .await?;
            // RETURNING first: an error in it writes nothing.
            let returned = match (returning, &decided.written) {
                (Some(r), Some(written)) => Some(
                    self.returning_rows(
                        session,
                        state,
                        &def,
                        std::slice::from_ref(written),
                        r,
                        params,
                    )
                    .await?,
                ),
                (Some(r), None) => Some(
                    self.returning_rows(session, state, &def, &[], r, params)
                        .await?,
                ),
                (None, _) => None,
            };
            if let Some(w) = &decided.written {
                super::limits::values_within(w, self.limits.max_value_bytes)?;
            }
            let (inserted, updated) = if let Some(t) = session.transaction() {
                let (inserts, updates) = (decided.inserts, decided.updates);
                self.upsert_in_transaction(t, &def, &scope, pk_index, inserts, updates)?
            } else {
                let (rows_store, def, scope) = (self.db.rows.clone(), def.clone(), scope.clone());
                let (inserts, updates) = (decided.inserts, decided.updates);
                let result =
                    blocking(move || rows_store.upsert(&def, &scope, inserts, updates)).await;
                match result {
                    // A plain INSERT (which does not wait for the lock this statement holds)
                    // made a key live after it was found new: decide again.
                    Err(Error::ConstraintViolation(_)) if attempt < ATTEMPTS => continue,
                    other => other?,
                }
            };
            if let Some(returned) = returned {
                return Ok(returned);
            }
            let n = inserted + updated;
            let message = match on_conflict.action {
                Action::Nothing => format!("Inserted {n} row(s)"),
                Action::Update { .. } => {
                    format!("Inserted {inserted} row(s), updated {updated} row(s)")
                }
            };
            return Ok(StatementOutput::Affected {
                row_count: n,
                message,
            });
        }
    }

    /// Split the proposed rows into inserts and updates; for DO UPDATE, evaluate SET and WHERE.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        session: &Arc<StatementSession>,
        state: &SessionState,
        def: &Arc<TableDef>,
        scope: &Scope,
        proposed: &RecordBatch,
        rows: &[Vec<Value>],
        pk_index: usize,
        live: &[bool],
        repeated: &[bool],
        on_conflict: &OnConflict,
        params: &[ScalarValue],
    ) -> Result<Decided> {
        let new: Vec<usize> = (0..rows.len())
            .filter(|&i| !live[i] && !repeated[i])
            .collect();
        let conflicting: Vec<usize> = (0..rows.len())
            .filter(|&i| live[i] && !repeated[i])
            .collect();
        let inserts: Vec<Vec<Value>> = new.iter().map(|&i| rows[i].clone()).collect();
        let (updates, updated_batch, updated_at) = match &on_conflict.action {
            // Evaluated even with no conflicting row, so that a bad SET fails alike either way.
            Action::Update { .. } => {
                let keys = conflicting
                    .iter()
                    .map(|&i| rows[i][pk_index].clone())
                    .collect();
                let (batch, ordinals) = self
                    .updated_rows(
                        session,
                        state,
                        def,
                        scope,
                        proposed,
                        &conflicting,
                        keys,
                        on_conflict,
                        params,
                    )
                    .await?;
                let updates = kalamdb_core::rows_from_batch(def, &batch, false)?;
                (updates, Some(batch), ordinals)
            }
            _ => (Vec::new(), None, Vec::new()),
        };
        let written = written_in_order(proposed, &new, updated_batch.as_ref(), &updated_at)?;
        Ok(Decided {
            inserts,
            updates,
            written,
        })
    }

    /// The new versions of the conflicting rows that pass DO UPDATE's WHERE, in the table's
    /// columns, and the input position of each.
    #[allow(clippy::too_many_arguments)]
    async fn updated_rows(
        &self,
        session: &Arc<StatementSession>,
        state: &SessionState,
        def: &Arc<TableDef>,
        scope: &Scope,
        proposed: &RecordBatch,
        conflicting: &[usize],
        keys: Vec<Value>,
        on_conflict: &OnConflict,
        params: &[ScalarValue],
    ) -> Result<(RecordBatch, Vec<usize>)> {
        let Action::Update {
            assignments,
            selection,
        } = &on_conflict.action
        else {
            return Err(Error::Internal("no DO UPDATE to evaluate".into()));
        };
        let schema = proposed.schema();
        // The existing rows: hot or flushed, latest version (live, checked under the lock).
        let existing = {
            let view = read_view(session, def, scope);
            let (rows_store, def, scope, schema) = (
                self.db.rows.clone(),
                def.clone(),
                scope.clone(),
                schema.clone(),
            );
            let deadline = session.deadline();
            blocking(move || rows_store.read_keys(&def, &scope, schema, &keys, view, deadline))
                .await?
                .ok_or_else(|| super::limits::timed_out(session.timeout()))?
        };
        // The proposed rows of those keys, with their input positions.
        let excluded = {
            let indices = UInt64Array::from_iter_values(conflicting.iter().map(|&i| i as u64));
            let mut columns = proposed
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c, &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Internal(e.to_string()))?;
            columns.push(Arc::new(UInt64Array::from_iter_values(
                conflicting.iter().map(|&i| i as u64),
            )));
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(ORDINAL, ArrowType::UInt64, false));
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(|e| Error::Internal(e.to_string()))?
        };
        let existing =
            MemTable::try_new(schema.clone(), vec![existing]).map_err(from_datafusion)?;
        let excluded =
            MemTable::try_new(excluded.schema(), vec![vec![excluded]]).map_err(from_datafusion)?;
        let state = in_memory_state(
            state,
            &def.namespace,
            vec![
                (def.name.clone(), existing),
                (EXCLUDED_TABLE.to_string(), excluded),
            ],
        )?;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let sql = on_conflict.update_query(def, &names, assignments, selection.as_deref());
        let plan = plan_clause(&state, &sql, "ON CONFLICT DO UPDATE", params).await?;
        // Each value cast to its column's type, as UPDATE's SET values are.
        let mut casts: Vec<datafusion::logical_expr::Expr> = schema
            .fields()
            .iter()
            .map(|f| {
                datafusion::logical_expr::cast(
                    datafusion::logical_expr::Expr::Column(Column::new_unqualified(f.name())),
                    f.data_type().clone(),
                )
                .alias(f.name())
            })
            .collect();
        casts.push(datafusion::logical_expr::Expr::Column(
            Column::new_unqualified(ORDINAL),
        ));
        let df = DataFrame::new(state, plan)
            .select(casts)
            .map_err(from_datafusion)?;
        let (_, batches, _) = self.collect_bounded(df, None, session).await?;
        split_ordinals(&schema, &batches)
    }
}

/// The rows an upsert writes, in the order of its input: the proposed rows at `new` and the
/// updated rows (`updated_at[j]`: the input position of updated row j). None when none.
fn written_in_order(
    proposed: &RecordBatch,
    new: &[usize],
    updated: Option<&RecordBatch>,
    updated_at: &[usize],
) -> Result<Option<RecordBatch>> {
    // (source, row) pairs for arrow's interleave, merged by input position.
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(new.len() + updated_at.len());
    let mut u = updated_at
        .iter()
        .enumerate()
        .map(|(j, &o)| (o, j))
        .collect::<Vec<_>>();
    u.sort_unstable();
    let (mut a, mut b) = (0, 0);
    while a < new.len() || b < u.len() {
        if b >= u.len() || (a < new.len() && new[a] < u[b].0) {
            order.push((0, new[a]));
            a += 1;
        } else {
            order.push((1, u[b].1));
            b += 1;
        }
    }
    if order.is_empty() {
        return Ok(None);
    }
    let schema = proposed.schema();
    let sources: Vec<&RecordBatch> = std::iter::once(proposed).chain(updated).collect();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn arrow::array::Array> =
                sources.iter().map(|s| s.column(c).as_ref()).collect();
            arrow::compute::interleave(&arrays, &order).map_err(|e| Error::Internal(e.to_string()))
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(Some(
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

/// The updated rows in the table's columns, and the input position of each (the last column).
fn split_ordinals(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(RecordBatch, Vec<usize>)> {
    let Some(out_schema) = batches.first().map(|b| b.schema()) else {
        return Ok((RecordBatch::new_empty(schema.clone()), Vec::new()));
    };
    let internal = |e: arrow::error::ArrowError| Error::Internal(e.to_string());
    let all = arrow::compute::concat_batches(&out_schema, batches).map_err(internal)?;
    let width = schema.fields().len();
    let ordinals = all
        .column(width)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| Error::Internal("upsert ordinals are not UInt64".into()))?
        .values()
        .iter()
        .map(|&o| o as usize)
        .collect();
    let columns = all
        .project(&(0..width).collect::<Vec<_>>())
        .map_err(internal)?;
    Ok((conform_to(schema, &[columns])?, ordinals))
}

/// What the statement's reads see: its transaction's snapshot and writes, or now.
fn read_view(session: &StatementSession, def: &TableDef, scope: &Scope) -> kalamdb_core::ReadView {
    match session.transaction() {
        Some(t) => crate::df::provider::TransactionReads::view(t.as_ref(), def.id, scope),
        None => kalamdb_core::ReadView::default(),
    }
}

/// Run blocking row-store work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("write task failed: {e}")))?
}
