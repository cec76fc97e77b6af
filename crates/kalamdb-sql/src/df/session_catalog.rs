//! The DataFusion catalog one statement sees.
//!
//! Built per statement for one [`Principal`]: namespaces become schemas whose tables are
//! [`KalamTable`]s already bound to the principal's scope, plus the `system` and
//! `information_schema` schemas. Nothing here is shared between statements, so one caller's
//! identity can never leak into another's query.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};

use kalamdb_core::Error;
use parking_lot::Mutex;

use crate::df::provider::{df_error, KalamTable, TransactionReads};
use crate::df::system_tables::{
    information_schema_table, system_table, INFORMATION_SCHEMA_TABLES, SYSTEM_TABLES,
};
use datafusion::catalog::view::ViewTable;
use datafusion::logical_expr::LogicalPlan;
use kalamdb_core::{Db, Principal, ViewDef};

/// The names a statement's planning asked for and did not find, with the error each is
/// (NAMESPACE_NOT_FOUND or TABLE_NOT_FOUND), recorded as DataFusion asks: when planning then
/// fails, the missing table is known from here, never read out of DataFusion's message, and
/// a table created again since (a DROP racing the statement) does not change the answer.
#[derive(Debug, Default)]
pub(crate) struct Misses(Mutex<Vec<(String, Option<String>, Error)>>);

impl Misses {
    fn record(&self, namespace: &str, table: Option<&str>, error: Error) {
        self.0
            .lock()
            .push((namespace.to_string(), table.map(str::to_string), error));
    }

    /// Why `namespace.table` was not found, if planning looked for it and did not.
    pub(crate) fn find(&self, namespace: &str, table: &str) -> Option<Error> {
        self.0
            .lock()
            .iter()
            .find(|(ns, t, _)| ns == namespace && t.as_deref().is_none_or(|t| t == table))
            .map(|(_, _, e)| e.clone())
    }
}

/// Plans a view's query for the statement that reads it, as that statement's caller: a view
/// never shows more than its reader may read, and a USER table in it is the reader's rows.
#[async_trait]
pub(crate) trait ViewPlanner: Send + Sync + std::fmt::Debug {
    async fn plan_view(&self, view: &ViewDef) -> kalamdb_core::Result<LogicalPlan>;
}

/// Catalog of namespaces for one statement.
#[derive(Debug)]
pub struct StatementCatalog {
    db: Arc<Db>,
    principal: Principal,
    with_rowid: bool,
    statement_time_micros: i64,
    misses: Arc<Misses>,
    /// None where views are not read (the fast paths: a view name then goes to the planner).
    views: Option<Arc<dyn ViewPlanner>>,
    /// The transaction the statement runs in, whose snapshot and writes its scans read.
    transaction: Option<Arc<dyn TransactionReads>>,
}

impl StatementCatalog {
    /// `with_rowid` exposes `_rowid` on tables without a primary key (for UPDATE/DELETE).
    /// `statement_time_micros` is the statement's `NOW()` (UTC microseconds), which column
    /// defaults such as `DEFAULT NOW()` use too, so one statement sees one time.
    pub fn new(
        db: Arc<Db>,
        principal: Principal,
        with_rowid: bool,
        statement_time_micros: i64,
        misses: Arc<Misses>,
    ) -> StatementCatalog {
        StatementCatalog {
            db,
            principal,
            with_rowid,
            statement_time_micros,
            misses,
            views: None,
            transaction: None,
        }
    }

    /// Read tables as `transaction` reads them.
    pub(crate) fn in_transaction(
        mut self,
        transaction: Option<Arc<dyn TransactionReads>>,
    ) -> StatementCatalog {
        self.transaction = transaction;
        self
    }

    /// Read views through `planner`.
    pub(crate) fn with_views(mut self, planner: Arc<dyn ViewPlanner>) -> StatementCatalog {
        self.views = Some(planner);
        self
    }
}

