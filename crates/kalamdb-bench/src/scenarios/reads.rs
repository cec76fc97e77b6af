//! Scenario 4 per-user reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::report::{percentile_us, Better, Figure};
use crate::{data, pg, raw, Bench, CLIENTS};

impl Bench {
    pub(crate) fn reads(&mut self) {
        let per_user = self.sizes.read_rows_per_user;
        let q = self.sizes.read_queries;
        let mut point_p50 = Vec::new();
        for users in self.sizes.read_users.clone() {
            point_p50.push(self.reads_at(users, per_user, q));
        }
        if let (Some(first), Some(last)) = (point_p50.first(), point_p50.last()) {
            let growth = last / first;
            self.figures.push(
                Figure::new(
                    "4 per-user reads",
                    "point p50 at most users ÷ at fewest",
                    "×",
                    Better::Lower,
                    growth,
                )
                .target("flat (<= 1.25×)", growth <= 1.25),
            );
        }
    }

    /// One size: `users` users × `per_user` rows, half flushed, `q` point reads and scans;
    /// its figures added; the point read p50 (µs) returned.
    // long: one size's protocol top to bottom: load half, flush, load the rest, time KalamDB,
    // then the raw and PostgreSQL counterparts and the four figures.
    fn reads_at(&mut self, users: i64, per_user: i64, q: usize) -> f64 {
        self.log(&format!(
            "4 per-user reads: {users} users × {per_user} rows, half flushed; {q} queries each"
        ));
        self.ensure_users(users);
        let table = format!("bench.reads_{users}");
        self.client()
            .sql(&format!("CREATE USER TABLE {table} ({})", data::COLUMNS));
        let half = per_user / 2;
        self.kalam_parallel(
            Arc::new(Self::user_statements(&table, users, per_user, 0, half)),
            CLIENTS,
        );
        self.client().flush_wait(&table);
        self.kalam_parallel(
            Arc::new(Self::user_statements(
                &table,
                users,
                per_user,
                half,
                per_user - half,
            )),
            CLIENTS,
        );

        let mut rng = rand::rngs::StdRng::seed_from_u64(users as u64);
        let picks: Vec<(i64, i64)> = (0..q)
            .map(|_| {
                let u = rng.random_range(0..users);
                (u, u * per_user + rng.random_range(0..per_user))
            })
            .collect();
        let c = self.client();
        let mut point = Vec::with_capacity(q);
        let mut scan = Vec::with_capacity(q);
        for &(u, id) in &picks {
            let sql = format!("EXECUTE AS USER 'bu{u}' (SELECT * FROM {table} WHERE id = {id})");
            let st = Instant::now();
            assert_eq!(c.row_count(&sql), 1, "{sql}");
            point.push(st.elapsed());
        }
        for &(u, _) in &picks {
            let sql = format!("EXECUTE AS USER 'bu{u}' (SELECT * FROM {table})");
            let st = Instant::now();
            assert_eq!(c.row_count(&sql), per_user as u64, "{sql}");
            scan.push(st.elapsed());
        }

        let (mut rpoint, mut rscan) = self.reads_raw(users, per_user, &picks);
        let (mut ppoint, mut pscan) = self.reads_pg(users, per_user, &picks);
        let k50 = percentile_us(&mut point, 50.0);
        let label = format!("{users} users");
        let figure = |what: &str,
                      k: &mut Vec<Duration>,
                      r: &mut Vec<Duration>,
                      pg: &mut Vec<Duration>,
                      p: f64| {
            Figure::new(
                "4 per-user reads",
                format!("{what} p{p}, {label}"),
                "µs",
                Better::Lower,
                percentile_us(k, p),
            )
            .raw(percentile_us(r, p))
            .pg((!pg.is_empty()).then(|| percentile_us(pg, p)))
        };
        let scan_label = format!("user scan ({per_user} rows)");
        let figures = [
            figure("point lookup", &mut point, &mut rpoint, &mut ppoint, 50.0)
                .target("<= 1,000 µs", k50 <= 1000.0)
                .note("raw: DataFusion over that user's Parquet file (flushed half)"),
            figure("point lookup", &mut point, &mut rpoint, &mut ppoint, 99.0),
            figure(&scan_label, &mut scan, &mut rscan, &mut pscan, 50.0)
                .note("raw scans the flushed half only"),
            figure(&scan_label, &mut scan, &mut rscan, &mut pscan, 99.0),
        ];
        self.figures.extend(figures);
        self.log(&format!("  {label}: point p50 {k50:.0} µs"));
        self.client().sql(&format!("DROP TABLE {table}"));
        k50
    }

