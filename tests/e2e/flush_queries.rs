//! The same queries give identical results with all rows hot, after a flush, after a second
//! partial flush, and after a restart; every type comes back from Parquet unchanged.

use kalamdb_tests::{Auth, TestServer};
use serde_json::{json, Value};

const QUERIES: &[&str] = &[
    "SELECT * FROM app.orders ORDER BY id",
    "SELECT id, qty FROM app.orders WHERE id = 7",
    "SELECT id FROM app.orders WHERE id = 999",
    "SELECT count(*) FROM app.orders",
    "SELECT sum(qty), min(qty), max(qty), avg(price) FROM app.orders",
    "SELECT status, count(*) FROM app.orders GROUP BY status ORDER BY status",
    "SELECT id FROM app.orders WHERE status = 'open' AND qty > 3 ORDER BY id",
    "SELECT id FROM app.orders WHERE note IS NULL ORDER BY id",
    "SELECT id, placed_at FROM app.orders WHERE placed_at >= '2025-01-05T00:00:00' ORDER BY placed_at, id",
    "SELECT id FROM app.orders ORDER BY qty DESC, id LIMIT 3",
    "SELECT id FROM app.orders ORDER BY id LIMIT 2 OFFSET 4",
    "SELECT o.id, p.name FROM app.orders o JOIN app.products p ON o.sku = p.sku ORDER BY o.id",
    "SELECT p.name, sum(o.qty) FROM app.orders o JOIN app.products p ON o.sku = p.sku GROUP BY p.name ORDER BY p.name",
    "SELECT p.sku FROM app.products p LEFT JOIN app.orders o ON o.sku = p.sku WHERE o.id IS NULL ORDER BY p.sku",
    "SELECT id, row_number() OVER (PARTITION BY status ORDER BY id) FROM app.orders ORDER BY id",
    "SELECT id, sum(qty) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM app.orders ORDER BY id",
    "WITH big AS (SELECT * FROM app.orders WHERE qty >= 5) SELECT count(*), sum(qty) FROM big",
    "SELECT id FROM app.orders WHERE qty > (SELECT avg(qty) FROM app.orders) ORDER BY id",
    "SELECT id FROM app.orders WHERE sku IN (SELECT sku FROM app.products WHERE name LIKE 'w%') ORDER BY id",
    "SELECT DISTINCT status FROM app.orders ORDER BY status",
    "SELECT upper(status), qty * 2 FROM app.orders WHERE id BETWEEN 3 AND 6 ORDER BY id",
    "SELECT count(*) FROM app.orders o1 JOIN app.orders o2 ON o1.id = o2.id",
    "SELECT name FROM app.products ORDER BY sku",
];

fn run_all(s: &TestServer, who: &Auth) -> Vec<Value> {
    QUERIES
        .iter()
        .map(|q| s.sql_as(who, q).ok().body["results"][0]["rows"].clone())
        .collect()
}

fn assert_same(stage: &str, got: &[Value], want: &[Value]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{stage}: query {} differs: {}", i, QUERIES[i]);
    }
}

