//! The flush protocol: move one scope's hot rows into Parquet segments.
//!
//! For one scope, in key order, in segments of at most `segment_rows` rows:
//! 1. take a snapshot seq and a RocksDB snapshot; for each primary key, the newest version at
//!    or below the snapshot goes to the segment (a tombstone too: it must keep hiding the key's
//!    older flushed versions), and every version at or below the snapshot is to be deleted;
//!    newer versions (written during the flush) stay hot and win on read;
//! 2. encode the segment (rows out must equal rows in) and write it to the cold store, where
//!    it is invisible until complete and fsynced;
//! 3. in one synced WriteBatch, under the scope's write lock: delete exactly those hot keys,
//!    record the keys in the flushed-key index, and add the segment to the scope's manifest;
//! 4. on any error in 2-3, delete the file and keep every hot row of the segment.
//!
//! A crash between 2 and 3 leaves an unreferenced file that startup removes; a crash after 3
//! is done. Memory is bounded by one segment, whatever the scope's size (a job flushes up to
//! `flush.parallelism` scopes at once, so by that many segments).

use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use crate::catalog::{Catalog, TableDef};
use crate::clock::now_millis;
use crate::cold::manifest::{self, lower_bound_hex, upper_bound_hex, ManifestHeader, SegmentMeta};
use crate::cold::segment::encode_segment;
use crate::encoding::row_codec::{decode_row, is_tombstone};
use crate::encoding::row_key::{
    flushed_key, prefix_upper_bound, scope_of_key, scope_prefix, split_row_key, table_prefix,
    FlushedEntry, Scope,
};
use crate::error::{Error, Result};
use crate::failpoints;
use crate::hot::rows::RowStore;
use crate::storage::keyspace::{CF_FLUSHED, CF_ROWS};
use crate::storage::objects::ColdStore;
use crate::storage::rocks::Store;
use crate::types::RowVersion;

/// What flushing one scope did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeFlush {
    /// Row versions found at or below the snapshot (one per key).
    pub rows_scanned: u64,
    /// Rows committed to Parquet.
    pub rows_flushed: u64,
    pub files_written: u64,
    pub bytes_written: u64,
}

/// The scopes of a table that have rows in the hot buffer.
pub fn hot_scopes(rows: &RowStore, table_id: u64) -> Result<Vec<Scope>> {
    let store = rows.store();
    let table = table_prefix(table_id);
    let upper = prefix_upper_bound(&table);
    let mut it = store.db().raw_iterator_cf_opt(
        store.cf(CF_ROWS)?,
        Store::range_read_options(&table, &upper),
    );
    it.seek(&table);
    let mut scopes = Vec::new();
    while it.valid() {
        let Some(k) = it.key() else { break };
        let (_, scope) =
            scope_of_key(k).ok_or_else(|| Error::Internal("malformed row key".into()))?;
        // Skip the rest of this scope: one seek per scope, not one step per row.
        it.seek(prefix_upper_bound(&scope_prefix(table_id, &scope)));
        scopes.push(scope);
    }
    it.status()?;
    Ok(scopes)
}

/// Name of a scope in job results and errors.
pub fn scope_name(scope: &Scope) -> String {
    scope.user_id().unwrap_or("shared").to_string()
}

struct Pending {
    rows: Vec<RowVersion>,
    /// Hot keys to delete when the segment commits.
    keys: Vec<Vec<u8>>,
}

/// Flush one scope of `table` (its definition is re-read from `catalog` after the snapshot,
/// so rows written under a newer schema are never read with an older one). On error, the
/// returned ScopeFlush counts what was committed before it.
pub fn flush_scope(
    rows: &RowStore,
    catalog: &Catalog,
    table: &TableDef,
    scope: &Scope,
    segment_rows: usize,
) -> (ScopeFlush, Option<Error>) {
    let mut done = ScopeFlush::default();
    let err = flush_scope_inner(rows, catalog, table, scope, segment_rows.max(1), &mut done).err();
    (done, err)
}

