//! The catalog: namespaces, tables, users and storages, persisted and cached ([`defs`] holds
//! the definitions).
//!
//! Definitions are persisted as JSON in the `catalog` column family (they are small and never
//! on the row hot path) and cached in memory; every change is written (synced) before the
//! in-memory copy changes, so what a client was told exists survives a crash.
//! This module checks names and shapes; it does not check who may do what (that is the
//! executor's job in kalamdb-sql).

pub mod access;
mod defs;
pub mod password;
mod views;

pub use defs::*;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::clock::now_millis;
use crate::encoding::row_key::{prefix_upper_bound, table_prefix};
use crate::error::{Error, Result};
use crate::storage::keyspace;
use crate::storage::keyspace::{CF_CATALOG, CF_FLUSHED, CF_ROWS};
use crate::storage::rocks::Store;

#[derive(Debug, Default)]
struct State {
    namespaces: BTreeMap<String, NamespaceDef>,
    /// Keyed by (namespace, table).
    tables: BTreeMap<(String, String), Arc<TableDef>>,
    /// Keyed by (namespace, view); a view and a table never share a name.
    views: BTreeMap<(String, String), Arc<ViewDef>>,
    users: BTreeMap<String, UserDef>,
    storages: BTreeMap<String, StorageDef>,
    next_table_id: u64,
}

/// What a DROP TABLE or DROP NAMESPACE removed from the catalog: the tables, and their Parquet
/// files, which the caller deletes once the catalog write is done.
#[derive(Debug)]
pub struct Dropped {
    pub tables: Vec<Arc<TableDef>>,
    pub files: Vec<String>,
}

/// The catalog, loaded from the store at startup.
#[derive(Debug)]
pub struct Catalog {
    store: Store,
    state: RwLock<State>,
    /// Serialises catalog changes so check-then-write sequences are atomic.
    ddl_lock: parking_lot::Mutex<()>,
    /// Held shared by a flush from its last check to its commit, exclusively by DROP TABLE,
    /// DROP NAMESPACE and DROP USER from reading the manifests they delete to their write: a
    /// flush either commits before a drop (whose file list then has its segment) or finds its
    /// table or rows gone, never writes a dropped scope's manifest back.
    drops: parking_lot::RwLock<()>,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Internal(format!("catalog encode: {e}")))
}
fn from_json<'a, T: Deserialize<'a>>(key: &str, b: &'a [u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Internal(format!("catalog entry {key}: {e}")))
}

impl Catalog {
    /// Load the catalog and create the built-in entries (`default` namespace, `root` user,
    /// `local` storage) if they are missing.
    pub fn open(store: Store, data_dir: &str) -> Result<Catalog> {
        let mut state = State::default();
        for (k, v) in store.catalog_scan(keyspace::NAMESPACES)? {
            let ns: NamespaceDef = from_json(&k, &v)?;
            state.namespaces.insert(ns.name.clone(), ns);
        }
        for (k, v) in store.catalog_scan(keyspace::TABLES)? {
            let t: TableDef = from_json(&k, &v)?;
            state
                .tables
                .insert((t.namespace.clone(), t.name.clone()), Arc::new(t));
        }
        for (k, v) in store.catalog_scan(keyspace::VIEWS)? {
            let v: ViewDef = from_json(&k, &v)?;
            state
                .views
                .insert((v.namespace.clone(), v.name.clone()), Arc::new(v));
        }
        for (k, v) in store.catalog_scan(keyspace::USERS)? {
            let u: UserDef = from_json(&k, &v)?;
            state.users.insert(u.user_id.clone(), u);
        }
        for (k, v) in store.catalog_scan(keyspace::STORAGES)? {
            let s: StorageDef = from_json(&k, &v)?;
            state.storages.insert(s.storage_id.clone(), s);
        }
        state.next_table_id = match store.catalog_get(keyspace::NEXT_TABLE_ID)? {
            Some(b) => from_json(keyspace::NEXT_TABLE_ID, &b)?,
            None => 1,
        };
        let catalog = Catalog {
            store,
            state: RwLock::new(state),
            ddl_lock: parking_lot::Mutex::new(()),
            drops: parking_lot::RwLock::new(()),
        };
        catalog.bootstrap(data_dir)?;
        Ok(catalog)
    }

