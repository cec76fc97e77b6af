//! Row versions in the hot store: insert, update, delete and scan one scope of a table.
//!
//! Writes of one statement are one synced RocksDB WriteBatch: all rows or none, durable when
//! the call returns. Primary-key uniqueness is checked per scope under a per-(table, scope)
//! lock, so two concurrent inserts of one key cannot both succeed. A scan walks one scope's
//! key range, keeps the first (newest) version of each primary key and drops tombstones and
//! expired STREAM rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::WriteBatch;

use crate::catalog::TableDef;
use crate::clock::{now_millis, SeqGenerator};
use crate::encoding::row_codec::{encode_row, encode_tombstone, is_tombstone};
use crate::encoding::row_key::{
    encode_pk, prefix_upper_bound, row_key, scope_prefix, split_row_key, FlushedEntry, Scope,
};
use crate::error::{Error, Result};
use crate::hot::counters::Counters;
use crate::hot::overlay::ReadView;
use crate::storage::keyspace::{CF_FLUSHED, CF_ROWS};
use crate::storage::objects::ColdStore;
use crate::storage::rocks::{ReadPoint, Store};
use crate::types::Value;

/// Reads and writes row versions of tables.
#[derive(Debug)]
pub struct RowStore {
    pub(super) store: Store,
    cold: ColdStore,
    seq: Arc<SeqGenerator>,
    scope_locks: Mutex<HashMap<(u64, Scope), Arc<Mutex<()>>>>,
    /// Full keys (scope prefix + pk) of inserts checked but not yet written.
    pub(super) pending: Mutex<HashSet<Vec<u8>>>,
    /// Buffered row versions and widest-row marks per table.
    pub(super) counters: Counters,
}

/// Keys an insert has checked and is writing; released when the write returns (or fails).
struct Reservation<'a> {
    pending: &'a Mutex<HashSet<Vec<u8>>>,
    keys: Vec<Vec<u8>>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut pending = self.pending.lock();
        for k in &self.keys {
            pending.remove(k);
        }
    }
}

