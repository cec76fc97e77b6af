//! `make bench`: KalamDB over HTTP, side by side with the raw limits of its components (in this
//! process) and PostgreSQL 15 (a temporary cluster on loopback), on the same rows and schema.
//! See docs/BENCHMARKS.md for the scenarios, how to read the table, and the latest run.

mod data;
mod kalam;
mod pg;
mod raw;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::json;

use kalam::{Client, KalamServer};
use pg::PgCluster;
use report::{median, percentile_us, Better, Figure};

#[derive(Parser)]
#[command(about = "KalamDB benchmarks: KalamDB vs its raw components vs PostgreSQL")]
struct Args {
    /// The kalamdb-server binary to measure (a release build).
    #[arg(long)]
    server: PathBuf,
    /// Small sizes: finishes in under 3 minutes. Figures are indicative only.
    #[arg(long)]
    quick: bool,
    /// Directory for results.md and results.json.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Where temporary data dirs go (KalamDB, PostgreSQL, raw RocksDB and Parquet).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Run only these scenarios (1-6), e.g. --only 1,3.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
    /// Skip PostgreSQL (its columns stay empty).
    #[arg(long)]
    no_pg: bool,
}

/// Sizes of one run.
struct Sizes {
    repeats: usize,
    ingest_rows: i64,
    single_n1: usize,
    single_n16_each: usize,
    flush_rows: i64,
    flush_users: i64,
    read_users: Vec<i64>,
    read_rows_per_user: i64,
    read_queries: usize,
    analytics_rows: i64,
    analytics_runs: usize,
    mixed_rows: i64,
    mixed_users: i64,
    mixed_secs: u64,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            repeats: 3,
            ingest_rows: 2_000_000,
            single_n1: 2_000,
            single_n16_each: 200,
            flush_rows: 2_000_000,
            flush_users: 1_000,
            read_users: vec![100, 10_000],
            read_rows_per_user: 100,
            read_queries: 2_000,
            analytics_rows: 10_000_000,
            analytics_runs: 5,
            mixed_rows: 1_000_000,
            mixed_users: 100,
            mixed_secs: 15,
        }
    }
    fn quick() -> Sizes {
        Sizes {
            repeats: 1,
            ingest_rows: 200_000,
            single_n1: 300,
            single_n16_each: 30,
            flush_rows: 200_000,
            flush_users: 100,
            read_users: vec![100, 1_000],
            read_rows_per_user: 100,
            read_queries: 300,
            analytics_rows: 1_000_000,
            analytics_runs: 3,
            mixed_rows: 100_000,
            mixed_users: 100,
            mixed_secs: 4,
        }
    }
}

const CLIENTS: usize = 4;
const BATCH: i64 = 1_000;

struct Bench {
    sizes: Sizes,
    scratch: PathBuf,
    server: KalamServer,
    pg: Option<PgCluster>,
    rt: tokio::runtime::Runtime,
    figures: Vec<Figure>,
    /// Users bu0.. created so far (no password: used through EXECUTE AS).
    users_created: i64,
    started: Instant,
}

fn log(started: Instant, msg: &str) {
    eprintln!("[{:>6.1}s] {msg}", started.elapsed().as_secs_f64());
}

