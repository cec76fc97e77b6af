//! What a transaction does through the engine (ADR 0014): BEGIN, COMMIT and ROLLBACK, the
//! checks before each of its statements, and its writes buffered instead of written.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::logical_expr::WriteOp;
use kalamdb_core::{Error, Result, Scope, ScopeWrites, TableDef, Value};
use parking_lot::Mutex;

use super::limits::values_within;
use super::output::{Caller, StatementOutput};
use super::router::Engine;
use super::transaction::{Control, ScopeWrite, Session, Transaction, TxState};
use crate::df::provider::TransactionReads;

impl Engine {
    /// Run BEGIN, COMMIT or ROLLBACK in `session`. Like PostgreSQL, BEGIN in a transaction
    /// and COMMIT or ROLLBACK outside one only warn; COMMIT of a failed transaction rolls back.
    pub(super) async fn run_control(
        &self,
        session: &mut Session,
        control: Control,
        started: Instant,
    ) -> Result<StatementOutput> {
        let message = |m: &str| Ok(StatementOutput::Message(m.into()));
        match control {
            Control::Begin { .. } if session.transaction.is_some() => {
                message("WARNING: there is already a transaction in progress")
            }
            Control::Begin { read_only } => {
                session.transaction = Some(Arc::new(Transaction {
                    at: self.db.rows.store().read_point(),
                    started,
                    read_only,
                    state: Mutex::new(TxState::default()),
                }));
                message("BEGIN")
            }
            Control::Commit | Control::Rollback if session.transaction.is_none() => {
                message("WARNING: there is no transaction in progress")
            }
            Control::Rollback => {
                session.transaction = None;
                message("ROLLBACK")
            }
            Control::Commit => {
                let Some(transaction) = session.transaction.take() else {
                    return message("WARNING: there is no transaction in progress");
                };
                if transaction.state.lock().aborted {
                    return message("ROLLBACK");
                }
                self.commit(&transaction, started).await?;
                message("COMMIT")
            }
        }
    }

    /// A statement may run in `caller`'s transaction: it has not failed nor run too long.
    pub(super) fn check_transaction(&self, caller: &Caller) -> Result<()> {
        let Some(t) = &caller.transaction else {
            return Ok(());
        };
        if t.state.lock().aborted {
            return Err(Error::InvalidParameter(
                "current transaction is aborted, commands ignored until end of transaction block"
                    .into(),
            ));
        }
        self.within_transaction_time(t)
    }

    fn within_transaction_time(&self, t: &Transaction) -> Result<()> {
        let limit = self.limits.transaction_timeout;
        if t.started.elapsed() > limit {
            return Err(Error::Timeout(format!(
                "the transaction has been open longer than {} s \
                 (limits.transaction_timeout_secs); it is rolled back",
                limit.as_secs()
            )));
        }
        Ok(())
    }

    /// COMMIT: under the read-modify-write locks of every written scope (so that no
    /// autocommit UPDATE reads a row before the commit and writes it after), the row store
    /// validates and writes everything in one batch.
    async fn commit(&self, t: &Arc<Transaction>, started: Instant) -> Result<()> {
        let scopes: Vec<ScopeWrite> = t.state.lock().scopes.values().cloned().collect();
        if scopes.is_empty() {
            return Ok(()); // a read-only transaction never conflicts
        }
        if let Some(pause) = kalamdb_core::failpoints::pause_of("transaction.pause_before_commit") {
            tokio::time::sleep(pause).await;
        }
        self.within_transaction_time(t)?;
        let mut current = Vec::with_capacity(scopes.len());
        for w in &scopes {
            let def = self
                .db
                .catalog
                .table(&w.def.namespace, &w.def.name)
                .filter(|d| d.id == w.def.id)
                .ok_or_else(|| Error::TableNotFound(w.def.qualified_name()))?;
            current.push(def);
        }
        let deadline = std::time::Instant::now().max(started) + self.limits.statement_timeout;
        let mut guards = Vec::with_capacity(scopes.len());
        for w in &scopes {
            guards.push(
                self.lock_scope_for_dml(w.def.id, &w.scope, deadline)
                    .await?,
            );
        }
        let rows = self.db.rows.clone();
        let at = t.at.clone();
        let done = tokio::task::spawn_blocking(move || {
            let writes: Vec<ScopeWrites<'_>> = scopes
                .iter()
                .zip(&current)
                .map(|(w, def)| ScopeWrites {
                    def,
                    scope: &w.scope,
                    overlay: &w.overlay,
                })
                .collect();
            rows.commit(&writes, &at)
        })
        .await
        .map_err(|e| Error::Internal(format!("commit task failed: {e}")))?;
        drop(guards);
        done.map(|_| ())
    }