impl RowStore {
    pub fn new(store: Store, cold: ColdStore, seq: Arc<SeqGenerator>) -> RowStore {
        RowStore {
            store,
            cold,
            seq,
            scope_locks: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
            counters: Counters::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn cold(&self) -> &ColdStore {
        &self.cold
    }

    /// Count the hot row versions of a table (at startup) into the buffered counter, and
    /// read its widest-row mark.
    pub fn init_buffered(&self, table_id: u64) -> Result<u64> {
        let n = self.count_versions(table_id)?;
        self.counters.load(&self.store, table_id, n)?;
        Ok(n)
    }

    /// See [`Counters::widest_row`].
    pub fn widest_row(&self, def: &TableDef) -> usize {
        self.counters.widest_row(def)
    }

    /// Row versions of a table in the hot buffer.
    pub fn buffered(&self, table_id: u64) -> u64 {
        self.counters.buffered(table_id)
    }

    /// A flush (or DROP USER) removed `versions` hot row versions of a table.
    pub fn note_flushed(&self, table_id: u64, versions: u64) {
        self.counters.note_flushed(table_id, versions)
    }

    /// Forget a dropped table's counters.
    pub fn forget_table(&self, table_id: u64) {
        self.counters.forget_table(table_id)
    }

    pub fn seq(&self) -> &SeqGenerator {
        &self.seq
    }

    /// The lock that serialises writes to one scope (flushes take it while they commit).
    pub fn scope_lock(&self, table_id: u64, scope: &Scope) -> Arc<Mutex<()>> {
        let mut locks = self.scope_locks.lock();
        if locks.len() > 100_000 {
            // Bound memory: drop locks nobody holds right now.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry((table_id, scope.clone())).or_default().clone()
    }

    pub(super) fn pk_index(def: &TableDef) -> Option<usize> {
        let pk = def.primary_key.as_deref()?;
        def.live_columns().position(|c| c.name == pk)
    }

    /// A primary-key value encoded for a row key; NULL is CONSTRAINT_VIOLATION.
    pub fn encode_key_value(v: &Value) -> Result<Vec<u8>> {
        let mut pk = Vec::new();
        if !encode_pk(v, &mut pk) {
            return Err(Error::ConstraintViolation(
                "primary key must not be NULL".into(),
            ));
        }
        Ok(pk)
    }

    /// Whether the newest version of `pk` in the scope is a live (not deleted, not expired)
    /// row: the newest hot version decides; without one, the flushed-key index does.
    pub(super) fn is_live(&self, def: &TableDef, prefix: &[u8], pk: &[u8]) -> Result<bool> {
        let mut lower = prefix.to_vec();
        lower.extend_from_slice(pk);
        let upper = prefix_upper_bound(&lower);
        let ro = Store::range_read_options(&lower, &upper);
        let mut it = self
            .store
            .db()
            .raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, ro);
        it.seek(&lower);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            // The range also covers longer keys that merely start with `pk`; with a
            // prefix-free pk encoding those cannot occur, but check exactly anyway.
            if let Some((kpk, seq)) = split_row_key(k, prefix.len()) {
                if kpk == pk {
                    return Ok(!is_tombstone(v) && !def.is_expired(seq, now_millis()));
                }
            }
            it.next();
        }
        it.status()?;
        match self.store.db().get_cf(self.store.cf(CF_FLUSHED)?, &lower)? {
            Some(v) => Ok(FlushedEntry::is_live(&v)),
            None => Ok(false),
        }
    }

    /// Which of `pks` (sorted, distinct) are live in the scope: one iterator walks the hot
    /// rows in key order, then one walks the flushed-key index for the rest.
    ///
    /// Each walk seeks only when the key it rests on is not already past the next pk: keys
    /// ascend and the pk encoding is prefix-free, so every pk below that key is absent. A
    /// batch of new keys (ascending ids, a fresh user) costs one seek instead of one per row,
    /// which was 39% of the server's CPU in batched ingest (docs/BENCHMARKS.md).
    fn live_keys(
        &self,
        def: &TableDef,
        prefix: &[u8],
        pks: &[&[u8]],
        at: Option<&ReadPoint>,
    ) -> Result<Vec<bool>> {
        let mut live = vec![false; pks.len()];
        let mut in_hot = vec![false; pks.len()];
        let now = now_millis();
        let upper = prefix_upper_bound(prefix);
        let options = || {
            let mut ro = Store::range_read_options(prefix, &upper);
            if let Some(at) = at {
                at.apply(&mut ro);
            }
            ro
        };
        let hot = self
            .store
            .db()
            .raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, options());
        // The newest version of a pk is the first key at or after prefix|pk (seq descends).
        walk_sorted(
            hot,
            prefix,
            pks,
            |k| split_row_key(k, prefix.len()).map(|(kpk, _)| kpk),
            |i, k, v| {
                in_hot[i] = true;
                let seq = split_row_key(k, prefix.len())
                    .map(|(_, seq)| seq)
                    .unwrap_or(0);
                live[i] = !is_tombstone(v) && !def.is_expired(seq, now);
            },
        )?;
        let ask: Vec<usize> = (0..pks.len()).filter(|&i| !in_hot[i]).collect();
        if ask.is_empty() {
            return Ok(live);
        }
        let ask_pks: Vec<&[u8]> = ask.iter().map(|&i| pks[i]).collect();
        let flushed = self
            .store
            .db()
            .raw_iterator_cf_opt(self.store.cf(CF_FLUSHED)?, options());
        walk_sorted(
            flushed,
            prefix,
            &ask_pks,
            |k| k.get(prefix.len()..),
            |j, _, v| {
                live[ask[j]] = FlushedEntry::is_live(v);
            },
        )?;
        Ok(live)
    }

    /// Compact the hot rows of one table (drops the tombstones a flush leaves behind).
    pub fn compact_table(&self, table_id: u64) {
        let lower = crate::encoding::row_key::table_prefix(table_id);
        let upper = prefix_upper_bound(&lower);
        match self.store.cf(CF_ROWS) {
            Ok(cf) => self
                .store
                .db()
                .compact_range_cf(cf, Some(&lower), Some(&upper)),
            Err(e) => tracing::warn!(error = %e, "cannot compact a flushed table"),
        }
    }

