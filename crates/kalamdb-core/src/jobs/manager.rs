//! The job manager: one implementation for every background job, which knows nothing of rows.
//!
//! A job is a row of `system.jobs` ([`crate::jobs::record`]), rewritten at every state
//! change: `queued` -> `running` -> `completed | failed | cancelled`, with `retrying`
//! (exponential backoff, up to `max_attempts`) in between for units that failed. What a job
//! does is a [`Job`]: it names its units of work (a flush: one scope each), does one unit at a
//! time on a blocking thread, and turns the tally into the job's result. At most one
//! unfinished job of a kind exists per target: a second request gets the first one's id.
//! Jobs run on the tokio runtime with bounded concurrency; every synced write of a job's row
//! and every unit run on blocking threads. Cancellation (`KILL JOB`) is cooperative, checked
//! between units. At startup, jobs left unfinished by a crash or kill become `failed` with
//! `interrupted by restart`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::catalog::access::Principal;
use crate::clock::now_millis;
use crate::error::{Error, Result};
use crate::jobs::record::{self, JobRecord, JobStatus};
use crate::storage::rocks::Store;

/// One kind of background job. The manager owns its record, retries and cancellation; the
/// job owns what its units are and what they do. Every method but the names runs on a
/// blocking thread.
pub trait Job: Send + Sync + 'static {
    /// A unit of work (a flush: one scope of the table).
    type Unit: Send + 'static;

    /// `job_type` in system.jobs ("flush") and the first letters of its ids ("FL").
    fn kind(&self) -> &'static str;
    fn id_prefix(&self) -> &'static str;
    /// What the job works on (namespace, table), as system.jobs shows it.
    fn target(&self) -> (String, String);
    /// At most one unfinished job per key: a second request joins the first. A flush's is its
    /// table's id, not its name (a flush of a table created again under the name of a dropped
    /// one joined the dropped one's dying job and flushed nothing).
    fn dedup_key(&self) -> String {
        let (namespace, table) = self.target();
        format!("{} {namespace}.{table}", self.kind())
    }
    /// `parameters` in system.jobs.
    fn parameters(&self) -> serde_json::Value;
    /// What a unit is called in messages ("user") and the name of one unit.
    fn unit_label(&self) -> &'static str;
    fn unit_name(&self, unit: &Self::Unit) -> String;

    /// The units to do, when the job starts running.
    fn units(&self) -> Result<Vec<Self::Unit>>;
    /// Do one unit: what it added to the tally's counters, and its error if it failed (what
    /// it did before failing still counts).
    fn run_unit(&self, unit: &Self::Unit) -> (Vec<(&'static str, u64)>, Option<Error>);
    /// How much the job achieved (a flush: rows flushed): a job with failed units that
    /// achieved nothing is `failed`, one that achieved something is `completed` with the
    /// failures listed.
    fn achieved(&self, tally: &Tally) -> u64;
    /// The job's `result` from its tally.
    fn result(&self, tally: &Tally) -> serde_json::Value;
    /// The message of a job whose every attempt achieved nothing.
    fn all_failed(&self, errors: &str) -> String;
    /// Why what the units did does not count any more (a flush of a table dropped meanwhile),
    /// checked once they are done.
    fn voided(&self) -> Option<String>;
    /// Take out of a voided job's tally what it must not report.
    fn void(&self, _tally: &mut Tally) {}
    /// After the job's outcome is recorded.
    fn finished(&self, record: &JobRecord, tally: &Tally, consecutive_failures: u64);
}

/// What a job's units did, across attempts.
#[derive(Debug, Default)]
pub struct Tally {
    counters: BTreeMap<&'static str, u64>,
    /// Units processed (each counted once across attempts).
    pub units_seen: BTreeSet<String>,
    /// Latest error per unit still failing.
    pub errors: BTreeMap<String, String>,
}

impl Tally {
    pub fn get(&self, counter: &str) -> u64 {
        self.counters.get(counter).copied().unwrap_or(0)
    }

    /// Forget a counter (what a voided job did is not kept).
    pub fn reset(&mut self, counter: &'static str) {
        self.counters.insert(counter, 0);
    }
}

/// Settings of the job manager (from the server configuration).
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub max_concurrent: usize,
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub retention_secs: u64,
    pub segment_rows: usize,
    /// Scopes (users) one flush job flushes at once.
    pub flush_parallelism: usize,
    pub node_id: String,
}

