//! Row versions in the hot store: insert, update, delete and scan one scope of a table.
//!
//! Writes of one statement are one synced RocksDB WriteBatch: all rows or none, durable when
//! the call returns. Primary-key uniqueness is checked per scope under a per-(table, scope)
//! lock, so two concurrent inserts of one key cannot both succeed. A scan walks one scope's
//! key range, keeps the first (newest) version of each primary key and drops tombstones and
//! expired STREAM rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use parking_lot::Mutex;
use rocksdb::WriteBatch;

use crate::catalog::{TableDef, TableKind};
use crate::clock::{now_millis, seq_millis, SeqGenerator};
use crate::encoding::arrow_values::{conform, value_at};
use crate::encoding::row_codec::{encode_row, encode_tombstone, is_tombstone};
use crate::encoding::row_key::{
    encode_pk, prefix_upper_bound, row_key, scope_prefix, seq_of_key, split_row_key, FlushedEntry,
    Scope,
};
use crate::error::{Error, Result};
use crate::storage::keyspace::{CF_FLUSHED, CF_ROWS};
use crate::storage::objects::ColdStore;
use crate::storage::rocks::Store;
use crate::types::{check_value, DataType, Value};

/// Which rows of a scope a scan reads.
#[derive(Debug, Clone, Default)]
pub struct ScanRange {
    /// Only the row with this primary-key value (pushed down from `pk = literal`).
    pub pk_equals: Option<Value>,
    /// Stop after this many rows.
    pub limit: Option<usize>,
}

/// One output column of a scan.
#[derive(Debug, Clone)]
pub enum ScanColumn {
    /// A live column of the table, by id.
    Column {
        id: u32,
        data_type: DataType,
        value_for_older_rows: Option<Value>,
    },
    /// The hidden row id of a table without a declared primary key (as BIGINT).
    RowId,
}

/// Reads and writes row versions of tables.
#[derive(Debug)]
pub struct RowStore {
    store: Store,
    cold: ColdStore,
    seq: Arc<SeqGenerator>,
    scope_locks: Mutex<HashMap<(u64, Scope), Arc<Mutex<()>>>>,
    /// Full keys (scope prefix + pk) of inserts checked but not yet written.
    pending: Mutex<HashSet<Vec<u8>>>,
    /// Row versions in the hot buffer per table id (for flush policies and system.tables).
    buffered: Mutex<HashMap<u64, u64>>,
    /// The widest row each table has stored (see [`RowStore::widest_row`]), by table id.
    widest: Mutex<HashMap<u64, usize>>,
    /// Held by the writes that raise a table's widest-row mark, so the stored mark never
    /// goes down when two of them race.
    raising: Mutex<()>,
}

