//! A temporary PostgreSQL 15 cluster on loopback, started and stopped by the benchmark.
//!
//! Settings are PostgreSQL's defaults for durability (fsync on, synchronous_commit on: every
//! acknowledged commit is on disk, as in KalamDB) with memory sized for this machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

pub fn find_bin_dir() -> Option<PathBuf> {
    let candidates = ["/usr/lib/postgresql/15/bin"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("postgres").exists())
}

impl PgCluster {
    pub fn start(scratch: &Path) -> Result<PgCluster, String> {
        let bin = find_bin_dir()
            .ok_or("PostgreSQL 15 is not installed (apt-get install postgresql-15)")?;
        let dir = tempfile::Builder::new()
            .prefix("kalamdb-bench-pg-")
            .tempdir_in(scratch)
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("pgdata");
        // PostgreSQL refuses to run as root: run it as the `postgres` account then.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let port = crate::kalam::free_port();
        let cluster = PgCluster {
            bin,
            data,
            port,
            as_postgres,
            _dir: dir,
        };
        let data_s = cluster.data.display().to_string();
        cluster.pg_cmd(
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             shared_buffers = '1GB'\nmax_wal_size = '8GB'\nwork_mem = '64MB'\nmaintenance_work_mem = '512MB'\n\
             fsync = on\nsynchronous_commit = on\nmax_connections = 64\n",
            cluster.socket_dir().display()
        );
        let conf_path = cluster.data.join("postgresql.auto.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let log = cluster
            .data
            .parent()
            .unwrap()
            .join("pg.log")
            .display()
            .to_string();
        cluster.pg_cmd(
            "pg_ctl",
            &["-D", &data_s, "-l", &log, "-w", "-t", "120", "start"],
        )?;
        Ok(cluster)
    }

    fn socket_dir(&self) -> PathBuf {
        self.data.parent().unwrap().to_path_buf()
    }

    fn pg_cmd(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.args(args);
        run(&mut c)
    }

    pub async fn connect(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            NoTls,
        )
        .await
        .expect("connect to PostgreSQL");
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("PostgreSQL connection error: {e}");
            }
        });
        client
    }
}

fn run(c: &mut Command) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{c:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data_s = self.data.display().to_string();
        let _ = self.pg_cmd("pg_ctl", &["-D", &data_s, "-m", "fast", "-w", "stop"]);
    }
}

/// Rows returned by a simple-protocol query (the same SQL text KalamDB gets).
pub async fn query_rows(c: &Client, sql: &str) -> u64 {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL: {e:?} for {}", crate::kalam::short(sql)));
    msgs.iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
        .count() as u64
}

/// Rows affected by the last statement of a simple-protocol batch.
pub async fn exec(c: &Client, sql: &str) -> u64 {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL: {e:?} for {}", crate::kalam::short(sql)));
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .last()
        .unwrap_or(0)
}

/// First column of the first row.
pub async fn scalar(c: &Client, sql: &str) -> String {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL: {e:?} for {sql}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .unwrap_or_default()
}
