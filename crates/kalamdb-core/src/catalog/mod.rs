//! The catalog: namespaces, tables, users and storages.
//!
//! Definitions are persisted as JSON in the `catalog` column family (they are small and never
//! on the row hot path) and cached in memory; every change is written (synced) before the
//! in-memory copy changes, so what a client was told exists survives a crash.
//! This module checks names and shapes; it does not check who may do what (that is the
//! executor's job in kalamdb-sql).

pub mod access;
pub mod password;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::RwLock;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::clock::now_millis;
use crate::encoding::row_key::{prefix_upper_bound, table_prefix};
use crate::error::{truncate_for_message, Error, Result};
use crate::storage::keyspace;
use crate::storage::keyspace::{CF_CATALOG, CF_FLUSHED, CF_ROWS};
use crate::storage::rocks::Store;
use crate::types::{DataType, Value};

/// The namespace that always exists and holds unqualified tables.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Reserved schema names that are not namespaces.
pub const RESERVED_NAMESPACES: &[&str] = &["system", "information_schema"];
/// The built-in superuser.
pub const ROOT_USER: &str = "root";
/// Name of the hidden row id column of tables without a declared primary key.
pub const ROWID_COLUMN: &str = "_rowid";
/// Longest namespace, table or column name.
pub const MAX_NAME_LEN: usize = 64;

/// Kind of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TableKind {
    User,
    Shared,
    Stream,
    System,
}

impl TableKind {
    /// Whether each user has an isolated partition of the table.
    pub fn is_per_user(&self) -> bool {
        matches!(self, TableKind::User | TableKind::Stream)
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::User => "USER",
            TableKind::Shared => "SHARED",
            TableKind::Stream => "STREAM",
            TableKind::System => "SYSTEM",
        })
    }
}

/// Who may read a SHARED table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Public,
    Private,
}

impl FromStr for AccessLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<AccessLevel> {
        match s.to_ascii_lowercase().as_str() {
            "public" => Ok(AccessLevel::Public),
            "private" => Ok(AccessLevel::Private),
            _ => Err(Error::InvalidParameter(format!(
                "ACCESS_LEVEL must be 'public' or 'private', not '{s}'"
            ))),
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessLevel::Public => "public",
            AccessLevel::Private => "private",
        })
    }
}

/// Role of a user, weakest first; the derived order is the privilege order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Service,
    Dba,
    System,
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Role::User),
            "service" => Ok(Role::Service),
            "dba" => Ok(Role::Dba),
            "system" => Ok(Role::System),
            _ => Err(Error::InvalidParameter(format!(
                "role must be one of user, service, dba, system; not '{s}'"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Dba => "dba",
            Role::System => "system",
        })
    }
}

/// How a column gets a value when an INSERT does not give one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ColumnDefault {
    Now,
    SnowflakeId,
    UuidV7,
    Literal(Value),
}

impl ColumnDefault {
    /// The default as SQL, for DESCRIBE and the catalog tables (`NOW()`, `12.50`,
    /// `DATE '2020-02-01'`, `X'6162'`); `data_type` is its column's.
    pub fn sql(&self, data_type: &crate::types::DataType) -> String {
        match self {
            ColumnDefault::Now => "NOW()".into(),
            ColumnDefault::SnowflakeId => "SNOWFLAKE_ID()".into(),
            ColumnDefault::UuidV7 => "UUID_V7()".into(),
            ColumnDefault::Literal(v) => literal_sql(v, data_type),
        }
    }
}