#[test]
fn queries_agree_hot_flushed_partially_flushed_and_after_restart() {
    let mut s = TestServer::start_with_env(&[("KALAMDB_JOBS_MAX_ATTEMPTS", "1")]);
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.orders (id BIGINT PRIMARY KEY, sku TEXT, qty INT, price DECIMAL(8,2), status TEXT, note TEXT, placed_at TIMESTAMP)");
    s.root("CREATE SHARED TABLE app.products (sku TEXT PRIMARY KEY, name TEXT) WITH (ACCESS_LEVEL = 'public')");
    s.root("INSERT INTO app.products VALUES ('A', 'widget'), ('B', 'gadget'), ('C', 'wrench'), ('D', 'unused')");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    let mut values = Vec::new();
    for i in 1..=12 {
        let sku = ["A", "B", "C"][i % 3];
        let status = if i % 4 == 0 { "shipped" } else { "open" };
        let note = if i % 5 == 0 {
            "NULL".to_string()
        } else {
            format!("'n{i}'")
        };
        values.push(format!(
            "({i}, '{sku}', {}, {}.25, '{status}', {note}, '2025-01-{:02}T10:00:00.123')",
            i % 7 + 1,
            i,
            i
        ));
    }
    s.sql_as(
        &alice,
        &format!("INSERT INTO app.orders VALUES {}", values.join(", ")),
    )
    .ok();
    s.sql_as(
        &bob,
        "INSERT INTO app.orders VALUES (1, 'A', 100, 1.00, 'open', NULL, '2025-02-01T00:00:00')",
    )
    .ok();

    let hot = run_all(&s, &alice);
    assert_eq!(hot[3], json!([[12]]), "alice sees her 12 rows only");
    s.flush_wait("app.orders");
    s.flush_wait("app.products");
    assert_same("after flush", &run_all(&s, &alice), &hot);

    // Change flushed rows, add hot ones, then flush again with bob failing (partial).
    s.sql_as(
        &alice,
        "UPDATE app.orders SET qty = qty + 10, note = 'upd' WHERE id IN (2, 7, 11)",
    )
    .ok();
    s.sql_as(
        &alice,
        "DELETE FROM app.orders WHERE id = 4 OR status = 'shipped' AND id > 10",
    )
    .ok();
    s.sql_as(&alice, "INSERT INTO app.orders VALUES (13, 'C', 9, 3.50, 'open', NULL, '2025-01-20T08:00:00'), (4, 'A', 1, 0.50, 'new', 'back', '2025-01-04T00:00:00')").ok();
    s.sql_as(&bob, "UPDATE app.orders SET qty = 5 WHERE id = 1")
        .ok();
    let changed = run_all(&s, &alice);
    assert_eq!(changed[3], json!([[12]]), "12 - 2 deleted + 2 inserted");
    assert_eq!(changed[1], json!([[7, 11]]));
    s.set_failpoints("flush.scope_error=bob");
    let job = s.flush_wait("app.orders");
    assert_eq!(job["status"], "completed");
    s.set_failpoints("");
    assert_same("after partial flush", &run_all(&s, &alice), &changed);
    let bob_rows = s
        .sql_as(&bob, "SELECT id, qty FROM app.orders")
        .ok()
        .rows(0);
    assert_eq!(bob_rows, vec![vec![json!(1), json!(5)]]);
    s.restart();
    assert_same("after restart", &run_all(&s, &alice), &changed);
    s.flush_wait("app.orders");
    assert_same("after full flush", &run_all(&s, &alice), &changed);
    assert_eq!(
        s.sql_as(&bob, "SELECT id, qty FROM app.orders")
            .ok()
            .rows(0),
        bob_rows
    );
}

#[test]
fn every_type_round_trips_through_parquet_bit_for_bit() {
    let mut s = TestServer::start();
    s.root(
        "CREATE TABLE all_types (id INT PRIMARY KEY, b BOOLEAN, si SMALLINT, i INT, bi BIGINT, r REAL, d DOUBLE, \
         dc DECIMAL(12,3), t TEXT, bs BYTEA, dt DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ, j JSON, u UUID)",
    );
    s.root(
        "INSERT INTO all_types VALUES \
         (1, true, -32768, 2147483647, -9223372036854775808, 3.25, 0.1, 12345.678, 'héllo 🚀', X'DEADBEEF00', \
          '2025-01-23', '10:00:00.123456', '2025-01-23T10:00:00.123456', '2025-01-23T10:00:00.5Z', '{\"a\":[1,null]}', \
          '0192f2a8-3b4c-7def-8123-456789abcdef'), \
         (2, NULL, NULL, NULL, NULL, CAST('NaN' AS REAL), CAST('-inf' AS DOUBLE), NULL, NULL, NULL, NULL, NULL, '1960-06-01T00:00:00', NULL, NULL, NULL)",
    );
    let before = s.root("SELECT * FROM all_types ORDER BY id").body["results"][0].clone();
    let job = s.flush_wait("all_types");
    assert_eq!(
        serde_json::from_str::<Value>(job["result"].as_str().unwrap()).unwrap()["rows_flushed"],
        2
    );
    assert_eq!(
        s.root("SELECT * FROM all_types ORDER BY id").body["results"][0],
        before
    );
    s.restart();
    assert_eq!(
        s.root("SELECT * FROM all_types ORDER BY id").body["results"][0],
        before
    );
    // Schema changes over flushed rows: added columns read their default, dropped ones vanish.
    s.root("ALTER TABLE all_types ADD COLUMN extra INT DEFAULT 42");
    s.root("ALTER TABLE all_types DROP COLUMN t");
    let r = s.root("SELECT id, extra FROM all_types ORDER BY id");
    assert_eq!(
        r.rows(0),
        vec![vec![json!(1), json!(42)], vec![json!(2), json!(42)]]
    );
    s.flush_wait("all_types");
    let r = s.root("SELECT id, extra, ts FROM all_types ORDER BY id");
    assert_eq!(
        r.rows(0),
        vec![
            vec![json!(1), json!(42), json!("2025-01-23T10:00:00.123456")],
            vec![json!(2), json!(42), json!("1960-06-01T00:00:00")]
        ]
    );
}

