//! Crash recovery: concurrent writers and flushes, kill -9 at a random moment or at a step of
//! the flush protocol, restart, and check everything against the log of acknowledged writes.
//!
//! `KALAMDB_CRASH_CYCLES` sets the number of cycles (CI: a few; `make crash-test CYCLES=200`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kalamdb_tests::{Auth, TestServer};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::json;

/// What a key may hold after the crash: acknowledged ops leave one state, the op in flight
/// at the kill leaves two (before or after).
type States = BTreeSet<Option<i64>>;

#[derive(Default)]
struct Model {
    /// (writer, id) -> possible values (None = absent).
    keys: BTreeMap<(usize, i64), States>,
}

struct Writer {
    auth: Auth,
    table: &'static str,
}

/// Where the kill happens.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    Random,
    AfterTemp,
    AfterRename,
    AfterCommit,
}

fn basic_header(auth: &Auth) -> String {
    use base64::Engine as _;
    match auth {
        Auth::Basic(u, p) => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ),
        _ => unreachable!("writers use Basic auth"),
    }
}

/// One writer's loop: insert new ids, update and delete earlier ones, until the server dies
/// or `stop`. Every acknowledged op is applied to the model; the op in flight when the
/// connection fails (the kill) widens its key's states and ends the loop. Any reply that is
/// not a success is a failure of the test (a 500 or a refused write is no kill), returned.
fn write_loop(
    port: u16,
    w: usize,
    writer: &Writer,
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}/v1/api/sql");
    let header = basic_header(&writer.auth);
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    while !stop.load(Ordering::Relaxed) {
        let (live, next_id): (Vec<i64>, i64) = {
            let m = model.lock().unwrap();
            let mine: Vec<(i64, &States)> = m
                .keys
                .iter()
                .filter(|((k, _), _)| *k == w)
                .map(|((_, id), s)| (*id, s))
                .collect();
            let live = mine
                .iter()
                .filter(|(_, s)| s.len() == 1 && s.iter().next().unwrap().is_some())
                .map(|(id, _)| *id)
                .collect();
            (live, mine.iter().map(|(id, _)| *id).max().unwrap_or(0) + 1)
        };
        let choice = next() % 10;
        let (sql, id, after): (String, i64, Option<i64>) = if choice < 6 || live.is_empty() {
            let v = (next() % 1000) as i64;
            (
                format!(
                    "INSERT INTO {} (id, v) VALUES ({next_id}, {v})",
                    writer.table
                ),
                next_id,
                Some(v),
            )
        } else if choice < 9 {
            let id = live[(next() as usize) % live.len()];
            let v = (next() % 1000) as i64;
            (
                format!("UPDATE {} SET v = {v} WHERE id = {id}", writer.table),
                id,
                Some(v),
            )
        } else {
            let id = live[(next() as usize) % live.len()];
            (
                format!("DELETE FROM {} WHERE id = {id}", writer.table),
                id,
                None,
            )
        };
        let body = json!({ "sql": sql }).to_string();
        let acked = match ureq::post(&url)
            .set("Authorization", &header)
            .timeout(Duration::from_secs(30))
            .send_string(&body)
        {
            Ok(r) if r.status() == 200 => true,
            Ok(r) => return Err(format!("writer {w}: {sql}: HTTP {}", r.status())),
            Err(ureq::Error::Status(code, r)) => {
                return Err(format!(
                    "writer {w}: {sql}: HTTP {code}: {}",
                    r.into_string().unwrap_or_default()
                ))
            }
            // The connection failed: the server was killed under this op.
            Err(ureq::Error::Transport(_)) => false,
        };
        let mut m = model.lock().unwrap();
        let states = m
            .keys
            .entry((w, id))
            .or_insert_with(|| BTreeSet::from([None]));
        if acked {
            *states = BTreeSet::from([after]);
        } else {
            states.insert(after);
            return Ok(());
        }
    }
    Ok(())
}

/// Rows in every Parquet file under `dir` (recursively), by top two path components (ns/table).
fn parquet_rows(dir: &Path) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for p in kalamdb_tests::files_under(dir) {
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
        assert!(
            rel.ends_with(".parquet"),
            "stray file after recovery: {rel}"
        );
        let reader = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
        let table: Vec<&str> = rel.split('/').take(2).collect();
        *out.entry(table.join(".")).or_default() += reader.metadata().file_metadata().num_rows();
    }
    out
}

