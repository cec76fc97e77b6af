//! Scenario 2 single-row writes.

use std::time::{Duration, Instant};

use crate::kalam::Client;
use crate::report::{median, percentile_us, Better, Figure};
use crate::{data, pg, raw, Bench};

impl Bench {
    pub(crate) fn single_row(&mut self) {
        let n1 = self.sizes.single_n1;
        let each = self.sizes.single_n16_each;
        self.log(&format!(
            "2 single-row INSERT latency: {n1} at concurrency 1, {each}×16 at concurrency 16"
        ));
        for conc in [1usize, 16] {
            let per = if conc == 1 { n1 } else { each };
            let (mut k50, mut k99, mut r50, mut r99, mut p50, mut p99) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for rep in 0..self.sizes.repeats {
                let table = format!("bench.single_{conc}_{rep}");
                self.client()
                    .sql(&format!("CREATE SHARED TABLE {table} ({})", data::COLUMNS));
                let mut lat = self.kalam_single(&table, conc, per);
                k50.push(percentile_us(&mut lat, 50.0));
                k99.push(percentile_us(&mut lat, 99.0));
                self.client().sql(&format!("DROP TABLE {table}"));

                let mut lat = self.raw_single(conc, per);
                r50.push(percentile_us(&mut lat, 50.0));
                r99.push(percentile_us(&mut lat, 99.0));

                if let Some(mut lat) = self.pg_single(conc, per, rep) {
                    p50.push(percentile_us(&mut lat, 50.0));
                    p99.push(percentile_us(&mut lat, 99.0));
                }
            }
            let pgv = |v: &Vec<f64>| (!v.is_empty()).then(|| median(v));
            let k50m = median(&k50);
            let mut f50 = Figure::new(
                "2 single-row INSERT",
                format!("p50 at concurrency {conc}"),
                "µs",
                Better::Lower,
                k50m,
            )
            .raw(median(&r50))
            .pg(pgv(&p50))
            .note("raw: one synced RocksDB WriteBatch per row");
            if conc == 1 {
                f50 = f50.target("<= 150 µs", k50m <= 150.0);
            }
            self.figures.push(f50);
            self.figures.push(
                Figure::new(
                    "2 single-row INSERT",
                    format!("p99 at concurrency {conc}"),
                    "µs",
                    Better::Lower,
                    median(&k99),
                )
                .raw(median(&r99))
                .pg(pgv(&p99)),
            );
            self.log(&format!(
                "  concurrency {conc}: KalamDB p50 {:.0} µs p99 {:.0} µs",
                k50m,
                median(&k99)
            ));
        }
    }

    /// Raw: one synced RocksDB WriteBatch per row from each of `conc` threads.
    fn raw_single(&self, conc: usize, per: usize) -> Vec<Duration> {
        let rocks = raw::RawRocks::open(&self.scratch);
        let mut lat = Vec::new();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..conc)
                .map(|t| {
                    let rocks = &rocks;
                    s.spawn(move || {
                        (0..per)
                            .map(|i| {
                                let id = (t * per + i) as i64;
                                let st = Instant::now();
                                rocks.write(id..id + 1);
                                st.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in hs {
                lat.extend(h.join().unwrap());
            }
        });
        lat
    }

    /// PostgreSQL: single-row INSERTs from `conc` connections; `None` without it.
    fn pg_single(&self, conc: usize, per: usize, rep: usize) -> Option<Vec<Duration>> {
        let pg = self.pg.as_ref()?;
        let pg_table = format!("single_{conc}_{rep}");
        let lat = self.rt.block_on(async {
            let admin = pg.connect().await;
            pg::exec(
                &admin,
                &format!("CREATE TABLE {pg_table} ({})", data::PG_COLUMNS),
            )
            .await;
            let mut tasks = Vec::new();
            for t in 0..conc {
                let c = pg.connect().await;
                let pg_table = pg_table.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(per);
                    for i in 0..per {
                        let sql =
                            data::insert_sql(&pg_table, std::iter::once((t * per + i) as i64));
                        let st = Instant::now();
                        assert_eq!(pg::exec(&c, &sql).await, 1);
                        lat.push(st.elapsed());
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            pg::exec(&admin, &format!("DROP TABLE {pg_table}")).await;
            all
        });
        Some(lat)
    }

    /// `per` single-row INSERTs from each of `conc` clients; every latency.
    pub(crate) fn kalam_single(&self, table: &str, conc: usize, per: usize) -> Vec<Duration> {
        let mut all = Vec::new();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..conc)
                .map(|t| {
                    let port = self.server.port;
                    s.spawn(move || {
                        let c = Client::new(port);
                        (0..per)
                            .map(|i| {
                                let sql =
                                    data::insert_sql(table, std::iter::once((t * per + i) as i64));
                                let st = Instant::now();
                                assert_eq!(c.row_count(&sql), 1);
                                st.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in hs {
                all.extend(h.join().unwrap());
            }
        });
        all
    }
}
