//! KalamDB's commands that are neither DDL nor DML: STORAGE FLUSH (with WAIT bounded by the
//! statement's deadline) and SHOW FUNCTIONS.

use arrow::array::RecordBatch;
use kalamdb_core::{start_flush, Error, FlushTrigger, Result, TableKind};
use std::sync::Arc;

use super::output::*;
use super::router::Engine;

impl Engine {
    pub(super) fn flush_target(
        &self,
        caller: &Caller,
        table: &crate::statement::parser::TableName,
    ) -> Result<Arc<kalamdb_core::TableDef>> {
        caller.principal.check_flush()?;
        let (ns, name) = table.qualified(&caller.namespace);
        if kalamdb_core::RESERVED_NAMESPACES.contains(&ns.as_str()) {
            return Err(Error::Unsupported(format!(
                "{ns} tables are views of the server's state and are never flushed"
            )));
        }
        self.db.catalog.resolve_table(&ns, &name)
    }

    /// Start a flush of `def` (its queued row is written, synced, off the async workers).
    pub(super) async fn start_flush(
        &self,
        caller: &Caller,
        def: Arc<kalamdb_core::TableDef>,
    ) -> Result<String> {
        let (jobs, db, by) = (
            self.jobs.clone(),
            self.db.clone(),
            caller.principal.user_id.clone(),
        );
        tokio::task::spawn_blocking(move || {
            start_flush(&jobs, &db, def, &by, FlushTrigger::Manual).map(|(id, _created)| id)
        })
        .await
        .map_err(|e| Error::Internal(format!("starting a flush failed: {e}")))?
    }

    /// `STORAGE FLUSH TABLE`; with WAIT, until the job ends or the statement's deadline
    /// (then TIMEOUT, naming the job, which goes on).
    pub(super) async fn flush_table(
        &self,
        caller: &Caller,
        table: &crate::statement::parser::TableName,
        wait: bool,
        started: std::time::Instant,
    ) -> Result<StatementOutput> {
        let def = self.flush_target(caller, table)?;
        let name = def.qualified_name();
        let job_id = self.start_flush(caller, def).await?;
        if !wait {
            return Ok(StatementOutput::Job {
                message: format!("Flush started for table '{name}'. Job ID: {job_id}"),
                job_ids: vec![job_id],
                job: None,
            });
        }
        let deadline = started + self.statement_timeout(caller);
        let job = self.jobs.wait(&job_id, deadline).await?;
        let batch = crate::df::system_tables::jobs_batch(std::slice::from_ref(&job))?;
        let schema = batch.schema();
        let batches = vec![batch];
        Ok(StatementOutput::Job {
            message: format!(
                "Flush of table '{name}' finished with status {}. Job ID: {job_id}",
                job.status
            ),
            job_ids: vec![job_id],
            job: Some((schema, batches)),
        })
    }

    pub(super) async fn flush_all(
        &self,
        caller: &Caller,
        namespace: Option<&str>,
        wait: bool,
        started: std::time::Instant,
    ) -> Result<StatementOutput> {
        caller.principal.check_flush()?;
        let tables = match namespace {
            Some(ns) => {
                if self.db.catalog.namespace(ns).is_none() {
                    return Err(Error::NamespaceNotFound(ns.to_string()));
                }
                self.db.catalog.tables_in(ns)
            }
            None => self.db.catalog.tables(),
        };
        let mut ids = Vec::new();
        for def in tables {
            if !matches!(def.kind, TableKind::User | TableKind::Shared)
                || self.db.rows.buffered(def.id) == 0
            {
                continue;
            }
            ids.push(self.start_flush(caller, def).await?);
        }
        if !wait {
            return Ok(StatementOutput::Job {
                message: format!("Flush started for {} table(s)", ids.len()),
                job_ids: ids,
                job: None,
            });
        }
        let mut jobs = Vec::with_capacity(ids.len());
        let deadline = started + self.statement_timeout(caller);
        for id in &ids {
            jobs.push(self.jobs.wait(id, deadline).await?);
        }
        let completed = jobs
            .iter()
            .filter(|j| j.status == kalamdb_core::JobStatus::Completed)
            .count();
        let batch = crate::df::system_tables::jobs_batch(&jobs)?;
        let schema = batch.schema();
        Ok(StatementOutput::Job {
            message: format!(
                "Flush of {} table(s) finished: {completed} completed",
                ids.len()
            ),
            job_ids: ids,
            job: Some((schema, vec![batch])),
        })
    }

    /// `SHOW FUNCTIONS`: name, kind and canonical name of every function a statement may
    /// call (an alias lists the function it names).
    pub(super) fn show_functions(&self) -> Result<StatementOutput> {
        let mut rows: Vec<(String, &str, String)> = Vec::new();
        for (name, f) in self.base_state.scalar_functions() {
            rows.push((name.clone(), "scalar", f.name().to_string()));
        }
        for (name, f) in self.base_state.aggregate_functions() {
            rows.push((name.clone(), "aggregate", f.name().to_string()));
        }
        for (name, f) in self.base_state.window_functions() {
            rows.push((name.clone(), "window", f.name().to_string()));
        }
        rows.sort();
        let schema = text_schema(&["function_name", "function_type", "canonical_name"]);
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.2.as_str()),
            )),
        ];
        let row_count = rows.len();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(StatementOutput::Rows {
            schema,
            batches: vec![batch],
            row_count,
        })
    }
}