fn verify(s: &TestServer, writers: &[Writer], model: &Mutex<Model>, cycle: usize) {
    let mut m = model.lock().unwrap();
    for (w, writer) in writers.iter().enumerate() {
        let r = s
            .sql_as(
                &writer.auth,
                &format!("SELECT id, v FROM {} ORDER BY id", writer.table),
            )
            .ok();
        let mut seen: BTreeMap<i64, i64> = BTreeMap::new();
        for row in r.rows(0) {
            let (id, v) = (row[0].as_i64().unwrap(), row[1].as_i64().unwrap());
            assert!(
                seen.insert(id, v).is_none(),
                "cycle {cycle}: writer {w} id {id} appears twice"
            );
        }
        for ((kw, id), states) in m.keys.iter_mut().filter(|((kw, _), _)| *kw == w) {
            let got = seen.remove(id);
            assert!(
                states.contains(&got),
                "cycle {cycle}: writer {kw} id {id}: found {got:?}, acknowledged {states:?}"
            );
            *states = BTreeSet::from([got]);
        }
        assert!(
            seen.is_empty(),
            "cycle {cycle}: writer {w} has rows nobody wrote: {seen:?}"
        );
    }
    // No job is left looking alive, and no Parquet file is orphaned or double counted.
    let r = s
        .root("SELECT count(*) FROM system.jobs WHERE status IN ('queued', 'running', 'retrying')");
    assert_eq!(
        r.rows(0),
        vec![vec![json!(0)]],
        "cycle {cycle}: jobs still marked active after restart"
    );
    let on_disk = parquet_rows(&s.storage_dir());
    let r =
        s.root("SELECT namespace, table_name, flushed_rows FROM system.tables ORDER BY table_name");
    for row in r.rows(0) {
        let name = format!("{}.{}", row[0].as_str().unwrap(), row[1].as_str().unwrap());
        let manifest_rows = row[2].as_i64().unwrap();
        assert_eq!(
            on_disk.get(&name).copied().unwrap_or(0),
            manifest_rows,
            "cycle {cycle}: {name} files vs manifests"
        );
    }
}

#[test]
fn crash_recovery_keeps_every_acknowledged_write_exactly_once() {
    let cycles: usize = std::env::var("KALAMDB_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut s = TestServer::start_with_env(&[
        ("KALAMDB_FLUSH_DEFAULT_POLICY", ""),
        ("KALAMDB_FLUSH_SEGMENT_ROWS", "7"),
    ]);
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v BIGINT)");
    s.root("CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, v BIGINT)");
    let writers = vec![
        Writer {
            auth: s.create_user("w0", "user"),
            table: "app.t",
        },
        Writer {
            auth: s.create_user("w1", "user"),
            table: "app.t",
        },
        Writer {
            auth: Auth::root(),
            table: "app.s",
        },
    ];
    let model = Arc::new(Mutex::new(Model::default()));
    let points = [
        KillPoint::Random,
        KillPoint::AfterTemp,
        KillPoint::AfterRename,
        KillPoint::AfterCommit,
    ];
    let mut interrupted_jobs_seen = 0;
    for cycle in 0..cycles {
        let point = points[cycle % points.len()];
        let failpoint = match point {
            KillPoint::Random => "",
            KillPoint::AfterTemp => "flush.pause_after_temp=60000",
            KillPoint::AfterRename => "flush.pause_after_write=60000",
            KillPoint::AfterCommit => "flush.pause_after_commit=60000",
        };
        let pauses_before = s.log_text().matches("pausing at failpoint").count();
        s.set_failpoints(failpoint);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (w, writer) in writers.iter().enumerate() {
            let (model, stop, port) = (model.clone(), stop.clone(), s.port);
            let writer = Writer {
                auth: writer.auth.clone(),
                table: writer.table,
            };
            let seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((cycle * 31 + w) as u64 + 1);
            threads.push(std::thread::spawn(move || {
                write_loop(port, w, &writer, model, stop, seed)
            }));
        }
        // Flush both tables repeatedly while the writers run.
        let start = Instant::now();
        let run_for = Duration::from_millis(300 + (cycle as u64 * 137) % 900);
        loop {
            for t in ["app.t", "app.s"] {
                // Before the kill every flush request is accepted: a new job, or the one running.
                let r = s.sql_as(&Auth::root(), &format!("STORAGE FLUSH TABLE {t}"));
                assert_eq!(
                    r.status, 200,
                    "cycle {cycle}: STORAGE FLUSH TABLE {t}: {}",
                    r.body
                );
                let job = r.body["results"][0]["job_id"].as_str().unwrap_or("");
                assert!(
                    job.starts_with("FL-"),
                    "cycle {cycle}: no job in {}",
                    r.body
                );
            }
            std::thread::sleep(Duration::from_millis(40));
            let paused = s.log_text().matches("pausing at failpoint").count() > pauses_before;
            let due = match point {
                KillPoint::Random => start.elapsed() >= run_for,
                _ => paused || start.elapsed() >= Duration::from_secs(20),
            };
            if due {
                // A cycle meant to kill at a step of the flush protocol kills there, or fails:
                // it must not quietly become a random kill.
                assert!(
                    matches!(point, KillPoint::Random) || paused,
                    "cycle {cycle}: the flush never paused at {failpoint} in 20 s"
                );
                break;
            }
        }
        s.set_failpoints("");
        s.kill9_and_restart();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            if let Err(e) = t.join().unwrap() {
                panic!("cycle {cycle}: a write failed while the server was up: {e}");
            }
        }
        verify(&s, &writers, &model, cycle);
        let r = s.root(
            "SELECT count(*) FROM system.jobs WHERE error_message = 'interrupted by restart'",
        );
        interrupted_jobs_seen = r.rows(0)[0][0].as_i64().unwrap();
    }
    let keys = model.lock().unwrap().keys.len();
    assert!(
        keys > 20,
        "the writers wrote too little to mean anything: {keys} keys"
    );
    if cycles >= 4 {
        assert!(
            interrupted_jobs_seen > 0,
            "no kill ever landed inside a flush job"
        );
    }
    eprintln!("crash recovery: {cycles} cycles, {keys} keys, {interrupted_jobs_seen} interrupted jobs, all consistent");
}
