//! Reading one scope as one table: hot rows and Parquet segments merged.
//!
//! Every source (the hot buffer, each segment) yields row versions in primary-key order with
//! at most one version per key. A k-way merge keeps, for each key, the version with the
//! highest seq, drops it if it is a tombstone (or an expired STREAM row), and appends the
//! rest to Arrow builders. Memory holds one pending version per source, whatever the table's
//! size.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use rocksdb::{DBRawIteratorWithThreadMode, DB};

use crate::catalog::TableDef;
use crate::clock::now_millis;
use crate::cold::manifest;
use crate::cold::segment::{SegmentColumns, SegmentReader};
use crate::encoding::arrow_values::ColumnBuilder;
use crate::encoding::row_codec::{decode_row, is_tombstone};
use crate::encoding::row_key::{encode_pk, prefix_upper_bound, scope_prefix, split_row_key, Scope};
use crate::error::{Error, Result};
use crate::hot::rows::{decode_rowid, RowStore};
use crate::storage::keyspace::CF_ROWS;
use crate::storage::rocks::Store;
use crate::types::RowVersion;
use crate::types::{DataType, Value};

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

type Source<'a> = Box<dyn Iterator<Item = Result<RowVersion>> + 'a>;

/// The newest hot version of each key of a scope (tombstones and expired rows included, as
/// versions without values).
struct HotSource<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    def: &'a TableDef,
    prefix_len: usize,
    last_pk: Option<Vec<u8>>,
    now_ms: u64,
    started: bool,
}

impl HotSource<'_> {
    fn next_version(&mut self) -> Result<Option<RowVersion>> {
        if self.started {
            self.it.next();
        }
        self.started = true;
        while self.it.valid() {
            let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
                break;
            };
            let (pk, seq) = split_row_key(k, self.prefix_len)
                .ok_or_else(|| Error::Internal("malformed row key".into()))?;
            if self.last_pk.as_deref() == Some(pk) {
                self.it.next();
                continue; // an older version of a key already returned
            }
            self.last_pk = Some(pk.to_vec());
            if is_tombstone(v) || self.def.is_expired(seq, self.now_ms) {
                return Ok(Some(RowVersion {
                    pk: pk.to_vec(),
                    seq,
                    schema_version: 0,
                    values: None,
                }));
            }
            let row = decode_row(v)?;
            return Ok(Some(RowVersion {
                pk: pk.to_vec(),
                seq,
                schema_version: row.schema_version,
                values: row.values,
            }));
        }
        self.it.status()?;
        Ok(None)
    }
}

impl Iterator for HotSource<'_> {
    type Item = Result<RowVersion>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_version().transpose()
    }
}

/// A source's pending version, ordered for a min-heap on (pk asc, seq desc).
struct Head {
    row: RowVersion,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the smallest pk, then highest seq.
        other
            .row
            .pk
            .cmp(&self.row.pk)
            .then(self.row.seq.cmp(&other.row.seq))
    }
}

/// Yields the winning version of each key across sources.
struct Merge<'a> {
    sources: Vec<Source<'a>>,
    heap: BinaryHeap<Head>,
}

impl<'a> Merge<'a> {
    fn new(mut sources: Vec<Source<'a>>) -> Result<Merge<'a>> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(row) = s.next().transpose()? {
                heap.push(Head { row, source: i });
            }
        }
        Ok(Merge { sources, heap })
    }

    fn advance(&mut self, source: usize) -> Result<()> {
        if let Some(row) = self.sources[source].next().transpose()? {
            self.heap.push(Head { row, source });
        }
        Ok(())
    }

    /// The key of the next winner, without taking it.
    fn peek_pk(&self) -> Option<&[u8]> {
        self.heap.peek().map(|h| h.row.pk.as_slice())
    }

    fn next_winner(&mut self) -> Result<Option<RowVersion>> {
        let Some(top) = self.heap.pop() else {
            return Ok(None);
        };
        self.advance(top.source)?;
        // Drop every other source's (older) version of the same key.
        while self.heap.peek().is_some_and(|h| h.row.pk == top.row.pk) {
            if let Some(h) = self.heap.pop() {
                self.advance(h.source)?;
            }
        }
        Ok(Some(top.row))
    }
}