impl Default for JobSettings {
    fn default() -> JobSettings {
        JobSettings {
            max_concurrent: 2,
            max_attempts: 3,
            retry_backoff_ms: 1000,
            retention_secs: 7 * 24 * 3600,
            segment_rows: 100_000,
            flush_parallelism: 2,
            node_id: "node-1".into(),
        }
    }
}

/// Creates, runs and records jobs.
pub struct JobManager {
    store: Store,
    settings: JobSettings,
    permits: Arc<Semaphore>,
    /// A job's dedup key ([`Job::dedup_key`]) -> id of its unfinished job.
    active: Mutex<HashMap<String, String>>,
    cancel: Mutex<HashMap<String, Arc<AtomicBool>>>,
    shutting_down: AtomicBool,
    /// `kind ns.table` -> jobs in a row that did not complete every unit.
    consecutive_failures: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for JobManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobManager")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Run blocking work (a synced write, a unit) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("job task failed: {e}")))?
}

impl JobManager {
    /// Open the manager and mark jobs a previous process left unfinished as failed.
    pub fn open(store: Store, settings: JobSettings) -> Result<Arc<JobManager>> {
        for mut job in record::list_jobs(&store)? {
            if !job.status.is_finished() {
                job.status = JobStatus::Failed;
                job.error_message = Some("interrupted by restart".into());
                let now = now_millis();
                job.completed_at_ms = Some(now);
                job.duration_ms = job.started_at_ms.map(|s| now.saturating_sub(s));
                record::save(&store, &job)?;
                tracing::warn!(job_id = %job.job_id, table = %format!("{}.{}", job.namespace, job.table_name), "job interrupted by restart marked failed");
            }
        }
        Ok(Arc::new(JobManager {
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            store,
            settings,
            active: Mutex::new(HashMap::new()),
            cancel: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            consecutive_failures: Mutex::new(HashMap::new()),
        }))
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    async fn save(&self, job: &JobRecord) -> Result<()> {
        let (store, job) = (self.store.clone(), job.clone());
        blocking(move || record::save(&store, &job)).await
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        record::get(&self.store, id)
    }

    /// Every job row, oldest first.
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        record::list_jobs(&self.store)
    }

