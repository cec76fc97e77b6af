//! The time functions on every path: planned queries, literal INSERTs that need planning,
//! INSERT ... SELECT, UPDATE, `$1` parameters, EXECUTE AS, defaults, the point-read fast path,
//! and the same rows after a flush and a restart. One statement sees one `NOW()`.

use kalamdb_tests::{Auth, TestServer};
use serde_json::{json, Value};

fn one(s: &TestServer, sql: &str) -> Value {
    let r = s
        .request(&Auth::root(), json!({"sql": sql, "namespace": "app"}))
        .ok();
    r.last_rows()[0][0].clone()
}

#[test]
fn now_and_current_date_time_answer_in_queries() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    let r = s.root("SELECT NOW(), CURRENT_TIMESTAMP, current_date, current_time, NOW() > TIMESTAMP '2020-01-01', NOW() = NOW()");
    let row = &r.rows(0)[0];
    let types: Vec<&str> = r.body["results"][0]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["data_type"].as_str().unwrap())
        .collect();
    // NOW() is a timestamp with time zone (UTC), as in PostgreSQL.
    assert_eq!(
        types,
        [
            "TIMESTAMPTZ",
            "TIMESTAMPTZ",
            "DATE",
            "TIME",
            "BOOLEAN",
            "BOOLEAN"
        ],
        "{}",
        r.body
    );
    assert!(row[0].as_str().unwrap().ends_with('Z'), "{row:?}");
    assert_eq!(
        row[0], row[1],
        "NOW() and CURRENT_TIMESTAMP are one instant in one statement"
    );
    assert!(
        row[0]
            .as_str()
            .unwrap()
            .starts_with(row[2].as_str().unwrap()),
        "current_date is NOW()'s date: {row:?}"
    );
    assert_eq!((&row[4], &row[5]), (&json!(true), &json!(true)));
    for sql in [
        "SELECT now() - INTERVAL '1 day' < now()",
        "SELECT date_trunc('day', now()) <= now()",
        "SELECT date_bin(INTERVAL '15 minutes', now()) <= now()",
        "SELECT extract(year FROM now()) >= 2024",
        "SELECT to_timestamp(0) = TIMESTAMP '1970-01-01 00:00:00'",
        "SELECT make_date(2024, 2, 29) = DATE '2024-02-29'",
        "SELECT current_date - make_date(2020, 1, 1) > 0",
    ] {
        assert_eq!(one(&s, sql), json!(true), "{sql}");
    }
}

#[test]
fn now_in_every_kind_of_write_then_flushed_and_restarted() {
    let mut s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE TABLE app.t (id BIGINT PRIMARY KEY, ts TIMESTAMP, d TIMESTAMP DEFAULT NOW())");
    let r = s.request(&Auth::root(), json!({"sql": "INSERT INTO t (id, ts) VALUES (1, NOW()), (2, NOW())", "namespace": "app"})).ok();
    assert_eq!(r.row_count(0), 2);
    s.request(&Auth::root(), json!({"sql": "INSERT INTO t (id, ts) VALUES (1+2, CURRENT_TIMESTAMP)", "namespace": "app"})).ok();
    s.request(
        &Auth::root(),
        json!({"sql": "INSERT INTO t (id, ts) SELECT 8, NOW()", "namespace": "app"}),
    )
    .ok();
    s.request(&Auth::root(), json!({"sql": "INSERT INTO t (id, ts) VALUES ($1, NOW())", "params": [9], "namespace": "app"})).ok();
    s.request(&Auth::root(), json!({"sql": "INSERT INTO t VALUES (10, NOW(), NOW() - INTERVAL '1 hour')", "namespace": "app"})).ok();
    // One statement, one NOW(): every row, and the default, carry the same instant.
    assert_eq!(
        one(&s, "SELECT count(DISTINCT ts) FROM t WHERE id IN (1, 2)"),
        json!(1)
    );
    assert_eq!(
        one(&s, "SELECT count(*) FROM t WHERE ts = d"),
        json!(5),
        "DEFAULT NOW() equals the statement's NOW()"
    );
    assert_eq!(
        one(
            &s,
            "SELECT count(*) FROM t WHERE ts <= NOW() AND ts > TIMESTAMP '2020-01-01'"
        ),
        json!(6)
    );
    let before = one(&s, "SELECT ts FROM t WHERE id = 8");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = s
        .request(
            &Auth::root(),
            json!({"sql": "UPDATE t SET ts = NOW() WHERE id = 8", "namespace": "app"}),
        )
        .ok();
    assert_eq!(r.row_count(0), 1);
    let after = one(&s, "SELECT ts FROM t WHERE id = 8");
    assert!(
        after.as_str() > before.as_str(),
        "UPDATE ... SET ts = NOW() moved the time: {before} -> {after}"
    );
    assert_eq!(
        one(
            &s,
            "SELECT now() - ts < INTERVAL '1 hour' FROM t WHERE id = 8"
        ),
        json!(true)
    );

    let snapshot = s.root("SELECT id, ts, d FROM app.t ORDER BY id").rows(0);
    assert_eq!(snapshot.len(), 6);
    // The point-read fast path sees the same values.
    let point = s.root("SELECT * FROM app.t WHERE id = 1").rows(0);
    assert_eq!(point, vec![snapshot[0].clone()]);
    let job = s.flush_wait("app.t");
    assert_eq!(job["status"], "completed", "{job:?}");
    assert_eq!(
        s.root("SELECT id, ts, d FROM app.t ORDER BY id").rows(0),
        snapshot,
        "flushed rows read back unchanged"
    );
    s.restart();
    assert_eq!(
        s.root("SELECT id, ts, d FROM app.t ORDER BY id").rows(0),
        snapshot,
        "rows unchanged after a restart"
    );
    // Row 8's ts moved with the UPDATE; rows 1, 2, 3 and 9 still have ts = d.
    assert_eq!(one(&s, "SELECT count(*) FROM t WHERE ts = d"), json!(4));
    assert!(
        !s.log_text().contains("simplified now()"),
        "no planner error in the log"
    );
}

#[test]
fn now_under_execute_as_on_a_user_table() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app; CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, ts TIMESTAMP DEFAULT NOW(), at TIMESTAMP)");
    s.create_user("alice", "user");
    let svc = s.create_user("svc", "service");
    let r = s.sql_as(
        &svc,
        "EXECUTE AS USER 'alice' (INSERT INTO app.u (id, at) VALUES (1, NOW()))",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alice = Auth::user("alice", "alice-pw");
    let r = s
        .sql_as(
            &alice,
            "SELECT count(*) FROM app.u WHERE ts = at AND at <= NOW()",
        )
        .ok();
    assert_eq!(r.rows(0), vec![vec![json!(1)]]);
}
