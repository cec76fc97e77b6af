//! Acknowledged writes, the catalog and users survive a clean restart and a kill -9.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

#[test]
fn data_catalog_and_users_survive_restart_and_kill9() {
    let mut s = TestServer::start();
    s.root("CREATE NAMESPACE shop");
    s.root("CREATE USER TABLE shop.cart (id BIGINT PRIMARY KEY, item TEXT NOT NULL, qty INT DEFAULT 1)");
    s.root("CREATE SHARED TABLE shop.products (sku TEXT PRIMARY KEY, price DECIMAL(8,2)) WITH (ACCESS_LEVEL = 'public')");
    let carol = s.create_user("carol", "user");
    s.sql_as(
        &carol,
        "INSERT INTO shop.cart (id, item) VALUES (1, 'apple'), (2, 'pear')",
    )
    .ok();
    s.sql_as(&carol, "UPDATE shop.cart SET qty = 5 WHERE id = 2")
        .ok();
    s.sql_as(&carol, "DELETE FROM shop.cart WHERE id = 1").ok();
    s.root("INSERT INTO shop.products VALUES ('A-1', 9.99)");

    let check = |s: &TestServer| {
        let r = s
            .sql_as(&carol, "SELECT id, item, qty FROM shop.cart ORDER BY id")
            .ok();
        assert_eq!(r.rows(0), vec![vec![json!(2), json!("pear"), json!(5)]]);
        let r = s
            .sql_as(&carol, "SELECT sku, price FROM shop.products")
            .ok();
        assert_eq!(r.rows(0), vec![vec![json!("A-1"), json!("9.99")]]);
        let r = s.root("SHOW TABLES IN shop");
        assert_eq!(r.rows(0).len(), 2);
    };
    check(&s);
    assert!(s.stop_gracefully(), "SIGTERM must exit with status 0");
    s.kill9_and_restart(); // (already stopped: this just starts it again)
    check(&s);
    s.kill9_and_restart();
    check(&s);
}

#[test]
fn every_acknowledged_insert_survives_kill9_under_concurrent_writers() {
    let mut s = TestServer::start();
    s.root("CREATE USER TABLE default.events (id BIGINT PRIMARY KEY, v TEXT)");
    let users: Vec<Auth> = (0..3)
        .map(|i| s.create_user(&format!("w{i}"), "user"))
        .collect();
    let acked: Arc<Mutex<Vec<(usize, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let port = s.port;
    let mut threads = Vec::new();
    for (u, auth) in users.iter().cloned().enumerate() {
        let (acked, stop) = (acked.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let url = format!("http://127.0.0.1:{port}/v1/api/sql");
            let header = match &auth {
                Auth::Basic(n, p) => format!("Basic {}", base64_encode(&format!("{n}:{p}"))),
                _ => unreachable!(),
            };
            let mut id = 0i64;
            while !stop.load(Ordering::Relaxed) && id < 10_000 {
                id += 1;
                let body = json!({"sql": format!("INSERT INTO default.events (id, v) VALUES ({id}, 'x')")});
                let reply = ureq::post(&url)
                    .set("Authorization", &header)
                    .timeout(std::time::Duration::from_secs(30))
                    .send_string(&body.to_string());
                match reply {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push((u, id)),
                    // Only a failed connection (the kill) ends a writer; any reply that is not
                    // a success, while the server is up, fails the test.
                    Err(ureq::Error::Transport(_)) => return Ok(()),
                    Ok(r) => return Err(format!("writer {u} row {id}: HTTP {}", r.status())),
                    Err(ureq::Error::Status(code, r)) => {
                        return Err(format!("writer {u} row {id}: HTTP {code}: {}", r.into_string().unwrap_or_default()))
                    }
                }
            }
            Ok(())
        }));
    }
    // Let the writers run, then kill the server under them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.lock().unwrap().len() < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writers got fewer than 60 acknowledgements in 60 s"
        );
        assert!(
            !threads.iter().any(|t| t.is_finished()),
            "a writer stopped before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.kill9_and_restart();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if let Err(e) = t.join().unwrap() {
            panic!("{e}");
        }
    }
    let acked = acked.lock().unwrap().clone();
    for (u, auth) in users.iter().enumerate() {
        let r = s
            .sql_as(auth, "SELECT id FROM default.events ORDER BY id")
            .ok();
        let stored: Vec<i64> = r
            .rows(0)
            .iter()
            .map(|row| row[0].as_i64().unwrap())
            .collect();
        let mut want: Vec<i64> = acked
            .iter()
            .filter(|(w, _)| *w == u)
            .map(|(_, id)| *id)
            .collect();
        want.sort();
        // Every acknowledged row is there exactly once; at most the one in flight at the
        // kill may also have landed (written but not acknowledged).
        for id in &want {
            assert_eq!(
                stored.iter().filter(|x| *x == id).count(),
                1,
                "user {u} row {id}"
            );
        }
        assert!(
            stored.len() <= want.len() + 1,
            "user {u}: {} stored, {} acked",
            stored.len(),
            want.len()
        );
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