    /// A write statement's rows into its transaction instead of the row store: INSERT checks
    /// its keys against the snapshot and the transaction's writes, UPDATE and DELETE write the
    /// rows their query (which read the same) found.
    // long: the three kinds of write, each a few lines, with their shared row conversion.
    pub(super) async fn write_in_transaction(
        &self,
        t: &Arc<Transaction>,
        def: Arc<TableDef>,
        scope: Scope,
        op: WriteOp,
        batches: Vec<RecordBatch>,
        with_rowid: bool,
    ) -> Result<StatementOutput> {
        if !matches!(op, WriteOp::Delete) {
            for b in &batches {
                values_within(b, self.limits.max_value_bytes)?;
            }
        }
        let with_rowid = with_rowid && !matches!(op, WriteOp::Insert(_));
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(kalamdb_core::rows_from_batch(&def, b, with_rowid)?);
        }
        let ncols = def.live_columns().count();
        let pk_index = def
            .primary_key
            .as_ref()
            .and_then(|pk| def.live_columns().position(|c| &c.name == pk));
        let key_of = |row: &[Value]| -> Result<Vec<u8>> {
            let v = match pk_index {
                Some(i) => &row[i],
                None => row
                    .get(ncols)
                    .ok_or_else(|| Error::Internal("a row without its row id".into()))?,
            };
            encoded_key(v)
        };
        let (entries, verb) = match op {
            WriteOp::Insert(_) => (
                self.new_rows(t, &def, &scope, rows, pk_index).await?,
                "Inserted",
            ),
            WriteOp::Update => {
                let mut entries = Vec::with_capacity(rows.len());
                for mut row in rows {
                    let key = key_of(&row)?;
                    row.truncate(ncols);
                    entries.push((key, Some(row)));
                }
                (entries, "Updated")
            }
            WriteOp::Delete => {
                let mut entries = Vec::with_capacity(rows.len());
                for row in rows {
                    entries.push((key_of(&row)?, None));
                }
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                entries.dedup_by(|a, b| a.0 == b.0);
                (entries, "Deleted")
            }
            other => return Err(Error::Unsupported(format!("{other} is not supported"))),
        };
        let n = entries.len() as u64;
        t.put(&def, &scope, entries, self.limits.max_transaction_rows)?;
        Ok(StatementOutput::Affected {
            row_count: n,
            message: format!("{verb} {n} row(s)"),
        })
    }

    /// An INSERT's rows in a transaction, keyed: a key live in the transaction's view (or
    /// repeated in the statement) is CONSTRAINT_VIOLATION; a table without a primary key gets
    /// a fresh row id per row.
    async fn new_rows(
        &self,
        t: &Arc<Transaction>,
        def: &Arc<TableDef>,
        scope: &Scope,
        rows: Vec<Vec<Value>>,
        pk_index: Option<usize>,
    ) -> Result<Vec<(Vec<u8>, Option<Vec<Value>>)>> {
        let Some(pk_index) = pk_index else {
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                let rowid = Value::BigInt(self.db.seq.next() as i64);
                entries.push((encoded_key(&rowid)?, Some(row)));
            }
            return Ok(entries);
        };
        let keys: Vec<Value> = rows.iter().map(|r| r[pk_index].clone()).collect();
        let mut entries = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        for (row, key) in rows.into_iter().zip(&keys) {
            let encoded = encoded_key(key)?;
            if !seen.insert(encoded.clone()) {
                return Err(duplicate(def, key));
            }
            entries.push((encoded, Some(row)));
        }
        let live = {
            let (store, def, scope) = (self.db.rows.clone(), def.clone(), scope.clone());
            let view = t.view(def.id, &scope);
            let keys = keys.clone();
            tokio::task::spawn_blocking(move || store.live(&def, &scope, &keys, &view))
                .await
                .map_err(|e| Error::Internal(format!("key check failed: {e}")))??
        };
        if let Some(i) = live.iter().position(|l| *l) {
            return Err(duplicate(def, &keys[i]));
        }
        Ok(entries)
    }

    /// An upsert's decided rows into its transaction.
    pub(super) fn upsert_in_transaction(
        &self,
        t: &Arc<Transaction>,
        def: &Arc<TableDef>,
        scope: &Scope,
        pk_index: usize,
        inserts: Vec<Vec<Value>>,
        updates: Vec<Vec<Value>>,
    ) -> Result<(u64, u64)> {
        let (inserted, updated) = (inserts.len() as u64, updates.len() as u64);
        let entries = inserts
            .into_iter()
            .chain(updates)
            .map(|row| Ok((encoded_key(&row[pk_index])?, Some(row))))
            .collect::<Result<Vec<_>>>()?;
        t.put(def, scope, entries, self.limits.max_transaction_rows)?;
        Ok((inserted, updated))
    }

    /// A statement that cannot run inside a transaction.
    pub(super) fn refused_in_transaction(what: &str) -> Error {
        Error::Unsupported(format!("{what} cannot run inside a transaction"))
    }
}

fn encoded_key(v: &Value) -> Result<Vec<u8>> {
    kalamdb_core::RowStore::encode_key_value(v)
}

fn duplicate(def: &TableDef, key: &Value) -> Error {
    Error::ConstraintViolation(format!(
        "duplicate primary key {} in table '{}'",
        kalamdb_core::display_value(key),
        def.qualified_name()
    ))
}