fn literal_sql(v: &Value, data_type: &crate::types::DataType) -> String {
    use crate::types::DataType;
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match v {
        Value::Null => "NULL".into(),
        Value::Boolean(b) => b.to_string().to_uppercase(),
        Value::SmallInt(x) => x.to_string(),
        Value::Int(x) => x.to_string(),
        Value::BigInt(x) => x.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        Value::Decimal(x) => match data_type {
            DataType::Decimal { scale, .. } => decimal_text(*x, *scale),
            _ => x.to_string(),
        },
        Value::Text(s) => quoted(s),
        Value::Bytes(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
        Value::Date(days) => chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(chrono::Duration::days(*days as i64)))
            .map(|d| format!("DATE '{}'", d.format("%Y-%m-%d")))
            .unwrap_or_else(|| days.to_string()),
        Value::Time(micros) => chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            (micros.div_euclid(1_000_000)) as u32,
            (micros.rem_euclid(1_000_000) * 1000) as u32,
        )
        .map(|t| format!("TIME '{}'", t.format("%H:%M:%S%.f")))
        .unwrap_or_else(|| micros.to_string()),
        Value::Timestamp(micros) => match chrono::DateTime::from_timestamp_micros(*micros) {
            Some(t) if *data_type == DataType::TimestampTz => {
                format!(
                    "TIMESTAMPTZ '{}+00'",
                    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f")
                )
            }
            Some(t) => format!(
                "TIMESTAMP '{}'",
                t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f")
            ),
            None => micros.to_string(),
        },
    }
}

/// An unscaled decimal as text: 1250 with scale 2 is `12.50`.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        return (unscaled * 10i128.pow((-scale) as u32)).to_string();
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if unscaled < 0 { "-" } else { "" })
}

/// A column, live or dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id; never reused within a table.
    pub id: u32,
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub default: Option<ColumnDefault>,
    /// Value rows written before this column existed read as (set by ADD COLUMN ... DEFAULT).
    #[serde(default)]
    pub value_for_older_rows: Option<Value>,
    /// Schema version that added the column.
    pub added_in: u32,
    /// Schema version that dropped it, if dropped.
    pub dropped_in: Option<u32>,
}

impl ColumnDef {
    pub fn alive_at(&self, version: u32) -> bool {
        self.added_in <= version && self.dropped_in.is_none_or(|d| d > version)
    }
}

/// Per-table options of `WITH (...)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level: Option<AccessLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A table definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u64,
    pub namespace: String,
    pub name: String,
    pub kind: TableKind,
    /// Every column ever defined, in declaration order, dropped ones included.
    pub columns: Vec<ColumnDef>,
    /// Declared primary-key column; None means the hidden `_rowid`.
    pub primary_key: Option<String>,
    pub options: TableOptions,
    pub schema_version: u32,
    pub created_at_ms: u64,
}

impl TableDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// Columns of the current schema, in order.
    pub fn live_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns_at(self.schema_version)
    }

    /// Columns of the schema at `version`, in the order rows and segments written at that
    /// version store their values: the one definition of a version's layout
    /// ([`crate::encoding::layout`] maps between layouts).
    pub fn columns_at(&self, version: u32) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(move |c| c.alive_at(version))
    }

    /// Column ids of the schema at `version`, in the order rows of that version store them.
    pub fn layout_at(&self, version: u32) -> Vec<u32> {
        self.columns_at(version).map(|c| c.id).collect()
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.live_columns().find(|c| c.name == name)
    }

    /// The access level of a SHARED table (private unless declared public).
    pub fn access_level(&self) -> AccessLevel {
        self.options.access_level.unwrap_or(AccessLevel::Private)
    }
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceDef {
    pub name: String,
    pub created_at_ms: u64,
}

/// A user account. The password hash never leaves core except to verify a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDef {
    pub user_id: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A storage location for cold data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageDef {
    pub storage_id: String,
    pub storage_type: String,
    pub base_directory: String,
    pub created_at_ms: u64,
}

/// Check a namespace, table or column name: `[a-z_][a-z0-9_]*`, at most 64 characters.
/// Names become storage paths, so nothing else is allowed.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "invalid {kind} name '{}': use 1-{MAX_NAME_LEN} characters of a-z, 0-9 and _, not starting with a digit",
            truncate_for_message(name)
        )))
    }
}

