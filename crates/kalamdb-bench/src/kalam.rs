//! A release `kalamdb-server` on a free port with a temporary data dir, and an HTTP client.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub struct KalamServer {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl KalamServer {
    pub fn start(binary: &Path, scratch: &Path) -> KalamServer {
        let dir = tempfile::Builder::new()
            .prefix("kalamdb-bench-")
            .tempdir_in(scratch)
            .expect("temp dir");
        let data_dir = dir.path().join("data");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(binary)
            .env("KALAMDB_SERVER_PORT", port.to_string())
            .env("KALAMDB_DATA_DIR", &data_dir)
            .env("KALAMDB_ROOT_PASSWORD", "bench")
            .env("KALAMDB_LOG", "warn")
            // Flushes happen when a scenario asks for them, never behind its back.
            .env("KALAMDB_FLUSH_DEFAULT_POLICY", "")
            .env("KALAMDB_LIMITS_STATEMENT_TIMEOUT_SECS", "600")
            .env("KALAMDB_LIMITS_MAX_RESULT_ROWS", "100000000")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let server = KalamServer {
            child,
            port,
            data_dir,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ureq::get(&format!("http://127.0.0.1:{port}/health"))
                .call()
                .is_ok()
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "kalamdb-server did not become healthy in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }

    /// Bytes of the server's `VmRSS` / `VmHWM`.
    pub fn status_bytes(&self, field: &str) -> u64 {
        proc_status_bytes(self.pid(), field)
    }

    /// Wait until the server has used (almost) no CPU for a second — earlier scenarios leave
    /// RocksDB compactions running — so a measurement sees only its own work. Gives up after
    /// `max`; returns how long it waited.
    pub fn wait_idle(&self, max: Duration) -> Duration {
        let ticks = || {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
            // Fields after the command name: utime is the 12th, stime the 13th.
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
        };
        let start = Instant::now();
        let mut quiet_since = Instant::now();
        let mut last = ticks();
        while start.elapsed() < max {
            std::thread::sleep(Duration::from_millis(200));
            let now = ticks();
            if now.saturating_sub(last) > 2 {
                quiet_since = Instant::now();
            }
            last = now;
            if quiet_since.elapsed() >= Duration::from_secs(1) {
                break;
            }
        }
        start.elapsed()
    }

    /// Reset the peak-RSS mark so a later `VmHWM` is the peak of what follows.
    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Parquet files of one table under the data dir.
    pub fn parquet_files(&self, namespace: &str, table: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(
            &self.data_dir.join("storage").join(namespace).join(table),
            &mut out,
        );
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl Drop for KalamServer {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP connection speaking `POST /v1/api/sql` as root.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    auth: String,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(900))
                .build(),
            url: format!("http://127.0.0.1:{port}/v1/api/sql"),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("root:bench")
            ),
        }
    }

    /// Run SQL; any error response stops the benchmark (a figure measured on errors is worthless).
    pub fn sql(&self, sql: &str) -> Value {
        let resp = self
            .agent
            .post(&self.url)
            .set("Authorization", &self.auth)
            .send_json(json!({ "sql": sql }));
        match resp {
            Ok(r) => {
                let v: Value = r.into_json().expect("JSON response");
                assert_eq!(
                    v["status"],
                    "success",
                    "KalamDB answered {v} to {}",
                    short(sql)
                );
                v
            }
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "KalamDB answered {code} {} to {}",
                    r.into_string().unwrap_or_default(),
                    short(sql)
                )
            }
            Err(e) => panic!("request failed: {e} for {}", short(sql)),
        }
    }

    /// Rows returned (or affected) by the first statement.
    pub fn row_count(&self, sql: &str) -> u64 {
        self.sql(sql)["results"][0]["row_count"]
            .as_u64()
            .expect("row_count")
    }

    /// `SELECT count(*)` of a table.
    pub fn count(&self, table: &str) -> u64 {
        let v = self.sql(&format!("SELECT count(*) FROM {table}"));
        v["results"][0]["rows"][0][0].as_u64().expect("count")
    }

    /// `STORAGE FLUSH TABLE ... WAIT`, returning the job's result object; the job must complete.
    pub fn flush_wait(&self, table: &str) -> Value {
        let v = self.sql(&format!("STORAGE FLUSH TABLE {table} WAIT"));
        let r = &v["results"][0];
        let names: Vec<&str> = r["schema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let row = r["rows"][0].as_array().expect("job row");
        let get = |n: &str| &row[names.iter().position(|x| *x == n).expect("job column")];
        assert_eq!(
            get("status"),
            "completed",
            "flush of {table} did not complete: {v}"
        );
        serde_json::from_str(get("result").as_str().expect("job result")).expect("job result JSON")
    }
}

pub fn short(sql: &str) -> String {
    sql.chars().take(160).collect()
}

pub fn proc_meminfo_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
