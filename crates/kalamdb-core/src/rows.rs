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
use arrow::datatypes::SchemaRef;
use parking_lot::Mutex;
use rocksdb::WriteBatch;

use crate::batch::{conform, value_at, ColumnBuilder};
use crate::catalog::{TableDef, TableKind};
use crate::codec::{decode_row, encode_row, encode_tombstone, is_tombstone};
use crate::error::{Error, Result};
use crate::keys::{
    encode_pk, now_millis, prefix_upper_bound, row_key, scope_prefix, seq_millis, split_row_key,
    Scope, SeqGenerator,
};
use crate::store::{Store, CF_ROWS};
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
    Column { id: u32, data_type: DataType, value_for_older_rows: Option<Value> },
    /// The hidden row id of a table without a declared primary key (as BIGINT).
    RowId,
}

/// Reads and writes row versions of tables.
#[derive(Debug)]
pub struct RowStore {
    store: Store,
    seq: Arc<SeqGenerator>,
    scope_locks: Mutex<HashMap<(u64, Scope), Arc<Mutex<()>>>>,
}

/// Check a value against its column type's rules (JSON must parse, UUIDs are normalised).
pub fn check_value(dt: &DataType, v: Value) -> Result<Value> {
    match (dt, v) {
        (DataType::Json, Value::Text(s)) => {
            serde_json::from_str::<serde::de::IgnoredAny>(&s).map_err(|e| {
                Error::TypeMismatch(format!("invalid JSON value: {e}"))
            })?;
            Ok(Value::Text(s))
        }
        (DataType::Uuid, Value::Text(s)) => {
            let u = uuid::Uuid::parse_str(&s)
                .map_err(|_| Error::TypeMismatch(format!("invalid UUID value '{}'", crate::catalog::truncate_for_message(&s))))?;
            Ok(Value::Text(u.hyphenated().to_string()))
        }
        (_, v) => Ok(v),
    }
}

impl RowStore {
    pub fn new(store: Store, seq: Arc<SeqGenerator>) -> RowStore {
        RowStore { store, seq, scope_locks: Mutex::new(HashMap::new()) }
    }

    pub fn seq(&self) -> &SeqGenerator {
        &self.seq
    }

