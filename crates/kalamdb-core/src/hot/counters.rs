//! What the hot buffer counts per table: its buffered row versions (flush policies,
//! system.tables) and its widest-row mark (the batch size of statements reading it).

use std::collections::HashMap;

use parking_lot::Mutex;
use rocksdb::WriteBatch;

use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::storage::keyspace;
use crate::storage::rocks::Store;
use crate::types::Value;

/// A table's widest-row mark is the encoded size of its widest row rounded up to a power of
/// two, at least this: the mark is stored again only when it doubles (a few times in a
/// table's life), and rows of ordinary widths never change the batch size it gives.
const MIN_WIDEST_MARK: usize = 64;

/// Buffered row versions and widest-row marks, by table id.
#[derive(Debug, Default)]
pub struct Counters {
    /// Row versions in the hot buffer per table id (for flush policies and system.tables).
    buffered: Mutex<HashMap<u64, u64>>,
    /// The widest row each table has stored (see [`Counters::widest_row`]), by table id.
    widest: Mutex<HashMap<u64, usize>>,
    /// Held by the writes that raise a table's widest-row mark, so the stored mark never
    /// goes down when two of them race.
    raising: Mutex<()>,
}

impl Counters {
    /// At startup: a table's buffered versions (counted by the caller) and its stored mark.
    pub fn load(&self, store: &Store, table_id: u64, versions: u64) -> Result<()> {
        self.buffered.lock().insert(table_id, versions);
        if let Some(b) = store.catalog_get(&keyspace::widest_row(table_id))? {
            let mark = <[u8; 8]>::try_from(b.as_slice()).map_err(|_| {
                Error::Internal(format!("malformed widest-row mark of table {table_id}"))
            })?;
            self.widest
                .lock()
                .insert(table_id, u64::from_be_bytes(mark) as usize);
        }
        Ok(())
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
    pub fn write_raising(
        &self,
        store: &Store,
        table_id: u64,
        batch: WriteBatch,
        widest: usize,
    ) -> Result<()> {
        self.write_raising_all(store, &[(table_id, widest)], batch)
    }

    /// [`Counters::write_raising`] for a batch of several tables' rows (a transaction's):
    /// `widest` holds each table's widest encoded row.
    pub fn write_raising_all(
        &self,
        store: &Store,
        widest: &[(u64, usize)],
        mut batch: WriteBatch,
    ) -> Result<()> {
        if widest
            .iter()
            .all(|&(t, w)| self.raised_mark(t, w).is_none())
        {
            return store.write(batch);
        }
        let _raising = self.raising.lock();
        for &(table_id, w) in widest {
            if let Some(mark) = self.raised_mark(table_id, w) {
                batch.put_cf(
                    store.cf(keyspace::CF_CATALOG)?,
                    keyspace::widest_row(table_id),
                    (mark as u64).to_be_bytes(),
                );
                self.widest.lock().insert(table_id, mark);
            }
        }
        store.write(batch)
    }

    /// Row versions of a table in the hot buffer.
    pub fn buffered(&self, table_id: u64) -> u64 {
        self.buffered.lock().get(&table_id).copied().unwrap_or(0)
    }

    /// A statement wrote `versions` row versions.
    pub fn note_written(&self, table_id: u64, versions: u64, op: &'static str) {
        *self.buffered.lock().entry(table_id).or_default() += versions;
        metrics::counter!("kalamdb_rows_written_total", "op" => op).increment(versions);
    }

    /// A flush, TTL purge or DROP USER removed `versions` hot row versions of a table.
    pub fn note_flushed(&self, table_id: u64, versions: u64) {
        let mut b = self.buffered.lock();
        let e = b.entry(table_id).or_default();
        *e = e.saturating_sub(versions);
    }

    /// Forget a dropped table's counters.
    pub fn forget_table(&self, table_id: u64) {
        self.buffered.lock().remove(&table_id);
        self.widest.lock().remove(&table_id);
    }
}
