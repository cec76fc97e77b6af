//! The flush job: [`Job`] whose units are the scopes of a table with rows in the hot buffer,
//! each flushed by [`crate::flush::protocol::flush_scope`].

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::json;

use crate::catalog::{TableDef, TableKind};
use crate::db::Db;
use crate::encoding::row_key::Scope;
use crate::error::{Error, Result};
use crate::flush::protocol::{flush_scope, hot_scopes, scope_name};
use crate::jobs::manager::{counters_json, Job, JobManager, Tally};
use crate::jobs::record::{JobRecord, JobStatus};

/// What started a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushTrigger {
    Manual,
    Policy,
}

impl FlushTrigger {
    fn as_str(&self) -> &'static str {
        match self {
            FlushTrigger::Manual => "manual",
            FlushTrigger::Policy => "policy",
        }
    }
}

const COUNTERS: [&str; 4] = [
    "rows_scanned",
    "rows_flushed",
    "files_written",
    "bytes_written",
];

/// Flush of one table.
pub struct FlushJob {
    db: Arc<Db>,
    /// The table as the request saw it; replaced by its current definition when the job
    /// starts running (ALTERs since the request count).
    def: RwLock<Arc<TableDef>>,
    trigger: FlushTrigger,
    segment_rows: usize,
}

/// Start a flush of `def` unless one is already unfinished for it (see [`JobManager::start`]).
pub fn start_flush(
    jobs: &Arc<JobManager>,
    db: &Arc<Db>,
    def: Arc<TableDef>,
    created_by: &str,
    trigger: FlushTrigger,
) -> Result<(String, bool)> {
    if def.kind == TableKind::Stream {
        return Err(Error::Unsupported(format!(
            "STREAM table '{}' is never flushed",
            def.qualified_name()
        )));
    }
    if def.kind == TableKind::System {
        return Err(Error::Unsupported("system tables are not flushed".into()));
    }
    let job = FlushJob {
        db: db.clone(),
        def: RwLock::new(def),
        trigger,
        segment_rows: jobs.settings().segment_rows,
    };
    jobs.start(job, created_by)
}

impl FlushJob {
    fn def(&self) -> Arc<TableDef> {
        self.def.read().clone()
    }
}

impl Job for FlushJob {
    type Unit = Scope;

    fn kind(&self) -> &'static str {
        "flush"
    }

    fn id_prefix(&self) -> &'static str {
        "FL"
    }

    fn target(&self) -> (String, String) {
        let def = self.def();
        (def.namespace.clone(), def.name.clone())
    }

    fn dedup_key(&self) -> String {
        format!("flush table {}", self.def().id)
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"trigger": self.trigger.as_str()})
    }

    fn unit_label(&self) -> &'static str {
        "user"
    }

    fn unit_name(&self, scope: &Scope) -> String {
        scope_name(scope)
    }

    fn units(&self) -> Result<Vec<Scope>> {
        let def = self.def();
        match self.db.catalog.table(&def.namespace, &def.name) {
            // The table's current definition (ALTERs since the request count)...
            Some(current) if current.id == def.id => *self.def.write() = current,
            // ...but never another table of the same name: this one is gone (voided).
            _ => return Ok(Vec::new()),
        }
        hot_scopes(&self.db.rows, self.def().id)
    }

    fn run_unit(&self, scope: &Scope) -> (Vec<(&'static str, u64)>, Option<Error>) {
        let def = self.def();
        let (done, err) = flush_scope(
            &self.db.rows,
            &self.db.catalog,
            &def,
            scope,
            self.segment_rows,
        );
        let counts = vec![
            ("rows_scanned", done.rows_scanned),
            ("rows_flushed", done.rows_flushed),
            ("files_written", done.files_written),
            ("bytes_written", done.bytes_written),
        ];
        (counts, err)
    }

    fn achieved(&self, tally: &Tally) -> u64 {
        tally.get("rows_flushed")
    }

    fn result(&self, tally: &Tally) -> serde_json::Value {
        let mut out = counters_json(tally, &COUNTERS[1..]);
        out.insert("users_processed".into(), json!(tally.units_seen.len()));
        out.insert("users_failed".into(), json!(tally.errors.len()));
        out.insert(
            "errors".into(),
            tally
                .errors
                .iter()
                .map(|(u, e)| json!({"user_id": u, "error": e}))
                .collect(),
        );
        serde_json::Value::Object(out)
    }

    fn all_failed(&self, errors: &str) -> String {
        format!("Flush failed for all users: {errors}")
    }

    // A table dropped (or dropped and created again) while its flush ran: whatever the flush
    // wrote went with it, so it must not report rows flushed.
    fn voided(&self) -> Option<String> {
        let def = self.def();
        self.db
            .catalog
            .table(&def.namespace, &def.name)
            .is_none_or(|t| t.id != def.id)
            .then(|| {
                format!(
                    "table '{}' was dropped during the flush; nothing it flushed is kept",
                    def.qualified_name()
                )
            })
    }

    fn void(&self, tally: &mut Tally) {
        for counter in ["rows_flushed", "files_written", "bytes_written"] {
            tally.reset(counter);
        }
    }

    fn finished(&self, job: &JobRecord, tally: &Tally, consecutive_failures: u64) {
        let outcome = match job.status {
            JobStatus::Completed if tally.errors.is_empty() => "completed",
            JobStatus::Completed => "partial",
            JobStatus::Failed => "failed",
            _ => "cancelled",
        };
        let duration_ms = job.duration_ms.unwrap_or(0);
        metrics::counter!("kalamdb_flush_jobs_total", "outcome" => outcome).increment(1);
        metrics::histogram!("kalamdb_flush_duration_seconds").record(duration_ms as f64 / 1000.0);
        let table = format!("{}.{}", job.namespace, job.table_name);
        metrics::counter!("kalamdb_flush_rows_total", "table" => table.clone())
            .increment(tally.get("rows_flushed"));
        metrics::counter!("kalamdb_flush_bytes_total", "table" => table.clone())
            .increment(tally.get("bytes_written"));
        metrics::gauge!("kalamdb_flush_consecutive_failures", "table" => table)
            .set(consecutive_failures as f64);
        if tally.get("rows_flushed") > 0 {
            // The flushed hot versions are now RocksDB tombstones that every scan of the table
            // would step over one by one until compaction drops them (a 900k-row table took
            // 650 ms to count after its flush). Compact the table's key range now, in the
            // background: the job has ended once its outcome is recorded.
            let rows = self.db.rows.clone();
            let table_id = self.def().id;
            tokio::task::spawn_blocking(move || rows.compact_table(table_id));
        }
    }
}
