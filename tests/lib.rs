//! Harness for black-box tests: start the real `kalamdb-server` binary on a free port with a
//! temporary data directory, speak HTTP to it, restart it, or kill -9 it.
//!
//! The binary is found next to the test executable's target directory
//! (`$CARGO_TARGET_DIR/debug/kalamdb-server`, built by `make test`), or at `KALAMDB_SERVER_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub mod slt;
use serde_json::{json, Value};

/// Password the harness gives root.
pub const ROOT_PASSWORD: &str = "root-test-pw";

/// Credentials for a request.
#[derive(Debug, Clone)]
pub enum Auth {
    Basic(String, String),
    Bearer(String),
    None,
}

impl Auth {
    pub fn root() -> Auth {
        Auth::Basic("root".into(), ROOT_PASSWORD.into())
    }
    pub fn user(name: &str, password: &str) -> Auth {
        Auth::Basic(name.into(), password.into())
    }
    fn header(&self) -> Option<String> {
        match self {
            Auth::Basic(u, p) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::None => None,
        }
    }
}

/// An HTTP response: status and parsed JSON body (Null if the body was not JSON).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of an error response.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// Panic with the body unless the request succeeded.
    pub fn ok(self) -> Response {
        assert_eq!(self.status, 200, "request failed: {}", self.body);
        assert_eq!(self.body["status"], "success", "{}", self.body);
        self
    }

    /// Rows of result `i`.
    pub fn rows(&self, i: usize) -> Vec<Vec<Value>> {
        self.body["results"][i]["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("result {i} has no rows: {}", self.body))
            .iter()
            .map(|r| r.as_array().expect("row is an array").clone())
            .collect()
    }

    /// Rows of the last result.
    pub fn last_rows(&self) -> Vec<Vec<Value>> {
        let n = self.body["results"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        assert!(n > 0, "no results: {}", self.body);
        self.rows(n - 1)
    }

    /// First row of result `i` as an object keyed by column name.
    pub fn job_row(&self, i: usize) -> serde_json::Map<String, Value> {
        let schema = self.body["results"][i]["schema"]
            .as_array()
            .expect("schema")
            .clone();
        let rows = self.rows(i);
        let row = rows
            .first()
            .unwrap_or_else(|| panic!("no row: {}", self.body));
        schema
            .iter()
            .zip(row.iter())
            .map(|(f, v)| (f["name"].as_str().unwrap_or("").to_string(), v.clone()))
            .collect()
    }

    pub fn row_count(&self, i: usize) -> u64 {
        self.body["results"][i]["row_count"]
            .as_u64()
            .expect("row_count")
    }
}

/// A running server and the data directory it owns.
pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
}

/// Path of the kalamdb-server binary the tests run.
pub fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("KALAMDB_SERVER_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/e2e-<hash> -> target/debug/kalamdb-server; a binary of this crate
    // (target/debug/kalamdb-slt) sits next to it.
    let exe = std::env::current_exe().expect("current exe");
    let beside = exe.parent().map(|d| d.join("kalamdb-server"));
    let bin = match beside {
        Some(b) if b.exists() => b,
        _ => exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("kalamdb-server"),
    };
    assert!(
        bin.exists(),
        "{} not found: build it first (`make test` does: cargo build -p kalamdb-server)",
        bin.display()
    );
    bin
}

/// The port a server started with `KALAMDB_SERVER_PORT=0` bound, from its log after byte
/// `from` (the kernel chose it: no other process can have it, unlike a port found free and
/// released before the server binds it).
fn bound_port(log: &Path, from: u64) -> Option<u16> {
    let text = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(text.get(from as usize..)?);
    let line = text.lines().find(|l| l.contains("KalamDB listening"))?;
    // Text logs say `local=127.0.0.1:PORT`, JSON logs `"local":"127.0.0.1:PORT"`.
    let addr = match line.split("local=").nth(1) {
        Some(rest) => rest.split_whitespace().next()?,
        None => line.split("\"local\":\"").nth(1)?.split('"').next()?,
    };
    addr.rsplit(':').next()?.parse().ok()
}

impl TestServer {
    /// Start a server with a fresh temporary data directory.
    pub fn start() -> TestServer {
        Self::start_with_env(&[])
    }

    /// Start with extra environment variables (e.g. limits).
    pub fn start_with_env(env: &[(&str, &str)]) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = TestServer {
            child: None,
            port: 0,
            data_dir: tmp.path().join("data"),
            _tmp: Some(tmp),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.launch();
        s
    }