    /// Start `job` unless one of its kind is already unfinished for its target. Returns the
    /// job id and whether a new job was created. Writes the queued row (synced) before it
    /// returns: call it from a blocking context or accept one synced write.
    pub fn start<J: Job>(self: &Arc<Self>, job: J, created_by: &str) -> Result<(String, bool)> {
        let (namespace, table_name) = job.target();
        let key = job.dedup_key();
        let target = format!("{} {namespace}.{table_name}", job.kind());
        let mut active = self.active.lock();
        // A request joins the target's unfinished job, unless that one is being killed: then
        // it gets a job of its own, which starts once the dying one has ended (joining it
        // would answer "started" and do nothing).
        let mut after: Option<String> = None;
        if let Some(id) = active.get(&key) {
            let dying = self
                .cancel
                .lock()
                .get(id)
                .is_some_and(|f| f.load(Ordering::Relaxed));
            if !dying {
                return Ok((id.clone(), false));
            }
            after = Some(id.clone());
        }
        let id = format!(
            "{}-{:012x}",
            job.id_prefix(),
            rand::random::<u64>() & 0xffff_ffff_ffff
        );
        let row = JobRecord {
            job_id: id.clone(),
            job_type: job.kind().into(),
            status: JobStatus::Queued,
            namespace,
            table_name,
            parameters: job.parameters().to_string(),
            result: None,
            error_message: None,
            attempt: 0,
            max_attempts: self.settings.max_attempts.max(1),
            created_by: created_by.to_string(),
            created_at_ms: now_millis(),
            started_at_ms: None,
            completed_at_ms: None,
            duration_ms: None,
            node_id: self.settings.node_id.clone(),
        };
        record::save(&self.store, &row)?;
        active.insert(key.clone(), id.clone());
        metrics::gauge!("kalamdb_jobs_active").set(active.len() as f64);
        drop(active);
        let flag = Arc::new(AtomicBool::new(false));
        self.cancel.lock().insert(id.clone(), flag.clone());
        let jm = self.clone();
        tokio::spawn(async move {
            let span = tracing::info_span!("job", job_id = %row.job_id, table = %target);
            if let Some(dying) = after {
                // Its task removes its cancel flag as its last step.
                while jm.cancel.lock().contains_key(&dying) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let _permit = jm.permits.clone().acquire_owned().await;
            let job_id = row.job_id.clone();
            let run = jm.run(Arc::new(job), row, &target, flag);
            if let Err(e) = tracing::Instrument::instrument(run, span).await {
                tracing::error!(%job_id, error = %e, "job bookkeeping failed");
            }
            let mut active = jm.active.lock();
            // A job started behind this one (while it was being killed) owns the entry now.
            if active.get(&key) == Some(&job_id) {
                active.remove(&key);
            }
            metrics::gauge!("kalamdb_jobs_active").set(active.len() as f64);
            drop(active);
            jm.cancel.lock().remove(&job_id);
        });
        Ok((id, true))
    }

    async fn run<J: Job>(
        &self,
        job: Arc<J>,
        mut row: JobRecord,
        key: &str,
        cancel: Arc<AtomicBool>,
    ) -> Result<()> {
        let started = now_millis();
        row.started_at_ms = Some(started);
        row.attempt = 1;
        row.status = JobStatus::Running;
        self.save(&row).await?;
        let mut tally = Tally::default();
        let mut pending = {
            let job = job.clone();
            blocking(move || job.units()).await?
        };
        let mut cancelled = false;
        loop {
            let failed = self
                .attempt(&job, pending, &mut tally, &cancel, &mut cancelled)
                .await?;
            if cancelled || failed.is_empty() || row.attempt >= row.max_attempts {
                break;
            }
            row.status = JobStatus::Retrying;
            row.result = Some(job.result(&tally).to_string());
            row.attempt += 1;
            self.save(&row).await?;
            let backoff = self
                .settings
                .retry_backoff_ms
                .saturating_mul(1u64 << (row.attempt - 2).min(16));
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            if cancel.load(Ordering::Relaxed) {
                cancelled = true;
                break;
            }
            row.status = JobStatus::Running;
            self.save(&row).await?;
            pending = failed;
        }
        let now = now_millis();
        row.completed_at_ms = Some(now);
        row.duration_ms = Some(now.saturating_sub(started));
        let voided = {
            let job = job.clone();
            blocking(move || Ok(job.voided())).await?
        };
        self.conclude(&*job, &mut row, &mut tally, voided, cancelled);
        tracing::info!(job_id = %row.job_id, status = %row.status, achieved = job.achieved(&tally), "job finished");
        self.save(&row).await?;
        let failures = {
            let mut all = self.consecutive_failures.lock();
            let n = all.entry(key.to_string()).or_default();
            match row.status {
                JobStatus::Completed if tally.errors.is_empty() => *n = 0,
                JobStatus::Completed | JobStatus::Failed => *n += 1,
                _ => {}
            }
            *n
        };
        blocking(move || {
            job.finished(&row, &tally, failures);
            Ok(())
        })
        .await
    }

    /// One attempt over `units`, up to `flush_parallelism` at once; returns the units that
    /// failed. Stops starting units once the job is cancelled (running ones finish).
    async fn attempt<J: Job>(
        &self,
        job: &Arc<J>,
        units: Vec<J::Unit>,
        tally: &mut Tally,
        cancel: &AtomicBool,
        cancelled: &mut bool,
    ) -> Result<Vec<J::Unit>> {
        let parallelism = self.settings.flush_parallelism.max(1);
        let mut failed = Vec::new();
        let mut queue = units.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < parallelism && !*cancelled {
                if cancel.load(Ordering::Relaxed) {
                    *cancelled = true;
                    break;
                }
                let Some(unit) = queue.next() else { break };
                let job = job.clone();
                running.spawn_blocking(move || {
                    let (counts, err) = job.run_unit(&unit);
                    (unit, counts, err)
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (unit, counts, err) = joined.map_err(|e| Error::Internal(e.to_string()))?;
            let name = job.unit_name(&unit);
            for (counter, n) in counts {
                *tally.counters.entry(counter).or_default() += n;
            }
            tally.units_seen.insert(name.clone());
            match err {
                None => {
                    tally.errors.remove(&name);
                }
                Some(e) => {
                    let msg = e.to_string();
                    // The job's span carries job_id and table.
                    tracing::warn!(unit = %name, error = %msg, "{} of a unit failed", job.kind());
                    tally.errors.insert(name, msg);
                    failed.push(unit);
                }
            }
        }
        Ok(failed)
    }

    /// The job's final status, message and result.
    fn conclude<J: Job>(
        &self,
        job: &J,
        row: &mut JobRecord,
        tally: &mut Tally,
        voided: Option<String>,
        cancelled: bool,
    ) {
        let label = job.unit_label();
        let joined = tally
            .errors
            .iter()
            .map(|(u, e)| format!("{label} {u}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        if voided.is_some() {
            job.void(tally);
        }
        row.result = Some(job.result(tally).to_string());
        if let Some(why) = voided {
            row.status = JobStatus::Failed;
            row.error_message = Some(why);
        } else if cancelled {
            row.status = JobStatus::Cancelled;
            let why = if self.shutting_down.load(Ordering::Relaxed) {
                "interrupted by shutdown"
            } else {
                "cancelled by KILL JOB"
            };
            row.error_message = Some(if joined.is_empty() {
                why.to_string()
            } else {
                format!("{why}; {joined}")
            });
        } else if tally.errors.is_empty() {
            row.status = JobStatus::Completed;
            row.error_message = None;
        } else if job.achieved(tally) == 0 {
            row.status = JobStatus::Failed;
            row.error_message = Some(job.all_failed(&joined));
        } else {
            row.status = JobStatus::Completed;
            row.error_message = Some(joined);
        }
    }

    /// Ask a job to stop at the next unit boundary. Users may only kill their own jobs.
    pub fn kill(&self, id: &str, by: &Principal) -> Result<JobRecord> {
        let job = self
            .get(id)?
            .ok_or_else(|| Error::JobNotFound(id.to_string()))?;
        by.check_kill_job(id, &job.created_by)?;
        if job.status.is_finished() {
            return Ok(job);
        }
        if let Some(flag) = self.cancel.lock().get(id) {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(job)
    }

    /// At shutdown: ask every running job to stop at its next unit boundary and wait up to
    /// `timeout` for them to record their final status.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for flag in self.cancel.lock().values() {
            flag.store(true, Ordering::Relaxed);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.active.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until a job has finished and return its final row; a timeout error once
    /// `deadline` passes first (the job goes on).
    pub async fn wait(&self, id: &str, deadline: Instant) -> Result<JobRecord> {
        loop {
            let (store, owned) = (self.store.clone(), id.to_string());
            let job = blocking(move || record::get(&store, &owned))
                .await?
                .ok_or_else(|| Error::JobNotFound(id.to_string()))?;
            if job.status.is_finished() {
                return Ok(job);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(format!(
                    "job {id} is still {} at the statement's deadline; it goes on: follow it in system.jobs",
                    job.status
                )));
            }
            tokio::time::sleep(Duration::from_millis(25).min(deadline - now)).await;
        }
    }

    /// Delete finished jobs older than the retention period. Returns how many. Blocking.
    pub fn prune(&self) -> Result<usize> {
        let cutoff = now_millis().saturating_sub(self.settings.retention_secs * 1000);
        record::prune(&self.store, cutoff)
    }
}

/// A tally's counters as JSON object members, for a job's result.
pub fn counters_json(
    tally: &Tally,
    names: &[&'static str],
) -> serde_json::Map<String, serde_json::Value> {
    names
        .iter()
        .map(|n| (n.to_string(), json!(tally.get(n))))
        .collect()
}