fn main() {
    let args = Args::parse();
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let scratch = args.scratch.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = KalamServer::start(&args.server, &scratch);
    log(
        started,
        &format!(
            "kalamdb-server up on port {} (pid {})",
            server.port,
            server.pid()
        ),
    );
    let pg = if args.no_pg {
        None
    } else {
        let _guard = rt.enter();
        match PgCluster::start(&scratch) {
            Ok(c) => {
                log(started, &format!("PostgreSQL 15 up on port {}", c.port));
                Some(c)
            }
            Err(e) => panic!("PostgreSQL: {e} (use --no-pg to run without it)"),
        }
    };
    let mut b = Bench {
        sizes,
        scratch,
        server,
        pg,
        rt,
        figures: Vec::new(),
        users_created: 0,
        started,
    };
    b.server
        .client()
        .sql("CREATE NAMESPACE IF NOT EXISTS bench");
    let run = |n: u32| args.only.is_empty() || args.only.contains(&n);
    if run(1) {
        b.ingest();
    }
    if run(2) {
        b.single_row();
    }
    if run(3) {
        b.flush();
    }
    if run(4) {
        b.reads();
    }
    if run(5) {
        b.analytics();
    }
    if run(6) {
        b.mixed();
    }
    let total = started.elapsed();
    let meta = json!({
        "machine": report::machine(),
        "commit": report::git_commit(),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "mode": if args.quick { "quick" } else { "full" },
        "repeats": b.sizes.repeats,
        "elapsed_secs": total.as_secs_f64().round(),
        "postgresql": b.pg.is_some(),
    });
    let m = &meta["machine"];
    let header = format!(
        "KalamDB {} · {} mode · {} · {} cores · {} GiB · {} · {} · {:.0} s\n",
        meta["commit"].as_str().unwrap(),
        meta["mode"].as_str().unwrap(),
        m["cpu"].as_str().unwrap(),
        m["cores"],
        m["memory_gib"],
        m["os"].as_str().unwrap(),
        meta["date"].as_str().unwrap(),
        total.as_secs_f64()
    );
    let md = report::markdown(&b.figures, &header);
    let js = report::json(&b.figures, meta);
    std::fs::create_dir_all(&args.out).expect("output dir");
    std::fs::write(args.out.join("results.md"), &md).expect("write results.md");
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&js).unwrap(),
    )
    .expect("write results.json");
    println!("{md}");
    log(
        started,
        &format!("wrote {}/results.md and results.json", args.out.display()),
    );
}

impl Bench {
    fn log(&self, msg: &str) {
        log(self.started, msg);
    }

    fn client(&self) -> Client {
        self.server.client()
    }

    /// Make sure users bu0..n exist (created without a password, 500 per request).
    fn ensure_users(&mut self, n: i64) {
        let c = self.client();
        while self.users_created < n {
            let to = (self.users_created + 500).min(n);
            let sql: Vec<String> = (self.users_created..to)
                .map(|u| format!("CREATE USER 'bu{u}' ROLE user"))
                .collect();
            c.sql(&sql.join("; "));
            self.users_created = to;
        }
    }

