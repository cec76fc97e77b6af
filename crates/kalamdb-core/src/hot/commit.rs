//! A transaction's commit (ADR 0014): its writes are checked against what committed since
//! its snapshot, then written for all its scopes in one synced batch.

use rocksdb::WriteBatch;

use crate::catalog::TableDef;
use crate::encoding::row_codec::{encode_row, encode_tombstone};
use crate::encoding::row_key::{prefix_upper_bound, row_key, scope_prefix, split_row_key};
use crate::encoding::row_key::{FlushedEntry, Scope};
use crate::error::{Error, Result};
use crate::hot::overlay::Overlay;
use crate::hot::rows::RowStore;
use crate::storage::keyspace::{CF_FLUSHED, CF_ROWS};
use crate::storage::rocks::{ReadPoint, Store};

/// One scope's writes of a transaction, against its table as it is at COMMIT.
pub struct ScopeWrites<'a> {
    pub def: &'a TableDef,
    pub scope: &'a Scope,
    pub overlay: &'a Overlay,
}

/// What a commit wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl RowStore {
    /// Commit a transaction's writes, read at `at`: under every written scope's lock (taken
    /// in key order), each written key must have no version newer than the one `at` sees and
    /// no insert of it in flight, or nothing is written (`SERIALIZATION_FAILURE`: first
    /// committer wins). Then every scope's rows go into one synced batch with fresh seqs, so
    /// they become visible, and durable, together; a flush (which commits under the same
    /// locks) sees all of a scope's rows or none.
    // long: validation and the one batch under the same locks, in one place.
    pub fn commit(&self, writes: &[ScopeWrites<'_>], at: &ReadPoint) -> Result<Committed> {
        let mut order: Vec<(Vec<u8>, &ScopeWrites<'_>)> = writes
            .iter()
            .map(|w| (scope_prefix(w.def.id, w.scope), w))
            .collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        let locks: Vec<_> = order
            .iter()
            .map(|(_, w)| self.scope_lock(w.def.id, w.scope))
            .collect();
        let _guards: Vec<_> = locks.iter().map(|l| l.lock()).collect();
        for (prefix, w) in &order {
            if w.overlay.schema_version != w.def.schema_version {
                return Err(conflict(format!(
                    "table '{}' was altered during the transaction",
                    w.def.qualified_name()
                )));
            }
            self.validate(prefix, w, at)?;
        }
        let cf = self.store.cf(CF_ROWS)?;
        let mut batch = WriteBatch::default();
        let mut done = Committed::default();
        let mut widest = Vec::with_capacity(order.len());
        let mut buf = Vec::new();
        let mut tombstone = Vec::new();
        for (prefix, w) in &order {
            let mut wide = 0;
            tombstone.clear();
            encode_tombstone(w.def.schema_version, &mut tombstone);
            for (pk, row) in &w.overlay.rows {
                let live = self.is_live(w.def, prefix, pk)?;
                match row {
                    Some(values) => {
                        buf.clear();
                        encode_row(w.def.schema_version, values, &mut buf);
                        wide = usize::max(wide, buf.len());
                        batch.put_cf(cf, row_key(prefix, pk, self.seq().next()), &buf);
                        if live {
                            done.updated += 1;
                        } else {
                            done.inserted += 1;
                        }
                    }
                    // A row the transaction inserted and deleted again was never stored.
                    None if !live => {}
                    None => {
                        batch.put_cf(cf, row_key(prefix, pk, self.seq().next()), &tombstone);
                        done.deleted += 1;
                    }
                }
            }
            widest.push((w.def.id, wide));
        }
        if batch.is_empty() {
            return Ok(done);
        }
        self.counters
            .write_raising_all(&self.store, &widest, batch)?;
        for (_, w) in &order {
            let n = w.overlay.rows.len() as u64;
            self.counters.note_written(w.def.id, n, "transaction");
        }
        Ok(done)
    }

    /// Refuse the commit when a key of `w` changed since `at` or is being inserted now.
    fn validate(&self, prefix: &[u8], w: &ScopeWrites<'_>, at: &ReadPoint) -> Result<()> {
        let changed = |pk: &[u8]| {
            Error::SerializationFailure(format!(
                "could not serialize access: a row of table '{}' with {} was written by \
                 another transaction after this one began; retry the transaction",
                w.def.qualified_name(),
                describe_key(w.def, pk)
            ))
        };
        {
            let pending = self.pending.lock();
            let mut key = prefix.to_vec();
            for pk in w.overlay.rows.keys() {
                key.truncate(prefix.len());
                key.extend_from_slice(pk);
                if pending.contains(&key) {
                    return Err(changed(pk));
                }
            }
        }
        for pk in w.overlay.rows.keys() {
            if self.newest_seq(prefix, pk, None)? != self.newest_seq(prefix, pk, Some(at))? {
                return Err(changed(pk));
            }
        }
        Ok(())
    }

    /// The seq of the newest stored version of a key (hot, else the flushed-key index), as
    /// of `at` (now when None); None when it has none.
    fn newest_seq(&self, prefix: &[u8], pk: &[u8], at: Option<&ReadPoint>) -> Result<Option<u64>> {
        let mut lower = prefix.to_vec();
        lower.extend_from_slice(pk);
        let upper = prefix_upper_bound(&lower);
        let mut ro = Store::range_read_options(&lower, &upper);
        if let Some(at) = at {
            at.apply(&mut ro);
        }
        let db = self.store.db();
        let mut it = db.raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, ro);
        it.seek(&lower);
        if let Some(k) = it.key() {
            if let Some((kpk, seq)) = split_row_key(k, prefix.len()) {
                if kpk == pk {
                    return Ok(Some(seq));
                }
            }
        }
        it.status()?;
        let mut ro = rocksdb::ReadOptions::default();
        if let Some(at) = at {
            at.apply(&mut ro);
        }
        Ok(db
            .get_cf_opt(self.store.cf(CF_FLUSHED)?, &lower, &ro)?
            .and_then(|v| FlushedEntry::decode(&v))
            .map(|e| e.seq))
    }
}

fn conflict(message: String) -> Error {
    Error::SerializationFailure(format!("could not serialize access: {message}"))
}

/// A key for a message: its value for BIGINT keys (and row ids), else "a key".
fn describe_key(def: &TableDef, pk: &[u8]) -> String {
    let bigint = match &def.primary_key {
        None => true,
        Some(name) => def
            .live_columns()
            .any(|c| &c.name == name && c.data_type == crate::types::DataType::BigInt),
    };
    match crate::encoding::row_key::decode_bigint_pk(pk).filter(|_| bigint) {
        Some(n) => format!("key {n}"),
        None => "a key".to_string(),
    }
}
