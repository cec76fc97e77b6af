//! Parquet encoding of flushed row versions.
//!
//! A segment holds, for one scope, the latest version (at the flush's snapshot) of a run of
//! primary keys, in key order. Its columns are three system columns followed by the table's
//! live columns at the segment's schema version:
//!
//! ```text
//! _seq BIGINT      the version's seq
//! _deleted BOOLEAN a tombstone (all table columns NULL), kept so it keeps hiding older segments
//! _pk BYTEA        the order-preserving primary-key encoding (see keys.rs): merge and pruning key
//! <columns>        named as the table's columns; field metadata carries the column id
//! ```
//!
//! Written with zstd and column statistics.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::catalog::TableDef;
use crate::encoding::arrow_values::{value_at, ColumnBuilder};
use crate::error::{Error, Result};
use crate::types::RowVersion;
use crate::types::{DataType, Value, TYPE_METADATA_KEY};

pub const SEQ_COLUMN: &str = "_seq";
pub const DELETED_COLUMN: &str = "_deleted";
pub const PK_COLUMN: &str = "_pk";
const SYSTEM_COLUMNS: usize = 3;
/// Field metadata key holding a column's stable id.
pub const COLUMN_ID_METADATA_KEY: &str = "kalamdb.column_id";

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page (the unit a point read decodes).
const PAGE_ROWS: usize = 2048;

/// Arrow schema of a segment written at `version`.
pub fn segment_schema(def: &TableDef, version: u32) -> SchemaRef {
    let mut fields = vec![
        Field::new(SEQ_COLUMN, ArrowType::Int64, false),
        Field::new(DELETED_COLUMN, ArrowType::Boolean, false),
        Field::new(PK_COLUMN, ArrowType::Binary, false),
    ];
    for c in def.columns_at(version) {
        fields.push(
            Field::new(&c.name, c.data_type.arrow_type(), true).with_metadata(HashMap::from([
                (COLUMN_ID_METADATA_KEY.to_string(), c.id.to_string()),
                (TYPE_METADATA_KEY.to_string(), c.data_type.to_string()),
            ])),
        );
    }
    Arc::new(Schema::new(fields))
}

/// Encode row versions (already in the layout of `version`, in key order) as one Parquet file.
pub fn encode_segment(def: &TableDef, version: u32, rows: &[RowVersion]) -> Result<Vec<u8>> {
    let schema = segment_schema(def, version);
    let types: Vec<DataType> = def.columns_at(version).map(|c| c.data_type).collect();
    let mut seqs = Vec::with_capacity(rows.len());
    let mut deleted = Vec::with_capacity(rows.len());
    let mut pks: Vec<&[u8]> = Vec::with_capacity(rows.len());
    let mut builders: Vec<ColumnBuilder> = types
        .iter()
        .map(|t| ColumnBuilder::new(t, rows.len()))
        .collect();
    for r in rows {
        seqs.push(r.seq as i64);
        deleted.push(r.values.is_none());
        pks.push(&r.pk);
        match &r.values {
            Some(values) => {
                if values.len() != types.len() {
                    return Err(Error::Internal(
                        "row does not match the segment layout".into(),
                    ));
                }
                for (b, v) in builders.iter_mut().zip(values) {
                    b.append(v)?;
                }
            }
            None => {
                for b in builders.iter_mut() {
                    b.append(&Value::Null)?;
                }
            }
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(seqs)),
        Arc::new(BooleanArray::from(deleted)),
        Arc::new(BinaryArray::from(pks)),
    ];
    for b in builders.iter_mut() {
        columns.push(b.finish()?);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(parquet_error)?,
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Small pages: a point read decodes one page per column, not a whole row group.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            TABLE_ID_KEY.to_string(),
            def.id.to_string(),
        )]))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    let meta = writer.close().map_err(parquet_error)?;
    // Rows out must equal rows in before anything is committed.
    if meta.file_metadata().num_rows() as usize != rows.len() {
        return Err(Error::Internal(format!(
            "segment holds {} rows, expected {}",
            meta.file_metadata().num_rows(),
            rows.len()
        )));
    }
    Ok(out)
}

/// File metadata key holding the id of the table a segment belongs to.
const TABLE_ID_KEY: &str = "kalamdb.table_id";

/// A segment's path names its table, not the table's incarnation: a statement that read the
/// manifest of a table just dropped and created again could read the new table's file at the
/// same path (a 500 under DROP/CREATE races with flushes). A segment that says it belongs to
/// another table id is that: the statement's table is gone (TABLE_NOT_FOUND). Segments written
/// before the key existed carry none.
fn check_table(def: &TableDef, meta: &ParquetMetaData) -> Result<()> {
    let id = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == TABLE_ID_KEY))
        .and_then(|k| k.value.as_deref());
    match id {
        Some(id) if id != def.id.to_string() => Err(Error::TableNotFound(def.qualified_name())),
        _ => Ok(()),
    }
}