    /// The server process's id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// CPU time (user + system) the server process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("/proc/<pid>/stat");
        // Fields after the command name (which is in parentheses): utime is the 14th field.
        let after = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
    }

    /// The server process's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/<pid>/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("VmHWM value");
        kib * 1024
    }

    /// A client handle to a server another TestServer owns (for threads); it does not stop it.
    pub fn attach(port: u16) -> TestServer {
        TestServer {
            child: None,
            port,
            data_dir: PathBuf::new(),
            _tmp: None,
            env: Vec::new(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn failpoints_file(&self) -> PathBuf {
        self.data_dir.with_extension("failpoints")
    }

    /// Replace the server's active failpoints (`name=value` lines; "" clears them).
    /// Takes effect at the server's next check, without a restart.
    pub fn set_failpoints(&self, spec: &str) {
        std::fs::write(self.failpoints_file(), spec).expect("write failpoints");
    }

    /// Change an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Everything the server logged so far (all starts).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// GET a path without authentication; returns status and body text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path))
            .timeout(Duration::from_secs(30))
            .call()
        {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Root of the Parquet cold store.
    pub fn storage_dir(&self) -> PathBuf {
        self.data_dir.join("storage")
    }

    /// Run `STORAGE FLUSH TABLE t WAIT` as root and return the job's final row as an object.
    pub fn flush_wait(&self, table: &str) -> serde_json::Map<String, Value> {
        let r = self.root(&format!("STORAGE FLUSH TABLE {table} WAIT"));
        r.job_row(0)
    }

    /// The system.jobs row of a job, as an object (None if it does not exist).
    pub fn job(&self, job_id: &str) -> Option<serde_json::Map<String, Value>> {
        let r = self.root(&format!(
            "SELECT * FROM system.jobs WHERE job_id = '{job_id}'"
        ));
        if r.rows(0).is_empty() {
            None
        } else {
            Some(r.job_row(0))
        }
    }

    /// Poll a job until it has finished (or panic after `secs`).
    pub fn wait_job(&self, job_id: &str, secs: u64) -> serde_json::Map<String, Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let j = self.job(job_id).expect("job row exists");
            if matches!(
                j["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} did not finish: {j:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(&mut self) {
        let log_path = self.data_dir.with_extension("log");
        for attempt in 0..5 {
            let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.data_dir.with_extension("log"))
                .expect("log file");
            let mut cmd = Command::new(server_binary());
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("KALAMDB_SERVER_HOST", "127.0.0.1")
                .env("KALAMDB_SERVER_PORT", "0")
                .env("KALAMDB_DATA_DIR", &self.data_dir)
                .env("KALAMDB_ROOT_PASSWORD", ROOT_PASSWORD)
                .env("KALAMDB_LOG", "info")
                .env("KALAMDB_FAILPOINTS_FILE", self.failpoints_file())
                // Run from a directory without backend/server.toml: built-in defaults + env only.
                .current_dir(self.data_dir.parent().expect("parent"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn kalamdb-server");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("server exited early ({status}) on attempt {attempt}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "server did not become healthy; see {}",
                        self.data_dir.with_extension("log").display()
                    );
                }
                let Some(port) = bound_port(&log_path, log_start) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if let Ok(r) = ureq::get(&format!("http://127.0.0.1:{port}/health"))
                    .timeout(Duration::from_secs(2))
                    .call()
                {
                    if r.status() == 200 {
                        self.child = Some(child);
                        self.port = port;
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "server failed to start 5 times; see {}",
            self.data_dir.with_extension("log").display()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POST a raw body to a path; a transport failure (no answer) is an `Err`.
    pub fn try_post(&self, path: &str, auth: &Auth, body: &[u8]) -> Result<Response, String> {
        let mut req = ureq::post(&self.url(path))
            .timeout(Duration::from_secs(120))
            .set("Content-Type", "application/json");
        if let Some(h) = auth.header() {
            req = req.set("Authorization", &h);
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("request to {path} failed: {e}")),
        };
        let status = resp.status();
        let text = read_body(resp)?;
        Ok(Response {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    /// POST a raw body to a path.
    pub fn post_raw(&self, path: &str, auth: &Auth, body: &[u8]) -> Response {
        let mut req = ureq::post(&self.url(path))
            .timeout(Duration::from_secs(120))
            .set("Content-Type", "application/json");
        if let Some(h) = auth.header() {
            req = req.set("Authorization", &h);
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let status = resp.status();
        let text = read_body(resp).unwrap_or_else(|e| panic!("{e}"));
        Response {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Run SQL as `auth`.
    pub fn sql_as(&self, auth: &Auth, sql: &str) -> Response {
        self.post_raw(
            "/v1/api/sql",
            auth,
            json!({ "sql": sql }).to_string().as_bytes(),
        )
    }

    /// Run SQL with a full request body (params, namespace).
    pub fn request(&self, auth: &Auth, body: Value) -> Response {
        self.post_raw("/v1/api/sql", auth, body.to_string().as_bytes())
    }

    /// Run SQL as root and require success.
    pub fn root(&self, sql: &str) -> Response {
        self.sql_as(&Auth::root(), sql).ok()
    }

    /// Create a user with a role (password = name + "-pw") and return its credentials.
    pub fn create_user(&self, name: &str, role: &str) -> Auth {
        self.root(&format!(
            "CREATE USER '{name}' WITH PASSWORD '{name}-pw' ROLE {role}"
        ));
        Auth::user(name, &format!("{name}-pw"))
    }

    pub fn healthy(&self) -> bool {
        matches!(ureq::get(&self.url("/health")).timeout(Duration::from_secs(5)).call(), Ok(r) if r.status() == 200)
    }

    /// SIGTERM, wait for a clean exit (asserting exit status 0), start again on the same data.
    pub fn restart(&mut self) {
        self.stop_gracefully();
        self.launch();
    }

    /// SIGTERM and wait; returns whether the process exited with status 0.
    pub fn stop_gracefully(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start the server again on the same data after [`TestServer::stop_gracefully`].
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.launch();
        }
    }

    /// kill -9 the server and start it again on the same data.
    pub fn kill9_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        self.launch();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() && self._tmp.is_some() {
            // The data dir is about to be deleted: show the server's log with the failure.
            let log =
                std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            // A request's 500 is logged as an ERROR, often thousands of lines before the end.
            let errors: Vec<&&str> = lines
                .iter()
                .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
                .collect();
            eprintln!("---- server log: ERROR and WARN lines (last 40) ----");
            for l in &errors[errors.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
            eprintln!("---- server log (last 80 lines) ----");
            for l in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Every file under `dir`, recursively (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A response's whole body (ureq's `into_string` stops at 10 MB and would read a larger
/// answer as no answer at all).
fn read_body(resp: ureq::Response) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    resp.into_reader()
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the response body failed: {e}"))?;
    Ok(text)
}