    /// Raw: DataFusion over each picked user's Parquet file (the flushed half).
    fn reads_raw(
        &self,
        users: i64,
        per_user: i64,
        picks: &[(i64, i64)],
    ) -> (Vec<Duration>, Vec<Duration>) {
        let half = per_user / 2;
        let q = picks.len();
        let files = self
            .server
            .parquet_files("bench", &format!("reads_{users}"));
        assert_eq!(files.len() as i64, users, "one Parquet file per user");
        let df = raw::RawDataFusion::new();
        let file_of = |u: i64| {
            files
                .iter()
                .find(|p| {
                    p.parent()
                        .and_then(|d| d.file_name())
                        .is_some_and(|n| n == format!("bu{u}").as_str())
                })
                .expect("user file")
                .clone()
        };
        let (mut rpoint, mut rscan) = (Vec::with_capacity(q), Vec::with_capacity(q));
        self.rt.block_on(async {
            for &(u, _) in picks {
                let f = file_of(u);
                let id = u * per_user + (u % half);
                let st = Instant::now();
                assert_eq!(df.point(&f, id).await, 1);
                rpoint.push(st.elapsed());
                let st = Instant::now();
                assert_eq!(df.scan(&f).await as i64, half);
                rscan.push(st.elapsed());
            }
        });

        (rpoint, rscan)
    }

    /// PostgreSQL: one table keyed by (user_key, id); empty without it.
    fn reads_pg(
        &self,
        users: i64,
        per_user: i64,
        picks: &[(i64, i64)],
    ) -> (Vec<Duration>, Vec<Duration>) {
        let (mut ppoint, mut pscan) = (Vec::new(), Vec::new());
        if let Some(pg) = &self.pg {
            let pg_table = format!("reads_{users}");
            self.rt.block_on(async {
                let c = pg.connect().await;
                pg::exec(&c, &format!(
                    "CREATE TABLE {pg_table} (user_key text, id bigint, body text, v double precision, ts timestamp, b boolean, PRIMARY KEY (user_key, id))"
                )).await;
                let sel = data::pg_select(0, users * per_user).replacen("SELECT i, 'u' || (i % 1000),", &format!("SELECT 'bu' || (i / {per_user}), i,"), 1);
                pg::exec(&c, &format!("INSERT INTO {pg_table} {sel}")).await;
                pg::exec(&c, &format!("VACUUM ANALYZE {pg_table}")).await;
                for &(u, id) in picks {
                    let sql = format!("SELECT * FROM {pg_table} WHERE user_key = 'bu{u}' AND id = {id}");
                    let st = Instant::now();
                    assert_eq!(pg::query_rows(&c, &sql).await, 1, "{sql}");
                    ppoint.push(st.elapsed());
                }
                for &(u, _) in picks {
                    let sql = format!("SELECT * FROM {pg_table} WHERE user_key = 'bu{u}'");
                    let st = Instant::now();
                    assert_eq!(pg::query_rows(&c, &sql).await, per_user as u64, "{sql}");
                    pscan.push(st.elapsed());
                }
                pg::exec(&c, &format!("DROP TABLE {pg_table}")).await;
            });
        }
        (ppoint, pscan)
    }
}