    fn scope_lock(&self, table_id: u64, scope: &Scope) -> Arc<Mutex<()>> {
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
            arrays.push(conform(batch.column(i), &c.data_type)?);
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
            return Err(Error::ConstraintViolation("primary key must not be NULL".into()));
        }
        Ok(pk)
    }

    /// Whether the newest version of `pk` in the scope is a live (not deleted, not expired) row.
    fn is_live(&self, def: &TableDef, prefix: &[u8], pk: &[u8]) -> Result<bool> {
        let mut lower = prefix.to_vec();
        lower.extend_from_slice(pk);
        let upper = prefix_upper_bound(&lower);
        let ro = Store::range_read_options(&lower, &upper);
        let mut it = self.store.db().raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, ro);
        it.seek(&lower);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
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
        Ok(false)
    }

    /// Insert new rows (values in live-column order). Fails with CONSTRAINT_VIOLATION, writing
    /// nothing, if a primary key already exists in the scope or repeats within `rows`.
    pub fn insert(&self, def: &TableDef, scope: &Scope, rows: Vec<Vec<Value>>) -> Result<u64> {
        let prefix = scope_prefix(def.id, scope);
        let pk_idx = Self::pk_index(def);
        let lock = self.scope_lock(def.id, scope);
        let _g = lock.lock();
        let mut batch = WriteBatch::default();
        let cf = self.store.cf(CF_ROWS)?;
        let mut seen = HashSet::with_capacity(rows.len());
        let mut buf = Vec::new();
        for row in &rows {
            let seq = self.seq.next();
            let pk = match pk_idx {
                Some(i) => {
                    let pk = Self::encode_key_value(&row[i])?;
                    if !seen.insert(pk.clone()) || self.is_live(def, &prefix, &pk)? {
                        return Err(Error::ConstraintViolation(format!(
                            "duplicate primary key {} in table '{}'",
                            display_value(&row[i]),
                            def.qualified_name()
                        )));
                    }
                    pk
                }
                None => Self::encode_key_value(&Value::BigInt(seq as i64))?,
            };
            buf.clear();
            encode_row(def.schema_version, row, &mut buf);
            batch.put_cf(cf, row_key(&prefix, &pk, seq), &buf);
        }
        self.store.write(batch)?;
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
        let mut updated = 0;
        for row in &rows {
            let key_value = match pk_idx {
                Some(i) => &row[i],
                None => row.get(ncols).ok_or_else(|| Error::Internal("update without row id".into()))?,
            };
            let pk = Self::encode_key_value(key_value)?;
            if !self.is_live(def, &prefix, &pk)? {
                continue;
            }
            buf.clear();
            encode_row(def.schema_version, &row[..ncols], &mut buf);
            batch.put_cf(cf, row_key(&prefix, &pk, self.seq.next()), &buf);
            updated += 1;
        }
        self.store.write(batch)?;
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
        Ok(deleted)
    }

    /// Scan the latest live version of every row of one scope into Arrow batches of at most
    /// `batch_rows` rows with `schema`, handing each to `emit`; `emit` returns false to stop.
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
        let mut lower = prefix.clone();
        if let Some(v) = &range.pk_equals {
            lower.extend_from_slice(&Self::encode_key_value(v)?);
        }
        let upper = prefix_upper_bound(&lower);
        let ro = Store::range_read_options(&lower, &upper);
        let mut it = self.store.db().raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, ro);
        it.seek(&lower);

        let now = now_millis();
        let mut layouts: HashMap<u32, Vec<Option<usize>>> = HashMap::new();
        let mut builders: Vec<ColumnBuilder> = columns
            .iter()
            .map(|c| match c {
                ScanColumn::Column { data_type, .. } => ColumnBuilder::new(data_type, batch_rows),
                ScanColumn::RowId => ColumnBuilder::new(&DataType::BigInt, batch_rows),
            })
            .collect();
        let mut in_batch = 0usize;
        let mut total = 0usize;
        let mut last_pk: Vec<u8> = Vec::new();
        let mut have_last = false;
        let limit = range.limit.unwrap_or(usize::MAX);
        let pk_filter = range.pk_equals.as_ref().map(Self::encode_key_value).transpose()?;

        while it.valid() && total < limit {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            let Some((pk, seq)) = split_row_key(k, prefix.len()) else {
                return Err(Error::Internal("malformed row key".into()));
            };
            if have_last && pk == last_pk.as_slice() {
                it.next();
                continue; // an older version of a key already handled
            }
            last_pk.clear();
            last_pk.extend_from_slice(pk);
            have_last = true;
            if pk_filter.as_ref().is_some_and(|f| f.as_slice() != pk)
                || is_tombstone(v)
                || expired(def, seq, now)
            {
                it.next();
                continue;
            }
            let row = decode_row(v)?;
            let values = row.values.unwrap_or_default();
            let layout = layouts
                .entry(row.schema_version)
                .or_insert_with(|| projection_layout(def, row.schema_version, columns));
            for (i, c) in columns.iter().enumerate() {
                match c {
                    ScanColumn::RowId => builders[i].append(&decode_rowid(pk)?)?,
                    ScanColumn::Column { value_for_older_rows, .. } => match layout[i] {
                        Some(pos) => builders[i].append(values.get(pos).unwrap_or(&Value::Null))?,
                        None => builders[i]
                            .append(value_for_older_rows.as_ref().unwrap_or(&Value::Null))?,
                    },
                }
            }
            in_batch += 1;
            total += 1;
            if in_batch == batch_rows {
                if !emit(finish_batch(&schema, &mut builders, in_batch)?) {
                    return Ok(());
                }
                in_batch = 0;
            }
            it.next();
        }
        it.status()?;
        if in_batch > 0 {
            emit(finish_batch(&schema, &mut builders, in_batch)?);
        }
        Ok(())
    }

    /// Number of row versions (live, superseded and tombstones) of a table in the hot buffer.
    pub fn count_versions(&self, table_id: u64) -> Result<u64> {
        let lower = crate::keys::table_prefix(table_id);
        let upper = prefix_upper_bound(&lower);
        let ro = Store::range_read_options(&lower, &upper);
        let mut it = self.store.db().raw_iterator_cf_opt(self.store.cf(CF_ROWS)?, ro);
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

/// For each scan column, its position among the values of a row written at `version`.
fn projection_layout(def: &TableDef, version: u32, columns: &[ScanColumn]) -> Vec<Option<usize>> {
    let layout = def.layout_at(version);
    columns
        .iter()
        .map(|c| match c {
            ScanColumn::Column { id, .. } => layout.iter().position(|x| x == id),
            ScanColumn::RowId => None,
        })
        .collect()
}

fn decode_rowid(pk: &[u8]) -> Result<Value> {
    let b: [u8; 8] = pk.try_into().map_err(|_| Error::Internal("malformed row id".into()))?;
    Ok(Value::BigInt((u64::from_be_bytes(b) ^ (1 << 63)) as i64))
}

fn expired(def: &TableDef, seq: u64, now_ms: u64) -> bool {
    match (def.kind, def.options.ttl_seconds) {
        (TableKind::Stream, Some(ttl)) => seq_millis(seq).saturating_add(ttl * 1000) <= now_ms,
        _ => false,
    }
}

fn finish_batch(schema: &SchemaRef, builders: &mut [ColumnBuilder], rows: usize) -> Result<RecordBatch> {
    let arrays = builders.iter_mut().map(|b| b.finish()).collect::<Result<Vec<_>>>()?;
    let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema.clone(), arrays, &opts)?)
}

/// Short text of a value for error messages.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("'{}'", crate::catalog::truncate_for_message(s)),
        Value::BigInt(x) => x.to_string(),
        Value::Int(x) => x.to_string(),
        Value::SmallInt(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}