    /// Insert new rows (values in live-column order). Fails with CONSTRAINT_VIOLATION, writing
    /// nothing, if a primary key already exists in the scope or repeats within `rows`.
    pub fn insert(&self, def: &TableDef, scope: &Scope, rows: Vec<Vec<Value>>) -> Result<u64> {
        self.write_new(def, scope, rows, Vec::new()).map(|(n, _)| n)
    }

    /// Which of these primary-key values are live (not deleted, not expired) in the scope,
    /// hot or flushed, as `view` sees them (a transaction's own writes decide their keys); in
    /// the order given. An upsert's split into new and conflicting rows.
    pub fn live(
        &self,
        def: &TableDef,
        scope: &Scope,
        keys: &[Value],
        view: &ReadView,
    ) -> Result<Vec<bool>> {
        let prefix = scope_prefix(def.id, scope);
        let pks = keys
            .iter()
            .map(Self::encode_key_value)
            .collect::<Result<Vec<_>>>()?;
        let mut sorted: Vec<&[u8]> = pks.iter().map(Vec::as_slice).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let own = view.overlay.as_deref().map(|o| &o.rows);
        sorted.retain(|pk| !own.is_some_and(|o| o.contains_key(*pk)));
        let live_sorted = self.live_keys(def, &prefix, &sorted, view.at())?;
        let live = pks
            .iter()
            .map(|pk| match own.and_then(|o| o.get(pk)) {
                Some(row) => row.is_some(),
                None => sorted
                    .binary_search(&pk.as_slice())
                    .is_ok_and(|j| live_sorted[j]),
            })
            .collect();
        Ok(live)
    }

    /// An upsert's write: `inserts` (keys that must not be live, as [`RowStore::insert`]) and
    /// `updates` (new versions of live rows, keys distinct from the inserts'), in one synced
    /// batch. The caller holds the scope's read-modify-write lock, so no UPDATE, DELETE or
    /// other upsert changes the updated rows in between; a plain INSERT that made one of the
    /// inserted keys live since fails this call with CONSTRAINT_VIOLATION and writes nothing.
    /// Returns (inserted, updated).
    pub fn upsert(
        &self,
        def: &TableDef,
        scope: &Scope,
        inserts: Vec<Vec<Value>>,
        updates: Vec<Vec<Value>>,
    ) -> Result<(u64, u64)> {
        if Self::pk_index(def).is_none() {
            return Err(Error::Internal(
                "upsert into a table without a primary key".into(),
            ));
        }
        self.write_new(def, scope, inserts, updates)
    }

