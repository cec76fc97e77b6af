//! The cold store: Parquet segment files behind `object_store`.
//!
//! Segments live at `{namespace}/{table}/{user_id | "shared"}/batch-{n}-{seq:x}.parquet` under
//! the store's root (`{data_dir}/storage` for the local default), `n` the scope's segment number
//! and `seq` the highest `_seq` of its rows. Seqs are unique in the database, so a path is never
//! written twice, not even by a table or user of the same name dropped and created again (see
//! ADR 0011): a DROP removes exactly the files its manifests named, and an uncommitted segment's
//! cleanup removes only itself. A segment is invisible until it
//! is complete: on the local filesystem it is written as `{path}.tmp`, fsynced,
//! renamed and its directory fsynced before it is committed to a manifest (other stores use
//! object_store's atomic put), so a committed segment survives a crash and a half-written one
//! is never read. Startup removes files no manifest references. This module does no Parquet encoding; see
//! [`crate::cold::segment`].
//!
//! Calls block the current thread (they run object_store futures on the tokio runtime), so
//! they must be made from blocking threads (`spawn_blocking`), never from async tasks.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::encoding::row_key::Scope;
use crate::error::{Error, Result};

/// Handle to the cold store.
#[derive(Debug, Clone)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    /// Root directory when the store is the local filesystem (for fsync).
    local_root: Option<PathBuf>,
}

fn storage_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{what}: {e}"))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(f),
        Err(_) => futures::executor::block_on(f),
    }
}

impl ColdStore {
    /// The local-filesystem cold store rooted at `root` (created if missing).
    pub fn local(root: PathBuf) -> Result<ColdStore> {
        std::fs::create_dir_all(&root)
            .map_err(|e| storage_error(&format!("cannot create {}", root.display()), e))?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| storage_error("cannot open the cold store", e))?;
        Ok(ColdStore {
            store: Arc::new(fs),
            local_root: Some(root),
        })
    }

    /// Object path of a scope's directory.
    pub fn scope_dir(namespace: &str, table: &str, scope: &Scope) -> String {
        format!(
            "{namespace}/{table}/{}",
            scope.user_id().unwrap_or("shared")
        )
    }

    /// Object path of segment `n` of a scope whose highest row seq is `seq_max`.
    pub fn segment_path(
        namespace: &str,
        table: &str,
        scope: &Scope,
        n: u64,
        seq_max: u64,
    ) -> String {
        format!(
            "{}/batch-{n}-{seq_max:x}.parquet",
            Self::scope_dir(namespace, table, scope)
        )
    }

    /// Write a whole object durably or not at all. On the local filesystem: write
    /// `path.tmp`, fsync it, rename it over `path`, fsync the directory; elsewhere an
    /// object_store put (atomic by the store's own contract).
    pub fn put_durable(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let Some(root) = &self.local_root else {
            let location =
                ObjectPath::parse(path).map_err(|e| storage_error("bad segment path", e))?;
            block_on(self.store.put(&location, PutPayload::from(data)))
                .map_err(|e| storage_error(&format!("cannot write {path}"), e))?;
            return Ok(());
        };
        use std::io::Write;
        let file = root.join(path);
        let dir = file
            .parent()
            .ok_or_else(|| Error::Internal(format!("bad segment path {path}")))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| storage_error(&format!("cannot create the directory of {path}"), e))?;
        let tmp = file.with_extension("parquet.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = match std::fs::File::create(&tmp) {
                // A DROP of another table or user of the same name may have just removed the
                // (then empty) directory: create it again, once.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir)?;
                    std::fs::File::create(&tmp)?
                }
                other => other?,
            };
            f.write_all(&data)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(storage_error(&format!("cannot write {path}"), e));
        }
        crate::failpoints::pause("flush.pause_after_temp");
        if let Err(e) = std::fs::rename(&tmp, &file) {
            let _ = std::fs::remove_file(&tmp);
            return Err(storage_error(&format!("cannot rename {path}"), e));
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| storage_error(&format!("cannot fsync the directory of {path}"), e))?;
        Ok(())
    }

    /// Read a whole object.
    pub fn get(&self, path: &str) -> Result<Bytes> {
        let location = ObjectPath::parse(path).map_err(|e| storage_error("bad segment path", e))?;
        block_on(async {
            let r = self.store.get(&location).await?;
            r.bytes().await
        })
        .map_err(|e| storage_error(&format!("cannot read {path}"), e))
    }

    /// Delete an object; a missing object is not an error.
    pub fn delete(&self, path: &str) -> Result<()> {
        let location = ObjectPath::parse(path).map_err(|e| storage_error("bad segment path", e))?;
        match block_on(self.store.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(&format!("cannot delete {path}"), e)),
        }
    }

    /// Every object path under `prefix` (all objects when None).
    pub fn list(&self, prefix: Option<&str>) -> Result<Vec<String>> {
        let prefix = prefix
            .map(ObjectPath::parse)
            .transpose()
            .map_err(|e| storage_error("bad prefix", e))?;
        let metas: Vec<_> = block_on(self.store.list(prefix.as_ref()).try_collect())
            .map_err(|e| storage_error("cannot list the cold store", e))?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }
}

impl ColdStore {
    /// On the local filesystem, remove the directories under `prefix` that hold no file any
    /// more (a dropped table's or user's, once its files are deleted), `prefix` itself
    /// included, and then its parents up to the root while they are empty. Object stores
    /// have no directories.
    pub fn remove_empty_dirs(&self, prefix: &str) {
        let Some(root) = &self.local_root else { return };
        let top = root.join(prefix);
        fn prune(dir: &std::path::Path) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return false;
            };
            let mut empty = true;
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) && prune(&path) {
                    continue;
                }
                empty = false;
            }
            empty && std::fs::remove_dir(dir).is_ok()
        }
        if prune(&top) {
            let mut parent = top.parent();
            while let Some(p) = parent {
                if p == root.as_path() || std::fs::remove_dir(p).is_err() {
                    break;
                }
                parent = p.parent();
            }
        }
    }

    /// Delete every file under the local root that `keep` does not name: segments written
    /// but never committed (a crash between the write and the manifest commit) and staged
    /// uploads left by a crash mid-write. Returns the deleted paths. Non-local stores are
    /// left alone (listing a bucket at every start is not free).
    pub fn remove_unreferenced(
        &self,
        keep: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let rel = rel
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                if !keep.contains(&rel) {
                    std::fs::remove_file(&path)
                        .map_err(|e| storage_error(&format!("cannot remove {rel}"), e))?;
                    removed.push(rel);
                }
            }
        }
        Ok(removed)
    }
}
