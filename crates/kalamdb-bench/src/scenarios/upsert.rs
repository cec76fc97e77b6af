//! Scenario 7 upsert ingest: 1,000-row `INSERT ... ON CONFLICT (id) DO UPDATE` statements,
//! half of whose keys exist, against plain 1,000-row INSERTs of new keys on the same server.

use std::sync::Arc;

use crate::report::{median, Better, Figure};
use crate::{data, Bench, BATCH, CLIENTS};

const UPSERT_SET: &str = " ON CONFLICT (id) DO UPDATE SET body = excluded.body, v = excluded.v + 1";

/// 1,000-row upserts over `n` rows: statement k proposes rows k*500.. (loaded before, so
/// existing) and n/2 + k*500.. (new).
fn upsert_statements(table: &str, n: i64) -> Vec<String> {
    let half = BATCH / 2;
    (0..n / 2)
        .step_by(half as usize)
        .map(|s| {
            let old = s..(s + half).min(n / 2);
            let new = (n / 2 + s)..(n / 2 + s + half).min(n);
            let mut sql = data::insert_sql(table, old.chain(new));
            sql.push_str(UPSERT_SET);
            sql
        })
        .collect()
}

impl Bench {
    pub(crate) fn upsert_ingest(&mut self) {
        let n = self.sizes.ingest_rows / 2;
        self.log(&format!(
            "7 upsert ingest: {n} rows as 1,000-row upserts (50% existing keys) from {CLIENTS} clients, {} repeat(s)",
            self.sizes.repeats
        ));
        let (mut plain, mut upsert, mut pg) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..self.sizes.repeats {
            let (a, b) = (format!("bench.plain_{rep}"), format!("bench.upsert_{rep}"));
            for t in [&a, &b] {
                self.client()
                    .sql(&format!("CREATE SHARED TABLE {t} ({})", data::COLUMNS));
            }
            let t = self.kalam_load(&a, 0, n);
            plain.push(n as f64 / t.as_secs_f64());
            self.kalam_load(&b, 0, n / 2);
            let t = self.kalam_parallel(Arc::new(upsert_statements(&b, n)), CLIENTS);
            upsert.push(n as f64 / t.as_secs_f64());
            assert_eq!(self.client().count(&b), n as u64, "KalamDB lost rows");
            let pg_table = format!("upsert_{rep}");
            if self
                .pg_exec(&format!("CREATE TABLE {pg_table} ({})", data::PG_COLUMNS))
                .is_some()
            {
                self.pg_parallel(
                    Arc::new(Self::insert_statements(&pg_table, 0, n / 2)),
                    CLIENTS,
                );
                let t = self
                    .pg_parallel(Arc::new(upsert_statements(&pg_table, n)), CLIENTS)
                    .unwrap();
                pg.push(n as f64 / t.as_secs_f64());
                self.pg_exec(&format!("DROP TABLE {pg_table}"));
            }
            for t in [&a, &b] {
                self.client().sql(&format!("DROP TABLE {t}"));
            }
            self.log(&format!(
                "  repeat {rep}: plain {:.0} rows/s, upsert {:.0} rows/s, PostgreSQL upsert {:?} rows/s",
                plain[rep], upsert[rep], pg.get(rep)
            ));
        }
        let (plain, upsert) = (median(&plain), median(&upsert));
        let pgm = (!pg.is_empty()).then(|| median(&pg));
        self.figures.push(
            Figure::new(
                "7 upsert ingest",
                format!("{n} rows, 1,000-row INSERT ... ON CONFLICT DO UPDATE, 50% existing keys × {CLIENTS} clients"),
                "rows/s",
                Better::Higher,
                upsert,
            )
            .raw(plain)
            .pg(pgm)
            .target(">= 0.5× plain ingest", upsert >= 0.5 * plain)
            .note("raw column: plain 1,000-row INSERTs of new keys on the same server"),
        );
    }
}