    /// The check, reservation, batch and synced write of new rows (and an upsert's updated
    /// rows).
    ///
    /// The uniqueness check and the building of the batch happen under the scope lock; the
    /// synced write does not, so concurrent inserts into one scope share fsyncs (RocksDB group
    /// commit). Their keys are reserved in `pending` until the write returns: a concurrent
    /// insert of a reserved key fails as a duplicate, as it would once the write is visible.
    // long: the check, reservation, batch and synced write of one insert, with the scope lock's
    // extent visible in one place.
    fn write_new(
        &self,
        def: &TableDef,
        scope: &Scope,
        rows: Vec<Vec<Value>>,
        updates: Vec<Vec<Value>>,
    ) -> Result<(u64, u64)> {
        let prefix = scope_prefix(def.id, scope);
        let cf = self.store.cf(CF_ROWS)?;
        let mut batch = WriteBatch::default();
        let mut buf = Vec::new();
        let mut widest = 0;
        let reservation = match Self::pk_index(def) {
            Some(pk_idx) => {
                let mut pks = Vec::with_capacity(rows.len());
                for row in &rows {
                    pks.push(Self::encode_key_value(&row[pk_idx])?);
                }
                let mut order: Vec<usize> = (0..rows.len()).collect();
                order.sort_unstable_by(|&a, &b| pks[a].cmp(&pks[b]));
                let duplicate = |i: usize| {
                    Error::ConstraintViolation(format!(
                        "duplicate primary key {} in table '{}'",
                        display_value(&rows[i][pk_idx]),
                        def.qualified_name()
                    ))
                };
                if let Some(w) = order.windows(2).find(|w| pks[w[0]] == pks[w[1]]) {
                    return Err(duplicate(w[1]));
                }
                let lock = self.scope_lock(def.id, scope);
                let _g = lock.lock();
                // Reserve first, then look: a key not reserved now was either never being
                // written or its write has returned and is visible to the check below.
                let reservation = {
                    let mut pending = self.pending.lock();
                    let keys: Vec<Vec<u8>> = order
                        .iter()
                        .map(|&i| {
                            let mut k = prefix.clone();
                            k.extend_from_slice(&pks[i]);
                            k
                        })
                        .collect();
                    if let Some(n) = keys.iter().position(|k| pending.contains(k)) {
                        return Err(duplicate(order[n]));
                    }
                    for k in &keys {
                        pending.insert(k.clone());
                    }
                    Reservation {
                        pending: &self.pending,
                        keys,
                    }
                };
                let sorted: Vec<&[u8]> = order.iter().map(|&i| pks[i].as_slice()).collect();
                let live = self.live_keys(def, &prefix, &sorted, None)?;
                if let Some(n) = live.iter().position(|l| *l) {
                    return Err(duplicate(order[n]));
                }
                for (row, pk) in rows.iter().zip(&pks) {
                    buf.clear();
                    encode_row(def.schema_version, row, &mut buf);
                    widest = widest.max(buf.len());
                    batch.put_cf(cf, row_key(&prefix, pk, self.seq.next()), &buf);
                }
                for row in &updates {
                    let pk = Self::encode_key_value(&row[pk_idx])?;
                    if sorted.binary_search(&pk.as_slice()).is_ok() {
                        return Err(Error::Internal(
                            "an upsert both inserts and updates one key".into(),
                        ));
                    }
                    buf.clear();
                    encode_row(def.schema_version, row, &mut buf);
                    widest = widest.max(buf.len());
                    batch.put_cf(cf, row_key(&prefix, &pk, self.seq.next()), &buf);
                }
                Some(reservation)
            }
            None => {
                for row in &rows {
                    let seq = self.seq.next();
                    let pk = Self::encode_key_value(&Value::BigInt(seq as i64))?;
                    buf.clear();
                    encode_row(def.schema_version, row, &mut buf);
                    widest = widest.max(buf.len());
                    batch.put_cf(cf, row_key(&prefix, &pk, seq), &buf);
                }
                None
            }
        };
        self.counters
            .write_raising(&self.store, def.id, batch, widest)?;
        drop(reservation);
        self.counters
            .note_written(def.id, rows.len() as u64, "insert");
        if !updates.is_empty() {
            self.counters
                .note_written(def.id, updates.len() as u64, "update");
        }
        Ok((rows.len() as u64, updates.len() as u64))
    }

    /// Write new versions of existing rows (values in live-column order, plus the row id last
    /// for tables without a primary key). Rows deleted since they were read are skipped.
    pub fn update(&self, def: &TableDef, scope: &Scope, rows: Vec<Vec<Value>>) -> Result<u64> {
        let prefix = scope_prefix(def.id, scope);
        let pk_idx = Self::pk_index(def);
        let ncols = def.live_columns().count();
        let lock = self.scope_lock(def.id, scope);
        let _g = lock.lock();
        let mut batch = WriteBatch::default();
        let cf = self.store.cf(CF_ROWS)?;
        let mut buf = Vec::new();
        let (mut updated, mut widest) = (0, 0);
        for row in &rows {
            let key_value = match pk_idx {
                Some(i) => &row[i],
                None => row
                    .get(ncols)
                    .ok_or_else(|| Error::Internal("update without row id".into()))?,
            };
            let pk = Self::encode_key_value(key_value)?;
            if !self.is_live(def, &prefix, &pk)? {
                continue;
            }
            buf.clear();
            encode_row(def.schema_version, &row[..ncols], &mut buf);
            widest = widest.max(buf.len());
            batch.put_cf(cf, row_key(&prefix, &pk, self.seq.next()), &buf);
            updated += 1;
        }
        self.counters
            .write_raising(&self.store, def.id, batch, widest)?;
        self.counters.note_written(def.id, updated, "update");
        Ok(updated)
    }