/// A reader of the `roots` columns only, in batches sized for the widest of them.
fn projected_reader(
    builder: ParquetRecordBatchReaderBuilder<Bytes>,
    roots: Vec<usize>,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader> {
    let batch_rows = rows_per_batch(builder.metadata(), &roots, batch_rows);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    builder
        .with_projection(mask)
        .with_batch_size(batch_rows)
        .build()
        .map_err(parquet_error)
}

fn parquet_error(e: parquet::errors::ParquetError) -> Error {
    Error::Internal(format!("parquet: {e}"))
}

/// Reads the row versions of one segment, decoding only the columns in `wanted` (column ids);
/// other columns of the layout come back as NULL.
pub struct SegmentReader {
    reader: ParquetRecordBatchReader,
    schema_version: u32,
    /// For each column of the segment's layout: (position in the projected batch, type).
    layout: Vec<Option<(usize, DataType)>>,
    batch: Option<RecordBatch>,
    row: usize,
    /// Only the rows with these keys (encoded, sorted, distinct): point reads.
    pk_filter: Option<std::sync::Arc<Vec<Vec<u8>>>>,
}

impl SegmentReader {
    pub fn open(
        def: &TableDef,
        data: Bytes,
        schema_version: u32,
        wanted: &[u32],
        pk_filter: Option<std::sync::Arc<Vec<Vec<u8>>>>,
        batch_rows: usize,
    ) -> Result<SegmentReader> {
        // A point read decodes only the pages whose `_pk` range may hold one of its keys
        // (segments are sorted by key and carry page statistics): a 100k-row segment is
        // otherwise decoded whole for one row.
        let policy = if pk_filter.is_some() {
            PageIndexPolicy::Optional
        } else {
            PageIndexPolicy::Skip
        };
        let options = ArrowReaderOptions::new().with_page_index_policy(policy);
        let mut builder = ParquetRecordBatchReaderBuilder::try_new_with_options(data, options)
            .map_err(parquet_error)?;
        check_table(def, builder.metadata())?;
        if let Some(keys) = &pk_filter {
            if let Some(selection) = pages_for_keys(builder.metadata(), keys) {
                builder = builder.with_row_selection(selection);
            }
        }
        let layout_cols: Vec<_> = def.columns_at(schema_version).collect();
        let mut roots = vec![0, 1, 2];
        let mut layout = Vec::with_capacity(layout_cols.len());
        for (i, c) in layout_cols.iter().enumerate() {
            if wanted.contains(&c.id) {
                layout.push(Some((roots.len(), c.data_type)));
                roots.push(SYSTEM_COLUMNS + i);
            } else {
                layout.push(None);
            }
        }
        let reader = projected_reader(builder, roots, batch_rows)?;
        Ok(SegmentReader {
            reader,
            schema_version,
            layout,
            batch: None,
            row: 0,
            pk_filter,
        })
    }

    fn next_row(&mut self) -> Result<Option<RowVersion>> {
        loop {
            if let Some(b) = &self.batch {
                if self.row < b.num_rows() {
                    let r = self.row;
                    self.row += 1;
                    let pks = downcast::<BinaryArray>(b.column(2))?;
                    if let Some(keys) = &self.pk_filter {
                        let pk = pks.value(r);
                        if keys.binary_search_by(|k| k.as_slice().cmp(pk)).is_err() {
                            continue;
                        }
                    }
                    let seq = downcast::<Int64Array>(b.column(0))?.value(r) as u64;
                    let deleted = downcast::<BooleanArray>(b.column(1))?.value(r);
                    let values = if deleted {
                        None
                    } else {
                        let mut v = Vec::with_capacity(self.layout.len());
                        for slot in &self.layout {
                            v.push(match slot {
                                Some((pos, dt)) => value_at(b.column(*pos), r, dt)?,
                                None => Value::Null,
                            });
                        }
                        Some(v)
                    };
                    return Ok(Some(RowVersion {
                        pk: pks.value(r).to_vec(),
                        seq,
                        schema_version: self.schema_version,
                        values,
                    }));
                }
            }
            match self.reader.next() {
                None => return Ok(None),
                Some(b) => {
                    self.batch = Some(b?);
                    self.row = 0;
                }
            }
        }
    }
}

/// At most `batch_rows`, and few enough that a decoded batch of the projected columns stays
/// near [`SCAN_BATCH_BYTES`](crate::encoding::arrow_values::SCAN_BATCH_BYTES) by the widest row group's
/// average row: 8,192 rows of 1 MB values were one 8 GB batch, decoded before any check.
fn rows_per_batch(meta: &ParquetMetaData, roots: &[usize], batch_rows: usize) -> usize {
    let widest_row = meta
        .row_groups()
        .iter()
        .map(|rg| {
            // Text and bytes: the values' own length (a dictionary page holds a repeated value
            // once, but every row of the batch gets a copy); other columns: their pages.
            let bytes: i64 = roots
                .iter()
                .filter_map(|&r| rg.columns().get(r))
                .map(|c| {
                    c.unencoded_byte_array_data_bytes()
                        .unwrap_or(0)
                        .max(c.uncompressed_size())
                })
                .sum();
            usize::try_from(bytes).unwrap_or(usize::MAX)
                / usize::try_from(rg.num_rows()).unwrap_or(1).max(1)
        })
        .max()
        .unwrap_or(0);
    (crate::encoding::arrow_values::SCAN_BATCH_BYTES / widest_row.max(1))
        .clamp(1, batch_rows.max(1))
}

/// Rows of the pages whose `_pk` bounds may contain `pk`, from the page index; `None` when the
/// file has no usable page index (then every row is read and filtered).
fn pages_for_keys(meta: &ParquetMetaData, keys: &[Vec<u8>]) -> Option<RowSelection> {
    let (columns, offsets) = (meta.column_index()?, meta.offset_index()?);
    let mut selectors = Vec::new();
    for (rg, rg_meta) in meta.row_groups().iter().enumerate() {
        let rows = usize::try_from(rg_meta.num_rows()).ok()?;
        let ColumnIndexMetaData::BYTE_ARRAY(index) = columns.get(rg)?.get(2)? else {
            return None;
        };
        let pages = offsets.get(rg)?.get(2)?.page_locations();
        for (p, page) in pages.iter().enumerate() {
            let first = usize::try_from(page.first_row_index).ok()?;
            let end = match pages.get(p + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            // Bounds may be truncated (min rounded down, max rounded up): still safe to compare.
            let may_hold = match (index.min_value(p), index.max_value(p)) {
                (Some(min), Some(max)) => {
                    // The first key at or above the page's minimum, if it is not above its max.
                    let i = keys.partition_point(|k| k.as_slice() < min);
                    keys.get(i).is_some_and(|k| k.as_slice() <= max)
                }
                _ => true,
            };
            selectors.push(if may_hold {
                RowSelector::select(end - first)
            } else {
                RowSelector::skip(end - first)
            });
        }
    }
    Some(RowSelection::from(selectors))
}

impl Iterator for SegmentReader {
    type Item = Result<RowVersion>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

fn downcast<T: 'static>(a: &ArrayRef) -> Result<&T> {
    a.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::Internal("unexpected segment column type".into()))
}

/// Reads one segment column-wise, for a segment whose keys no other source of the scan holds
/// (scan.rs decides): batches of the wanted columns, deleted rows (tombstones) removed. No
/// per-row decoding: the Parquet columns are the Arrow arrays the scan returns.
pub struct SegmentColumns {
    reader: ParquetRecordBatchReader,
    /// Column id -> position in the projected batch (after `_deleted` at 0).
    positions: Vec<(u32, usize)>,
}

impl SegmentColumns {
    pub fn open(
        def: &TableDef,
        data: Bytes,
        schema_version: u32,
        wanted: &[u32],
        batch_rows: usize,
    ) -> Result<SegmentColumns> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(data).map_err(parquet_error)?;
        check_table(def, builder.metadata())?;
        let layout_cols: Vec<_> = def.columns_at(schema_version).collect();
        let mut roots = vec![1];
        let mut positions = Vec::new();
        for (i, c) in layout_cols.iter().enumerate() {
            if wanted.contains(&c.id) {
                positions.push((c.id, roots.len()));
                roots.push(SYSTEM_COLUMNS + i);
            }
        }
        let reader = projected_reader(builder, roots, batch_rows)?;
        Ok(SegmentColumns { reader, positions })
    }

    /// The next batch's live rows: (arrays by column id, row count). Empty batches are skipped.
    pub fn next_live(&mut self) -> Result<Option<(HashMap<u32, ArrayRef>, usize)>> {
        loop {
            let Some(batch) = self.reader.next() else {
                return Ok(None);
            };
            let batch = batch?;
            let deleted = downcast::<BooleanArray>(batch.column(0))?;
            let keep = arrow::compute::not(deleted)?;
            let rows = keep.true_count();
            if rows == 0 {
                continue;
            }
            let all = rows == batch.num_rows();
            let mut arrays = HashMap::with_capacity(self.positions.len());
            for &(id, pos) in &self.positions {
                let a = batch.column(pos);
                arrays.insert(
                    id,
                    if all {
                        a.clone()
                    } else {
                        arrow::compute::filter(a, &keep)?
                    },
                );
            }
            return Ok(Some((arrays, rows)));
        }
    }
}