// long: one scope's flush steps in their order (read, write the segment, commit manifest and
// flushed index, purge), each using the previous one's result.
fn flush_scope_inner(
    rows: &RowStore,
    catalog: &Catalog,
    table: &TableDef,
    scope: &Scope,
    segment_rows: usize,
    done: &mut ScopeFlush,
) -> Result<()> {
    failpoints::fail_for_scope("flush.scope_error", &scope_name(scope))?;
    let store = rows.store();
    let snapshot_seq = rows.seq().next();
    let snapshot = store.db().snapshot();
    // Read the definition after the snapshot: every row in the snapshot was written under
    // this schema version or an older one.
    let def = catalog
        .table(&table.namespace, &table.name)
        .filter(|d| d.id == table.id)
        .ok_or_else(|| Error::TableNotFound(table.qualified_name()))?;
    let def = def.as_ref();
    let prefix = scope_prefix(def.id, scope);
    let upper = prefix_upper_bound(&prefix);
    let mut ro = ReadOptions::default();
    ro.set_snapshot(&snapshot);
    ro.set_iterate_lower_bound(prefix.clone());
    ro.set_iterate_upper_bound(upper);
    let mut manifest = manifest::load_header(store, def.id, scope)?;
    let version = def.schema_version;
    let target_layout = def.layout_at(version);
    let mut pending = Pending {
        rows: Vec::new(),
        keys: Vec::new(),
    };
    let mut current_pk: Option<Vec<u8>> = None;

    for item in store
        .db()
        .iterator_cf_opt(store.cf(CF_ROWS)?, ro, IteratorMode::Start)
    {
        let (key, value) = item?;
        let (pk, seq) = split_row_key(&key, prefix.len())
            .ok_or_else(|| Error::Internal("malformed row key".into()))?;
        if seq > snapshot_seq {
            continue; // written after the snapshot: stays hot
        }
        if current_pk.as_deref() == Some(pk) {
            pending.keys.push(key.to_vec()); // an older version of a key already taken
            continue;
        }
        if pending.rows.len() >= segment_rows {
            commit_segment(rows, catalog, def, scope, &mut manifest, &mut pending, done)?;
        }
        current_pk = Some(pk.to_vec());
        let values = if is_tombstone(&value) {
            None
        } else {
            let row = decode_row(&value)?;
            if row.schema_version > version {
                return Err(Error::Internal(
                    "row written under a newer schema than the flush read".into(),
                ));
            }
            Some(crate::encoding::layout::convert(
                def,
                row.schema_version,
                &target_layout,
                row.values.unwrap_or_default(),
            ))
        };
        pending.rows.push(RowVersion {
            pk: pk.to_vec(),
            seq,
            schema_version: version,
            values,
        });
        pending.keys.push(key.to_vec());
        done.rows_scanned += 1;
    }
    if !pending.rows.is_empty() {
        commit_segment(rows, catalog, def, scope, &mut manifest, &mut pending, done)?;
    }
    Ok(())
}

fn commit_segment(
    rows: &RowStore,
    catalog: &Catalog,
    def: &TableDef,
    scope: &Scope,
    manifest: &mut ManifestHeader,
    pending: &mut Pending,
    done: &mut ScopeFlush,
) -> Result<()> {
    let n = manifest.next_batch;
    let seq_max = pending.rows.iter().map(|r| r.seq).max().unwrap_or(0);
    let path = ColdStore::segment_path(&def.namespace, &def.name, scope, n, seq_max);
    let data = encode_segment(def, def.schema_version, &pending.rows)?;
    let bytes = data.len() as u64;
    rows.cold().put_durable(&path, data)?;
    failpoints::pause("flush.pause_after_write");
    let segment = segment_meta(def, pending, &path, n, bytes)?;
    match commit_manifest(rows, catalog, def, scope, manifest, pending, &segment) {
        Ok(()) => {
            failpoints::pause("flush.pause_after_commit");
            done.rows_flushed += pending.rows.len() as u64;
            done.files_written += 1;
            done.bytes_written += bytes;
            pending.rows.clear();
            pending.keys.clear();
            Ok(())
        }
        Err(e) => {
            if let Err(de) = rows.cold().delete(&path) {
                tracing::warn!(%path, error = %de, "could not remove an uncommitted segment; startup will");
            }
            Err(e)
        }
    }
}

