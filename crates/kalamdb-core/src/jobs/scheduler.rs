//! The background scheduler: every `check_every`, flush tables whose policy says so
//! ([`crate::flush::policy`]), purge expired STREAM rows, publish storage-size metrics and
//! prune finished jobs past retention. Each tick runs on a blocking thread.
//!
//! A table is flushed (trigger `policy`, created by `system`) when it holds at least N
//! buffered row versions, or when it has buffered rows and S seconds passed since its last
//! policy check that flushed it (or since startup).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::TableKind;
use crate::clock::now_millis;
use crate::db::Db;
use crate::flush::policy::FlushPolicy;
use crate::jobs::flush_job::{start_flush, FlushTrigger};
use crate::jobs::manager::JobManager;

/// Check every table's policy every `check_every`, until the process ends.
pub async fn run_scheduler(
    db: Arc<Db>,
    jobs: Arc<JobManager>,
    default_policy: FlushPolicy,
    check_every: Duration,
) {
    let mut state = Some(Ticks::default());
    loop {
        tokio::time::sleep(check_every).await;
        // A tick reads manifests and writes jobs' rows (synced): on a blocking thread.
        let (db, jobs, mut ticks) = (db.clone(), jobs.clone(), state.take().unwrap_or_default());
        let done = tokio::task::spawn_blocking(move || {
            tick(&db, &jobs, default_policy, &mut ticks);
            ticks
        });
        state = match done.await {
            Ok(ticks) => Some(ticks),
            Err(e) => {
                tracing::error!(error = %e, "a scheduler tick failed");
                None
            }
        };
    }
}

/// When the scheduler last did what, between ticks.
#[derive(Default)]
struct Ticks {
    last_flush: HashMap<u64, u64>,
    last_prune: u64,
    last_sizes: u64,
    last_purge_of: HashMap<u64, u64>,
}

fn tick(db: &Arc<Db>, jobs: &Arc<JobManager>, default_policy: FlushPolicy, ticks: &mut Ticks) {
    let Ticks {
        last_flush,
        last_prune,
        last_sizes,
        last_purge_of,
    } = ticks;
    let now = now_millis();
    for def in db.catalog.tables() {
        if def.kind == TableKind::Stream {
            purge_stream(db, &def, now, last_purge_of);
            continue;
        }
        if !matches!(def.kind, TableKind::User | TableKind::Shared) {
            continue;
        }
        let policy = match def.options.flush_policy.as_deref().map(FlushPolicy::parse) {
            Some(Ok(p)) => p,
            _ => default_policy,
        };
        let since = *last_flush.entry(def.id).or_insert(now);
        let buffered = db.rows.buffered(def.id);
        metrics::gauge!("kalamdb_buffered_rows", "table" => def.qualified_name())
            .set(buffered as f64);
        if buffered == 0 {
            continue;
        }
        let by_rows = policy.rows.is_some_and(|n| buffered >= n);
        let by_time = policy
            .interval_secs
            .is_some_and(|s| now.saturating_sub(since) >= s * 1000);
        if by_rows || by_time {
            match start_flush(jobs, db, def.clone(), "system", FlushTrigger::Policy) {
                Ok((id, true)) => {
                    tracing::info!(job_id = %id, table = %def.qualified_name(), buffered, by_rows, "flush policy started a job");
                    last_flush.insert(def.id, now);
                }
                Ok((_, false)) => {}
                Err(e) => {
                    tracing::warn!(table = %def.qualified_name(), error = %e, "flush policy could not start a job")
                }
            }
        }
    }
    if now.saturating_sub(*last_sizes) >= 10_000 {
        *last_sizes = now;
        record_storage_sizes(db);
    }
    // Prune at least every minute, and often enough for short retention periods.
    let prune_every_ms = (jobs.settings().retention_secs * 500).clamp(1_000, 60_000);
    if now.saturating_sub(*last_prune) >= prune_every_ms {
        *last_prune = now;
        match jobs.prune() {
            Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned finished jobs past retention"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "job pruning failed"),
        }
    }
}

/// Delete a STREAM table's expired rows, at most once per min(TTL, 60 s).
fn purge_stream(
    db: &Arc<Db>,
    def: &Arc<crate::catalog::TableDef>,
    now: u64,
    last: &mut HashMap<u64, u64>,
) {
    let every_ms = def.options.ttl_seconds.unwrap_or(60).clamp(1, 60) * 1000;
    let since = *last.entry(def.id).or_insert(now);
    if now.saturating_sub(since) < every_ms {
        return;
    }
    last.insert(def.id, now);
    let (db, def) = (db.clone(), def.clone());
    // Runs on a blocking thread; the next check simply skips if this one is still running.
    tokio::task::spawn_blocking(move || match db.rows.purge_expired(&def) {
        Ok(0) => {}
        Ok(n) => {
            tracing::debug!(table = %def.qualified_name(), purged = n, "purged expired stream rows")
        }
        Err(e) => {
            tracing::warn!(table = %def.qualified_name(), error = %e, "purging expired stream rows failed")
        }
    });
}

/// Publish the on-disk size of the hot store and of committed Parquet segments.
fn record_storage_sizes(db: &Db) {
    let rocks = db.store.property_sum("rocksdb.total-sst-files-size")
        + db.store.property_sum("rocksdb.cur-size-all-mem-tables");
    metrics::gauge!("kalamdb_rocksdb_size_bytes").set(rocks as f64);
    // Where RocksDB's memory is: memtables (active + immutable being written out), SST
    // readers (index and filter blocks, outside the block cache) and the block caches.
    for (kind, prop) in [
        ("memtables", "rocksdb.size-all-mem-tables"),
        ("table_readers", "rocksdb.estimate-table-readers-mem"),
        ("block_cache", "rocksdb.block-cache-usage"),
    ] {
        let total = db.store.property_sum(prop);
        metrics::gauge!("kalamdb_rocksdb_memory_bytes", "kind" => kind).set(total as f64);
    }
    let mut parquet = 0u64;
    for def in db.catalog.tables() {
        if let Ok(headers) = crate::cold::manifest::table_headers(&db.store, def.id) {
            parquet += headers.iter().map(|(_, h)| h.bytes).sum::<u64>();
        }
    }
    metrics::gauge!("kalamdb_parquet_size_bytes").set(parquet as f64);
}