    /// Write tombstones for the rows with these keys (primary-key values, or row ids).
    pub fn delete(&self, def: &TableDef, scope: &Scope, keys: Vec<Value>) -> Result<u64> {
        let prefix = scope_prefix(def.id, scope);
        let lock = self.scope_lock(def.id, scope);
        let _g = lock.lock();
        let mut batch = WriteBatch::default();
        let cf = self.store.cf(CF_ROWS)?;
        let mut buf = Vec::new();
        encode_tombstone(def.schema_version, &mut buf);
        let mut deleted = 0;
        let mut seen = HashSet::new();
        for key in &keys {
            let pk = Self::encode_key_value(key)?;
            if !seen.insert(pk.clone()) || !self.is_live(def, &prefix, &pk)? {
                continue;
            }
            batch.put_cf(cf, row_key(&prefix, &pk, self.seq.next()), &buf);
            deleted += 1;
        }
        self.store.write(batch)?;
        self.counters.note_written(def.id, deleted, "delete");
        Ok(deleted)
    }

    /// Number of row versions (live, superseded and tombstones) of a table in the hot buffer.
    pub fn count_versions(&self, table_id: u64) -> Result<u64> {
        self.count_versions_under(crate::encoding::row_key::table_prefix(table_id))
    }

    /// Hot row versions of one scope of a table.
    pub fn count_scope_versions(
        &self,
        table_id: u64,
        scope: &crate::encoding::row_key::Scope,
    ) -> Result<u64> {
        self.count_versions_under(crate::encoding::row_key::scope_prefix(table_id, scope))
    }

    fn count_versions_under(&self, lower: Vec<u8>) -> Result<u64> {
        let upper = prefix_upper_bound(&lower);
        let ro = Store::range_read_options(&lower, &upper);
        let mut it = self
            .store
            .db()
            .raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, ro);
        it.seek(&lower);
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }
}

pub(crate) fn decode_rowid(pk: &[u8]) -> Result<Value> {
    crate::encoding::row_key::decode_bigint_pk(pk)
        .map(Value::BigInt)
        .ok_or_else(|| Error::Internal("malformed row id".into()))
}

/// Short text of a value for error messages.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("'{}'", crate::error::truncate_for_message(s)),
        Value::BigInt(x) => x.to_string(),
        Value::Int(x) => x.to_string(),
        Value::SmallInt(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}

/// Walk `it` (bounded to the scope) over `pks` (sorted, distinct, encoded): call `hit(i, key,
/// value)` for each `pks[i]` whose key `pk_of` finds. Seeks only when the key the iterator
/// rests on is below the next pk; a key above it proves the pk absent (keys ascend, and the
/// pk encoding is prefix-free).
fn walk_sorted(
    mut it: rocksdb::DBRawIteratorWithThreadMode<'_, rocksdb::DB>,
    prefix: &[u8],
    pks: &[&[u8]],
    pk_of: impl for<'a> Fn(&'a [u8]) -> Option<&'a [u8]>,
    mut hit: impl FnMut(usize, &[u8], &[u8]),
) -> Result<()> {
    let mut target = prefix.to_vec();
    let mut sought = false;
    for (i, pk) in pks.iter().enumerate() {
        if sought {
            match it.key() {
                None => break, // nothing at or after an earlier pk: nothing after this one
                Some(k) => match pk_of(k) {
                    Some(kpk) if kpk > *pk => continue, // the next key is past pk: absent
                    _ => {}
                },
            }
        }
        target.truncate(prefix.len());
        target.extend_from_slice(pk);
        it.seek(&target);
        sought = true;
        if let (Some(k), Some(v)) = (it.key(), it.value()) {
            if pk_of(k) == Some(*pk) {
                hit(i, k, v);
            }
        }
    }
    it.status()?;
    Ok(())
}
