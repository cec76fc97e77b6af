//! Stress: writers, a flush loop and readers on the same table at once. Each writer inserts
//! ids 1, 2, 3, ... (a statement at a time, 5 rows each) with v = id, so any consistent read
//! of a user's rows is a prefix: count = n and sum(v) = n(n+1)/2, with n between what was
//! acknowledged before the read and what was sent by its end. A row lost, duplicated or
//! half-visible during a flush breaks that.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kalamdb_tests::{Auth, TestServer};

const WRITERS: usize = 4;
const ROWS_PER_STATEMENT: i64 = 5;
const MIN_FLUSHES: usize = 8;

#[test]
fn readers_always_see_a_consistent_prefix_while_writers_and_flushes_run() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_FLUSH_DEFAULT_POLICY", ""),
        ("KALAMDB_FLUSH_SEGMENT_ROWS", "97"),
    ]);
    s.root("CREATE USER TABLE st (id BIGINT PRIMARY KEY, v BIGINT)");
    let users: Vec<Auth> = (0..WRITERS)
        .map(|i| s.create_user(&format!("s{i}"), "user"))
        .collect();
    let acked: Arc<Vec<AtomicI64>> = Arc::new((0..WRITERS).map(|_| AtomicI64::new(0)).collect());
    let sent: Arc<Vec<AtomicI64>> = Arc::new((0..WRITERS).map(|_| AtomicI64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs(8);
    let port = s.port;
    let mut threads = Vec::new();
    for (w, auth) in users.iter().cloned().enumerate() {
        let (acked, sent, stop) = (acked.clone(), sent.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let srv = TestServer::attach(port);
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<String> = (n + 1..=n + ROWS_PER_STATEMENT)
                    .map(|i| format!("({i}, {i})"))
                    .collect();
                sent[w].store(n + ROWS_PER_STATEMENT, Ordering::SeqCst);
                srv.sql_as(
                    &auth,
                    &format!("INSERT INTO st VALUES {}", values.join(", ")),
                )
                .ok();
                n += ROWS_PER_STATEMENT;
                acked[w].store(n, Ordering::SeqCst);
            }
        }));
    }
    let reads = Arc::new(AtomicI64::new(0));
    for r in 0..2 {
        let (acked, sent, stop, users, reads) = (
            acked.clone(),
            sent.clone(),
            stop.clone(),
            users.clone(),
            reads.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let srv = TestServer::attach(port);
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let w = i % WRITERS;
                i += 1;
                let low = acked[w].load(Ordering::SeqCst);
                let resp = srv
                    .sql_as(&users[w], "SELECT count(*), coalesce(sum(v), 0) FROM st")
                    .ok();
                let high = sent[w].load(Ordering::SeqCst);
                let row = &resp.rows(0)[0];
                let (count, sum) = (row[0].as_i64().unwrap(), row[1].as_i64().unwrap());
                assert!(
                    low <= count && count <= high,
                    "writer {w}: read {count} rows, acknowledged {low}, sent {high}"
                );
                assert_eq!(
                    count % ROWS_PER_STATEMENT,
                    0,
                    "writer {w}: a statement was half visible"
                );
                assert_eq!(
                    sum,
                    count * (count + 1) / 2,
                    "writer {w}: {count} rows but sum {sum}: not a prefix"
                );
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Run for `duration` and at least MIN_FLUSHES flushes: the bound is what the test checks,
    // not how fast the machine is. Segments of 97 rows (not a multiple of 5) put statement
    // boundaries inside segments and give each user several segments per flush; 13-row
    // segments made each flush write ~1 file per 13 rows (3 fsyncs each), slower than the
    // writers produce rows, so flushes fell further behind each round (97 s for 8 flushes).
    let start = Instant::now();
    let mut flushes = 0;
    while start.elapsed() < duration || flushes < MIN_FLUSHES {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {flushes} flushes finished in 120 s"
        );
        let job = s.flush_wait("default.st");
        assert_ne!(job["status"], "failed", "{job:?}");
        flushes += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a writer or reader failed");
    }
    let mut total = 0;
    for (w, auth) in users.iter().enumerate() {
        let n = acked[w].load(Ordering::SeqCst);
        let r = s.sql_as(auth, "SELECT count(*), sum(v) FROM st").ok();
        assert_eq!(
            r.rows(0)[0][0].as_i64().unwrap(),
            n,
            "writer {w} final count"
        );
        assert_eq!(
            r.rows(0)[0][1].as_i64().unwrap(),
            n * (n + 1) / 2,
            "writer {w} final sum"
        );
        total += n;
    }
    let reads = reads.load(Ordering::Relaxed);
    assert!(
        total > 100 && reads > 20 && flushes >= MIN_FLUSHES,
        "too little happened: {total} rows, {reads} reads, {flushes} flushes"
    );
    eprintln!("stress: {total} rows, {reads} consistent reads, {flushes} flushes");
}
