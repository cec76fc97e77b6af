//! Flush policies: start flush jobs when a table's hot buffer crosses a bound. The same
//! scheduler purges expired STREAM rows and publishes storage-size metrics.
//!
//! `FLUSH_POLICY = 'rows:N,interval:S'` on a table, else the server default. A table is
//! flushed (trigger `policy`, created by `system`) when it holds at least N buffered row
//! versions, or when it has buffered rows and S seconds passed since its last policy check
//! that flushed it (or since startup).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::TableKind;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::jobs::{FlushTrigger, JobManager};
use crate::keys::now_millis;

/// A parsed flush policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushPolicy {
    pub rows: Option<u64>,
    pub interval_secs: Option<u64>,
}

impl FlushPolicy {
    /// Parse `rows:N,interval:S` (either part optional, each once, both positive).
    pub fn parse(text: &str) -> Result<FlushPolicy> {
        let bad = || {
            Error::InvalidParameter(format!(
                "FLUSH_POLICY must look like 'rows:10000,interval:300', not '{}'",
                crate::catalog::truncate_for_message(text)
            ))
        };
        let mut p = FlushPolicy::default();
        for part in text.split(',') {
            let (k, n) = part.trim().split_once(':').ok_or_else(bad)?;
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            let slot = match k.trim().to_ascii_lowercase().as_str() {
                "rows" => &mut p.rows,
                "interval" => &mut p.interval_secs,
                _ => return Err(bad()),
            };
            if slot.replace(n).is_some() {
                return Err(bad());
            }
        }
        Ok(p)
    }
}

/// Check every table's policy every `check_every`, until the process ends.
pub async fn run_scheduler(
    db: Arc<Db>,
    jobs: Arc<JobManager>,
    default_policy: FlushPolicy,
    check_every: Duration,
) {
    let mut last_flush: HashMap<u64, u64> = HashMap::new();
    let mut last_prune = 0u64;
    let mut last_sizes = 0u64;
    let mut last_purge_of: HashMap<u64, u64> = HashMap::new();
    loop {
        tokio::time::sleep(check_every).await;
        let now = now_millis();
        for def in db.catalog.tables() {
            if def.kind == TableKind::Stream {
                purge_stream(&db, &def, now, &mut last_purge_of);
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
                match jobs.start_flush(def.clone(), "system", FlushTrigger::Policy) {
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
        if now.saturating_sub(last_sizes) >= 10_000 {
            last_sizes = now;
            record_storage_sizes(&db);
        }
        // Prune at least every minute, and often enough for short retention periods.
        let prune_every_ms = (jobs.settings().retention_secs * 500).clamp(1_000, 60_000);
        if now.saturating_sub(last_prune) >= prune_every_ms {
            last_prune = now;
            match jobs.prune() {
                Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned finished jobs past retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "job pruning failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_bad_ones_are_refused() {
        assert_eq!(
            FlushPolicy::parse("rows:100,interval:5").unwrap(),
            FlushPolicy {
                rows: Some(100),
                interval_secs: Some(5)
            }
        );
        assert_eq!(
            FlushPolicy::parse("interval:5").unwrap(),
            FlushPolicy {
                rows: None,
                interval_secs: Some(5)
            }
        );
        for bad in ["", "rows:0", "rows:x", "bytes:5", "rows:1,rows:2"] {
            assert!(FlushPolicy::parse(bad).is_err(), "{bad}");
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

/// Sum of an integer RocksDB property over KalamDB's column families.
fn cf_property_sum(db: &Db, prop: &str) -> u64 {
    [
        crate::store::CF_CATALOG,
        crate::store::CF_ROWS,
        crate::store::CF_FLUSHED,
    ]
    .into_iter()
    .filter_map(|cf| db.store.cf(cf).ok())
    .filter_map(|handle| {
        db.store
            .db()
            .property_int_value_cf(handle, prop)
            .ok()
            .flatten()
    })
    .sum()
}

/// Publish the on-disk size of the hot store and of committed Parquet segments.
fn record_storage_sizes(db: &Db) {
    let rocks = cf_property_sum(db, "rocksdb.total-sst-files-size")
        + cf_property_sum(db, "rocksdb.cur-size-all-mem-tables");
    metrics::gauge!("kalamdb_rocksdb_size_bytes").set(rocks as f64);
    // Where RocksDB's memory is: memtables (active + immutable being written out), SST
    // readers (index and filter blocks, outside the block cache) and the block caches.
    for (kind, prop) in [
        ("memtables", "rocksdb.size-all-mem-tables"),
        ("table_readers", "rocksdb.estimate-table-readers-mem"),
        ("block_cache", "rocksdb.block-cache-usage"),
    ] {
        let total = cf_property_sum(db, prop);
        metrics::gauge!("kalamdb_rocksdb_memory_bytes", "kind" => kind).set(total as f64);
    }
    let mut parquet = 0u64;
    for def in db.catalog.tables() {
        if let Ok(manifests) = crate::manifest::load_table(&db.store, def.id) {
            parquet += manifests
                .iter()
                .flat_map(|(_, m)| m.segments.iter())
                .map(|s| s.bytes)
                .sum::<u64>();
        }
    }
    metrics::gauge!("kalamdb_parquet_size_bytes").set(parquet as f64);
}