    fn bootstrap(&self, data_dir: &str) -> Result<()> {
        let now = now_millis();
        if self.namespace(DEFAULT_NAMESPACE).is_none() {
            self.create_namespace(DEFAULT_NAMESPACE, true)?;
        }
        if self.user(ROOT_USER).is_none() {
            self.put_user(UserDef {
                user_id: ROOT_USER.into(),
                role: Role::System,
                password_hash: None,
                created_at_ms: now,
                updated_at_ms: now,
            })?;
        }
        if !self.state.read().storages.contains_key("local") {
            let s = StorageDef {
                storage_id: "local".into(),
                storage_type: "filesystem".into(),
                base_directory: format!("{data_dir}/storage"),
                created_at_ms: now,
            };
            let mut b = WriteBatch::default();
            b.put_cf(
                self.store.cf(CF_CATALOG)?,
                keyspace::storage("local"),
                to_json(&s)?,
            );
            self.store.write(b)?;
            self.state.write().storages.insert(s.storage_id.clone(), s);
        }
        Ok(())
    }

    // ---- namespaces ----

    pub fn namespace(&self, name: &str) -> Option<NamespaceDef> {
        self.state.read().namespaces.get(name).cloned()
    }

    pub fn namespaces(&self) -> Vec<NamespaceDef> {
        self.state.read().namespaces.values().cloned().collect()
    }