/// The manifest entry of the segment `pending` holds.
fn segment_meta(
    def: &TableDef,
    pending: &Pending,
    path: &str,
    n: u64,
    bytes: u64,
) -> Result<SegmentMeta> {
    let (Some(first), Some(last)) = (pending.rows.first(), pending.rows.last()) else {
        return Err(Error::Internal("empty segment".into()));
    };
    Ok(SegmentMeta {
        path: path.to_string(),
        batch: n,
        rows: pending.rows.len() as u64,
        bytes,
        seq_min: pending.rows.iter().map(|r| r.seq).min().unwrap_or(0),
        seq_max: pending.rows.iter().map(|r| r.seq).max().unwrap_or(0),
        pk_min: lower_bound_hex(&first.pk),
        pk_max: upper_bound_hex(&last.pk),
        schema_version: def.schema_version,
        created_at_ms: now_millis(),
        column_stats: manifest::ColumnStats::of_rows(
            &def.layout_at(def.schema_version),
            &pending.rows,
        ),
    })
}

fn commit_manifest(
    rows: &RowStore,
    catalog: &Catalog,
    def: &TableDef,
    scope: &Scope,
    manifest: &mut ManifestHeader,
    pending: &Pending,
    segment: &SegmentMeta,
) -> Result<()> {
    let store = rows.store();
    let prefix = scope_prefix(def.id, scope);
    let mut batch = WriteBatch::default();
    let rows_cf = store.cf(CF_ROWS)?;
    for k in &pending.keys {
        batch.delete_cf(rows_cf, k);
    }
    let flushed_cf = store.cf(CF_FLUSHED)?;
    for r in &pending.rows {
        let entry = FlushedEntry {
            deleted: r.values.is_none(),
            seq: r.seq,
        };
        batch.put_cf(flushed_cf, flushed_key(&prefix, &r.pk), entry.encode());
    }
    let next = manifest::commit_into(&mut batch, store, def.id, scope, manifest, segment)?;
    // No DROP writes from here to the commit (catalog.rs, `drops`), so what is checked below
    // still holds when the batch is written.
    let _no_drop = catalog.hold_off_drops();
    let lock = rows.scope_lock(def.id, scope);
    let _guard = lock.lock();
    // The rows this segment holds must still be buffered: DROP USER and DROP TABLE delete a
    // scope's whole key range while a flush may be writing its segment, and committing then
    // would bring the dropped rows back (to the next user of that name) and write the dropped
    // scope's manifest back, naming a file the DROP did not know of.
    // Nor may the scope's manifest have changed since the flush read it (DROP USER deletes
    // it; committing the flush's copy would point at deleted files).
    if catalog
        .table(&def.namespace, &def.name)
        .is_none_or(|t| t.id != def.id)
    {
        return Err(Error::TableNotFound(def.qualified_name()));
    }
    if manifest::load_header(store, def.id, scope)? != *manifest {
        return Err(Error::Internal(format!(
            "the segments of table '{}' changed during the flush (its owner dropped); nothing was committed",
            def.qualified_name()
        )));
    }
    if let Some(first) = pending.keys.first() {
        if store.db().get_cf(rows_cf, first)?.is_none() {
            return Err(Error::Internal(format!(
                "the rows being flushed were deleted during the flush (table '{}' or its owner dropped); nothing was committed",
                def.qualified_name()
            )));
        }
    }
    store.write(batch)?;
    rows.note_flushed(def.id, pending.keys.len() as u64);
    *manifest = next;
    Ok(())
}