/// `SELECT ... [WHERE pk = literal]` takes a path without DataFusion planning (kalamdb-sql
/// fast_select); it must answer exactly like the planned query (`ORDER BY` forces planning)
/// for hot, flushed, updated-after-flush, deleted and missing keys, and per user.
#[test]
fn point_reads_agree_with_planned_queries() {
    let s = TestServer::start();
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    s.root("CREATE USER TABLE default.notes (id BIGINT PRIMARY KEY, body TEXT, n INT)");
    s.root("CREATE SHARED TABLE default.tags (name TEXT PRIMARY KEY, hits BIGINT) WITH (ACCESS_LEVEL = 'public')");
    for i in 0..6 {
        s.sql_as(
            &alice,
            &format!("INSERT INTO notes VALUES ({i}, 'alice {i}', {i})"),
        )
        .ok();
    }
    s.sql_as(&bob, "INSERT INTO notes VALUES (1, 'bob 1', 100)")
        .ok();
    s.root("INSERT INTO tags VALUES ('a', 1), ('b', 2)");
    s.flush_wait("default.notes");
    s.flush_wait("default.tags");
    s.sql_as(
        &alice,
        "UPDATE notes SET body = 'alice 2 updated' WHERE id = 2",
    )
    .ok();
    s.sql_as(&alice, "DELETE FROM notes WHERE id = 3").ok();
    s.sql_as(&alice, "INSERT INTO notes VALUES (7, 'alice 7 hot', 7)")
        .ok();
    let check = |who: &Auth, point: &str| {
        let planned = format!("{point} ORDER BY 1");
        let fast = s.sql_as(who, point).ok();
        let slow = s.sql_as(who, &planned).ok();
        assert_eq!(
            fast.body["results"][0]["schema"], slow.body["results"][0]["schema"],
            "{point}"
        );
        assert_eq!(fast.rows(0), slow.rows(0), "{point}");
        fast.rows(0)
    };
    assert_eq!(
        check(&alice, "SELECT * FROM notes WHERE id = 1"),
        vec![vec![json!(1), json!("alice 1"), json!(1)]]
    );
    assert_eq!(
        check(&bob, "SELECT * FROM notes WHERE id = 1"),
        vec![vec![json!(1), json!("bob 1"), json!(100)]]
    );
    assert_eq!(
        check(&bob, "SELECT * FROM notes WHERE id = 2"),
        Vec::<Vec<Value>>::new(),
        "bob never sees alice's rows"
    );
    assert_eq!(
        check(&alice, "SELECT body FROM notes WHERE id = 2"),
        vec![vec![json!("alice 2 updated")]]
    );
    assert_eq!(
        check(&alice, "SELECT n, body FROM default.notes WHERE 7 = id"),
        vec![vec![json!(7), json!("alice 7 hot")]]
    );
    assert!(
        check(&alice, "SELECT * FROM notes WHERE id = 3").is_empty(),
        "deleted after flush"
    );
    assert!(check(&alice, "SELECT * FROM notes WHERE id = 99").is_empty());
    assert_eq!(
        check(&alice, "SELECT * FROM notes WHERE id = '4'").len(),
        1,
        "planned path coerces the string"
    );
    assert_eq!(
        check(&alice, "SELECT hits FROM tags WHERE name = 'b'"),
        vec![vec![json!(2)]]
    );
    // Whole-scope reads take the direct path too: hot + flushed, newest version, no deleted row.
    let all = check(&alice, "SELECT * FROM notes");
    let ids: Vec<Value> = all.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        ids,
        vec![json!(0), json!(1), json!(2), json!(4), json!(5), json!(7)]
    );
    assert_eq!(
        check(&bob, "SELECT body, id FROM notes"),
        vec![vec![json!("bob 1"), json!(1)]]
    );
    assert_eq!(check(&alice, "SELECT name FROM tags").len(), 2);
    assert_eq!(
        check(&alice, "SELECT * FROM tags WHERE name = 'zz'").len(),
        0
    );
    // Errors stay the planner's.
    let r = s.sql_as(&alice, "SELECT nope FROM notes WHERE id = 1");
    assert_eq!(r.code(), "INVALID_SQL", "{}", r.body);
}

