//! Reading one scope as one table: hot rows and Parquet segments merged.
//!
//! Every source (the hot buffer, each segment) yields row versions in primary-key order with
//! at most one version per key. A k-way merge keeps, for each key, the version with the
//! highest seq, drops it if it is a tombstone (or an expired STREAM row), and appends the
//! rest to Arrow builders. Memory holds one pending version per source, whatever the table's
//! size.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use rocksdb::{DBRawIteratorWithThreadMode, DB};

use super::merge::{HotSource, Merge, Source};
use crate::catalog::TableDef;
use crate::clock::now_millis;
use crate::cold::manifest;
use crate::cold::segment::{SegmentColumns, SegmentReader};
use crate::encoding::arrow_values::ColumnBuilder;
use crate::encoding::row_key::{encode_pk, prefix_upper_bound, scope_prefix, split_row_key, Scope};
use crate::error::{Error, Result};
use crate::hot::overlay::ReadView;
use crate::hot::rows::{decode_rowid, RowStore};
use crate::storage::keyspace::CF_ROWS;
use crate::storage::rocks::Store;
use crate::types::{DataType, Value};

/// Which rows of a scope a scan reads.
#[derive(Debug, Clone, Default)]
pub struct ScanRange {
    /// Only the row with this primary-key value (pushed down from `pk = literal`).
    pub pk_equals: Option<Value>,
    /// Only the rows with these primary-key values (an upsert's conflicting rows).
    pub pk_in: Option<Vec<Value>>,
    /// Stop after this many rows.
    pub limit: Option<usize>,
    /// A transaction's snapshot and writes (ADR 0014); the database now by default.
    pub view: ReadView,
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

impl RowStore {
    /// A segment's bytes. A segment file goes only with its table (DROP TABLE, DROP
    /// NAMESPACE) or its scope's rows (DROP USER); a statement that read the manifest before
    /// such a drop finds the file gone: the table was dropped under it (TABLE_NOT_FOUND), not a
    /// fault of the server (it answered 500).
    pub(super) fn segment_bytes(
        &self,
        def: &TableDef,
        scope: &Scope,
        path: &str,
    ) -> Result<bytes::Bytes> {
        self.cold().get(path).map_err(|e| {
            let listed = manifest::load(self.store(), def.id, scope)
                .map(|m| m.segments.iter().any(|s| s.path == path))
                .unwrap_or(true);
            if listed {
                e
            } else {
                Error::TableNotFound(def.qualified_name())
            }
        })
    }

