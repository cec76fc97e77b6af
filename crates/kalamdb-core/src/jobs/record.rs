//! A job's row of `system.jobs`, as persisted in the catalog column family under
//! `job/{job_id}` ([`crate::storage::keyspace::job`]) and rewritten at every state change.

use std::fmt;
use std::str::FromStr;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::storage::keyspace;
use crate::storage::rocks::Store;

/// Status of a job, spelled as in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Retrying,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        })
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<JobStatus> {
        serde_json::from_value(json!(s))
            .map_err(|_| Error::InvalidParameter(format!("unknown job status '{s}'")))
    }
}

/// A row of `system.jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub job_type: String,
    pub status: JobStatus,
    pub namespace: String,
    pub table_name: String,
    /// JSON text.
    pub parameters: String,
    /// JSON text, once the job has run.
    pub result: Option<String>,
    pub error_message: Option<String>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub created_by: String,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub completed_at_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub node_id: String,
}

/// Write a job's row (synced): blocking, never on an async worker.
pub fn save(store: &Store, job: &JobRecord) -> Result<()> {
    let mut b = WriteBatch::default();
    let v = serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?;
    b.put_cf(
        store.cf(keyspace::CF_CATALOG)?,
        keyspace::job(&job.job_id),
        v,
    );
    store.write(b)
}

/// A job's row, if it exists.
pub fn get(store: &Store, id: &str) -> Result<Option<JobRecord>> {
    match store.catalog_get(&keyspace::job(id))? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Internal(format!("corrupt job {id}: {e}"))),
    }
}

/// Delete the rows of finished jobs that completed before `cutoff_ms`. Returns how many.
pub fn prune(store: &Store, cutoff_ms: u64) -> Result<usize> {
    let mut b = WriteBatch::default();
    let mut n = 0;
    for j in list_jobs(store)? {
        if j.status.is_finished() && j.completed_at_ms.is_some_and(|t| t < cutoff_ms) {
            b.delete_cf(store.cf(keyspace::CF_CATALOG)?, keyspace::job(&j.job_id));
            n += 1;
        }
    }
    if n > 0 {
        store.write(b)?;
    }
    Ok(n)
}

/// Every job row in the store, oldest first.
pub fn list_jobs(store: &Store) -> Result<Vec<JobRecord>> {
    let mut jobs: Vec<JobRecord> = store
        .catalog_scan(keyspace::JOBS)?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| Error::Internal(format!("corrupt {k}: {e}")))
        })
        .collect::<Result<_>>()?;
    jobs.sort_by_key(|j| (j.created_at_ms, j.job_id.clone()));
    Ok(jobs)
}
