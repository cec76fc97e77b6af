//! The raw limits of KalamDB's components, in this process, on the same rows: RocksDB
//! WriteBatches with KalamDB's options and sync setting, arrow-rs `ArrowWriter` with KalamDB's
//! Parquet settings, and DataFusion over the Parquet files KalamDB wrote.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::{col, lit, ParquetReadOptions, SessionContext};
use kalamdb_core::{encode_pk, encode_row, row_key, scope_prefix, Scope, Store, Value, CF_ROWS};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rocksdb::WriteBatch;

use crate::data;

fn values(i: i64) -> Vec<Value> {
    vec![
        Value::BigInt(i),
        Value::Text(data::user_key(i)),
        Value::Text(data::body(i)),
        Value::Double(data::v(i)),
        Value::Timestamp(data::ts_us(i)),
        Value::Boolean(data::b(i)),
    ]
}

/// A RocksDB opened exactly as KalamDB opens its hot store.
pub struct RawRocks {
    store: Arc<Store>,
    prefix: Vec<u8>,
    seq: AtomicI64,
    _dir: tempfile::TempDir,
}

impl RawRocks {
    pub fn open(scratch: &Path) -> RawRocks {
        let dir = tempfile::Builder::new()
            .prefix("kalamdb-bench-rocks-")
            .tempdir_in(scratch)
            .unwrap();
        let store = Arc::new(Store::open(dir.path()).expect("open RocksDB"));
        RawRocks {
            store,
            prefix: scope_prefix(1, &Scope::shared()),
            seq: AtomicI64::new(1),
            _dir: dir,
        }
    }

    /// One synced WriteBatch holding rows `ids` (the same key and value bytes KalamDB writes).
    pub fn write(&self, ids: impl Iterator<Item = i64>) {
        let cf = self.store.cf(CF_ROWS).unwrap();
        let mut batch = WriteBatch::default();
        let mut pk = Vec::new();
        let mut value = Vec::new();
        for i in ids {
            pk.clear();
            value.clear();
            encode_pk(&Value::BigInt(i), &mut pk);
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) as u64;
            encode_row(1, &values(i), &mut value);
            batch.put_cf(cf, row_key(&self.prefix, &pk, seq), &value);
        }
        self.store.write(batch).expect("RocksDB write");
    }
}

/// WriterProperties as KalamDB's segments use them.
fn writer_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

/// Write `files` Parquet files (rows split evenly, as per-user files), each fsynced like a
/// KalamDB segment. Returns (elapsed, bytes written).
pub fn arrow_write(scratch: &Path, rows: i64, files: i64) -> (Duration, u64) {
    let dir = tempfile::Builder::new()
        .prefix("kalamdb-bench-arrow-")
        .tempdir_in(scratch)
        .unwrap();
    let per_file = rows / files;
    let start = Instant::now();
    let mut bytes = 0u64;
    for f in 0..files {
        let ids: Vec<i64> = (f * per_file..(f + 1) * per_file).collect();
        let batch = data::batch(&ids);
        let path = dir.path().join(format!("f{f}.parquet"));
        let file = std::fs::File::create(&path).unwrap();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(writer_props())).unwrap();
        w.write(&batch).unwrap();
        let file = w.into_inner().unwrap();
        file.sync_all().unwrap();
        bytes += file.metadata().unwrap().len();
    }
    (start.elapsed(), bytes)
}

/// DataFusion over Parquet files, with nothing of KalamDB in between.
pub struct RawDataFusion {
    pub ctx: SessionContext,
}

impl RawDataFusion {
    pub fn new() -> RawDataFusion {
        RawDataFusion {
            ctx: SessionContext::new(),
        }
    }

    /// Point lookup by `id` in one Parquet file: rows returned.
    pub async fn point(&self, file: &Path, id: i64) -> usize {
        let df = self
            .ctx
            .read_parquet(file.display().to_string(), ParquetReadOptions::default())
            .await
            .unwrap();
        let batches = df
            .filter(col("id").eq(lit(id)))
            .unwrap()
            .collect()
            .await
            .unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Every row of one Parquet file: rows returned.
    pub async fn scan(&self, file: &Path) -> usize {
        let df = self
            .ctx
            .read_parquet(file.display().to_string(), ParquetReadOptions::default())
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Register `files` plus in-memory `hot` rows as table `t` (UNION ALL of both).
    pub async fn register_analytics(
        &self,
        files: &[PathBuf],
        hot: arrow::record_batch::RecordBatch,
    ) {
        let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        let cold = self
            .ctx
            .read_parquet(paths, ParquetReadOptions::default())
            .await
            .unwrap();
        self.ctx.register_table("cold", cold.into_view()).unwrap();
        self.ctx.register_batch("hot", hot).unwrap();
        self.ctx
            .sql(
                "CREATE VIEW t AS SELECT user_key, v, ts, b FROM cold \
                 UNION ALL SELECT user_key, v, ts, b FROM hot",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        let batches = self.ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let col = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("an Int64 result");
        col.value(0)
    }

    pub async fn rows_of(&self, sql: &str) -> usize {
        let batches = self.ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    }
}
