//! Transactions (ADR 0014): `BEGIN` takes a snapshot of the whole database; the
//! transaction's statements read it, with their own writes merged in, and buffer their
//! writes; `COMMIT` checks that no written key changed since the snapshot and writes them all
//! in one synced batch. The state lives in a [`Session`], which the HTTP layer keeps for one
//! request and a PostgreSQL connection keeps for its life.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kalamdb_core::{
    scope_prefix, Error, Overlay, ReadPoint, ReadView, Result, Scope, TableDef, Value,
};
use parking_lot::Mutex;
use sqlparser::ast::{
    Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};

use crate::df::provider::TransactionReads;

/// A client's session: what outlives one statement. Today, its open transaction.
#[derive(Debug, Default)]
pub struct Session {
    pub(super) transaction: Option<Arc<Transaction>>,
}

/// Where a session stands, as PostgreSQL's ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    /// An error aborted the transaction: statements are refused until ROLLBACK (or COMMIT,
    /// which rolls back).
    Failed,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    pub fn status(&self) -> TransactionStatus {
        match &self.transaction {
            None => TransactionStatus::Idle,
            Some(t) if t.state.lock().aborted => TransactionStatus::Failed,
            Some(_) => TransactionStatus::InTransaction,
        }
    }

    /// A statement of the session failed: its transaction, if any, is aborted.
    pub(super) fn failed(&self) {
        if let Some(t) = &self.transaction {
            t.state.lock().aborted = true;
        }
    }
}

/// An open transaction: its snapshot and the rows it wrote, per scope.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub(super) at: Arc<ReadPoint>,
    pub(super) started: Instant,
    pub(super) read_only: bool,
    pub(super) state: Mutex<TxState>,
}

#[derive(Debug, Default)]
pub(super) struct TxState {
    /// By scope prefix (table id, scope): the order COMMIT locks them in.
    pub(super) scopes: BTreeMap<Vec<u8>, ScopeWrite>,
    rows: usize,
    pub(super) aborted: bool,
}

#[derive(Debug, Clone)]
pub(super) struct ScopeWrite {
    pub(super) def: Arc<TableDef>,
    pub(super) scope: Scope,
    pub(super) overlay: Arc<Overlay>,
}

impl TransactionReads for Transaction {
    fn view(&self, table_id: u64, scope: &Scope) -> ReadView {
        let state = self.state.lock();
        ReadView {
            at: Some(self.at.clone()),
            overlay: state
                .scopes
                .get(&scope_prefix(table_id, scope))
                .map(|w| w.overlay.clone()),
        }
    }
}

impl Transaction {
    /// Buffer rows (encoded key -> row, None for a deletion) of one scope, within the
    /// transaction's row limit.
    pub(super) fn put(
        &self,
        def: &Arc<TableDef>,
        scope: &Scope,
        rows: Vec<(Vec<u8>, Option<Vec<Value>>)>,
        max_rows: usize,
    ) -> Result<()> {
        if self.read_only {
            return Err(Error::InvalidParameter(
                "cannot write in a READ ONLY transaction".into(),
            ));
        }
        let mut state = self.state.lock();
        let write = state
            .scopes
            .entry(scope_prefix(def.id, scope))
            .or_insert_with(|| ScopeWrite {
                def: def.clone(),
                scope: scope.clone(),
                overlay: Arc::new(Overlay {
                    schema_version: def.schema_version,
                    rows: BTreeMap::new(),
                }),
            });
        if write.overlay.schema_version != def.schema_version {
            return Err(Error::SerializationFailure(format!(
                "could not serialize access: table '{}' was altered during the transaction",
                def.qualified_name()
            )));
        }
        let overlay = Arc::make_mut(&mut write.overlay);
        let before = overlay.rows.len();
        overlay.rows.extend(rows);
        let added = overlay.rows.len() - before;
        state.rows += added;
        if state.rows > max_rows {
            return Err(Error::PayloadTooLarge(format!(
                "a transaction may write at most {max_rows} rows (limits.max_transaction_rows); \
                 this one wrote {}",
                state.rows
            )));
        }
        Ok(())
    }
}

/// BEGIN, COMMIT or ROLLBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Begin { read_only: bool },
    Commit,
    Rollback,
}

/// The statement as transaction control, or None when it is not one. Cheap for other
/// statements: only those starting with one of the control words are parsed.
pub(super) fn control(sql: &str) -> Option<Result<Control>> {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?
        .to_ascii_uppercase();
    if !matches!(
        first.as_str(),
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT"
    ) {
        return None;
    }
    let text = if first == "ABORT" {
        // PostgreSQL's synonym of ROLLBACK, which the parser does not know.
        format!("ROLLBACK{}", &sql.trim_start()[5..])
    } else {
        sql.to_string()
    };
    let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_statements());
    // The whole text: `BEGIN garbage` is a syntax error, not a BEGIN.
    let statement = match parsed {
        Ok(mut s) if s.len() == 1 => s.remove(0),
        Ok(_) => return Some(Err(Error::invalid_sql("expected exactly one statement"))),
        Err(e) => return Some(Err(Error::invalid_sql(e.to_string()))),
    };
    Some(match statement {
        Statement::StartTransaction {
            modes, statements, ..
        } if statements.is_empty() => begin_modes(&modes),
        Statement::Commit { chain: false, .. } => Ok(Control::Commit),
        Statement::Rollback {
            chain: false,
            savepoint: None,
        } => Ok(Control::Rollback),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Err(Error::Unsupported("savepoints are not supported".into())),
        Statement::Commit { .. } | Statement::Rollback { .. } => {
            Err(Error::Unsupported("AND CHAIN is not supported".into()))
        }
        _ => return None,
    })
}

/// BEGIN's modes: every isolation level up to REPEATABLE READ runs as snapshot isolation
/// (what PostgreSQL's REPEATABLE READ gives); SERIALIZABLE is refused, not weakened.
fn begin_modes(modes: &[TransactionMode]) -> Result<Control> {
    let mut read_only = false;
    for mode in modes {
        match mode {
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only = true,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => read_only = false,
            TransactionMode::IsolationLevel(TransactionIsolationLevel::Serializable) => {
                return Err(Error::Unsupported(
                    "SERIALIZABLE is not supported: transactions run at snapshot isolation \
                     (REPEATABLE READ)"
                        .into(),
                ))
            }
            TransactionMode::IsolationLevel(_) => {}
        }
    }
    Ok(Control::Begin { read_only })
}