/// Check a user id: 1-64 characters of `A-Za-z0-9_.@-`, not `.` or `..`.
pub fn validate_user_id(user_id: &str) -> Result<()> {
    let ok = !user_id.is_empty()
        && user_id.len() <= MAX_NAME_LEN
        && user_id != "."
        && user_id != ".."
        && user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "invalid user id '{}': use 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _ . @ -",
            truncate_for_message(user_id)
        )))
    }
}

#[derive(Debug, Default)]
struct State {
    namespaces: BTreeMap<String, NamespaceDef>,
    /// Keyed by (namespace, table).
    tables: BTreeMap<(String, String), Arc<TableDef>>,
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
        if !tables.is_empty() && !cascade {
            return Err(Error::ConstraintViolation(format!(
                "namespace '{name}' still has {} table(s); use DROP NAMESPACE {name} CASCADE",
                tables.len()
            )));
        }
        let _no_flush = self.drops.write();
        let mut b = WriteBatch::default();
        let mut files = Vec::new();
        for t in &tables {
            self.delete_table_into(&mut b, t, &mut files)?;
        }
        b.delete_cf(self.store.cf(CF_CATALOG)?, keyspace::namespace(name));
        self.store.write(b)?;
        let mut st = self.state.write();
        for t in &tables {
            st.tables.remove(&(t.namespace.clone(), t.name.clone()));
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
        for (_, m) in crate::cold::manifest::load_table(&self.store, t.id)? {
            files.extend(m.segments.into_iter().map(|s| s.path));
        }
        let catalog = self.store.cf(CF_CATALOG)?;
        b.delete_cf(catalog, keyspace::table(&t.namespace, &t.name));
        b.delete_cf(catalog, keyspace::widest_row(t.id));
        let prefix = table_prefix(t.id);
        let upper = prefix_upper_bound(&prefix);
        b.delete_range_cf(self.store.cf(CF_ROWS)?, &prefix, &upper);
        b.delete_range_cf(self.store.cf(CF_FLUSHED)?, &prefix, &upper);
        let mp = keyspace::table_manifests(t.id);
        b.delete_range_cf(catalog, mp.as_bytes(), &prefix_upper_bound(mp.as_bytes()));
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
    fn names_that_could_escape_a_path_are_refused() {
        for bad in ["../x", "a/b", "a\0b", "", "A", "1abc", ".", "a-b"] {
            assert!(validate_name("table", bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["..", ".", "a/b", "a\0", ""] {
            assert!(validate_user_id(bad).is_err(), "{bad:?} accepted");
        }
        validate_name("table", "orders_2025").unwrap();
        validate_user_id("alice.smith@example-1").unwrap();
    }

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

#[cfg(test)]
mod default_sql_tests {
    use super::ColumnDefault;
    use crate::types::{DataType, Value};

    #[test]
    fn literal_defaults_read_as_sql() {
        let sql = |v: Value, t: DataType| ColumnDefault::Literal(v).sql(&t);
        assert_eq!(
            sql(
                Value::Decimal(50),
                DataType::Decimal {
                    precision: 5,
                    scale: 2
                }
            ),
            "0.50"
        );
        assert_eq!(
            sql(
                Value::Decimal(-1250),
                DataType::Decimal {
                    precision: 5,
                    scale: 2
                }
            ),
            "-12.50"
        );
        assert_eq!(sql(Value::Date(18293), DataType::Date), "DATE '2020-02-01'");
        assert_eq!(
            sql(Value::Time(37_800_000_000), DataType::Time),
            "TIME '10:30:00'"
        );
        assert_eq!(
            sql(Value::Timestamp(1_577_872_800_000_000), DataType::Timestamp),
            "TIMESTAMP '2020-01-01 10:00:00'"
        );
        assert_eq!(
            sql(Value::Bytes(vec![0x61, 0x62]), DataType::Bytea),
            "X'6162'"
        );
        assert_eq!(sql(Value::Text("it's".into()), DataType::Text), "'it''s'");
        assert_eq!(ColumnDefault::Now.sql(&DataType::Timestamp), "NOW()");
    }
}
