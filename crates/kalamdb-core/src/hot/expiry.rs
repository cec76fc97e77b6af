//! STREAM tables' TTL: expired row versions are invisible at once ([`TableDef::is_expired`])
//! and physically deleted by the scheduler, in bounded batches.

use rocksdb::WriteBatch;

use crate::catalog::{TableDef, TableKind};
use crate::clock::now_millis;
use crate::encoding::row_key::{prefix_upper_bound, seq_of_key};
use crate::error::Result;
use crate::hot::rows::RowStore;
use crate::storage::keyspace::CF_ROWS;
use crate::storage::rocks::Store;

impl RowStore {
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
            if seq_of_key(k).is_some_and(|seq| def.is_expired(seq, now)) {
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
        self.counters.note_flushed(def.id, total);
        Ok(total)
    }
}