    /// Scan the latest live version of every row of one scope (hot and flushed) into Arrow
    /// batches of at most `batch_rows` rows with `schema`, handing each to `emit`; `emit`
    /// returns false to stop.
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &self,
        def: &TableDef,
        scope: &Scope,
        columns: &[ScanColumn],
        schema: SchemaRef,
        range: &ScanRange,
        batch_rows: usize,
        mut emit: impl FnMut(RecordBatch) -> bool,
    ) -> Result<()> {
        let Some(Sources {
            mut merge,
            columnar,
            wanted,
        }) = self.open_sources(def, scope, columns, range, batch_rows)?
        else {
            return Ok(());
        };
        let mut layouts: HashMap<u32, Vec<Option<usize>>> = HashMap::new();
        let mut batcher = Batcher::new(schema.clone(), columns, batch_rows);
        let limit = range.limit.unwrap_or(usize::MAX);
        let mut total = 0usize;
        // Merged rows in key order; before each isolated segment, the merged rows whose keys
        // sort before it, then the segment's columns as they are. The output stays in key order.
        let mut next_columnar = columnar.into_iter().peekable();
        loop {
            if total >= limit {
                break; // the rows already in the batcher still go out below
            }
            let before_next_segment = match (merge.peek_pk(), next_columnar.peek()) {
                (None, None) => break,
                (Some(pk), Some((_, seg_min))) => pk < seg_min.as_slice(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            if !before_next_segment {
                let Some((seg, _)) = next_columnar.next() else {
                    break;
                };
                if !batcher.flush(&mut emit)? {
                    return Ok(());
                }
                let read = SegmentRead {
                    def,
                    scope,
                    columns,
                    schema: &schema,
                    wanted: &wanted,
                    batch_rows,
                };
                if !self.emit_columnar(&read, &seg, limit, &mut total, &mut emit)? {
                    return Ok(());
                }
                continue;
            }
            let Some(row) = merge.next_winner()? else {
                continue;
            };
            let Some(values) = row.values.as_ref() else {
                continue;
            };
            if row.schema_version > def.schema_version {
                // Written under a schema newer than this statement's plan.
                return Err(schema_changed());
            }
            let layout = layouts
                .entry(row.schema_version)
                .or_insert_with(|| projection_layout(def, row.schema_version, columns));
            if !batcher.push(&row.pk, values, layout, &mut emit)? {
                return Ok(());
            }
            total += 1;
        }
        batcher.flush(&mut emit)?;
        Ok(())
    }

    /// The scan's sources: the hot rows and every segment that must be merged with them (one
    /// merge, key order), and the isolated segments read by column, by first key. None when
    /// the scan can match nothing.
    // long: the pruning rules of one scan (manifest header, key bounds, overlap with the hot
    // rows) decide together which segments merge and which are read apart.
    fn open_sources<'s>(
        &'s self,
        def: &'s TableDef,
        scope: &Scope,
        columns: &[ScanColumn],
        range: &ScanRange,
        batch_rows: usize,
    ) -> Result<Option<Sources<'s>>> {
        if let Some(keys) = &range.pk_in {
            return self.open_key_sources(def, scope, columns, keys, &range.view, batch_rows);
        }
        let at = range.view.at();
        let prefix = scope_prefix(def.id, scope);
        let pk_filter = match &range.pk_equals {
            Some(v) => {
                let mut pk = Vec::new();
                if !encode_pk(v, &mut pk) {
                    return Ok(None); // a NULL key matches nothing
                }
                Some(pk)
            }
            None => None,
        };
        let (mut it, lower) = self.hot_iterator(&prefix, pk_filter.as_deref(), at)?;
        let store = self.store();
        let manifest = manifest::load_at(store, def.id, scope, at)?;
        // Key range of the hot rows (the iterator's snapshot, the one the merge reads), for
        // isolating segments; only worth two seeks when there are segments to isolate.
        let columnar_ok = pk_filter.is_none()
            && !range.view.has_writes()
            && !manifest.segments.is_empty()
            && columns
                .iter()
                .all(|c| matches!(c, ScanColumn::Column { .. }));
        let hot_range = if columnar_ok {
            hot_key_range(&mut it, prefix.len())?
        } else {
            None
        };
        it.seek(&lower);
        let hot = HotSource {
            it,
            def,
            prefix_len: prefix.len(),
            last_pk: None,
            now_ms: now_millis(),
            started: false,
        };
        let mut sources: Vec<Source<'_>> = vec![Box::new(hot)];
        if range.view.has_writes() {
            let only = pk_filter.clone().map(|pk| vec![pk]);
            let own = range.view.versions(only.as_deref());
            sources.push(Box::new(own.into_iter().map(Ok)));
        }

        let wanted = column_ids(columns);
        let isolated = if columnar_ok {
            manifest::isolated_segments(&manifest.segments, hot_range.as_ref())
        } else {
            Vec::new()
        };
        let mut columnar: Vec<(manifest::SegmentMeta, Vec<u8>)> = Vec::new();
        for (i, seg) in manifest.segments.iter().enumerate() {
            if pk_filter.as_ref().is_some_and(|pk| !seg.may_contain(pk)) {
                continue; // pruned by the manifest's key range
            }
            if let Some(min) = isolated.get(i).cloned().flatten() {
                columnar.push((seg.clone(), min));
                continue;
            }
            let data = self.segment_bytes(def, scope, &seg.path)?;
            let reader = SegmentReader::open(
                def,
                data,
                seg.schema_version,
                &wanted,
                pk_filter.clone().map(|pk| Arc::new(vec![pk])),
                batch_rows,
            )?;
            sources.push(Box::new(reader));
        }
        columnar.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(Some(Sources {
            merge: Merge::new(sources)?,
            columnar,
            wanted,
        }))
    }