/// Segments whose keys no other segment or hot row holds are read column-wise without the
/// merge (scan.rs); tombstones inside them, columns added later, and rows interleaved with
/// merged ranges must come out exactly as through the merge, in key order.
#[test]
fn isolated_segments_read_column_wise_agree_with_the_merge() {
    let s = TestServer::start();
    s.root("CREATE SHARED TABLE default.seg (id BIGINT PRIMARY KEY, v TEXT)");
    let insert = |from: i64, to: i64| {
        let vals: Vec<String> = (from..to).map(|i| format!("({i}, 'v{i}')")).collect();
        s.root(&format!(
            "INSERT INTO default.seg VALUES {}",
            vals.join(", ")
        ));
    };
    insert(0, 100);
    s.root("DELETE FROM default.seg WHERE id % 10 = 3"); // tombstones flushed with the rows
    s.flush_wait("default.seg");
    insert(200, 300);
    s.flush_wait("default.seg");
    insert(100, 150); // between the two isolated segments, hot
    insert(400, 420);
    s.flush_wait("default.seg");
    s.root("UPDATE default.seg SET v = 'new' WHERE id = 410"); // hot version over a flushed one
    s.root("ALTER TABLE default.seg ADD COLUMN w INT DEFAULT 5");
    insert_w(&s);
    let r = s.root("SELECT id, v, w FROM default.seg").rows(0);
    let mut want: Vec<Vec<Value>> = Vec::new();
    for i in (0..100)
        .filter(|i| i % 10 != 3)
        .chain(100..150)
        .chain(200..300)
        .chain(400..420)
    {
        let v = if i == 410 {
            "new".to_string()
        } else {
            format!("v{i}")
        };
        want.push(vec![json!(i), json!(v), json!(5)]);
    }
    want.push(vec![json!(1000), json!("late"), json!(9)]);
    assert_eq!(r.len(), want.len());
    assert_eq!(
        r, want,
        "key order, newest versions, no deleted rows, defaults for older rows"
    );
    let ordered = s
        .root("SELECT id, v, w FROM default.seg ORDER BY id")
        .rows(0);
    assert_eq!(r, ordered);
    assert_eq!(
        s.root("SELECT count(*), sum(w) FROM default.seg").rows(0),
        vec![vec![
            json!(want.len()),
            json!(5 * (want.len() as i64 - 1) + 9)
        ]]
    );
    assert_eq!(
        s.root("SELECT id FROM default.seg LIMIT 3").rows(0).len(),
        3
    );
    // A LIMIT reached inside merged (hot) rows returns them (it once returned nothing).
    s.root("CREATE TABLE default.hotonly (id BIGINT PRIMARY KEY)");
    s.root("INSERT INTO default.hotonly VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)");
    assert_eq!(
        s.root("SELECT id FROM default.hotonly LIMIT 3").rows(0),
        vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]]
    );
    assert_eq!(
        s.root("SELECT id FROM default.hotonly LIMIT 2 OFFSET 8")
            .rows(0),
        vec![vec![json!(9)], vec![json!(10)]]
    );
    assert_eq!(
        s.root("SELECT * FROM default.seg LIMIT 200").rows(0).len(),
        200
    );
}

fn insert_w(s: &TestServer) {
    s.root("INSERT INTO default.seg VALUES (1000, 'late', 9)");
}
