//! [`Db`]: everything the server opens at startup, in one handle, and what spans its parts
//! (DROP TABLE, DROP NAMESPACE and DROP USER: catalog, rows, manifests and files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{Catalog, Dropped};
use crate::clock::SeqGenerator;
use crate::cold::manifest;
use crate::error::Result;
use crate::hot::rows::RowStore;
use crate::storage::objects::ColdStore;
use crate::storage::rocks::Store;

/// The open database: store, catalog, rows and the sequence generator.
#[derive(Debug)]
pub struct Db {
    pub data_dir: PathBuf,
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub rows: Arc<RowStore>,
    pub seq: Arc<SeqGenerator>,
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
            store,
            catalog,
            rows,
            seq,
        }))
    }

    /// At shutdown, after the last request and job: sync the write-ahead log.
    pub fn close(&self) -> Result<()> {
        self.store.sync_wal()
    }

    /// DROP TABLE: the definition, rows, manifests (catalog) and then exactly the Parquet
    /// files its manifests named (a table of the same name created since writes other paths,
    /// ADR 0011). False when it did not exist (with `if_exists`).
    pub fn drop_table(&self, namespace: &str, name: &str, if_exists: bool) -> Result<bool> {
        let dropped = self.catalog.drop_table(namespace, name, if_exists)?;
        Ok(dropped.map(|d| self.remove_dropped(&d)).is_some())
    }

    /// DROP NAMESPACE [CASCADE]: as [`Db::drop_table`] for each of its tables.
    pub fn drop_namespace(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        let dropped = self.catalog.drop_namespace(name, if_exists, cascade)?;
        Ok(dropped.map(|d| self.remove_dropped(&d)).is_some())
    }

    /// DROP USER: the account, its rows (hot and cold) in every USER and STREAM table and its
    /// manifests, then its Parquet files. The caller keeps the account's writes out meanwhile
    /// (kalamdb-sql holds the account exclusively), so the buffered counts it subtracts stay
    /// true.
    pub fn drop_user(&self, user_id: &str) -> Result<()> {
        let scope = crate::encoding::row_key::Scope::user(user_id);
        let mut buffered = Vec::new();
        for t in self.catalog.tables() {
            if t.kind.is_per_user() {
                buffered.push((t.id, self.rows.count_scope_versions(t.id, &scope)?));
            }
        }
        let files = self.catalog.drop_user(user_id)?.unwrap_or_default();
        for (table_id, versions) in buffered {
            self.rows.note_flushed(table_id, versions);
        }
        self.remove_files(&files);
        Ok(())
    }

    /// Forget dropped tables' in-memory state and delete their Parquet files.
    fn remove_dropped(&self, dropped: &Dropped) {
        for t in &dropped.tables {
            self.rows.forget_table(t.id);
        }
        self.remove_files(&dropped.files);
        for t in &dropped.tables {
            self.rows
                .cold()
                .remove_empty_dirs(&format!("{}/{}", t.namespace, t.name));
        }
    }

    /// Delete the Parquet files a DROP made unreferenced, exactly those, and the directories
    /// left empty. Best effort: startup removes what is left.
    fn remove_files(&self, files: &[String]) {
        let cold = self.rows.cold();
        let mut dirs = std::collections::BTreeSet::new();
        for p in files {
            if let Err(e) = cold.delete(p) {
                tracing::warn!(path = %p, error = %e, "could not delete a dropped file; startup will");
            }
            if let Some((dir, _)) = p.rsplit_once('/') {
                dirs.insert(dir);
            }
        }
        for dir in dirs {
            cold.remove_empty_dirs(dir);
        }
    }
}