impl RowStore {
    /// A segment's bytes. A segment file goes only with its table (DROP TABLE, DROP
    /// NAMESPACE) or its scope's rows (DROP USER); a statement that read the manifest before
    /// such a drop finds the file gone: the table was dropped under it (TABLE_NOT_FOUND), not a
    /// fault of the server (it answered 500).
    fn segment_bytes(&self, def: &TableDef, scope: &Scope, path: &str) -> Result<bytes::Bytes> {
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
        let prefix = scope_prefix(def.id, scope);
        let pk_filter = match &range.pk_equals {
            Some(v) => {
                let mut pk = Vec::new();
                if !encode_pk(v, &mut pk) {
                    return Ok(());
                }
                Some(pk)
            }
            None => None,
        };
        let mut lower = prefix.clone();
        if let Some(pk) = &pk_filter {
            lower.extend_from_slice(pk);
        }
        let upper = prefix_upper_bound(&lower);
        let store = self.store();
        // Order matters: the hot iterator (a consistent view from its creation) must exist
        // before the manifest is read. A flush committing in between then shows its rows in
        // both (the merge keeps one: same key, same seq), never in neither.
        let mut read_options = Store::range_read_options(&lower, &upper);
        if pk_filter.is_none() {
            // A whole scope read once does not go through the block cache: it would push out
            // what point reads keep there, and the blocks it caches would be counted as this
            // statement's memory (allocated on its thread, freed by others).
            read_options.fill_cache(false);
        }
        let mut it = store
            .db()
            .raw_iterator_cf_opt(store.cf(CF_ROWS)?, read_options);
        let manifest = manifest::load(store, def.id, scope)?;
        // Key range of the hot rows (the iterator's snapshot, the one the merge reads), for
        // isolating segments; only worth two seeks when there are segments to isolate.
        let columnar_ok = pk_filter.is_none()
            && !manifest.segments.is_empty()
            && columns
                .iter()
                .all(|c| matches!(c, ScanColumn::Column { .. }));
        let mut hot_range: Option<(Vec<u8>, Vec<u8>)> = None;
        if columnar_ok {
            it.seek_to_first();
            let first = it
                .key()
                .and_then(|k| split_row_key(k, prefix.len()))
                .map(|(pk, _)| pk.to_vec());
            it.seek_to_last();
            let last = it
                .key()
                .and_then(|k| split_row_key(k, prefix.len()))
                .map(|(pk, _)| pk.to_vec());
            it.status()?;
            hot_range = first.zip(last);
        }
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

        let wanted: Vec<u32> = columns
            .iter()
            .filter_map(|c| match c {
                ScanColumn::Column { id, .. } => Some(*id),
                ScanColumn::RowId => None,
            })
            .collect();
        let isolated = if columnar_ok {
            manifest::isolated_segments(&manifest.segments, hot_range.as_ref())
        } else {
            Vec::new()
        };
        let mut columnar: Vec<(&manifest::SegmentMeta, Vec<u8>)> = Vec::new();
        for (i, seg) in manifest.segments.iter().enumerate() {
            if pk_filter.as_ref().is_some_and(|pk| !seg.may_contain(pk)) {
                continue; // pruned by the manifest's key range
            }
            if let Some(min) = isolated.get(i).cloned().flatten() {
                columnar.push((seg, min));
                continue;
            }
            let data = self.segment_bytes(def, scope, &seg.path)?;
            let reader = SegmentReader::open(
                def,
                data,
                seg.schema_version,
                &wanted,
                pk_filter.clone(),
                batch_rows,
            )?;
            sources.push(Box::new(reader));
        }
        columnar.sort_by(|a, b| a.1.cmp(&b.1));
        let mut merge = Merge::new(sources)?;

        let mut layouts: HashMap<u32, Vec<Option<usize>>> = HashMap::new();
        let mut builders: Vec<ColumnBuilder> = columns
            .iter()
            .map(|c| match c {
                ScanColumn::Column { data_type, .. } => ColumnBuilder::new(data_type, batch_rows),
                ScanColumn::RowId => ColumnBuilder::new(&DataType::BigInt, batch_rows),
            })
            .collect();
        let limit = range.limit.unwrap_or(usize::MAX);
        let (mut in_batch, mut total) = (0usize, 0usize);
        let mut in_batch_bytes = 0usize;
        // Merged rows in key order; before each isolated segment, the merged rows whose keys
        // sort before it, then the segment's columns as they are. The output stays in key order.
        let mut next_columnar = columnar.into_iter().peekable();
        loop {
            if total >= limit {
                break; // the rows already in the builders still go out below
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
                if in_batch > 0 {
                    if !emit(finish_batch(&schema, &mut builders, in_batch)?) {
                        return Ok(());
                    }
                    (in_batch, in_batch_bytes) = (0, 0);
                }
                if seg.schema_version > def.schema_version {
                    return Err(schema_changed());
                }
                let data = self.segment_bytes(def, scope, &seg.path)?;
                let mut reader =
                    SegmentColumns::open(def, data, seg.schema_version, &wanted, batch_rows)?;
                while let Some((arrays, rows)) = reader.next_live()? {
                    let take = rows.min(limit - total);
                    let mut out = Vec::with_capacity(columns.len());
                    for c in columns {
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
                    total += take;
                    if !emit(RecordBatch::try_new_with_options(
                        schema.clone(),
                        out,
                        &opts,
                    )?) || total >= limit
                    {
                        return Ok(());
                    }
                }
                continue;
            }
            let Some(row) = merge.next_winner()? else {
                continue;
            };
            let Some(values) = row.values else { continue };
            if row.schema_version > def.schema_version {
                // Written under a schema newer than this statement's plan.
                return Err(schema_changed());
            }
            let layout = layouts
                .entry(row.schema_version)
                .or_insert_with(|| projection_layout(def, row.schema_version, columns));
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
            let row_bytes: usize = columns
                .iter()
                .enumerate()
                .map(|(i, _)| match value_at(i) {
                    Some(Value::Text(t)) => t.len(),
                    Some(Value::Bytes(b)) => b.len(),
                    _ => 0,
                })
                .sum();
            // The batch ends before the row that would take it over the target (after it, 17
            // rows of 1 MB made one batch over the target), unless the row alone is the batch.
            if in_batch > 0
                && in_batch_bytes + row_bytes > crate::encoding::arrow_values::SCAN_BATCH_BYTES
            {
                if !emit(finish_batch(&schema, &mut builders, in_batch)?) {
                    return Ok(());
                }
                (in_batch, in_batch_bytes) = (0, 0);
            }
            in_batch_bytes += row_bytes;
            for (i, c) in columns.iter().enumerate() {
                match c {
                    ScanColumn::RowId => builders[i].append(&decode_rowid(&row.pk)?)?,
                    ScanColumn::Column { .. } => {
                        builders[i].append(value_at(i).unwrap_or(&Value::Null))?
                    }
                }
            }
            in_batch += 1;
            total += 1;
            if in_batch == batch_rows
                || in_batch_bytes >= crate::encoding::arrow_values::SCAN_BATCH_BYTES
            {
                if !emit(finish_batch(&schema, &mut builders, in_batch)?) {
                    return Ok(());
                }
                (in_batch, in_batch_bytes) = (0, 0);
            }
        }
        if in_batch > 0 {
            emit(finish_batch(&schema, &mut builders, in_batch)?);
        }
        Ok(())
    }
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