    /// An iterator over the scope's hot rows from `prefix` (and `pk`, for a point read), and
    /// where it starts. Order matters: this iterator (a consistent view from its creation)
    /// must exist before the manifest is read. A flush committing in between then shows its
    /// rows in both (the merge keeps one: same key, same seq), never in neither.
    fn hot_iterator(
        &self,
        prefix: &[u8],
        pk: Option<&[u8]>,
        at: Option<&crate::storage::rocks::ReadPoint>,
    ) -> Result<(DBRawIteratorWithThreadMode<'_, DB>, Vec<u8>)> {
        let mut lower = prefix.to_vec();
        if let Some(pk) = pk {
            lower.extend_from_slice(pk);
        }
        let upper = prefix_upper_bound(&lower);
        let mut read_options = Store::range_read_options(&lower, &upper);
        if pk.is_none() {
            // A whole scope read once does not go through the block cache: it would push out
            // what point reads keep there, and the blocks it caches would be counted as this
            // statement's memory (allocated on its thread, freed by others).
            read_options.fill_cache(false);
        }
        if let Some(at) = at {
            at.apply(&mut read_options);
        }
        let store = self.store();
        let it = store
            .db()
            .raw_iterator_cf_opt(store.cf(CF_ROWS)?, read_options);
        Ok((it, lower))
    }

