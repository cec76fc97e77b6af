//! The read-only SYSTEM tables (`system.*`) and `information_schema`, built from the catalog
//! when a statement reads them.
//!
//! They never show password hashes. Who may read them is decided in [`crate::df::session_catalog`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use datafusion::catalog::MemTable;

use kalamdb_core::{Catalog, JobRecord, Result, RowStore, TableKind};

/// Names of the tables in the `system` schema.
pub const SYSTEM_TABLES: &[&str] = &["namespaces", "tables", "users", "storages", "jobs"];
/// Names of the tables in the `information_schema` schema.
pub const INFORMATION_SCHEMA_TABLES: &[&str] = &["tables", "columns"];
/// Catalog name reported by information_schema.
pub const CATALOG_NAME: &str = "kalam";

fn text(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}
fn opt_text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}
fn ts(ms: Vec<u64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(
        ms.into_iter().map(|m| m as i64 * 1000).collect::<Vec<_>>(),
    ))
}
fn f(name: &str, t: ArrowType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}
fn ts_type() -> ArrowType {
    ArrowType::Timestamp(TimeUnit::Microsecond, None)
}

fn record_batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn mem_table(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let table = MemTable::try_new(schema, vec![vec![batch]])
        .map_err(|e| kalamdb_core::Error::Internal(e.to_string()))?;
    Ok(Arc::new(table))
}

fn opt_ts(ms: Vec<Option<u64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(
        ms.into_iter()
            .map(|m| m.map(|m| m as i64 * 1000))
            .collect::<Vec<_>>(),
    ))
}

/// Build `system.jobs` from job rows (already filtered to what the caller may see).
pub fn jobs_table(jobs: &[JobRecord]) -> Result<Arc<MemTable>> {
    let batch = jobs_batch(jobs)?;
    MemTable::try_new(batch.schema(), vec![vec![batch]])
        .map(Arc::new)
        .map_err(|e| kalamdb_core::Error::Internal(e.to_string()))
}

