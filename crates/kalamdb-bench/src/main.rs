//! `make bench`: KalamDB over HTTP, side by side with the raw limits of its components (in this
//! process) and PostgreSQL 15 (a temporary cluster on loopback), on the same rows and schema.
//! See docs/BENCHMARKS.md for the scenarios, how to read the table, and the latest run.

mod data;
mod kalam;
mod pg;
mod raw;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

use kalam::{Client, KalamServer};
use pg::PgCluster;
use report::Figure;

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
    /// Run only these scenarios (1-7), e.g. --only 1,3.
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
    if run(7) {
        b.upsert_ingest();
    }
    write_report(&b, &args);
}

/// results.md and results.json under `--out`, with the machine, commit and mode.
fn write_report(b: &Bench, args: &Args) {
    let started = b.started;
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
}
