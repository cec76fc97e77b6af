//! Scenario 1 bulk ingest.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::report::{median, Better, Figure};
use crate::{data, raw, Bench, BATCH, CLIENTS};

impl Bench {
    pub(crate) fn ingest(&mut self) {
        let n = self.sizes.ingest_rows;
        self.log(&format!(
            "1 ingest: {n} rows as 1,000-row INSERTs from {CLIENTS} clients, {} repeat(s)",
            self.sizes.repeats
        ));
        let (mut k, mut r, mut p) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..self.sizes.repeats {
            let table = format!("bench.ingest_{rep}");
            self.client()
                .sql(&format!("CREATE SHARED TABLE {table} ({})", data::COLUMNS));
            let t = self.kalam_load(&table, 0, n);
            assert_eq!(self.client().count(&table), n as u64, "KalamDB lost rows");
            k.push(n as f64 / t.as_secs_f64());

            let rocks = raw::RawRocks::open(&self.scratch);
            let next = AtomicI64::new(0);
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..CLIENTS {
                    s.spawn(|| loop {
                        let from = next.fetch_add(BATCH, Ordering::Relaxed);
                        if from >= n {
                            break;
                        }
                        rocks.write(from..(from + BATCH).min(n));
                    });
                }
            });
            r.push(n as f64 / start.elapsed().as_secs_f64());
            drop(rocks);

            let pg_table = format!("ingest_{rep}");
            if self
                .pg_exec(&format!("CREATE TABLE {pg_table} ({})", data::PG_COLUMNS))
                .is_some()
            {
                let t = self
                    .pg_parallel(Arc::new(Self::insert_statements(&pg_table, 0, n)), CLIENTS)
                    .unwrap();
                assert_eq!(
                    self.pg_scalar(&format!("SELECT count(*) FROM {pg_table}"))
                        .unwrap(),
                    n.to_string()
                );
                p.push(n as f64 / t.as_secs_f64());
                self.pg_exec(&format!("DROP TABLE {pg_table}"));
            }
            self.client().sql(&format!("DROP TABLE {table}"));
            self.log(&format!(
                "  repeat {rep}: KalamDB {:.0} rows/s, raw RocksDB {:.0} rows/s, PostgreSQL {:?} rows/s",
                k[rep], r[rep], p.get(rep)
            ));
        }
        let (k, r) = (median(&k), median(&r));
        let pgm = (!p.is_empty()).then(|| median(&p));
        self.figures.push(
            Figure::new(
                "1 batched ingest",
                format!("{n} rows, 1,000-row INSERTs × {CLIENTS} clients"),
                "rows/s",
                Better::Higher,
                k,
            )
            .raw(r)
            .pg(pgm)
            .target(
                ">= 400,000 and >= 0.6× raw RocksDB",
                k >= 400_000.0 && k >= 0.6 * r,
            )
            .note("raw: synced RocksDB WriteBatches of the same keys/values, 4 threads"),
        );
    }
}
