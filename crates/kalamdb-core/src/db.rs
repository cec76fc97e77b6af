//! [`Db`]: everything the server opens at startup, in one handle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

use crate::catalog::Catalog;
use crate::clock::SeqGenerator;
use crate::cold::manifest;
use crate::error::Result;
use crate::hot::rows::RowStore;
use crate::query::functions::{snowflake_id_udf, uuid_v7_udf};
use crate::storage::objects::ColdStore;
use crate::storage::rocks::Store;

/// The open database: store, catalog, rows and the SQL functions bound to them.
#[derive(Debug)]
pub struct Db {
    pub data_dir: PathBuf,
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub rows: Arc<RowStore>,
    pub seq: Arc<SeqGenerator>,
    pub snowflake_id_udf: ScalarUDF,
    pub uuid_v7_udf: ScalarUDF,
}

impl Db {
    /// Open the database under `data_dir`: RocksDB in `{data_dir}/rocksdb`, Parquet segments in
    /// `{data_dir}/storage`. Removes segment files no manifest references (left by a crash
    /// mid-flush) and counts each table's buffered rows.
    pub fn open(data_dir: &Path) -> Result<Arc<Db>> {
        let store = Store::open(&data_dir.join("rocksdb"))?;
        let catalog = Arc::new(Catalog::open(store.clone(), &data_dir.to_string_lossy())?);
        let cold = ColdStore::local(data_dir.join("storage"))?;
        let referenced = manifest::all_segment_paths(&store)?;
        for path in cold.remove_unreferenced(&referenced)? {
            tracing::warn!(%path, "removed an uncommitted segment file");
        }
        let seq = Arc::new(SeqGenerator::new(0));
        let rows = Arc::new(RowStore::new(store.clone(), cold, seq.clone()));
        for t in catalog.tables() {
            rows.init_buffered(t.id)?;
        }
        Ok(Arc::new(Db {
            data_dir: data_dir.to_path_buf(),
            snowflake_id_udf: snowflake_id_udf(seq.clone()),
            uuid_v7_udf: uuid_v7_udf(),
            store,
            catalog,
            rows,
            seq,
        }))
    }
}