/// The rows of `system.jobs` for these jobs, as one batch.
pub fn jobs_batch(jobs: &[JobRecord]) -> Result<RecordBatch> {
    let t = |f: fn(&JobRecord) -> String| text(jobs.iter().map(f).collect());
    record_batch(
        vec![
            f("job_id", ArrowType::Utf8, false),
            f("job_type", ArrowType::Utf8, false),
            f("status", ArrowType::Utf8, false),
            f("namespace", ArrowType::Utf8, false),
            f("table_name", ArrowType::Utf8, false),
            f("parameters", ArrowType::Utf8, false),
            f("result", ArrowType::Utf8, true),
            f("error_message", ArrowType::Utf8, true),
            f("attempt", ArrowType::Int32, false),
            f("max_attempts", ArrowType::Int32, false),
            f("created_by", ArrowType::Utf8, false),
            f("created_at", ts_type(), false),
            f("started_at", ts_type(), true),
            f("completed_at", ts_type(), true),
            f("duration_ms", ArrowType::Int64, true),
            f("node_id", ArrowType::Utf8, false),
        ],
        vec![
            t(|j| j.job_id.clone()),
            t(|j| j.job_type.clone()),
            t(|j| j.status.to_string()),
            t(|j| j.namespace.clone()),
            t(|j| j.table_name.clone()),
            t(|j| j.parameters.clone()),
            opt_text(jobs.iter().map(|j| j.result.clone()).collect()),
            opt_text(jobs.iter().map(|j| j.error_message.clone()).collect()),
            Arc::new(Int32Array::from(
                jobs.iter().map(|j| j.attempt as i32).collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(
                jobs.iter()
                    .map(|j| j.max_attempts as i32)
                    .collect::<Vec<_>>(),
            )),
            t(|j| j.created_by.clone()),
            ts(jobs.iter().map(|j| j.created_at_ms).collect()),
            opt_ts(jobs.iter().map(|j| j.started_at_ms).collect()),
            opt_ts(jobs.iter().map(|j| j.completed_at_ms).collect()),
            Arc::new(Int64Array::from(
                jobs.iter()
                    .map(|j| j.duration_ms.map(|d| d as i64))
                    .collect::<Vec<_>>(),
            )),
            t(|j| j.node_id.clone()),
        ],
    )
}

/// Build `system.<name>` (except `jobs`, see [`jobs_table`]); None if there is no such table.
pub fn system_table(
    name: &str,
    catalog: &Catalog,
    rows: &RowStore,
) -> Result<Option<Arc<MemTable>>> {
    Ok(Some(match name {
        "namespaces" => namespaces_table(catalog)?,
        "tables" => tables_table(catalog, rows)?,
        "users" => users_table(catalog)?,
        "storages" => storages_table(catalog)?,
        _ => return Ok(None),
    }))
}

fn namespaces_table(catalog: &Catalog) -> Result<Arc<MemTable>> {
    let ns = catalog.namespaces();
    let counts: Vec<i64> = ns
        .iter()
        .map(|n| catalog.tables_in(&n.name).len() as i64)
        .collect();
    mem_table(
        vec![
            f("namespace", ArrowType::Utf8, false),
            f("table_count", ArrowType::Int64, false),
            f("created_at", ts_type(), false),
        ],
        vec![
            text(ns.iter().map(|n| n.name.clone()).collect()),
            Arc::new(Int64Array::from(counts)),
            ts(ns.iter().map(|n| n.created_at_ms).collect()),
        ],
    )
}

/// One row per table, with its buffered and flushed rows (manifest headers only), then one per
/// view (table_type VIEW; its column names as of its creation, no rows of its own).
fn tables_table(catalog: &Catalog, rows: &RowStore) -> Result<Arc<MemTable>> {
    let mut listing = TableListing::default();
    for t in catalog.tables() {
        listing.push_table(&t, rows)?;
    }
    for v in catalog.views() {
        listing.push_view(&v);
    }
    listing.into_table()
}

/// The columns of system.tables, row by row.
#[derive(Default)]
struct TableListing {
    namespaces: Vec<String>,
    names: Vec<String>,
    kinds: Vec<String>,
    columns: Vec<String>,
    primary_keys: Vec<Option<String>>,
    options: Vec<String>,
    buffered: Vec<i64>,
    flushed: Vec<i64>,
    versions: Vec<i32>,
    created: Vec<u64>,
}

impl TableListing {
    fn push_table(&mut self, t: &kalamdb_core::TableDef, rows: &RowStore) -> Result<()> {
        self.namespaces.push(t.namespace.clone());
        self.names.push(t.name.clone());
        self.kinds.push(t.kind.to_string());
        let columns: Vec<serde_json::Value> = t
            .live_columns()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "data_type": c.data_type.to_string(),
                    "nullable": c.nullable,
                    "default": c.default.as_ref().map(|d| d.sql(&c.data_type)),
                })
            })
            .collect();
        self.columns
            .push(serde_json::Value::Array(columns).to_string());
        self.primary_keys.push(t.primary_key.clone());
        self.options
            .push(serde_json::to_string(&t.options).unwrap_or_default());
        self.buffered.push(rows.buffered(t.id) as i64);
        let headers = kalamdb_core::table_headers(rows.store(), t.id)?;
        self.flushed
            .push(headers.iter().map(|(_, h)| h.rows).sum::<u64>() as i64);
        self.versions.push(t.schema_version as i32);
        self.created.push(t.created_at_ms);
        Ok(())
    }

    fn push_view(&mut self, v: &kalamdb_core::ViewDef) {
        self.namespaces.push(v.namespace.clone());
        self.names.push(v.name.clone());
        self.kinds.push("VIEW".to_string());
        let columns: Vec<serde_json::Value> = v
            .columns
            .iter()
            .map(|c| serde_json::json!({ "name": c }))
            .collect();
        self.columns
            .push(serde_json::Value::Array(columns).to_string());
        self.primary_keys.push(None);
        self.options
            .push(serde_json::json!({ "definition": v.sql }).to_string());
        self.buffered.push(0);
        self.flushed.push(0);
        self.versions.push(1);
        self.created.push(v.created_at_ms);
    }

    fn into_table(self) -> Result<Arc<MemTable>> {
        mem_table(
            vec![
                f("namespace", ArrowType::Utf8, false),
                f("table_name", ArrowType::Utf8, false),
                f("table_type", ArrowType::Utf8, false),
                f("columns", ArrowType::Utf8, false),
                f("primary_key", ArrowType::Utf8, true),
                f("options", ArrowType::Utf8, false),
                f("buffered_rows", ArrowType::Int64, false),
                f("flushed_rows", ArrowType::Int64, false),
                f("schema_version", ArrowType::Int32, false),
                f("created_at", ts_type(), false),
            ],
            vec![
                text(self.namespaces),
                text(self.names),
                text(self.kinds),
                text(self.columns),
                opt_text(self.primary_keys),
                text(self.options),
                Arc::new(Int64Array::from(self.buffered)),
                Arc::new(Int64Array::from(self.flushed)),
                Arc::new(Int32Array::from(self.versions)),
                ts(self.created),
            ],
        )
    }
}