    /// An isolated segment's live rows as they are stored, column by column (no merge: no
    /// other source holds its keys). False when `emit` or the limit stops the scan.
    fn emit_columnar(
        &self,
        read: &SegmentRead<'_>,
        seg: &manifest::SegmentMeta,
        limit: usize,
        total: &mut usize,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<bool> {
        let def = read.def;
        if seg.schema_version > def.schema_version {
            return Err(schema_changed());
        }
        let data = self.segment_bytes(def, read.scope, &seg.path)?;
        let mut reader =
            SegmentColumns::open(def, data, seg.schema_version, read.wanted, read.batch_rows)?;
        while let Some((arrays, rows)) = reader.next_live()? {
            let take = rows.min(limit - *total);
            let mut out = Vec::with_capacity(read.columns.len());
            for c in read.columns {
                let ScanColumn::Column {
                    id,
                    data_type,
                    value_for_older_rows,
                } = c
                else {
                    return Err(Error::Internal("row id in a columnar scan".into()));
                };
                out.push(match arrays.get(id) {
                    Some(a) => a.slice(0, take),
                    None => {
                        let mut b = ColumnBuilder::new(data_type, take);
                        let v = value_for_older_rows.as_ref().unwrap_or(&Value::Null);
                        for _ in 0..take {
                            b.append(v)?;
                        }
                        b.finish()?
                    }
                });
            }
            let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(take));
            *total += take;
            let batch = RecordBatch::try_new_with_options(read.schema.clone(), out, &opts)?;
            if !emit(batch) || *total >= limit {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The table column ids among a scan's columns.
pub(super) fn column_ids(columns: &[ScanColumn]) -> Vec<u32> {
    columns
        .iter()
        .filter_map(|c| match c {
            ScanColumn::Column { id, .. } => Some(*id),
            ScanColumn::RowId => None,
        })
        .collect()
}

/// What a scan reads: the merge of the hot rows and the overlapping segments, the isolated
/// segments (with their first keys, in key order) and the column ids it wants.
pub(super) struct Sources<'a> {
    pub(super) merge: Merge<'a>,
    pub(super) columnar: Vec<(manifest::SegmentMeta, Vec<u8>)>,
    pub(super) wanted: Vec<u32>,
}

/// What reading one isolated segment by column needs of its scan.
struct SegmentRead<'a> {
    def: &'a TableDef,
    scope: &'a Scope,
    columns: &'a [ScanColumn],
    schema: &'a SchemaRef,
    wanted: &'a [u32],
    batch_rows: usize,
}

/// Merged rows gathered into batches of at most `batch_rows` rows and about
/// [`SCAN_BATCH_BYTES`](crate::encoding::arrow_values::SCAN_BATCH_BYTES) of values.
struct Batcher<'a> {
    schema: SchemaRef,
    columns: &'a [ScanColumn],
    builders: Vec<ColumnBuilder>,
    batch_rows: usize,
    rows: usize,
    bytes: usize,
}

impl<'a> Batcher<'a> {
    fn new(schema: SchemaRef, columns: &'a [ScanColumn], batch_rows: usize) -> Batcher<'a> {
        let builders = columns
            .iter()
            .map(|c| match c {
                ScanColumn::Column { data_type, .. } => ColumnBuilder::new(data_type, batch_rows),
                ScanColumn::RowId => ColumnBuilder::new(&DataType::BigInt, batch_rows),
            })
            .collect();
        Batcher {
            schema,
            columns,
            builders,
            batch_rows,
            rows: 0,
            bytes: 0,
        }
    }

    /// Hand the rows gathered so far to `emit` (nothing when there are none); false when
    /// `emit` stops the scan.
    fn flush(&mut self, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<bool> {
        if self.rows == 0 {
            return Ok(true);
        }
        let batch = finish_batch(&self.schema, &mut self.builders, self.rows)?;
        (self.rows, self.bytes) = (0, 0);
        Ok(emit(batch))
    }

    /// Add one live row (its values in the layout `layout` maps the columns to). The batch
    /// ends before the row that would take it over the byte target (after it, 17 rows of 1 MB
    /// made one batch over the target), unless the row alone is the batch.
    fn push(
        &mut self,
        pk: &[u8],
        values: &[Value],
        layout: &[Option<usize>],
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<bool> {
        let columns = self.columns;
        let value_at = |i: usize| match &columns[i] {
            ScanColumn::RowId => None,
            ScanColumn::Column {
                value_for_older_rows,
                ..
            } => Some(match layout[i] {
                Some(pos) => values.get(pos).unwrap_or(&Value::Null),
                None => value_for_older_rows.as_ref().unwrap_or(&Value::Null),
            }),
        };
        let row_bytes: usize = (0..columns.len())
            .map(|i| match value_at(i) {
                Some(Value::Text(t)) => t.len(),
                Some(Value::Bytes(b)) => b.len(),
                _ => 0,
            })
            .sum();
        let target = crate::encoding::arrow_values::SCAN_BATCH_BYTES;
        if self.rows > 0 && self.bytes + row_bytes > target && !self.flush(emit)? {
            return Ok(false);
        }
        self.bytes += row_bytes;
        for (i, c) in columns.iter().enumerate() {
            match c {
                ScanColumn::RowId => self.builders[i].append(&decode_rowid(pk)?)?,
                ScanColumn::Column { .. } => {
                    self.builders[i].append(value_at(i).unwrap_or(&Value::Null))?
                }
            }
        }
        self.rows += 1;
        if self.rows == self.batch_rows || self.bytes >= target {
            return self.flush(emit);
        }
        Ok(true)
    }
}

/// The first and last primary keys of the hot rows `it` sees (its snapshot: the one the merge
/// reads), or None when there are none.
fn hot_key_range(
    it: &mut DBRawIteratorWithThreadMode<'_, DB>,
    prefix_len: usize,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let pk_here = |it: &DBRawIteratorWithThreadMode<'_, DB>| {
        it.key()
            .and_then(|k| split_row_key(k, prefix_len))
            .map(|(pk, _)| pk.to_vec())
    };
    it.seek_to_first();
    let first = pk_here(it);
    it.seek_to_last();
    let last = pk_here(it);
    it.status()?;
    Ok(first.zip(last))
}

fn schema_changed() -> Error {
    Error::ConstraintViolation(
        "the table's schema changed while the statement ran; run it again".into(),
    )
}

/// For each scan column, its position among the values of a row written at `version`.
fn projection_layout(def: &TableDef, version: u32, columns: &[ScanColumn]) -> Vec<Option<usize>> {
    crate::encoding::layout::positions(
        def,
        version,
        columns.iter().map(|c| match c {
            ScanColumn::Column { id, .. } => Some(*id),
            ScanColumn::RowId => None,
        }),
    )
}

fn finish_batch(
    schema: &SchemaRef,
    builders: &mut [ColumnBuilder],
    rows: usize,
) -> Result<RecordBatch> {
    let arrays = builders
        .iter_mut()
        .map(|b| b.finish())
        .collect::<Result<Vec<_>>>()?;
    let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &opts,
    )?)
}
