//! Scenario 3 flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::{median, Better, Figure};
use crate::{data, raw, Bench, BATCH, CLIENTS};

impl Bench {
    /// EXECUTE AS statements loading `per_user` rows for each of `users` users of a USER table;
    /// user u owns ids u*per_user .. (u+1)*per_user, from `offset` within that range.
    pub(crate) fn user_statements(
        table: &str,
        users: i64,
        per_user: i64,
        offset: i64,
        count: i64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for u in 0..users {
            let base = u * per_user + offset;
            let mut s = base;
            while s < base + count {
                let e = (s + BATCH).min(base + count);
                out.push(format!(
                    "EXECUTE AS USER 'bu{u}' ({})",
                    data::insert_sql(table, s..e)
                ));
                s = e;
            }
        }
        out
    }

    // long: one scenario's protocol top to bottom: load, flush, measure KalamDB, raw Parquet
    // writing and PostgreSQL on the same rows, then the figures.
    pub(crate) fn flush(&mut self) {
        let (n, users) = (self.sizes.flush_rows, self.sizes.flush_users);
        self.log(&format!(
            "3 flush: {n} buffered rows over {users} users, {} repeat(s)",
            self.sizes.repeats
        ));
        self.ensure_users(users);
        let per_user = n / users;
        let (mut rows_s, mut mb_s, mut growth, mut raw_rows_s, mut raw_mb_s) =
            (vec![], vec![], vec![], vec![], vec![]);
        for rep in 0..self.sizes.repeats {
            let table = format!("bench.flush_{rep}");
            self.client()
                .sql(&format!("CREATE USER TABLE {table} ({})", data::COLUMNS));
            let load = self.kalam_parallel(
                Arc::new(Self::user_statements(&table, users, per_user, 0, per_user)),
                CLIENTS,
            );
            let idle = self.server.wait_idle(Duration::from_secs(60));
            self.log(&format!(
                "  loaded {n} rows in {:.1} s; server idle after {:.1} s",
                load.as_secs_f64(),
                idle.as_secs_f64()
            ));
            let before = self.server.status_bytes("VmRSS");
            self.server.reset_peak_rss();
            let st = Instant::now();
            let result = self.client().flush_wait(&table);
            let secs = st.elapsed().as_secs_f64();
            let peak = self.server.status_bytes("VmHWM");
            assert_eq!(
                result["rows_flushed"].as_i64(),
                Some(n),
                "flush result {result}"
            );
            assert_eq!(
                result["users_processed"].as_i64(),
                Some(users),
                "flush result {result}"
            );
            let bytes = result["bytes_written"].as_f64().expect("bytes_written");
            rows_s.push(n as f64 / secs);
            mb_s.push(bytes / 1e6 / secs);
            growth.push(peak.saturating_sub(before) as f64 / (1u64 << 20) as f64);
            self.client().sql(&format!("DROP TABLE {table}"));

            let (t, raw_bytes) = raw::arrow_write(&self.scratch, n, users);
            raw_rows_s.push(n as f64 / t.as_secs_f64());
            raw_mb_s.push(raw_bytes as f64 / 1e6 / t.as_secs_f64());
            self.log(&format!(
                "  repeat {rep}: KalamDB {:.0} rows/s ({:.1} MB/s, RSS {:.0} -> peak {:.0} MiB), raw ArrowWriter {:.0} rows/s",
                rows_s[rep], mb_s[rep], before as f64 / 1048576.0, peak as f64 / 1048576.0, raw_rows_s[rep]
            ));
        }
        let r = median(&rows_s);
        let raw_r = median(&raw_rows_s);
        let g = median(&growth);
        self.figures.push(
            Figure::new("3 flush", format!("{n} rows / {users} users → Parquet"), "rows/s", Better::Higher, r)
                .raw(raw_r)
                .target(">= 1,500,000 and >= 0.7× ArrowWriter", r >= 1_500_000.0 && r >= 0.7 * raw_r)
                .note("raw: ArrowWriter, same rows in one fsynced file per user, zstd(1); PostgreSQL has no counterpart"),
        );
        self.figures.push(
            Figure::new(
                "3 flush",
                "Parquet written",
                "MB/s",
                Better::Higher,
                median(&mb_s),
            )
            .raw(median(&raw_mb_s)),
        );
        self.figures.push(
            Figure::new(
                "3 flush",
                "peak RSS growth during the flush",
                "MiB",
                Better::Lower,
                g,
            )
            .target("<= 256 MiB", g <= 256.0),
        );
    }
}