    /// Send `statements` from CLIENTS concurrent HTTP clients; returns the wall time.
    fn kalam_parallel(&self, statements: Arc<Vec<String>>, clients: usize) -> Duration {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..clients {
                let next = next.clone();
                let statements = statements.clone();
                let port = self.server.port;
                s.spawn(move || {
                    let c = Client::new(port);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(sql) = statements.get(i) else { break };
                        c.sql(sql);
                    }
                });
            }
        });
        start.elapsed()
    }

    /// The same statements through CLIENTS PostgreSQL connections.
    fn pg_parallel(&self, statements: Arc<Vec<String>>, clients: usize) -> Option<Duration> {
        let pg = self.pg.as_ref()?;
        Some(self.rt.block_on(async {
            let next = Arc::new(AtomicUsize::new(0));
            let mut conns = Vec::new();
            for _ in 0..clients {
                conns.push(pg.connect().await);
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for c in conns {
                let next = next.clone();
                let statements = statements.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(sql) = statements.get(i) else { break };
                        pg::exec(&c, sql).await;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        }))
    }

    fn pg_exec(&self, sql: &str) -> Option<u64> {
        let pg = self.pg.as_ref()?;
        Some(
            self.rt
                .block_on(async { pg::exec(&pg.connect().await, sql).await }),
        )
    }

    fn pg_scalar(&self, sql: &str) -> Option<String> {
        let pg = self.pg.as_ref()?;
        Some(
            self.rt
                .block_on(async { pg::scalar(&pg.connect().await, sql).await }),
        )
    }

    /// 1,000-row INSERT statements for rows `from..to` of `table` (KalamDB and PostgreSQL alike).
    fn insert_statements(table: &str, from: i64, to: i64) -> Vec<String> {
        (from..to)
            .step_by(BATCH as usize)
            .map(|s| data::insert_sql(table, s..(s + BATCH).min(to)))
            .collect()
    }

    /// Load rows `from..to` into a KalamDB table through the batched-INSERT path.
    fn kalam_load(&self, table: &str, from: i64, to: i64) -> Duration {
        self.kalam_parallel(Arc::new(Self::insert_statements(table, from, to)), CLIENTS)
    }

    // ---------------------------------------------------------------- scenario 1

    fn ingest(&mut self) {
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

    // ---------------------------------------------------------------- scenario 2

    fn single_row(&mut self) {
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
                r50.push(percentile_us(&mut lat, 50.0));
                r99.push(percentile_us(&mut lat, 99.0));

                if let Some(pg) = &self.pg {
                    let pg_table = format!("single_{conc}_{rep}");
                    let mut lat = self.rt.block_on(async {
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
                                    let sql = data::insert_sql(
                                        &pg_table,
                                        std::iter::once((t * per + i) as i64),
                                    );
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

    /// `per` single-row INSERTs from each of `conc` clients; every latency.
    fn kalam_single(&self, table: &str, conc: usize, per: usize) -> Vec<Duration> {
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

    // ---------------------------------------------------------------- scenario 3

    /// EXECUTE AS statements loading `per_user` rows for each of `users` users of a USER table;
    /// user u owns ids u*per_user .. (u+1)*per_user, from `offset` within that range.
    fn user_statements(
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

    fn flush(&mut self) {
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

    // ---------------------------------------------------------------- scenario 4

    fn reads(&mut self) {
        let per_user = self.sizes.read_rows_per_user;
        let q = self.sizes.read_queries;
        let mut point_p50 = Vec::new();
        for users in self.sizes.read_users.clone() {
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
                let sql =
                    format!("EXECUTE AS USER 'bu{u}' (SELECT * FROM {table} WHERE id = {id})");
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

            // Raw: DataFusion over the same user's Parquet file (the flushed half).
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
                for &(u, _) in &picks {
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

            // PostgreSQL: one table keyed by (user_key, id).
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
                    for &(u, id) in &picks {
                        let sql = format!("SELECT * FROM {pg_table} WHERE user_key = 'bu{u}' AND id = {id}");
                        let st = Instant::now();
                        assert_eq!(pg::query_rows(&c, &sql).await, 1, "{sql}");
                        ppoint.push(st.elapsed());
                    }
                    for &(u, _) in &picks {
                        let sql = format!("SELECT * FROM {pg_table} WHERE user_key = 'bu{u}'");
                        let st = Instant::now();
                        assert_eq!(pg::query_rows(&c, &sql).await, per_user as u64, "{sql}");
                        pscan.push(st.elapsed());
                    }
                    pg::exec(&c, &format!("DROP TABLE {pg_table}")).await;
                });
            }
            let pgp = |v: &mut Vec<Duration>, p: f64| (!v.is_empty()).then(|| percentile_us(v, p));
            let k50 = percentile_us(&mut point, 50.0);
            point_p50.push(k50);
            let label = format!("{users} users");
            self.figures.push(
                Figure::new(
                    "4 per-user reads",
                    format!("point lookup p50, {label}"),
                    "µs",
                    Better::Lower,
                    k50,
                )
                .raw(percentile_us(&mut rpoint, 50.0))
                .pg(pgp(&mut ppoint, 50.0))
                .target("<= 1,000 µs", k50 <= 1000.0)
                .note("raw: DataFusion over that user's Parquet file (flushed half)"),
            );
            self.figures.push(
                Figure::new(
                    "4 per-user reads",
                    format!("point lookup p99, {label}"),
                    "µs",
                    Better::Lower,
                    percentile_us(&mut point, 99.0),
                )
                .raw(percentile_us(&mut rpoint, 99.0))
                .pg(pgp(&mut ppoint, 99.0)),
            );
            self.figures.push(
                Figure::new(
                    "4 per-user reads",
                    format!("user scan ({per_user} rows) p50, {label}"),
                    "µs",
                    Better::Lower,
                    percentile_us(&mut scan, 50.0),
                )
                .raw(percentile_us(&mut rscan, 50.0))
                .pg(pgp(&mut pscan, 50.0))
                .note("raw scans the flushed half only"),
            );
            self.figures.push(
                Figure::new(
                    "4 per-user reads",
                    format!("user scan ({per_user} rows) p99, {label}"),
                    "µs",
                    Better::Lower,
                    percentile_us(&mut scan, 99.0),
                )
                .raw(percentile_us(&mut rscan, 99.0))
                .pg(pgp(&mut pscan, 99.0)),
            );
            self.log(&format!("  {label}: point p50 {k50:.0} µs"));
            self.client().sql(&format!("DROP TABLE {table}"));
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

    // ---------------------------------------------------------------- scenario 5

    const ANALYTICS_SQL: &'static str =
        "SELECT user_key, count(*) AS n, avg(v) AS avg_v, max(ts) AS last_ts, \
        sum(CASE WHEN b THEN 1 ELSE 0 END) AS flagged FROM {t} GROUP BY user_key";

    fn analytics(&mut self) {
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

    // ---------------------------------------------------------------- scenario 6

    fn mixed(&mut self) {
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

        let port = self.server.port;
        let write_sql = move |u: i64, id: i64| {
            format!(
                "EXECUTE AS USER 'bu{u}' ({})",
                data::insert_sql(table, std::iter::once(id))
            )
        };
        let read_sql = move |u: i64, id: i64| {
            format!("EXECUTE AS USER 'bu{u}' (SELECT * FROM {table} WHERE id = {id})")
        };
        let c = self.client();
        let started_flush = Instant::now();
        let job = c.sql(&format!("STORAGE FLUSH TABLE {table}"))["results"][0]["job_id"]
            .as_str()
            .expect("job id")
            .to_string();
        let stop = AtomicBool::new(false);
        let next_id = AtomicI64::new(n);
        let mut flush_secs = None;
        let (wlat, rlat) = std::thread::scope(|s| {
            let writers: Vec<_> = (0..2)
                .map(|w| {
                    let (stop, next_id) = (&stop, &next_id);
                    s.spawn(move || {
                        let c = Client::new(port);
                        let mut lat = Vec::new();
                        let mut u = w as i64;
                        while !stop.load(Ordering::Relaxed) {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            u = (u + 7) % users;
                            let st = Instant::now();
                            assert_eq!(c.row_count(&write_sql(u, id)), 1);
                            lat.push(st.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let stop = &stop;
                    s.spawn(move || {
                        let c = Client::new(port);
                        let mut rng = rand::rngs::StdRng::seed_from_u64(r);
                        let mut lat = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let u = rng.random_range(0..users);
                            let id = u * per_user + rng.random_range(0..per_user);
                            let st = Instant::now();
                            assert_eq!(c.row_count(&read_sql(u, id)), 1);
                            lat.push(st.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < deadline {
                if flush_secs.is_none() {
                    let v = c.sql(&format!(
                        "SELECT status FROM system.jobs WHERE job_id = '{job}'"
                    ));
                    match v["results"][0]["rows"][0][0].as_str() {
                        Some("completed") => {
                            flush_secs = Some(started_flush.elapsed().as_secs_f64())
                        }
                        Some("failed") | Some("cancelled") => panic!("mixed-load flush ended {v}"),
                        _ => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            stop.store(true, Ordering::Relaxed);
            let w: Vec<Duration> = writers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            let r: Vec<Duration> = readers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            (w, r)
        });
        let flush_secs = flush_secs.unwrap_or_else(|| loop {
            let v = c.sql(&format!(
                "SELECT status FROM system.jobs WHERE job_id = '{job}'"
            ));
            if v["results"][0]["rows"][0][0] == "completed" {
                break started_flush.elapsed().as_secs_f64();
            }
            std::thread::sleep(Duration::from_millis(50));
        });
        let (mut wlat, mut rlat) = (wlat, rlat);
        let (wn, rn) = (
            wlat.len() as f64 / secs as f64,
            rlat.len() as f64 / secs as f64,
        );

        let (mut pw, mut pr) = (Vec::new(), Vec::new());
        if let Some(pg) = &self.pg {
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
                    ws.push(tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut u = w;
                        while !stop.load(Ordering::Relaxed) {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            u = (u + 7) % users;
                            let sql = format!("INSERT INTO mixed VALUES {}", data::user_tuple(&format!("bu{u}"), id));
                            let st = Instant::now();
                            assert_eq!(pg::exec(&c, &sql).await, 1);
                            lat.push(st.elapsed());
                        }
                        lat
                    }));
                }
                let mut rs = Vec::new();
                for r in 0..2u64 {
                    let c = pg.connect().await;
                    let stop = stop.clone();
                    rs.push(tokio::spawn(async move {
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
                    }));
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
        }
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
        c.sql(&format!("DROP TABLE {table}"));
    }
}
