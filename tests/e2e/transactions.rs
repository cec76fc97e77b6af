//! Transactions (issue #14, item 3; ADR 0014) through the real server: money transfers from
//! four clients against a model, with a flush loop, a reader that must always see the same
//! total, and a kill -9 in the middle; first committer wins with SERIALIZATION_FAILURE (409)
//! and nothing written; each user's transaction sees and writes only its own rows; the
//! transaction limits answer with their codes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

const ACCOUNTS: i64 = 8;
const START: i64 = 1000;
const CLIENTS: usize = 4;

/// One transfer: `amount` from account `from` to account `to`.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    from: i64,
    to: i64,
    amount: i64,
}

impl Transfer {
    fn sql(&self) -> String {
        format!(
            "BEGIN; UPDATE app.acct SET bal = bal - {a} WHERE id = {f}; \
             UPDATE app.acct SET bal = bal + {a} WHERE id = {t}; \
             INSERT INTO app.log (client, n) VALUES ({f}, {a}); COMMIT",
            a = self.amount,
            f = self.from,
            t = self.to
        )
    }
}

fn balances(s: &TestServer) -> HashMap<i64, i64> {
    s.root("SELECT id, bal FROM app.acct")
        .rows(0)
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
        .collect()
}

fn setup(s: &TestServer) {
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.acct (id BIGINT PRIMARY KEY, bal BIGINT)");
    s.root("CREATE SHARED TABLE app.log (client BIGINT, n BIGINT)");
    let values: Vec<String> = (1..=ACCOUNTS).map(|i| format!("({i}, {START})")).collect();
    s.root(&format!(
        "INSERT INTO app.acct VALUES {}",
        values.join(", ")
    ));
}

/// What the clients did: the transfers acknowledged, and those whose answer never came (the
/// server was killed under them).
#[derive(Default)]
struct Ledger {
    acked: Vec<Transfer>,
    in_flight: Vec<Transfer>,
    conflicts: usize,
}

/// `CLIENTS` clients transfer between random accounts until `stop`, retrying on 409.
fn run_clients(
    port: u16,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    seed: u64,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|c| {
            let (stop, ledger) = (stop.clone(), ledger.clone());
            std::thread::spawn(move || {
                let srv = TestServer::attach(port);
                let mut x = seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                while !stop.load(Ordering::SeqCst) {
                    let from = (next() % ACCOUNTS as u64) as i64 + 1;
                    let to = (from + (next() % (ACCOUNTS as u64 - 1)) as i64) % ACCOUNTS + 1;
                    let t = Transfer {
                        from,
                        to,
                        amount: (next() % 50) as i64 + 1,
                    };
                    match srv.try_post(
                        "/v1/api/sql",
                        &Auth::root(),
                        serde_json::json!({ "sql": t.sql() }).to_string().as_bytes(),
                    ) {
                        Ok(r) if r.status == 200 => ledger.lock().unwrap().acked.push(t),
                        Ok(r) if r.status == 409 => {
                            assert_eq!(r.code(), "SERIALIZATION_FAILURE", "{}", r.body);
                            ledger.lock().unwrap().conflicts += 1;
                        }
                        Ok(r) => panic!("transfer answered {}: {}", r.status, r.body),
                        Err(_) => {
                            // The connection failed: killed under this transfer.
                            ledger.lock().unwrap().in_flight.push(t);
                            return;
                        }
                    }
                }
            })
        })
        .collect()
}

/// The balances the model gives for `transfers`.
fn model(transfers: &[Transfer]) -> HashMap<i64, i64> {
    let start = (1..=ACCOUNTS).map(|i| (i, START)).collect();
    model_from(start, transfers)
}

/// The balances `transfers` leave from `start`.
fn model_from(mut m: HashMap<i64, i64>, transfers: &[Transfer]) -> HashMap<i64, i64> {
    for t in transfers {
        *m.get_mut(&t.from).unwrap() -= t.amount;
        *m.get_mut(&t.to).unwrap() += t.amount;
    }
    m
}

