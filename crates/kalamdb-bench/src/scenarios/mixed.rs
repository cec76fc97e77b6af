//! Scenario 6 mixed load.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::kalam::Client;
use crate::report::{percentile_us, Better, Figure};
use crate::{data, pg, Bench, CLIENTS};

impl Bench {
    pub(crate) fn mixed(&mut self) {
        let (n, users, secs) = (
            self.sizes.mixed_rows,
            self.sizes.mixed_users,
            self.sizes.mixed_secs,
        );
        self.log(&format!("6 mixed: 2 writers + 2 readers for {secs} s while {n} buffered rows over {users} users flush"));
        self.ensure_users(users);
        let per_user = n / users;
        let table = "bench.mixed";
        self.client()
            .sql(&format!("CREATE USER TABLE {table} ({})", data::COLUMNS));
        self.kalam_parallel(
            Arc::new(Self::user_statements(table, users, per_user, 0, per_user)),
            CLIENTS,
        );

        let (mut wlat, mut rlat, flush_secs) = self.mixed_kalam(table, n, users, per_user, secs);
        let (wn, rn) = (
            wlat.len() as f64 / secs as f64,
            rlat.len() as f64 / secs as f64,
        );
        let (mut pw, mut pr) = self.mixed_pg(n, users, per_user, secs);
        let pg_rate = |v: &Vec<Duration>| (!v.is_empty()).then(|| v.len() as f64 / secs as f64);
        let pgp = |v: &mut Vec<Duration>| (!v.is_empty()).then(|| percentile_us(v, 99.0));
        let (pwn, prn) = (pg_rate(&pw), pg_rate(&pr));
        self.figures.push(Figure::new("6 mixed", "writes (single-row, 2 clients)", "ops/s", Better::Higher, wn).pg(pwn)
            .note(format!("during a flush of {n} rows ({flush_secs:.1} s); PostgreSQL runs a CHECKPOINT instead")));
        self.figures.push(
            Figure::new(
                "6 mixed",
                "write p99",
                "µs",
                Better::Lower,
                percentile_us(&mut wlat, 99.0),
            )
            .pg(pgp(&mut pw)),
        );
        self.figures.push(
            Figure::new(
                "6 mixed",
                "point reads (2 clients)",
                "ops/s",
                Better::Higher,
                rn,
            )
            .pg(prn),
        );
        self.figures.push(
            Figure::new(
                "6 mixed",
                "read p99",
                "µs",
                Better::Lower,
                percentile_us(&mut rlat, 99.0),
            )
            .pg(pgp(&mut pr)),
        );
        self.figures.push(Figure::new(
            "6 mixed",
            "flush duration under load",
            "s",
            Better::Lower,
            flush_secs,
        ));
        self.log(&format!(
            "  KalamDB {wn:.0} writes/s, {rn:.0} reads/s, flush {flush_secs:.1} s"
        ));
        self.client().sql(&format!("DROP TABLE {table}"));
    }

