//! Scenario 5 analytics.

use std::time::{Duration, Instant};

use crate::report::{median, Better, Figure};
use crate::{data, pg, raw, Bench};

impl Bench {
    const ANALYTICS_SQL: &'static str =
        "SELECT user_key, count(*) AS n, avg(v) AS avg_v, max(ts) AS last_ts, \
        sum(CASE WHEN b THEN 1 ELSE 0 END) AS flagged FROM {t} GROUP BY user_key";

    // long: one scenario's protocol top to bottom: load, flush, then KalamDB, raw DataFusion
    // and PostgreSQL on the same rows, then the figures.
    pub(crate) fn analytics(&mut self) {
        let n = self.sizes.analytics_rows;
        let cold = n / 10 * 9;
        let runs = self.sizes.analytics_runs;
        self.log(&format!(
            "5 analytics: GROUP BY over {n} rows, {cold} flushed; {runs} runs"
        ));
        let table = "bench.analytics";
        self.client()
            .sql(&format!("CREATE SHARED TABLE {table} ({})", data::COLUMNS));
        let t = self.kalam_load(table, 0, cold);
        self.log(&format!("  loaded {cold} rows in {:.1} s", t.as_secs_f64()));
        self.client().flush_wait(table);
        self.kalam_load(table, cold, n);
        let sql = Self::ANALYTICS_SQL.replace("{t}", table);
        self.server.wait_idle(Duration::from_secs(60));
        let c = self.client();
        assert_eq!(c.count(table), n as u64, "KalamDB lost rows");
        let mut k = Vec::new();
        for _ in 0..runs {
            let st = Instant::now();
            assert_eq!(c.row_count(&sql), data::USER_KEYS as u64);
            k.push(st.elapsed().as_secs_f64());
        }

        let files = self.server.parquet_files("bench", "analytics");
        let hot_ids: Vec<i64> = (cold..n).collect();
        let df = raw::RawDataFusion::new();
        let raw_sql = Self::ANALYTICS_SQL.replace("{t}", "t");
        let mut r = Vec::new();
        self.rt.block_on(async {
            df.register_analytics(&files, data::batch(&hot_ids)).await;
            assert_eq!(
                df.scalar_i64("SELECT count(*) FROM t").await,
                n,
                "raw sees every row"
            );
            for _ in 0..runs {
                let st = Instant::now();
                assert_eq!(df.rows_of(&raw_sql).await as i64, data::USER_KEYS);
                r.push(st.elapsed().as_secs_f64());
            }
        });

        let mut p = Vec::new();
        if let Some(pg) = &self.pg {
            self.rt.block_on(async {
                let c = pg.connect().await;
                pg::exec(
                    &c,
                    &format!("CREATE TABLE analytics ({})", data::PG_COLUMNS),
                )
                .await;
                pg::exec(
                    &c,
                    &format!("INSERT INTO analytics {}", data::pg_select(0, n)),
                )
                .await;
                pg::exec(&c, "VACUUM ANALYZE analytics").await;
                // The same rows on both sides.
                let check = "SELECT id, user_key, body, v, ts, b FROM {t} WHERE id = 123457";
                assert_eq!(
                    pg::query_rows(&c, &check.replace("{t}", "analytics")).await,
                    1
                );
                let pg_sql = Self::ANALYTICS_SQL.replace("{t}", "analytics");
                for _ in 0..runs {
                    let st = Instant::now();
                    assert_eq!(pg::query_rows(&c, &pg_sql).await as i64, data::USER_KEYS);
                    p.push(st.elapsed().as_secs_f64());
                }
                pg::exec(&c, "DROP TABLE analytics").await;
            });
        }
        let km = median(&k);
        let rm = median(&r);
        self.figures.push(
            Figure::new(
                "5 analytics",
                format!("GROUP BY over {n} rows, 90% flushed"),
                "s",
                Better::Lower,
                km,
            )
            .raw(rm)
            .pg((!p.is_empty()).then(|| median(&p)))
            .target("<= 1.3× DataFusion on Parquet", km <= 1.3 * rm)
            .note("raw: DataFusion over KalamDB's Parquet files UNION ALL the hot 10% in memory"),
        );
        self.log(&format!("  KalamDB {km:.2} s, raw DataFusion {rm:.2} s"));
        c.sql(&format!("DROP TABLE {table}"));
    }
}