#[test]
fn money_transfers_from_four_clients_match_the_model_with_a_flush_loop_and_a_reader() {
    let s = TestServer::start_with_env(&[("KALAMDB_FLUSH_DEFAULT_POLICY", "")]);
    setup(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let clients = run_clients(s.port, stop.clone(), ledger.clone(), 7);
    let flusher = {
        let (stop, port) = (stop.clone(), s.port);
        std::thread::spawn(move || {
            let srv = TestServer::attach(port);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = srv.root("STORAGE FLUSH TABLE app.acct WAIT");
                assert_eq!(r.status, 200, "flush: {}", r.body);
                n += 1;
            }
            n
        })
    };
    // A reader: every committed transaction appears whole, so the total never changes, and
    // a transaction's own reads are as stable as its snapshot.
    let reader = {
        let (stop, port) = (stop.clone(), s.port);
        std::thread::spawn(move || {
            let srv = TestServer::attach(port);
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = srv.root(
                    "BEGIN; SELECT sum(bal) FROM app.acct; SELECT sum(bal), count(*) FROM app.acct",
                );
                let total = ACCOUNTS * START;
                assert_eq!(r.rows(1)[0][0].as_i64(), Some(total), "{}", r.body);
                assert_eq!(r.rows(2)[0][0].as_i64(), Some(total), "{}", r.body);
                assert_eq!(r.rows(2)[0][1].as_i64(), Some(ACCOUNTS), "{}", r.body);
                reads += 1;
            }
            reads
        })
    };
    std::thread::sleep(std::time::Duration::from_secs(6));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let flushes = flusher.join().unwrap();
    let reads = reader.join().unwrap();
    let ledger = ledger.lock().unwrap();
    assert!(
        ledger.acked.len() >= 20,
        "only {} transfers committed",
        ledger.acked.len()
    );
    assert!(
        flushes >= 2 && reads >= 2,
        "flushes {flushes}, reads {reads}"
    );
    assert_eq!(
        balances(&s),
        model(&ledger.acked),
        "balances against the model"
    );
    // Each committed transfer wrote its log row, and no failed one did.
    let logged = s.root("SELECT count(*) FROM app.log").rows(0)[0][0].as_i64();
    assert_eq!(logged, Some(ledger.acked.len() as i64));
    eprintln!(
        "{} transfers committed, {} conflicts retried, {flushes} flushes, {reads} reads",
        ledger.acked.len(),
        ledger.conflicts
    );
}

#[test]
fn transfers_survive_kill_9_whole_or_not_at_all() {
    let mut s = TestServer::start_with_env(&[("KALAMDB_FLUSH_DEFAULT_POLICY", "")]);
    setup(&s);
    for round in 0..2u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let before = balances(&s);
        let clients = run_clients(s.port, stop.clone(), ledger.clone(), 11 + round);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        if round == 1 {
            s.root("STORAGE FLUSH TABLE app.acct WAIT");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        s.kill9_and_restart();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        let ledger = ledger.lock().unwrap();
        let after = balances(&s);
        assert_eq!(
            after.values().sum::<i64>(),
            ACCOUNTS * START,
            "total after kill -9"
        );
        // Every acknowledged transfer is there; of those killed in flight, each is there
        // whole or not at all.
        let fits = (0..1u32 << ledger.in_flight.len()).any(|mask| {
            let mut ts = ledger.acked.clone();
            ts.extend(
                ledger
                    .in_flight
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, t)| *t),
            );
            model_from(before.clone(), &ts) == after
        });
        assert!(
            fits,
            "round {round}: balances {after:?} are no combination of {} acknowledged and {} in-flight transfers",
            ledger.acked.len(),
            ledger.in_flight.len()
        );
        assert!(
            !ledger.acked.is_empty(),
            "round {round}: nothing committed before the kill"
        );
    }
}

