//! Concurrency: read-modify-write statements on one row from many clients at once, with a
//! flush loop running, checked against a model (issue #11). Every acknowledged statement is
//! applied exactly once: counters end exact, transfers keep the total.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

const CLIENTS: usize = 4;
const INCREMENTS: usize = 25;

/// Run `CLIENTS` threads, each calling `work(client, server)` `INCREMENTS` times, while a
/// flush loop flushes `table` (when given) until they are done. Returns the flushes run.
fn concurrently<F>(s: &TestServer, table: Option<&str>, work: F) -> usize
where
    F: Fn(usize, &TestServer) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let done = Arc::new(AtomicBool::new(false));
    let flushes = Arc::new(AtomicUsize::new(0));
    let flusher = table.map(|t| {
        let (done, flushes, port, t) = (done.clone(), flushes.clone(), s.port, t.to_string());
        std::thread::spawn(move || {
            let srv = TestServer::attach(port);
            while !done.load(Ordering::SeqCst) {
                let r = srv.root(&format!("STORAGE FLUSH TABLE {t} WAIT"));
                assert_eq!(r.status, 200, "flush: {}", r.body);
                flushes.fetch_add(1, Ordering::SeqCst);
            }
        })
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (work, port) = (work.clone(), s.port);
            std::thread::spawn(move || {
                let srv = TestServer::attach(port);
                for _ in 0..INCREMENTS {
                    work(c, &srv);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    done.store(true, Ordering::SeqCst);
    if let Some(f) = flusher {
        f.join().expect("flush thread");
    }
    flushes.load(Ordering::SeqCst)
}

fn increment(srv: &TestServer, auth: &Auth, sql: &str) {
    let r = srv.sql_as(auth, sql);
    assert_eq!((r.status, r.row_count(0)), (200, 1), "{sql}: {}", r.body);
}

#[test]
fn concurrent_increments_of_one_row_are_all_applied_shared_and_user_hot_and_flushed() {
    let s = TestServer::start_with_env(&[("KALAMDB_FLUSH_DEFAULT_POLICY", "")]);
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.ctr (id BIGINT PRIMARY KEY, n BIGINT)");
    s.root("CREATE USER TABLE app.uctr (id BIGINT PRIMARY KEY, n BIGINT)");
    s.root("INSERT INTO app.ctr VALUES (1, 0)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    assert_eq!(
        s.sql_as(&alice, "INSERT INTO app.uctr VALUES (1, 0)")
            .status,
        200
    );
    assert_eq!(
        s.sql_as(&bob, "INSERT INTO app.uctr VALUES (1, 1000)")
            .status,
        200
    );

    // Hot only, no flush.
    concurrently(&s, None, |_, srv| {
        increment(
            srv,
            &Auth::root(),
            "UPDATE app.ctr SET n = n + 1 WHERE id = 1",
        )
    });
    let n = (CLIENTS * INCREMENTS) as i64;
    assert_eq!(
        s.root("SELECT n FROM app.ctr").rows(0),
        vec![vec![json!(n)]]
    );

    // With a flush loop: the row moves to Parquet and back while it is incremented.
    let flushes = concurrently(&s, Some("app.ctr"), |_, srv| {
        increment(
            srv,
            &Auth::root(),
            "UPDATE app.ctr SET n = n + 1 WHERE id = 1",
        )
    });
    assert!(flushes >= 1, "the flush loop ran");
    assert_eq!(
        s.root("SELECT n FROM app.ctr").rows(0),
        vec![vec![json!(2 * n)]]
    );

    // USER table: two users increment their own row with the same statement at once.
    let (a, b) = (alice.clone(), bob.clone());
    concurrently(&s, Some("app.uctr"), move |c, srv| {
        let who = if c % 2 == 0 { &a } else { &b };
        increment(srv, who, "UPDATE app.uctr SET n = n + 1 WHERE id = 1");
    });
    let per_user = (CLIENTS / 2 * INCREMENTS) as i64;
    assert_eq!(
        s.sql_as(&alice, "SELECT n FROM app.uctr").rows(0),
        vec![vec![json!(per_user)]]
    );
    assert_eq!(
        s.sql_as(&bob, "SELECT n FROM app.uctr").rows(0),
        vec![vec![json!(1000 + per_user)]]
    );
}

#[test]
fn concurrent_transfers_keep_the_total_and_deletes_never_resurrect() {
    let s = TestServer::start_with_env(&[("KALAMDB_FLUSH_DEFAULT_POLICY", "")]);
    s.root("CREATE NAMESPACE bank");
    s.root("CREATE SHARED TABLE bank.acct (id BIGINT PRIMARY KEY, bal BIGINT)");
    s.root("INSERT INTO bank.acct VALUES (1, 1000), (2, 1000), (3, 1000)");
    // Each transfer is one statement moving 1 between two accounts.
    let flushes = concurrently(&s, Some("bank.acct"), |c, srv| {
        let (from, to) = [(1, 2), (2, 3), (3, 1), (1, 3)][c % 4];
        let sql = format!(
            "UPDATE bank.acct SET bal = bal + CASE WHEN id = {to} THEN 1 ELSE -1 END WHERE id IN ({from}, {to})"
        );
        let r = srv.root(&sql);
        assert_eq!((r.status, r.row_count(0)), (200, 2), "{sql}: {}", r.body);
    });
    assert!(flushes >= 1);
    // Model: client c moves INCREMENTS from `from` to `to`.
    let mut model = [1000i64; 3];
    for c in 0..CLIENTS {
        let (from, to) = [(1, 2), (2, 3), (3, 1), (1, 3)][c % 4];
        model[from - 1] -= INCREMENTS as i64;
        model[to - 1] += INCREMENTS as i64;
    }
    let rows = s.root("SELECT id, bal FROM bank.acct ORDER BY id").rows(0);
    let want: Vec<_> = model
        .iter()
        .enumerate()
        .map(|(i, b)| vec![json!(i as i64 + 1), json!(b)])
        .collect();
    assert_eq!(rows, want);

    // DELETE racing UPDATEs of the same row: once deleted, it stays deleted.
    s.root("INSERT INTO bank.acct VALUES (9, 0)");
    concurrently(&s, None, |c, srv| {
        let sql = if c == 0 {
            "DELETE FROM bank.acct WHERE id = 9"
        } else {
            "UPDATE bank.acct SET bal = bal + 1 WHERE id = 9"
        };
        let r = srv.root(sql);
        assert_eq!(r.status, 200, "{sql}: {}", r.body);
    });
    assert_eq!(
        s.root("SELECT count(*) FROM bank.acct WHERE id = 9")
            .rows(0),
        vec![vec![json!(0)]]
    );
}

/// INSERT-if-absent from many clients at once: exactly one row per key (the NOT EXISTS read
/// and the write were not atomic: 5 rows for one key, 73 for 15), with and without a
/// primary key on the tested column, and with a DEFAULT SNOWFLAKE_ID() key.
#[test]
fn insert_if_absent_races_insert_exactly_once() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.ia (id BIGINT PRIMARY KEY, k TEXT)");
    s.root("CREATE SHARED TABLE app.ib (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), k TEXT)");
    s.root("CREATE USER TABLE app.ic (id BIGINT PRIMARY KEY, k TEXT)");
    let alice = s.create_user("alice", "user");
    let writer = alice.clone();
    concurrently(&s, None, move |c, srv| {
        for key in 0..3 {
            let id = c * 1000 + key;
            for (who, sql) in [
                (Auth::root(), format!("INSERT INTO app.ia (id, k) SELECT {id}, 'k{key}' WHERE NOT EXISTS (SELECT 1 FROM app.ia WHERE k = 'k{key}')")),
                (Auth::root(), format!("INSERT INTO app.ib (k) SELECT 'k{key}' WHERE NOT EXISTS (SELECT 1 FROM app.ib WHERE k = 'k{key}')")),
                (writer.clone(), format!("INSERT INTO app.ic (id, k) SELECT {id}, 'k{key}' WHERE NOT EXISTS (SELECT 1 FROM app.ic WHERE k = 'k{key}')")),
            ] {
                let r = srv.sql_as(&who, &sql);
                assert_eq!(r.status, 200, "{sql}: {}", r.body);
            }
        }
    });
    let per_key = vec![
        vec![json!("k0"), json!(1)],
        vec![json!("k1"), json!(1)],
        vec![json!("k2"), json!(1)],
    ];
    for t in ["app.ia", "app.ib"] {
        assert_eq!(
            s.root(&format!(
                "SELECT k, count(*) FROM {t} GROUP BY k ORDER BY k"
            ))
            .rows(0),
            per_key,
            "{t}"
        );
    }
    assert_eq!(
        s.sql_as(
            &alice,
            "SELECT k, count(*) FROM app.ic GROUP BY k ORDER BY k"
        )
        .rows(0),
        per_key
    );
}

/// The counters again with a `kill -9` in the middle of the increments and a flush loop:
/// after the restart the counter holds every acknowledged increment, plus at most the one
/// each client had in flight at the kill (applied or not), never less, never a lost update.
#[test]
fn concurrent_increments_survive_a_kill9_in_the_middle() {
    let mut s = TestServer::start_with_env(&[("KALAMDB_FLUSH_DEFAULT_POLICY", "")]);
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.ctr (id BIGINT PRIMARY KEY, n BIGINT)");
    s.root("INSERT INTO app.ctr VALUES (1, 0)");
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let port = s.port;
    let mut threads: Vec<std::thread::JoinHandle<Result<(), String>>> = (0..CLIENTS)
        .map(|_| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let srv = TestServer::attach(port);
                while !stop.load(Ordering::SeqCst) {
                    match srv.try_post(
                        "/v1/api/sql",
                        &Auth::root(),
                        br#"{"sql": "UPDATE app.ctr SET n = n + 1 WHERE id = 1"}"#,
                    ) {
                        Ok(r) if r.status == 200 && r.row_count(0) == 1 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            return Err(format!("an increment answered {}: {}", r.status, r.body))
                        }
                        Err(_) => return Ok(()), // the connection failed: the kill
                    }
                }
                Ok(())
            })
        })
        .collect();
    let (stop_flush, flush_port) = (stop.clone(), s.port);
    threads.push(std::thread::spawn(move || {
        let srv = TestServer::attach(flush_port);
        while !stop_flush.load(Ordering::SeqCst) {
            match srv.try_post(
                "/v1/api/sql",
                &Auth::root(),
                br#"{"sql": "STORAGE FLUSH TABLE app.ctr WAIT"}"#,
            ) {
                Ok(r) if r.status == 200 => {}
                Ok(r) => return Err(format!("a flush answered {}: {}", r.status, r.body)),
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than 40 increments in 60 s"
        );
        assert!(
            !threads.iter().any(|t| t.is_finished()),
            "a client stopped before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    s.kill9_and_restart();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        if let Err(e) = t.join().expect("client thread") {
            panic!("{e}");
        }
    }
    let acked = acked.load(Ordering::SeqCst) as i64;
    let n = s.root("SELECT n FROM app.ctr").rows(0)[0][0]
        .as_i64()
        .expect("n");
    assert!(
        n >= acked && n <= acked + CLIENTS as i64,
        "n = {n} after {acked} acknowledged increments by {CLIENTS} clients"
    );
    // And the counter keeps counting exactly after the restart.
    concurrently(&s, Some("app.ctr"), |_, srv| {
        increment(
            srv,
            &Auth::root(),
            "UPDATE app.ctr SET n = n + 1 WHERE id = 1",
        )
    });
    assert_eq!(
        s.root("SELECT n FROM app.ctr").rows(0),
        vec![vec![json!(n + (CLIENTS * INCREMENTS) as i64)]]
    );
}
