//! Views in the catalog: a name in a namespace (never a table's too) and the query it stands
//! for. Planning them is the SQL layer's; here they are stored, listed and dropped.

use std::sync::Arc;

use rocksdb::WriteBatch;

use super::{to_json, validate_name, Catalog, ViewDef};
use crate::clock::now_millis;
use crate::error::{Error, Result};
use crate::storage::keyspace;
use crate::storage::keyspace::CF_CATALOG;

impl Catalog {
    pub fn view(&self, ns: &str, name: &str) -> Option<Arc<ViewDef>> {
        self.state
            .read()
            .views
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn views_in(&self, ns: &str) -> Vec<Arc<ViewDef>> {
        self.state
            .read()
            .views
            .values()
            .filter(|v| v.namespace == ns)
            .cloned()
            .collect()
    }

    pub fn views(&self) -> Vec<Arc<ViewDef>> {
        self.state.read().views.values().cloned().collect()
    }

    /// Create (or with `or_replace`, replace) a view. The caller has checked its query.
    pub fn create_view(&self, mut def: ViewDef, or_replace: bool) -> Result<Arc<ViewDef>> {
        validate_name("view", &def.name)?;
        let _g = self.ddl_lock.lock();
        if self.namespace(&def.namespace).is_none() {
            return Err(Error::NamespaceNotFound(def.namespace.clone()));
        }
        if self.table(&def.namespace, &def.name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "a table named '{}' already exists",
                def.qualified_name()
            )));
        }
        if !or_replace && self.view(&def.namespace, &def.name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "view '{}' already exists",
                def.qualified_name()
            )));
        }
        def.created_at_ms = now_millis();
        let mut b = WriteBatch::default();
        b.put_cf(
            self.store.cf(CF_CATALOG)?,
            keyspace::view(&def.namespace, &def.name),
            to_json(&def)?,
        );
        self.store.write(b)?;
        let def = Arc::new(def);
        self.state
            .write()
            .views
            .insert((def.namespace.clone(), def.name.clone()), def.clone());
        Ok(def)
    }

    /// Drop a view; false when there was none and `if_exists` was given.
    pub fn drop_view(&self, ns: &str, name: &str, if_exists: bool) -> Result<bool> {
        let _g = self.ddl_lock.lock();
        if self.view(ns, name).is_none() {
            if if_exists {
                return Ok(false);
            }
            if self.namespace(ns).is_none() {
                return Err(Error::NamespaceNotFound(ns.to_string()));
            }
            return Err(Error::TableNotFound(format!("{ns}.{name}")));
        }
        let mut b = WriteBatch::default();
        b.delete_cf(self.store.cf(CF_CATALOG)?, keyspace::view(ns, name));
        self.store.write(b)?;
        self.state
            .write()
            .views
            .remove(&(ns.to_string(), name.to_string()));
        Ok(true)
    }
}
