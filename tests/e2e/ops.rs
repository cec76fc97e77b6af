//! Operations: the Docker entrypoint check, configuration errors and --print-config,
//! Prometheus metrics, JSON logs and the slow-query log.

use std::process::Command;

use kalamdb_tests::{server_binary, Auth, TestServer};

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn docker_entrypoint_starts_from_environment_only_and_stops_on_sigterm() {
    let out = Command::new("bash")
        .arg(repo_root().join("docker/build-check.sh"))
        .arg("entrypoint")
        .env("KALAMDB_BIN", server_binary())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("stopped cleanly on SIGTERM"), "{text}");
}

/// Run the binary with a config file and environment; returns (exit code, stdout, stderr).
fn run_server(args: &[&str], config: Option<&str>, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(server_binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path());
    if let Some(c) = config {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, c).unwrap();
        cmd.arg("--config").arg(p);
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bad_configuration_stops_the_server_naming_the_key() {
    let (code, _, err) = run_server(&[], Some("[server]\nprot = 9\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("prot"), "{err}");
    let (code, _, err) = run_server(&[], Some("[limits]\nmax_result_rows = \"many\"\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_result_rows"), "{err}");
    let (code, _, err) = run_server(&[], None, &[("KALAMDB_SERVER_PORT", "eighty")]);
    assert_eq!(code, 2);
    assert!(err.contains("KALAMDB_SERVER_PORT"), "{err}");
    let (code, _, err) = run_server(&[], None, &[("KALAMDB_LIMITS_MAX_RESLUT_ROWS", "5")]);
    assert_eq!(code, 2);
    assert!(err.contains("KALAMDB_LIMITS_MAX_RESLUT_ROWS"), "{err}");
    let (code, _, err) = run_server(&[], None, &[("KALAMDB_DATA_DIR", "")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("KALAMDB_DATA_DIR"), "{err}");
    let (code, _, err) = run_server(&[], None, &[("KALAMDB_LOG_FORMAT", "xml")]);
    assert_eq!(code, 2);
    assert!(err.contains("log.format"), "{err}");
}

#[test]
fn print_config_shows_the_effective_configuration_with_secrets_masked() {
    let (code, out, _) = run_server(
        &["--print-config"],
        Some("[server]\nport = 9999\n"),
        &[
            ("KALAMDB_ROOT_PASSWORD", "hunter2"),
            ("KALAMDB_LIMITS_MAX_RESULT_ROWS", "77"),
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("port = 9999") && out.contains("max_result_rows = 77"),
        "{out}"
    );
    assert!(
        out.contains("root_password = \"********\"") && !out.contains("hunter2"),
        "{out}"
    );
    let (code, out, _) = run_server(&["--help"], None, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--config")
            && out.contains("--print-config")
            && out.contains("--health-check"),
        "{out}"
    );
}

/// The image's HEALTHCHECK (`kalamdb-server --health-check`; the image has no shell or curl):
/// exit 0 when the configured server answers /health with 200, 1 when nothing listens there.
#[test]
fn health_check_flag_asks_the_configured_server() {
    let s = TestServer::start();
    let port = s.port.to_string();
    let check = |host: &str| {
        run_server(
            &["--health-check"],
            None,
            &[
                ("KALAMDB_SERVER_HOST", host),
                ("KALAMDB_SERVER_PORT", &port),
            ],
        )
    };
    let (code, _, err) = check("0.0.0.0");
    assert_eq!(code, 0, "{err}");
    drop(s);
    let (code, _, err) = check("127.0.0.1");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not healthy"), "{err}");
}

/// Second black-box attack (issue #12): a query running when the container was stopped held
/// the server past `podman stop`'s 10 s grace (the stop waited for the statement up to the
/// 30 s default of `server.shutdown_timeout_secs`), so podman killed it (exit 137). The stop
/// now has one deadline, 8 s by default, under Docker's and podman's default grace of 10 s.
#[test]
fn a_stop_does_not_wait_for_a_running_statement_past_the_shutdown_timeout() {
    use std::time::{Duration, Instant};
    let mut s = TestServer::start_with_env(&[("KALAMDB_LIMITS_STATEMENT_TIMEOUT_SECS", "300")]);
    let port = s.port;
    let query = std::thread::spawn(move || {
        let s = TestServer::attach(port);
        let sql =
            "SELECT count(*) FROM generate_series(1, 3000000) a, generate_series(1, 3000000) b";
        // Cut off by the stop: no answer (an Err) is what its client sees.
        s.try_post(
            "/v1/api/sql",
            &Auth::root(),
            serde_json::json!({ "sql": sql }).to_string().as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!query.is_finished(), "the statement ended before the stop");
    let started = Instant::now();
    assert!(s.stop_gracefully(), "exit status after SIGTERM");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the stop took {took:?}: a container's default grace period is 10 s"
    );
    let _ = query.join();
    // Nothing was lost: the server starts again on its data.
    s.start_again();
    assert!(s.healthy());
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|v| v.trim().parse().ok())
    })
}

#[test]
fn metrics_count_requests_rows_and_flush_outcomes() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_JOBS_MAX_ATTEMPTS", "1"),
        ("KALAMDB_FLUSH_DEFAULT_POLICY", ""),
    ]);
    s.root("CREATE TABLE m (id BIGINT PRIMARY KEY); INSERT INTO m VALUES (1), (2), (3)");
    s.flush_wait("m");
    s.root("INSERT INTO m VALUES (4)");
    s.set_failpoints("flush.scope_error=*");
    s.flush_wait("m");
    s.root("INSERT INTO m VALUES (5)");
    s.flush_wait("m");
    s.set_failpoints("");
    let r = s.sql_as(&Auth::None, "SELECT 1");
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.body);
    let (status, text) = s.get_text("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "kalamdb_rows_written_total{op=\"insert\"}"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "kalamdb_flush_jobs_total{outcome=\"completed\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "kalamdb_flush_jobs_total{outcome=\"failed\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "kalamdb_flush_consecutive_failures{table=\"default.m\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "kalamdb_flush_rows_total{table=\"default.m\"}"),
        Some(3.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "kalamdb_http_requests_total{endpoint=\"/v1/api/sql\",status=\"401\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        text.contains("kalamdb_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("kalamdb_flush_duration_seconds_count"),
        "{text}"
    );
    // Storage gauges are refreshed by the scheduler (first at its first tick, then every 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let (_, text) = s.get_text("/metrics");
        if text.contains("kalamdb_rocksdb_memory_bytes") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        metric(&text, "kalamdb_rocksdb_memory_bytes{kind=\"memtables\"}").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "kalamdb_rocksdb_memory_bytes{kind=\"table_readers\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        metric(&text, "kalamdb_rocksdb_size_bytes").is_some_and(|v| v > 0.0),
        "{text}"
    );
}

#[test]
fn json_logs_carry_request_spans_and_slow_queries_are_logged() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_LOG_FORMAT", "json"),
        ("KALAMDB_LOG_SLOW_QUERY_MS", "1"),
    ]);
    s.root("CREATE TABLE j (id INT PRIMARY KEY); INSERT INTO j VALUES (1); SELECT * FROM j");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = s.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !lines.is_empty() && lines.len() == log.lines().count(),
        "every line is JSON:\n{log}"
    );
    let slow = lines
        .iter()
        .find(|l| l["fields"]["message"] == "slow query")
        .unwrap_or_else(|| panic!("no slow query line:\n{log}"));
    assert!(
        slow["fields"]["sql"]
            .as_str()
            .unwrap()
            .contains("CREATE TABLE j"),
        "{slow}"
    );
    assert!(
        slow.to_string().contains("\"user\":\"root\""),
        "span fields present: {slow}"
    );
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let s = TestServer::start();
    s.root("CREATE TABLE c (id INT PRIMARY KEY)");
    let r = s.sql_as(&kalamdb_tests::Auth::root(), "SELECT * FROM nope");
    assert_eq!(r.code(), "TABLE_NOT_FOUND");
    let log = s.log_text();
    assert!(
        log.contains("INFO") || log.contains("info"),
        "the server logged something:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log file:\n{log}"
    );
}