#[test]
fn the_first_committer_wins_and_the_loser_writes_nothing() {
    let s = TestServer::start();
    setup(&s);
    // Transaction A pauses at COMMIT; meanwhile an autocommit UPDATE commits the same key.
    s.set_failpoints("transaction.pause_before_commit=1500");
    let a = {
        let port = s.port;
        std::thread::spawn(move || {
            TestServer::attach(port).sql_as(
                &Auth::root(),
                "BEGIN; UPDATE app.acct SET bal = bal + 1 WHERE id = 1; \
                 INSERT INTO app.acct VALUES (100, 1); COMMIT",
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(400));
    let b = s.root("UPDATE app.acct SET bal = bal + 100 WHERE id = 1");
    assert_eq!(b.row_count(0), 1);
    let a = a.join().unwrap();
    assert_eq!(
        (a.status, a.code()),
        (409, "SERIALIZATION_FAILURE"),
        "{}",
        a.body
    );
    let bal = balances(&s);
    assert_eq!(bal.get(&1), Some(&(START + 100)), "only B's update");
    assert_eq!(bal.get(&100), None, "A's insert was not written");

    // Two transactions on one key: the one that commits first wins, the other gets 409.
    let run = |sql: &'static str| {
        let port = s.port;
        std::thread::spawn(move || TestServer::attach(port).sql_as(&Auth::root(), sql))
    };
    let first = run("BEGIN; UPDATE app.acct SET bal = 1 WHERE id = 2; COMMIT");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = run("BEGIN; UPDATE app.acct SET bal = 2 WHERE id = 2; COMMIT");
    let (first, second) = (first.join().unwrap(), second.join().unwrap());
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        (second.status, second.code()),
        (409, "SERIALIZATION_FAILURE"),
        "{}",
        second.body
    );
    assert_eq!(balances(&s).get(&2), Some(&1));

    // Disjoint keys never conflict, and a read-only transaction never does.
    let x = run("BEGIN; UPDATE app.acct SET bal = 3 WHERE id = 3; COMMIT");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let y = run("BEGIN; SELECT * FROM app.acct; UPDATE app.acct SET bal = 4 WHERE id = 4; COMMIT");
    let z = run("BEGIN; SELECT sum(bal) FROM app.acct; COMMIT");
    for r in [x.join().unwrap(), y.join().unwrap(), z.join().unwrap()] {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // A plain INSERT of a key the transaction inserts, committed first, wins too.
    let t = run("BEGIN; INSERT INTO app.acct VALUES (200, 1); COMMIT");
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.root("INSERT INTO app.acct VALUES (200, 2)");
    let t = t.join().unwrap();
    assert_eq!(
        (t.status, t.code()),
        (409, "SERIALIZATION_FAILURE"),
        "{}",
        t.body
    );
    assert_eq!(balances(&s).get(&200), Some(&2));
    s.set_failpoints("");
}

#[test]
fn a_users_transaction_sees_and_writes_only_its_rows() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (1, 'a1')")
        .ok();
    s.sql_as(&bob, "INSERT INTO app.notes VALUES (1, 'b1')")
        .ok();
    let r = s
        .sql_as(
            &alice,
            "BEGIN; UPDATE app.notes SET body = 'A1'; INSERT INTO app.notes VALUES (2, 'a2'); \
             SELECT id, body FROM app.notes ORDER BY id",
        )
        .ok();
    assert_eq!(
        r.last_rows(),
        vec![vec![json!(1), json!("A1")], vec![json!(2), json!("a2")]]
    );
    s.sql_as(
        &alice,
        "BEGIN; UPDATE app.notes SET body = 'A1'; DELETE FROM app.notes WHERE id = 1; \
         INSERT INTO app.notes VALUES (3, 'a3'); COMMIT",
    )
    .ok();
    let b = s.sql_as(&bob, "SELECT id, body FROM app.notes").ok();
    assert_eq!(
        b.rows(0),
        vec![vec![json!(1), json!("b1")]],
        "bob's rows untouched"
    );
    let a = s.sql_as(&alice, "SELECT id, body FROM app.notes").ok();
    assert_eq!(a.rows(0), vec![vec![json!(3), json!("a3")]]);
    // EXECUTE AS inside a transaction is refused, not run outside it.
    let r = s.sql_as(
        &Auth::root(),
        "BEGIN; EXECUTE AS USER 'bob' (DELETE FROM app.notes)",
    );
    assert_eq!((r.status, r.code()), (400, "UNSUPPORTED"), "{}", r.body);
    let b = s.sql_as(&bob, "SELECT count(*) FROM app.notes").ok();
    assert_eq!(b.rows(0)[0][0].as_i64(), Some(1));
}

#[test]
fn transaction_limits_answer_with_their_codes() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_LIMITS_MAX_TRANSACTION_ROWS", "10"),
        ("KALAMDB_LIMITS_TRANSACTION_TIMEOUT_SECS", "1"),
    ]);
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)");
    let values: Vec<String> = (0..11).map(|i| format!("({i})")).collect();
    let sql = format!(
        "BEGIN; INSERT INTO app.t VALUES {}; COMMIT",
        values.join(", ")
    );
    let r = s.sql_as(&Auth::root(), &sql);
    assert_eq!(
        (r.status, r.code()),
        (413, "PAYLOAD_TOO_LARGE"),
        "{}",
        r.body
    );
    assert!(
        r.message().contains("limits.max_transaction_rows"),
        "{}",
        r.body
    );
    // Ten rows are within the limit, and updating them again counts each once.
    let sql = format!(
        "BEGIN; INSERT INTO app.t VALUES {}; UPDATE app.t SET id = id WHERE id < 5; COMMIT",
        values[..10].join(", ")
    );
    s.sql_as(&Auth::root(), &sql).ok();
    // A transaction open longer than its timeout is rolled back (here at COMMIT, which the
    // failpoint holds for 1.5 s).
    s.set_failpoints("transaction.pause_before_commit=1500");
    let r = s.sql_as(&Auth::root(), "BEGIN; DELETE FROM app.t; COMMIT");
    s.set_failpoints("");
    assert_eq!(r.code(), "TIMEOUT", "{}", r.body);
    assert!(
        r.message().contains("limits.transaction_timeout_secs"),
        "{}",
        r.body
    );
    let n = s.root("SELECT count(*) FROM app.t").rows(0)[0][0].as_i64();
    assert_eq!(
        n,
        Some(10),
        "the timed-out transaction's DELETE was not written"
    );
}