/// A table's widest-row mark is the encoded size of its widest row rounded up to a power of
/// two, at least this: the mark is stored again only when it doubles (a few times in a
/// table's life), and rows of ordinary widths never change the batch size it gives.
const MIN_WIDEST_MARK: usize = 64;

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
            buffered: Mutex::new(HashMap::new()),
            widest: Mutex::new(HashMap::new()),
            raising: Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn cold(&self) -> &ColdStore {
        &self.cold
    }

    /// Count the hot row versions of a table (at startup) into the buffered counter.
    /// Also reads the table's widest-row mark.
    pub fn init_buffered(&self, table_id: u64) -> Result<u64> {
        let n = self.count_versions(table_id)?;
        self.buffered.lock().insert(table_id, n);
        if let Some(b) = self
            .store
            .catalog_get(&crate::storage::keyspace::widest_row(table_id))?
        {
            let mark = <[u8; 8]>::try_from(b.as_slice()).map_err(|_| {
                Error::Internal(format!("malformed widest-row mark of table {table_id}"))
            })?;
            self.widest
                .lock()
                .insert(table_id, u64::from_be_bytes(mark) as usize);
        }
        Ok(n)
    }

    /// An upper bound of the bytes one row of the table holds, hot or flushed: the widest row
    /// any write has stored (rounded up to a power of two; 0 for a table never written) plus
    /// the values older rows read for columns added since. DataFusion builds batches of a
    /// number of rows, whatever their width (a join repeated a 1 MB row for 2,000 matches in
    /// one 2 GB batch): the statement's batch size is fitted to this (kalamdb-sql's session).
    pub fn widest_row(&self, def: &TableDef) -> usize {
        let mark = self.widest.lock().get(&def.id).copied().unwrap_or(0);
        let older = def
            .live_columns()
            .filter_map(|c| c.value_for_older_rows.as_ref())
            .map(|v| match v {
                Value::Text(s) => s.len(),
                Value::Bytes(b) => b.len(),
                _ => 16,
            })
            .sum::<usize>();
        mark + older
    }

    /// The mark a write whose widest encoded row is `widest` bytes raises its table's to.
    fn raised_mark(&self, table_id: u64, widest: usize) -> Option<usize> {
        let mark = widest.max(MIN_WIDEST_MARK).next_power_of_two();
        (mark > self.widest.lock().get(&table_id).copied().unwrap_or(0)).then_some(mark)
    }

    /// Write a statement's batch; when its rows raise the table's widest-row mark, the new
    /// mark is stored in the same batch (durable with the rows) and known before the rows are
    /// visible.
    fn write_rows_batch(&self, table_id: u64, mut batch: WriteBatch, widest: usize) -> Result<()> {
        if self.raised_mark(table_id, widest).is_none() {
            return self.store.write(batch);
        }
        let _raising = self.raising.lock();
        if let Some(mark) = self.raised_mark(table_id, widest) {
            batch.put_cf(
                self.store.cf(crate::storage::keyspace::CF_CATALOG)?,
                crate::storage::keyspace::widest_row(table_id),
                (mark as u64).to_be_bytes(),
            );
            self.widest.lock().insert(table_id, mark);
        }
        self.store.write(batch)
    }

    /// Row versions of a table in the hot buffer.
    pub fn buffered(&self, table_id: u64) -> u64 {
        self.buffered.lock().get(&table_id).copied().unwrap_or(0)
    }

    fn note_written(&self, table_id: u64, versions: u64, op: &'static str) {
        *self.buffered.lock().entry(table_id).or_default() += versions;
        metrics::counter!("kalamdb_rows_written_total", "op" => op).increment(versions);
    }

    /// A flush (or DROP USER) removed `versions` hot row versions of a table.
    pub fn note_flushed(&self, table_id: u64, versions: u64) {
        let mut b = self.buffered.lock();
        let e = b.entry(table_id).or_default();
        *e = e.saturating_sub(versions);
    }

    /// Forget a dropped table's counter.
    pub fn forget_table(&self, table_id: u64) {
        self.buffered.lock().remove(&table_id);
        self.widest.lock().remove(&table_id);
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

    /// Convert a batch whose columns are the table's live columns (plus `_rowid` last when
    /// `with_rowid`) into checked rows of values.
    pub fn rows_from_batch(
        def: &TableDef,
        batch: &RecordBatch,
        with_rowid: bool,
    ) -> Result<Vec<Vec<Value>>> {
        let cols: Vec<_> = def.live_columns().collect();
        let expected = cols.len() + with_rowid as usize;
        if batch.num_columns() != expected {
            return Err(Error::Internal(format!(
                "write batch has {} columns, table has {expected}",
                batch.num_columns()
            )));
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(expected);
        for (i, c) in cols.iter().enumerate() {
            arrays.push(conform(batch.column(i), &c.data_type).map_err(|e| match e {
                Error::TypeMismatch(m) => Error::TypeMismatch(format!("column '{}': {m}", c.name)),
                other => other,
            })?);
        }
        if with_rowid {
            arrays.push(conform(batch.column(cols.len()), &DataType::BigInt)?);
        }
        let mut rows = Vec::with_capacity(batch.num_rows());
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(expected);
            for (i, c) in cols.iter().enumerate() {
                let v = check_value(&c.data_type, value_at(&arrays[i], r, &c.data_type)?)?;
                if v.is_null() && !c.nullable {
                    return Err(Error::ConstraintViolation(format!(
                        "column '{}' of table '{}' must not be NULL",
                        c.name,
                        def.qualified_name()
                    )));
                }
                row.push(v);
            }
            if with_rowid {
                row.push(value_at(&arrays[cols.len()], r, &DataType::BigInt)?);
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn pk_index(def: &TableDef) -> Option<usize> {
        let pk = def.primary_key.as_deref()?;
        def.live_columns().position(|c| c.name == pk)
    }

    fn encode_key_value(v: &Value) -> Result<Vec<u8>> {
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
    fn is_live(&self, def: &TableDef, prefix: &[u8], pk: &[u8]) -> Result<bool> {
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
                    return Ok(!is_tombstone(v) && !expired(def, seq, now_millis()));
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
    fn live_keys(&self, def: &TableDef, prefix: &[u8], pks: &[&[u8]]) -> Result<Vec<bool>> {
        let mut live = vec![false; pks.len()];
        let mut in_hot = vec![false; pks.len()];
        let now = now_millis();
        let upper = prefix_upper_bound(prefix);
        let hot = self.store.db().raw_iterator_cf_opt(
            self.store.cf(CF_ROWS)?,
            Store::range_read_options(prefix, &upper),
        );
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
                live[i] = !is_tombstone(v) && !expired(def, seq, now);
            },
        )?;
        let ask: Vec<usize> = (0..pks.len()).filter(|&i| !in_hot[i]).collect();
        if ask.is_empty() {
            return Ok(live);
        }
        let ask_pks: Vec<&[u8]> = ask.iter().map(|&i| pks[i]).collect();
        let flushed = self.store.db().raw_iterator_cf_opt(
            self.store.cf(CF_FLUSHED)?,
            Store::range_read_options(prefix, &upper),
        );
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
    ///
    /// The uniqueness check and the building of the batch happen under the scope lock; the
    /// synced write does not, so concurrent inserts into one scope share fsyncs (RocksDB group
    /// commit). Their keys are reserved in `pending` until the write returns: a concurrent
    /// insert of a reserved key fails as a duplicate, as it would once the write is visible.
    pub fn insert(&self, def: &TableDef, scope: &Scope, rows: Vec<Vec<Value>>) -> Result<u64> {
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
                let live = self.live_keys(def, &prefix, &sorted)?;
                if let Some(n) = live.iter().position(|l| *l) {
                    return Err(duplicate(order[n]));
                }
                for (row, pk) in rows.iter().zip(&pks) {
                    buf.clear();
                    encode_row(def.schema_version, row, &mut buf);
                    widest = widest.max(buf.len());
                    batch.put_cf(cf, row_key(&prefix, pk, self.seq.next()), &buf);
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
        self.write_rows_batch(def.id, batch, widest)?;
        drop(reservation);
        self.note_written(def.id, rows.len() as u64, "insert");
        Ok(rows.len() as u64)
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
        self.write_rows_batch(def.id, batch, widest)?;
        self.note_written(def.id, updated, "update");
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
        self.note_written(def.id, deleted, "delete");
        Ok(deleted)
    }

    /// Physically delete a STREAM table's expired row versions (they are already invisible).
    /// Returns how many were deleted. Work is bounded per WriteBatch.
    pub fn purge_expired(&self, def: &TableDef) -> Result<u64> {
        const BATCH: usize = 10_000;
        if def.kind != TableKind::Stream {
            return Ok(0);
        }
        let lower = crate::encoding::row_key::table_prefix(def.id);
        let upper = prefix_upper_bound(&lower);
        let mut it = self.store.db().raw_iterator_cf_opt(
            self.store.cf(CF_ROWS)?,
            Store::range_read_options(&lower, &upper),
        );
        it.seek(&lower);
        let now = now_millis();
        let cf = self.store.cf(CF_ROWS)?;
        let (mut batch, mut in_batch, mut total) = (WriteBatch::default(), 0usize, 0u64);
        while it.valid() {
            let Some(k) = it.key() else { break };
            if seq_of_key(k).is_some_and(|seq| expired(def, seq, now)) {
                batch.delete_cf(cf, k);
                in_batch += 1;
            }
            if in_batch == BATCH {
                self.store.write(std::mem::take(&mut batch))?;
                total += in_batch as u64;
                in_batch = 0;
            }
            it.next();
        }
        it.status()?;
        if in_batch > 0 {
            self.store.write(batch)?;
            total += in_batch as u64;
        }
        self.note_flushed(def.id, total);
        Ok(total)
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

pub(crate) fn expired(def: &TableDef, seq: u64, now_ms: u64) -> bool {
    match (def.kind, def.options.ttl_seconds) {
        (TableKind::Stream, Some(ttl)) => seq_millis(seq).saturating_add(ttl * 1000) <= now_ms,
        _ => false,
    }
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
