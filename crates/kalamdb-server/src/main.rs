//! `kalamdb-server`: loads the configuration, opens the database and serves the HTTP API
//! until SIGINT/SIGTERM, then stops accepting, finishes in-flight requests, syncs and exits 0.

mod auth;
mod config;
mod http;
mod json;
mod request;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kalamdb_core::{hash_password, now_millis, verify_password, Db, JobManager, ROOT_USER};
use kalamdb_sql::Engine;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// mimalloc instead of glibc malloc: allocation was a quarter of the write path's profile,
/// and freed memory goes back to the OS instead of staying in arenas (docs/BENCHMARKS.md).
/// Counted: what a statement's work allocates is held to `limits.query_memory_bytes`
/// (kalamdb_core::memory).
#[global_allocator]
static GLOBAL: kalamdb_core::Counting<mimalloc::MiMalloc> =
    kalamdb_core::Counting(mimalloc::MiMalloc);

/// KalamDB: a SQL database server for applications with many users.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Default: backend/server.toml if it exists, else built-in defaults.
    /// Every key can also be set as KALAMDB_SECTION_KEY (see docs/CONFIGURATION.md).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Print the effective configuration (file + environment, secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// Ask the server this configuration describes whether it is healthy (`GET /health` on its
    /// port, on 127.0.0.1 when it listens on every address) and exit 0 if it answers 200, else 1.
    /// The container image's HEALTHCHECK runs this: the image has no shell and no curl.
    #[arg(long)]
    health_check: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kalamdb-server: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.to_masked_toml());
        return std::process::ExitCode::SUCCESS;
    }
    if args.health_check {
        return match health_check(&config.server.host, config.server.port) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kalamdb-server: not healthy: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    init_logging(&config);
    // Generous stacks: planning walks expression trees recursively (depth is bounded by the
    // parser's limits, but a debug build's frames are large).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 * 1024 * 1024)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kalamdb-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(config));
    // Statements still running past the shutdown deadline (a DataFusion plan on the query
    // runtime, a scan on a blocking thread) must not hold the exit: the WAL is synced, so
    // leaving them is as safe as kill -9 (dropping the runtime would wait for them).
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("kalamdb-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `GET /health` over a plain socket, answered `200` within 3 seconds.
fn health_check(host: &str, port: u16) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) if ip == Ipv4Addr::UNSPECIFIED => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Ok(ip) if ip == Ipv6Addr::UNSPECIFIED => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) => ip,
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve {host}"))?
            .ip(),
    };
    let addr = SocketAddr::new(ip, port);
    let timeout = Duration::from_secs(3);
    let mut conn =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    conn.set_read_timeout(Some(timeout))
        .and_then(|()| conn.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    conn.write_all(
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head)
        .map_err(|e| format!("{addr}: {e}"))?;
    match &head {
        b"HTTP/1.1 200" => Ok(()),
        other => Err(format!(
            "{addr} answered {}",
            String::from_utf8_lossy(other).trim()
        )),
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: a log written to a file or a pipe stays plain text.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Make root's stored password agree with the configuration (unset: no password).
fn sync_root_password(db: &Db, password: Option<&str>) -> Result<(), String> {
    let mut root = db.catalog.user(ROOT_USER).ok_or("root user missing")?;
    let matches = match (password, &root.password_hash) {
        (None, None) => true,
        (Some(p), Some(h)) => verify_password(p, h),
        _ => false,
    };
    if !matches {
        root.password_hash = match password {
            Some(p) => Some(hash_password(p).map_err(|e| e.to_string())?),
            None => None,
        };
        root.updated_at_ms = now_millis();
        db.catalog.put_user(root).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The Prometheus recorder behind `/metrics`, when `metrics.enabled`.
fn metrics_recorder(
    config: &Config,
) -> Result<Option<metrics_exporter_prometheus::PrometheusHandle>, String> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ])
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    Ok(Some(handle))
}

async fn run(config: Config) -> Result<(), String> {
    let data_dir = config.storage.data_dir.clone();
    tracing::info!(data_dir = %data_dir.display(), "opening database");
    let db = Db::open(&data_dir)
        .map_err(|e| format!("cannot open database in {}: {e}", data_dir.display()))?;
    sync_root_password(&db, config.auth.root_password.as_deref())?;
    if config.auth.root_password.is_none() {
        tracing::warn!("KALAMDB_ROOT_PASSWORD is not set: root has no password and may log in from loopback only");
    }
    let jobs =
        JobManager::open(db.store.clone(), config.job_settings()).map_err(|e| e.to_string())?;
    tokio::spawn(kalamdb_core::run_scheduler(
        db.clone(),
        jobs.clone(),
        config.default_flush_policy(),
        Duration::from_millis(config.flush.policy_check_interval_ms),
    ));
    let engine =
        Engine::new(db.clone(), jobs.clone(), config.engine_limits()).map_err(|e| e.to_string())?;
    let auth = auth::Authenticator::new(db.catalog.clone(), config.auth.token_ttl_secs)
        .map_err(|e| e.to_string())?;
    let metrics = metrics_recorder(&config)?;
    let state = Arc::new(http::AppState {
        engine,
        auth,
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: Duration::from_secs(config.server.body_read_timeout_secs),
        started: Instant::now(),
        metrics,
        metrics_allow_remote: config.metrics.allow_remote,
        slow_query_ms: config.log.slow_query_ms,
    });
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%local, "KalamDB listening");
    let app = http::router(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown_timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
    let limits = serve::ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.server.idle_timeout_secs),
        max_connections: config.server.max_connections,
    };
    let server = tokio::spawn(serve::serve(listener, app, limits, async {
        let _ = stop_rx.await;
    }));
    wait_for_signal().await;
    tracing::info!("shutdown requested: finishing in-flight requests");
    // One deadline for the whole stop, so the process exits within
    // `server.shutdown_timeout_secs` and half a second, under a container's grace period.
    // In-flight requests finish while running flush jobs stop at their next scope boundary
    // and record `cancelled` (committed segments stay, the rest stays buffered), so a
    // `STORAGE FLUSH ... WAIT` in flight gets its answer.
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    let _ = stop_tx.send(());
    let (served, ()) = tokio::join!(
        tokio::time::timeout_at(deadline, server),
        jobs.shutdown(shutdown_timeout)
    );
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("server task failed: {e}"),
        Err(_) => tracing::warn!(
            "in-flight requests did not finish in {shutdown_timeout:?}; stopping anyway (their clients get no answer; nothing unacknowledged is kept)"
        ),
    }
    db.close()
        .map_err(|e| format!("final WAL sync failed: {e}"))?;
    tracing::info!("KalamDB stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