/// One row per user, never a password hash.
fn users_table(catalog: &Catalog) -> Result<Arc<MemTable>> {
    let users = catalog.users();
    mem_table(
        vec![
            f("user_id", ArrowType::Utf8, false),
            f("role", ArrowType::Utf8, false),
            f("has_password", ArrowType::Boolean, false),
            f("created_at", ts_type(), false),
            f("updated_at", ts_type(), false),
        ],
        vec![
            text(users.iter().map(|u| u.user_id.clone()).collect()),
            text(users.iter().map(|u| u.role.to_string()).collect()),
            Arc::new(BooleanArray::from(
                users
                    .iter()
                    .map(|u| u.password_hash.is_some())
                    .collect::<Vec<_>>(),
            )),
            ts(users.iter().map(|u| u.created_at_ms).collect()),
            ts(users.iter().map(|u| u.updated_at_ms).collect()),
        ],
    )
}

fn storages_table(catalog: &Catalog) -> Result<Arc<MemTable>> {
    let s = catalog.storages();
    mem_table(
        vec![
            f("storage_id", ArrowType::Utf8, false),
            f("storage_type", ArrowType::Utf8, false),
            f("base_directory", ArrowType::Utf8, false),
            f("created_at", ts_type(), false),
        ],
        vec![
            text(s.iter().map(|x| x.storage_id.clone()).collect()),
            text(s.iter().map(|x| x.storage_type.clone()).collect()),
            text(s.iter().map(|x| x.base_directory.clone()).collect()),
            ts(s.iter().map(|x| x.created_at_ms).collect()),
        ],
    )
}

/// Build `information_schema.<name>`; None if there is no such table.
pub fn information_schema_table(name: &str, catalog: &Catalog) -> Result<Option<Arc<MemTable>>> {
    let tables = catalog.tables();
    Ok(Some(match name {
        "tables" => {
            let mut schema = Vec::new();
            let mut names = Vec::new();
            let mut kinds = Vec::new();
            for t in &tables {
                schema.push(t.namespace.clone());
                names.push(t.name.clone());
                kinds.push(t.kind.to_string());
            }
            for v in catalog.views() {
                schema.push(v.namespace.clone());
                names.push(v.name.clone());
                kinds.push("VIEW".to_string());
            }
            for s in SYSTEM_TABLES {
                schema.push("system".to_string());
                names.push(s.to_string());
                kinds.push(TableKind::System.to_string());
            }
            mem_table(
                vec![
                    f("table_catalog", ArrowType::Utf8, false),
                    f("table_schema", ArrowType::Utf8, false),
                    f("table_name", ArrowType::Utf8, false),
                    f("table_type", ArrowType::Utf8, false),
                ],
                vec![
                    text(vec![CATALOG_NAME.to_string(); names.len()]),
                    text(schema),
                    text(names),
                    text(kinds),
                ],
            )?
        }
        "columns" => {
            let (mut sch, mut tn, mut cn, mut pos, mut dt, mut nullable, mut def) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for t in &tables {
                for (i, c) in t.live_columns().enumerate() {
                    sch.push(t.namespace.clone());
                    tn.push(t.name.clone());
                    cn.push(c.name.clone());
                    pos.push(i as i64 + 1);
                    dt.push(c.data_type.to_string());
                    nullable.push(if c.nullable { "YES" } else { "NO" }.to_string());
                    def.push(c.default.as_ref().map(|d| d.sql(&c.data_type)));
                }
            }
            mem_table(
                vec![
                    f("table_catalog", ArrowType::Utf8, false),
                    f("table_schema", ArrowType::Utf8, false),
                    f("table_name", ArrowType::Utf8, false),
                    f("column_name", ArrowType::Utf8, false),
                    f("ordinal_position", ArrowType::Int64, false),
                    f("data_type", ArrowType::Utf8, false),
                    f("is_nullable", ArrowType::Utf8, false),
                    f("column_default", ArrowType::Utf8, true),
                ],
                vec![
                    text(vec![CATALOG_NAME.to_string(); cn.len()]),
                    text(sch),
                    text(tn),
                    text(cn),
                    Arc::new(Int64Array::from(pos)),
                    text(dt),
                    text(nullable),
                    opt_text(def),
                ],
            )?
        }
        _ => return Ok(None),
    }))
}