impl CatalogProvider for StatementCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .catalog
            .namespaces()
            .into_iter()
            .map(|n| n.name)
            .collect();
        names.push("system".into());
        names.push("information_schema".into());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            "system" => Some(Arc::new(SystemSchema {
                db: self.db.clone(),
                principal: self.principal.clone(),
                misses: self.misses.clone(),
            })),
            "information_schema" => Some(Arc::new(InformationSchema {
                db: self.db.clone(),
                misses: self.misses.clone(),
            })),
            ns => {
                if self.db.catalog.namespace(ns).is_none() {
                    let missing = Error::NamespaceNotFound(ns.to_string());
                    self.misses.record(ns, None, missing);
                    return None;
                }
                Some(Arc::new(NamespaceSchema {
                    db: self.db.clone(),
                    namespace: ns.to_string(),
                    principal: self.principal.clone(),
                    with_rowid: self.with_rowid,
                    statement_time_micros: self.statement_time_micros,
                    misses: self.misses.clone(),
                    views: self.views.clone(),
                    transaction: self.transaction.clone(),
                }))
            }
        }
    }
}

#[derive(Debug)]
struct NamespaceSchema {
    db: Arc<Db>,
    namespace: String,
    principal: Principal,
    with_rowid: bool,
    statement_time_micros: i64,
    misses: Arc<Misses>,
    views: Option<Arc<dyn ViewPlanner>>,
    transaction: Option<Arc<dyn TransactionReads>>,
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        let tables = self.db.catalog.tables_in(&self.namespace);
        let views = self.db.catalog.views_in(&self.namespace);
        tables
            .iter()
            .map(|t| t.name.clone())
            .chain(views.iter().map(|v| v.name.clone()))
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(view) = self.db.catalog.view(&self.namespace, name) {
            let Some(planner) = &self.views else {
                return Ok(None);
            };
            let plan = planner.plan_view(&view).await.map_err(df_error)?;
            return Ok(Some(Arc::new(ViewTable::new(plan, Some(view.sql.clone())))));
        }
        let def = match self.db.catalog.resolve_table(&self.namespace, name) {
            Ok(def) => def,
            Err(missing) => {
                self.misses.record(&self.namespace, Some(name), missing);
                return Ok(None);
            }
        };
        let table = KalamTable::new(
            def,
            self.db.rows.clone(),
            self.principal.clone(),
            self.with_rowid,
            self.statement_time_micros,
            &self.db.seq,
        );
        Ok(Some(Arc::new(match &self.transaction {
            Some(t) => table.read_as(t.as_ref()),
            None => table,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.db.catalog.table(&self.namespace, name).is_some()
            || self.db.catalog.view(&self.namespace, name).is_some()
    }
}

#[derive(Debug)]
struct SystemSchema {
    db: Arc<Db>,
    principal: Principal,
    misses: Arc<Misses>,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if !SYSTEM_TABLES.contains(&name) {
            let missing = Error::TableNotFound(format!("system.{name}"));
            self.misses.record("system", Some(name), missing);
            return Ok(None);
        }
        if name == "jobs" {
            // Everyone may query jobs; below dba, only the jobs they created.
            let mut jobs = kalamdb_core::list_jobs(&self.db.store).map_err(df_error)?;
            jobs.retain(|j| self.principal.sees_job(&j.created_by));
            let t = crate::df::system_tables::jobs_table(&jobs).map_err(df_error)?;
            return Ok(Some(t as Arc<dyn TableProvider>));
        }
        self.principal.check_read_system(name).map_err(df_error)?;
        let t = system_table(name, &self.db.catalog, &self.db.rows).map_err(df_error)?;
        Ok(t.map(|t| t as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}

#[derive(Debug)]
struct InformationSchema {
    db: Arc<Db>,
    misses: Arc<Misses>,
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        INFORMATION_SCHEMA_TABLES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let t = information_schema_table(name, &self.db.catalog).map_err(df_error)?;
        if t.is_none() {
            let missing = Error::TableNotFound(format!("information_schema.{name}"));
            self.misses
                .record("information_schema", Some(name), missing);
        }
        Ok(t.map(|t| t as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        INFORMATION_SCHEMA_TABLES.contains(&name)
    }
}
