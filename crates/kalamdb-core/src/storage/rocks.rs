//! The RocksDB instance behind the hot buffer and the catalog.
//!
//! Three column families: `catalog` (namespaces, tables, users, storages, manifests, jobs,
//! server metadata; small values, serde JSON), `rows` (the hot buffer: row versions keyed as
//! described in [`crate::encoding::row_key`], values from [`crate::encoding::row_codec`]) and `flushed` (which primary
//! keys live in Parquet). Every write that acknowledges a client's statement goes
//! through [`Store::write`], which syncs the WAL before returning; RocksDB groups concurrent
//! synced writers into one fsync (group commit).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction,
    IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};

use crate::storage::keyspace::{CF_CATALOG, CF_FLUSHED, CF_ROWS};

/// Shared handle to the database.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// A consistent, point-in-time view of the whole database (a RocksDB snapshot) that may be
/// held across statements: a transaction's reads (ADR 0014). Hot rows, the flushed-key index
/// and the manifests read through it are one instant's; a flush commits all three in one
/// batch, so a scope's rows are seen exactly once.
pub struct ReadPoint {
    // Declared first, dropped first: the snapshot is released before the handle it borrows.
    snapshot: rocksdb::Snapshot<'static>,
    _db: Arc<DB>,
}

impl std::fmt::Debug for ReadPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadPoint")
    }
}

impl ReadPoint {
    /// Read options with this snapshot set.
    pub(crate) fn apply(&self, read_options: &mut ReadOptions) {
        read_options.set_snapshot(&self.snapshot);
    }

    pub(crate) fn snapshot(&self) -> &rocksdb::Snapshot<'static> {
        &self.snapshot
    }
}

impl Store {
    /// A read point at this instant.
    pub fn read_point(&self) -> Arc<ReadPoint> {
        let snapshot = self.db.snapshot();
        // SAFETY: the snapshot borrows the DB, which `_db` keeps alive for as long as the
        // ReadPoint exists; the snapshot field is dropped before it (declaration order).
        let snapshot: rocksdb::Snapshot<'static> = unsafe { std::mem::transmute(snapshot) };
        Arc::new(ReadPoint {
            snapshot,
            _db: self.db.clone(),
        })
    }

    /// Open (or create) the database under `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        let mut rows_opts = Options::default();
        rows_opts.set_compression_type(DBCompressionType::Lz4);
        let mut block = BlockBasedOptions::default();
        block.set_bloom_filter(10.0, false);
        rows_opts.set_block_based_table_factory(&block);
        rows_opts.set_write_buffer_size(64 << 20);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_CATALOG, Options::default()),
            ColumnFamilyDescriptor::new(CF_ROWS, rows_opts),
            ColumnFamilyDescriptor::new(CF_FLUSHED, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        Ok(Store { db: Arc::new(db) })
    }

    /// The RocksDB handle, for the storage code of this crate only.
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// Sync the write-ahead log (at shutdown: every acknowledged write is already synced;
    /// this covers the unsynced bookkeeping writes).
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// The sum of an integer RocksDB property over KalamDB's column families (metrics).
    pub fn property_sum(&self, property: &str) -> u64 {
        [CF_CATALOG, CF_ROWS, CF_FLUSHED]
            .into_iter()
            .filter_map(|cf| self.cf(cf).ok())
            .filter_map(|handle| {
                self.db
                    .property_int_value_cf(handle, property)
                    .ok()
                    .flatten()
            })
            .sum()
    }

    pub fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Internal(format!("missing column family {name}")))
    }

    /// Apply a batch atomically and durably: the WAL is synced before this returns.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    pub fn catalog_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_CATALOG)?, key.as_bytes())?)
    }

    /// A catalog entry as of `at` (now when None).
    pub fn catalog_get_at(&self, key: &str, at: Option<&ReadPoint>) -> Result<Option<Vec<u8>>> {
        let Some(at) = at else {
            return self.catalog_get(key);
        };
        let mut ro = ReadOptions::default();
        at.apply(&mut ro);
        Ok(self
            .db
            .get_cf_opt(self.cf(CF_CATALOG)?, key.as_bytes(), &ro)?)
    }

    /// All catalog entries whose key starts with `prefix`, in key order.
    pub fn catalog_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.catalog_scan_at(prefix, None)
    }

    /// All catalog entries whose key starts with `prefix` as of `at` (now when None).
    pub fn catalog_scan_at(
        &self,
        prefix: &str,
        at: Option<&ReadPoint>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let cf = self.cf(CF_CATALOG)?;
        let mut out = Vec::new();
        let mut ro = ReadOptions::default();
        if let Some(at) = at {
            at.apply(&mut ro);
        }
        let iter = self.db.iterator_cf_opt(
            cf,
            ro,
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8(k.to_vec())
                .map_err(|_| Error::Internal("non-utf8 catalog key".into()))?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    /// Read options for a bounded forward scan of `[lower, upper)` in the rows family.
    pub fn range_read_options(lower: &[u8], upper: &[u8]) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(lower.to_vec());
        ro.set_iterate_upper_bound(upper.to_vec());
        ro
    }
}