    /// KalamDB: 2 writers and 2 readers for `secs` while a flush of the table runs; their
    /// latencies and the flush's duration.
    fn mixed_kalam(
        &self,
        table: &'static str,
        n: i64,
        users: i64,
        per_user: i64,
        secs: u64,
    ) -> (Vec<Duration>, Vec<Duration>, f64) {
        let port = self.server.port;
        let c = self.client();
        let started_flush = Instant::now();
        let job = c.sql(&format!("STORAGE FLUSH TABLE {table}"))["results"][0]["job_id"]
            .as_str()
            .expect("job id")
            .to_string();
        let flush_status = || {
            let v = c.sql(&format!(
                "SELECT status FROM system.jobs WHERE job_id = '{job}'"
            ));
            match v["results"][0]["rows"][0][0].as_str() {
                Some("failed") | Some("cancelled") => panic!("mixed-load flush ended {v}"),
                status => status == Some("completed"),
            }
        };
        let stop = AtomicBool::new(false);
        let next_id = AtomicI64::new(n);
        let mut flush_secs = None;
        let (wlat, rlat) = std::thread::scope(|s| {
            let writers: Vec<_> = (0..2)
                .map(|w| {
                    let (stop, next_id) = (&stop, &next_id);
                    s.spawn(move || kalam_writer(port, table, users, w, stop, next_id))
                })
                .collect();
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let stop = &stop;
                    s.spawn(move || kalam_reader(port, table, users, per_user, r, stop))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < deadline {
                if flush_secs.is_none() && flush_status() {
                    flush_secs = Some(started_flush.elapsed().as_secs_f64());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            stop.store(true, Ordering::Relaxed);
            let join =
                |hs: Vec<std::thread::ScopedJoinHandle<'_, Vec<Duration>>>| -> Vec<Duration> {
                    hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
                };
            (join(writers), join(readers))
        });
        let flush_secs = flush_secs.unwrap_or_else(|| loop {
            if flush_status() {
                break started_flush.elapsed().as_secs_f64();
            }
            std::thread::sleep(Duration::from_millis(50));
        });
        (wlat, rlat, flush_secs)
    }

    /// PostgreSQL on the same load, a CHECKPOINT in place of the flush; empty without it.
    fn mixed_pg(
        &self,
        n: i64,
        users: i64,
        per_user: i64,
        secs: u64,
    ) -> (Vec<Duration>, Vec<Duration>) {
        let (mut pw, mut pr) = (Vec::new(), Vec::new());
        let Some(pg) = &self.pg else {
            return (pw, pr);
        };
        self.rt.block_on(async {
            let admin = pg.connect().await;
            pg::exec(&admin, "CREATE TABLE mixed (user_key text, id bigint, body text, v double precision, ts timestamp, b boolean, PRIMARY KEY (user_key, id))").await;
            let sel = data::pg_select(0, n).replacen("SELECT i, 'u' || (i % 1000),", &format!("SELECT 'bu' || (i / {per_user}), i,"), 1);
            pg::exec(&admin, &format!("INSERT INTO mixed {sel}")).await;
            pg::exec(&admin, "VACUUM ANALYZE mixed").await;
            let stop = Arc::new(AtomicBool::new(false));
            let next_id = Arc::new(AtomicI64::new(n));
            let mut ws = Vec::new();
            for w in 0..2i64 {
                let c = pg.connect().await;
                let (stop, next_id) = (stop.clone(), next_id.clone());
                ws.push(tokio::spawn(pg_writer(c, users, w, stop, next_id)));
            }
            let mut rs = Vec::new();
            for r in 0..2u64 {
                let c = pg.connect().await;
                rs.push(tokio::spawn(pg_reader(c, users, per_user, r, stop.clone())));
            }
            // PostgreSQL's counterpart of moving buffered rows to disk: a checkpoint.
            pg::exec(&admin, "CHECKPOINT").await;
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
            for h in ws {
                pw.extend(h.await.unwrap());
            }
            for h in rs {
                pr.extend(h.await.unwrap());
            }
            pg::exec(&admin, "DROP TABLE mixed").await;
        });
        (pw, pr)
    }
}

/// One KalamDB writer: single-row INSERTs as users in turn until `stop`.
fn kalam_writer(
    port: u16,
    table: &str,
    users: i64,
    w: i64,
    stop: &AtomicBool,
    next_id: &AtomicI64,
) -> Vec<Duration> {
    let c = Client::new(port);
    let mut lat = Vec::new();
    let mut u = w;
    while !stop.load(Ordering::Relaxed) {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        u = (u + 7) % users;
        let sql = format!(
            "EXECUTE AS USER 'bu{u}' ({})",
            data::insert_sql(table, std::iter::once(id))
        );
        let st = Instant::now();
        assert_eq!(c.row_count(&sql), 1);
        lat.push(st.elapsed());
    }
    lat
}

/// One KalamDB reader: point reads of random users' loaded rows until `stop`.
fn kalam_reader(
    port: u16,
    table: &str,
    users: i64,
    per_user: i64,
    r: u64,
    stop: &AtomicBool,
) -> Vec<Duration> {
    let c = Client::new(port);
    let mut rng = rand::rngs::StdRng::seed_from_u64(r);
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let u = rng.random_range(0..users);
        let id = u * per_user + rng.random_range(0..per_user);
        let sql = format!("EXECUTE AS USER 'bu{u}' (SELECT * FROM {table} WHERE id = {id})");
        let st = Instant::now();
        assert_eq!(c.row_count(&sql), 1);
        lat.push(st.elapsed());
    }
    lat
}

async fn pg_writer(
    c: tokio_postgres::Client,
    users: i64,
    w: i64,
    stop: Arc<AtomicBool>,
    next_id: Arc<AtomicI64>,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    let mut u = w;
    while !stop.load(Ordering::Relaxed) {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        u = (u + 7) % users;
        let sql = format!(
            "INSERT INTO mixed VALUES {}",
            data::user_tuple(&format!("bu{u}"), id)
        );
        let st = Instant::now();
        assert_eq!(pg::exec(&c, &sql).await, 1);
        lat.push(st.elapsed());
    }
    lat
}

async fn pg_reader(
    c: tokio_postgres::Client,
    users: i64,
    per_user: i64,
    r: u64,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(r);
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let u = rng.random_range(0..users);
        let id = u * per_user + rng.random_range(0..per_user);
        let sql = format!("SELECT * FROM mixed WHERE user_key = 'bu{u}' AND id = {id}");
        let st = Instant::now();
        assert_eq!(pg::query_rows(&c, &sql).await, 1);
        lat.push(st.elapsed());
    }
    lat
}