    /// Create a namespace; returns false if it existed and `if_not_exists` was given.
    pub fn create_namespace(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        validate_name("namespace", name)?;
        if RESERVED_NAMESPACES.contains(&name) {
            return Err(Error::InvalidParameter(format!(
                "namespace name '{name}' is reserved"
            )));
        }
        let _g = self.ddl_lock.lock();
        if self.namespace(name).is_some() {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(Error::AlreadyExists(format!(
                    "namespace '{name}' already exists"
                )))
            };
        }
        let ns = NamespaceDef {
            name: name.into(),
            created_at_ms: now_millis(),
        };
        let mut b = WriteBatch::default();
        b.put_cf(
            self.store.cf(CF_CATALOG)?,
            keyspace::namespace(name),
            to_json(&ns)?,
        );
        self.store.write(b)?;
        self.state.write().namespaces.insert(name.into(), ns);
        Ok(true)
    }

    /// Drop a namespace (and with `cascade` its tables and their rows). Returns the dropped
    /// tables and their Parquet files for the caller to delete (see [`Catalog::drop_table`]),
    /// or `None` when there was no such namespace.
    pub fn drop_namespace(
        &self,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> Result<Option<Dropped>> {
        if name == DEFAULT_NAMESPACE {
            return Err(Error::InvalidParameter(
                "the default namespace cannot be dropped".into(),
            ));
        }
        let _g = self.ddl_lock.lock();
        if self.namespace(name).is_none() {
            return if if_exists {
                Ok(None)
            } else {
                Err(Error::NamespaceNotFound(name.into()))
            };
        }
        let tables = self.tables_in(name);
        let views = self.views_in(name);
        let empty = tables.is_empty() && views.is_empty();
        if !empty && !cascade {
            return Err(Error::ConstraintViolation(format!(
                "namespace '{name}' still has {} table(s) and {} view(s); use DROP NAMESPACE {name} CASCADE",
                tables.len(),
                views.len()
            )));
        }
        let _no_flush = self.drops.write();
        let mut b = WriteBatch::default();
        let mut files = Vec::new();
        for t in &tables {
            self.delete_table_into(&mut b, t, &mut files)?;
        }
        for v in &views {
            b.delete_cf(self.store.cf(CF_CATALOG)?, keyspace::view(name, &v.name));
        }
        b.delete_cf(self.store.cf(CF_CATALOG)?, keyspace::namespace(name));
        self.store.write(b)?;
        let mut st = self.state.write();
        for t in &tables {
            st.tables.remove(&(t.namespace.clone(), t.name.clone()));
        }
        for v in &views {
            st.views.remove(&(v.namespace.clone(), v.name.clone()));
        }
        st.namespaces.remove(name);
        Ok(Some(Dropped { tables, files }))
    }

    // ---- tables ----

    /// Keep DROP TABLE, DROP NAMESPACE and DROP USER from writing while the guard lives (a
    /// flush's check-then-commit; see `drops`).
    pub fn hold_off_drops(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.drops.read()
    }

    pub fn table(&self, ns: &str, name: &str) -> Option<Arc<TableDef>> {
        self.state
            .read()
            .tables
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// The one table resolver: `ns.name` (the caller's default namespace already applied),
    /// or the error a client sees: NAMESPACE_NOT_FOUND when `ns` does not exist,
    /// TABLE_NOT_FOUND naming `ns.name` otherwise. The namespaces of the server's views
    /// (`system`, `information_schema`) hold no table definitions; callers answer for them.
    pub fn resolve_table(&self, ns: &str, name: &str) -> Result<Arc<TableDef>> {
        if let Some(def) = self.table(ns, name) {
            return Ok(def);
        }
        if self.namespace(ns).is_none() {
            return Err(Error::NamespaceNotFound(ns.to_string()));
        }
        Err(Error::TableNotFound(format!("{ns}.{name}")))
    }

    pub fn tables_in(&self, ns: &str) -> Vec<Arc<TableDef>> {
        self.state
            .read()
            .tables
            .values()
            .filter(|t| t.namespace == ns)
            .cloned()
            .collect()
    }

    pub fn tables(&self) -> Vec<Arc<TableDef>> {
        self.state.read().tables.values().cloned().collect()
    }

    /// Create a table from a definition whose id and version this assigns.
    /// Returns None if it existed and `if_not_exists` was given.
    pub fn create_table(
        &self,
        mut def: TableDef,
        if_not_exists: bool,
    ) -> Result<Option<Arc<TableDef>>> {
        validate_name("table", &def.name)?;
        let _g = self.ddl_lock.lock();
        if self.namespace(&def.namespace).is_none() {
            return Err(Error::NamespaceNotFound(def.namespace.clone()));
        }
        if self.view(&def.namespace, &def.name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "a view named '{}' already exists",
                def.qualified_name()
            )));
        }
        if self.table(&def.namespace, &def.name).is_some() {
            return if if_not_exists {
                Ok(None)
            } else {
                Err(Error::AlreadyExists(format!(
                    "table '{}' already exists",
                    def.qualified_name()
                )))
            };
        }
        let id = self.state.read().next_table_id;
        def.id = id;
        def.schema_version = 1;
        def.created_at_ms = now_millis();
        for c in &mut def.columns {
            c.added_in = 1;
            c.dropped_in = None;
        }
        let mut b = WriteBatch::default();
        let cf = self.store.cf(CF_CATALOG)?;
        b.put_cf(
            cf,
            keyspace::table(&def.namespace, &def.name),
            to_json(&def)?,
        );
        b.put_cf(cf, keyspace::NEXT_TABLE_ID, to_json(&(id + 1))?);
        // A table id is never reused, but clear its key range in case an earlier crash left rows.
        let prefix = table_prefix(id);
        b.delete_range_cf(
            self.store.cf(CF_ROWS)?,
            &prefix,
            &prefix_upper_bound(&prefix),
        );
        b.delete_range_cf(
            self.store.cf(CF_FLUSHED)?,
            &prefix,
            &prefix_upper_bound(&prefix),
        );
        self.store.write(b)?;
        let def = Arc::new(def);
        let mut st = self.state.write();
        st.next_table_id = id + 1;
        st.tables
            .insert((def.namespace.clone(), def.name.clone()), def.clone());
        Ok(Some(def))
    }

    /// Replace a table's definition by `change(old)` (for ALTER TABLE); bumps the schema version.
    pub fn alter_table(
        &self,
        ns: &str,
        name: &str,
        change: impl FnOnce(&TableDef) -> Result<TableDef>,
    ) -> Result<Arc<TableDef>> {
        let _g = self.ddl_lock.lock();
        let old = self
            .table(ns, name)
            .ok_or_else(|| Error::TableNotFound(format!("{ns}.{name}")))?;
        let mut new = change(&old)?;
        new.schema_version = old.schema_version + 1;
        let mut b = WriteBatch::default();
        b.put_cf(
            self.store.cf(CF_CATALOG)?,
            keyspace::table(ns, name),
            to_json(&new)?,
        );
        self.store.write(b)?;
        let new = Arc::new(new);
        self.state
            .write()
            .tables
            .insert((ns.into(), name.into()), new.clone());
        Ok(new)
    }

    /// Drop a table and all its rows. Returns the table and the Parquet files its manifests
    /// named, unreferenced from this write on, for the caller to delete (startup removes any
    /// left), or `None` when there was no such table. Only these files: a table created again
    /// under the same name writes other paths (segment names carry a seq, cold.rs), and an
    /// uncommitted segment of a flush still running removes itself when its commit fails.
    pub fn drop_table(&self, ns: &str, name: &str, if_exists: bool) -> Result<Option<Dropped>> {
        let _g = self.ddl_lock.lock();
        let Some(t) = self.table(ns, name) else {
            return if if_exists {
                Ok(None)
            } else {
                Err(Error::TableNotFound(format!("{ns}.{name}")))
            };
        };
        let _no_flush = self.drops.write();
        let mut b = WriteBatch::default();
        let mut files = Vec::new();
        self.delete_table_into(&mut b, &t, &mut files)?;
        self.store.write(b)?;
        self.state
            .write()
            .tables
            .remove(&(ns.to_string(), name.to_string()));
        Ok(Some(Dropped {
            tables: vec![t],
            files,
        }))
    }

    /// Delete a table's definition, hot rows, flushed-key index and manifests, adding the
    /// Parquet files the manifests named to `files`.
    fn delete_table_into(
        &self,
        b: &mut WriteBatch,
        t: &TableDef,
        files: &mut Vec<String>,
    ) -> Result<()> {
        files.extend(crate::cold::manifest::table_segment_paths(
            &self.store,
            t.id,
        )?);
        let catalog = self.store.cf(CF_CATALOG)?;
        b.delete_cf(catalog, keyspace::table(&t.namespace, &t.name));
        b.delete_cf(catalog, keyspace::widest_row(t.id));
        let prefix = table_prefix(t.id);
        let upper = prefix_upper_bound(&prefix);
        b.delete_range_cf(self.store.cf(CF_ROWS)?, &prefix, &upper);
        b.delete_range_cf(self.store.cf(CF_FLUSHED)?, &prefix, &upper);
        for p in [
            keyspace::table_manifests(t.id),
            keyspace::table_segments(t.id),
        ] {
            b.delete_range_cf(catalog, p.as_bytes(), &prefix_upper_bound(p.as_bytes()));
        }
        Ok(())
    }

    // ---- users ----

    pub fn user(&self, id: &str) -> Option<UserDef> {
        self.state.read().users.get(id).cloned()
    }

    pub fn users(&self) -> Vec<UserDef> {
        self.state.read().users.values().cloned().collect()
    }

    /// Create a user; fails with ALREADY_EXISTS if the id is taken.
    pub fn create_user(&self, user: UserDef) -> Result<()> {
        validate_user_id(&user.user_id)?;
        let _g = self.ddl_lock.lock();
        if self.user(&user.user_id).is_some() {
            return Err(Error::AlreadyExists(format!(
                "user '{}' already exists",
                user.user_id
            )));
        }
        self.put_user(user)
    }

    /// Insert or replace a user.
    pub fn put_user(&self, user: UserDef) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_cf(
            self.store.cf(CF_CATALOG)?,
            keyspace::user(&user.user_id),
            to_json(&user)?,
        );
        self.store.write(b)?;
        self.state.write().users.insert(user.user_id.clone(), user);
        Ok(())
    }

    /// Drop a user and, in the same write, every row it owns: its partition of every USER and
    /// STREAM table (hot rows, flushed-key index, manifests), so a new user of the same name
    /// starts empty. Returns the dropped scopes' Parquet files for the caller to delete
    /// (unreferenced from this write on; startup removes any left), or `None` when there was no
    /// such user. A flush of a dropped scope that was already running fails at its commit
    /// (flush.rs checks its rows are still there).
    pub fn drop_user(&self, id: &str) -> Result<Option<Vec<String>>> {
        let _g = self.ddl_lock.lock();
        if self.user(id).is_none() {
            return Ok(None);
        }
        let scope = crate::encoding::row_key::Scope::user(id);
        let tables: Vec<Arc<TableDef>> = self
            .state
            .read()
            .tables
            .values()
            .filter(|t| matches!(t.kind, TableKind::User | TableKind::Stream))
            .cloned()
            .collect();
        let _no_flush = self.drops.write();
        let mut b = WriteBatch::default();
        let catalog = self.store.cf(CF_CATALOG)?;
        b.delete_cf(catalog, keyspace::user(id));
        let mut files = Vec::new();
        for t in &tables {
            let prefix = crate::encoding::row_key::scope_prefix(t.id, &scope);
            let upper = prefix_upper_bound(&prefix);
            b.delete_range_cf(self.store.cf(CF_ROWS)?, &prefix, &upper);
            b.delete_range_cf(self.store.cf(CF_FLUSHED)?, &prefix, &upper);
            let manifest = crate::cold::manifest::load(&self.store, t.id, &scope)?;
            files.extend(manifest.segments.into_iter().map(|s| s.path));
            b.delete_cf(catalog, keyspace::manifest(t.id, &scope));
            let segments = keyspace::scope_segments(t.id, &scope);
            b.delete_range_cf(
                catalog,
                segments.as_bytes(),
                &prefix_upper_bound(segments.as_bytes()),
            );
        }
        self.store.write(b)?;
        self.state.write().users.remove(id);
        Ok(Some(files))
    }

    // ---- server secrets ----

    /// The key that signs bearer tokens: 32 random bytes created on first use and kept in the
    /// catalog, so tokens stay valid across restarts.
    pub fn token_signing_key(&self) -> Result<Vec<u8>> {
        const KEY: &str = keyspace::TOKEN_SIGNING_KEY;
        let _g = self.ddl_lock.lock();
        if let Some(k) = self.store.catalog_get(KEY)? {
            return Ok(k);
        }
        let key: [u8; 32] = rand::random();
        let mut b = WriteBatch::default();
        b.put_cf(self.store.cf(CF_CATALOG)?, KEY, key);
        self.store.write(b)?;
        Ok(key.to_vec())
    }

    // ---- storages ----

    pub fn storages(&self) -> Vec<StorageDef> {
        self.state.read().storages.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let cat = Catalog::open(store, "x").unwrap();
            cat.create_namespace("app", false).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let cat = Catalog::open(store, "x").unwrap();
        assert!(cat.namespace("app").is_some());
        assert!(cat.namespace(DEFAULT_NAMESPACE).is_some());
        assert_eq!(cat.user(ROOT_USER).unwrap().role, Role::System);
    }
}
