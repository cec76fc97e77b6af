//! UPDATE/DELETE by key and by predicate, versions, ALTER TABLE over existing rows.

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

#[test]
fn update_and_delete_by_key_and_predicate_latest_version_wins() {
    let mut s = TestServer::start();
    s.root("CREATE TABLE acct (id INT PRIMARY KEY, owner TEXT, balance BIGINT)");
    s.root("INSERT INTO acct VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30), (4, 'd', 40)");
    assert_eq!(
        s.root("UPDATE acct SET balance = balance + 1 WHERE id = 1")
            .row_count(0),
        1
    );
    assert_eq!(
        s.root("UPDATE acct SET balance = balance * 2 WHERE balance >= 30")
            .row_count(0),
        2
    );
    assert_eq!(
        s.root("UPDATE acct SET owner = 'z' WHERE id = 99")
            .row_count(0),
        0
    );
    assert_eq!(s.root("DELETE FROM acct WHERE id = 2").row_count(0), 1);
    assert_eq!(
        s.root("DELETE FROM acct WHERE id = 2").row_count(0),
        0,
        "deleting twice deletes nothing"
    );
    let want = vec![
        vec![json!(1), json!("a"), json!(11)],
        vec![json!(3), json!("c"), json!(60)],
        vec![json!(4), json!("d"), json!(80)],
    ];
    assert_eq!(s.root("SELECT * FROM acct ORDER BY id").rows(0), want);
    // A deleted key never comes back, and can be inserted anew.
    assert!(s.root("SELECT * FROM acct WHERE id = 2").rows(0).is_empty());
    s.root("INSERT INTO acct VALUES (2, 'new', 0)");
    assert_eq!(
        s.root("SELECT owner FROM acct WHERE id = 2").rows(0),
        vec![vec![json!("new")]]
    );
    s.root("DELETE FROM acct WHERE owner = 'new'");
    s.restart();
    assert_eq!(s.root("SELECT * FROM acct ORDER BY id").rows(0), want);
    // DELETE with a subquery deletes exactly the matching rows.
    s.root("DELETE FROM acct WHERE id IN (SELECT id FROM acct WHERE balance > 70)");
    assert_eq!(
        s.root("SELECT id FROM acct ORDER BY id").rows(0),
        vec![vec![json!(1)], vec![json!(3)]]
    );
    // The primary key cannot be updated.
    let r = s.sql_as(&Auth::root(), "UPDATE acct SET id = 5 WHERE id = 1");
    assert_eq!((r.status, r.code()), (400, "UNSUPPORTED"), "{}", r.body);
}

#[test]
fn tables_without_primary_key_get_a_hidden_row_id() {
    let s = TestServer::start();
    s.root("CREATE TABLE t1(a INTEGER, b TEXT)");
    s.root("INSERT INTO t1 VALUES (1, 'x'), (1, 'x'), (2, 'y')");
    let r = s.root("SELECT * FROM t1 ORDER BY a");
    assert_eq!(
        r.body["results"][0]["schema"].as_array().unwrap().len(),
        2,
        "no hidden column in SELECT *"
    );
    assert_eq!(
        r.rows(0).len(),
        3,
        "duplicates are allowed without a primary key"
    );
    assert_eq!(s.root("UPDATE t1 SET b = 'z' WHERE a = 1").row_count(0), 2);
    assert_eq!(s.root("DELETE FROM t1 WHERE b = 'y'").row_count(0), 1);
    assert_eq!(
        s.root("SELECT a, b FROM t1").rows(0),
        vec![vec![json!(1), json!("z")]; 2]
    );
}

#[test]
fn alter_table_add_and_drop_column_over_existing_rows() {
    let mut s = TestServer::start();
    s.root("CREATE TABLE items (id INT PRIMARY KEY, name TEXT, old TEXT)");
    s.root("INSERT INTO items VALUES (1, 'one', 'x'), (2, 'two', 'y')");
    s.root("ALTER TABLE items ADD COLUMN qty INT DEFAULT 7");
    s.root("ALTER TABLE items ADD COLUMN note TEXT");
    s.root("ALTER TABLE items DROP COLUMN old");
    s.root("INSERT INTO items (id, name, qty, note) VALUES (3, 'three', 1, 'n')");
    s.root("INSERT INTO items (id, name) VALUES (4, 'four')");
    let want = vec![
        vec![json!(1), json!("one"), json!(7), json!(null)],
        vec![json!(2), json!("two"), json!(7), json!(null)],
        vec![json!(3), json!("three"), json!(1), json!("n")],
        vec![json!(4), json!("four"), json!(7), json!(null)],
    ];
    assert_eq!(s.root("SELECT * FROM items ORDER BY id").rows(0), want);
    // Updating an old row rewrites it under the new schema.
    s.root("UPDATE items SET note = 'u' WHERE id = 1");
    s.restart();
    let r = s.root("SELECT id, qty, note FROM items WHERE id = 1");
    assert_eq!(r.rows(0), vec![vec![json!(1), json!(7), json!("u")]]);
    let r = s.sql_as(&Auth::root(), "SELECT old FROM items");
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_SQL"),
        "dropped column is gone: {}",
        r.body
    );
    assert!(r.message().contains("No field named old"), "{}", r.body);
    // Re-adding a dropped name gives a new, empty column (old values do not resurface).
    s.root("ALTER TABLE items ADD COLUMN old TEXT");
    assert_eq!(
        s.root("SELECT old FROM items WHERE id = 1").rows(0),
        vec![vec![json!(null)]]
    );
    for (bad, status, code) in [
        ("ALTER TABLE items DROP COLUMN id", 400, "UNSUPPORTED"),
        (
            "ALTER TABLE items ADD COLUMN name TEXT",
            409,
            "ALREADY_EXISTS",
        ),
        (
            "ALTER TABLE items ADD COLUMN must TEXT NOT NULL",
            409,
            "CONSTRAINT_VIOLATION",
        ),
        (
            "ALTER TABLE items DROP COLUMN nope",
            400,
            "INVALID_PARAMETER",
        ),
    ] {
        let r = s.sql_as(&Auth::root(), bad);
        assert_eq!((r.status, r.code()), (status, code), "{bad}: {}", r.body);
    }
}

#[test]
fn insert_select_and_defaults() {
    let s = TestServer::start();
    s.root("CREATE TABLE src (id INT PRIMARY KEY, v TEXT)");
    s.root("CREATE TABLE dst (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), v TEXT, at TIMESTAMP DEFAULT NOW(), u UUID DEFAULT UUID_V7(), n INT DEFAULT -3)");
    s.root("INSERT INTO src VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    assert_eq!(
        s.root("INSERT INTO dst (v) SELECT v FROM src WHERE id > 1")
            .row_count(0),
        2
    );
    let r = s.root("SELECT id, v, at, u, n FROM dst ORDER BY v");
    let rows = r.rows(0);
    assert_eq!(rows.len(), 2);
    assert_ne!(
        rows[0][0], rows[1][0],
        "SNOWFLAKE_ID() gives each row its own id"
    );
    assert!(
        rows[0][2].as_str().unwrap().starts_with("20"),
        "NOW() filled: {}",
        rows[0][2]
    );
    assert_eq!(rows[0][3].as_str().unwrap().len(), 36);
    assert_ne!(rows[0][3], rows[1][3]);
    assert_eq!(rows[0][4], json!(-3));
}

#[test]
fn stream_tables_expire_rows_after_ttl() {
    let s = TestServer::start();
    let alice = s.create_user("alice", "user");
    s.root("CREATE STREAM TABLE ticks (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), v INT) WITH (TTL_SECONDS = 4)");
    s.sql_as(&alice, "INSERT INTO ticks (v) VALUES (1), (2)")
        .ok();
    assert_eq!(
        s.sql_as(&alice, "SELECT count(*) FROM ticks").ok().rows(0),
        vec![vec![json!(2)]]
    );
    std::thread::sleep(std::time::Duration::from_millis(5100));
    assert_eq!(
        s.sql_as(&alice, "SELECT count(*) FROM ticks").ok().rows(0),
        vec![vec![json!(0)]]
    );
    // Expired rows are also removed from disk by the background purge.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s
        .root("SELECT buffered_rows FROM system.tables WHERE table_name = 'ticks'")
        .rows(0)
        != vec![vec![json!(0)]]
    {
        assert!(
            std::time::Instant::now() < deadline,
            "expired stream rows were never purged"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = s.sql_as(&Auth::root(), "CREATE STREAM TABLE no_ttl (id INT)");
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
    assert!(r.message().contains("TTL_SECONDS"), "{}", r.body);
}

/// Literal VALUES take a path without DataFusion planning (kalamdb-sql fast_insert); the same
/// values written through the planned path (INSERT ... SELECT) must read back identically,
/// and bad values must fail with the same codes.
#[test]
fn literal_values_and_planned_inserts_agree() {
    let s = TestServer::start();
    let cols = "id BIGINT PRIMARY KEY, si SMALLINT, i INT, r REAL, d DOUBLE, dec DECIMAL(10,2), \
                t TEXT, j JSON, u UUID, ts TIMESTAMP, dt DATE, b BOOLEAN, n INT DEFAULT 7";
    s.root(&format!("CREATE TABLE lit ({cols})"));
    s.root(&format!("CREATE TABLE planned ({cols})"));
    let rows = [
        "1, -3, 2147483647, 1.5, -0.25, 12.34, 'x', '{\"a\": [1, 2]}', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '2025-03-01 10:11:12.345', '2025-03-01', true",
        "2, NULL, 5, 2, 3, 7, 'it''s', 'null', NULL, '2025-03-01T00:00:00', NULL, false",
        "3, 4, -8, -1e3, 1e-3, -0.5, '', '[]', NULL, NULL, '1970-01-01', NULL",
    ];
    let names = "id, si, i, r, d, dec, t, j, u, ts, dt, b";
    s.root(&format!(
        "INSERT INTO lit ({names}) VALUES ({})",
        rows.join("), (")
    ));
    for r in rows {
        s.root(&format!(
            "INSERT INTO planned ({names}) SELECT * FROM (VALUES ({r}))"
        ));
    }
    let lit = s.root("SELECT * FROM lit ORDER BY id").rows(0);
    assert_eq!(lit.len(), 3);
    assert_eq!(lit, s.root("SELECT * FROM planned ORDER BY id").rows(0));
    assert_eq!(
        lit[0][8],
        json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        "UUIDs are normalised"
    );
    assert_eq!(
        lit[1][12],
        json!(7),
        "an unnamed column takes its literal default"
    );

    // Mixed literal kinds in one column, expressions and placeholders are planned; same result.
    s.root(
        "INSERT INTO lit (id, d, t) VALUES (10, 1, 'a'), (11, 2.5, 'b'), (12, 1 + 1, upper('c'))",
    );
    let r = s
        .root("SELECT id, d, t FROM lit WHERE id >= 10 ORDER BY id")
        .rows(0);
    assert_eq!(
        r,
        vec![
            vec![json!(10), json!(1.0), json!("a")],
            vec![json!(11), json!(2.5), json!("b")],
            vec![json!(12), json!(2.0), json!("C")]
        ]
    );

    // Integers and decimals in one column are cast one by one, as the planner does (1.5 into
    // a BIGINT rounds to 2, as in PostgreSQL).
    s.root("CREATE TABLE mix (id BIGINT PRIMARY KEY, t TEXT, big BIGINT, d DOUBLE)");
    s.root("INSERT INTO mix VALUES (1, 1, 9007199254740993, 1), (2, 2.5, 1.5, 2.5)");
    assert_eq!(
        s.root("SELECT t, big, d FROM mix ORDER BY id").rows(0),
        vec![
            vec![json!("1"), json!(9007199254740993i64), json!(1.0)],
            vec![json!("2.5"), json!(2), json!(2.5)]
        ]
    );
    s.root("INSERT INTO mix (id, d) VALUES (3, 3), (4, 4.5), (5, -7)");
    assert_eq!(
        s.root("SELECT d FROM mix WHERE id >= 3 ORDER BY id")
            .rows(0),
        vec![vec![json!(3.0)], vec![json!(4.5)], vec![json!(-7.0)]]
    );
    for sql in [
        "INSERT INTO mix VALUE (3, 'a', 1)",
        "INSERT /*+ hint */ INTO mix VALUES (4, 'b', 2)",
    ] {
        let fast_or_not = s.sql_as(&Auth::root(), sql);
        let got = (fast_or_not.status, fast_or_not.code());
        assert_eq!(
            got,
            (400, "UNSUPPORTED"),
            "{sql}: the planner refuses it: {}",
            fast_or_not.body
        );
    }
    // Permission is checked before any value: a user writing a bad value into a table it may
    // not write gets PERMISSION_DENIED, not a type error.
    let reader = s.create_user("reader", "user");
    let r = s.sql_as(
        &reader,
        "INSERT INTO lit (id, ts) VALUES (30, 'not a time')",
    );
    assert_eq!(r.code(), "PERMISSION_DENIED", "{}", r.body);

    // Errors, and nothing written by a failed statement.
    for (sql, code) in [
        (
            "INSERT INTO lit (id, si) VALUES (20, 40000)",
            "TYPE_MISMATCH",
        ),
        (
            "INSERT INTO lit (id, ts) VALUES (21, 'not a time')",
            "TYPE_MISMATCH",
        ),
        (
            "INSERT INTO lit (id, j) VALUES (22, '{broken')",
            "TYPE_MISMATCH",
        ),
        (
            "INSERT INTO lit (id, u) VALUES (23, 'not-a-uuid')",
            "TYPE_MISMATCH",
        ),
        (
            "INSERT INTO lit (id, t) VALUES (24, 'a'), (24, 'b')",
            "CONSTRAINT_VIOLATION",
        ),
        (
            "INSERT INTO lit (id, t) VALUES (25, 'a'), (1, 'b')",
            "CONSTRAINT_VIOLATION",
        ),
        (
            "INSERT INTO lit (t) VALUES ('no key')",
            "CONSTRAINT_VIOLATION",
        ),
        ("INSERT INTO lit (id, nope) VALUES (26, 1)", "INVALID_SQL"),
        ("INSERT INTO lit (id, t) VALUES (27)", "INVALID_SQL"),
        ("INSERT INTO missing VALUES (1)", "TABLE_NOT_FOUND"),
    ] {
        let r = s.sql_as(&Auth::root(), sql);
        assert_eq!(r.code(), code, "{sql}: {}", r.body);
    }
    assert_eq!(
        s.root("SELECT count(*) FROM lit WHERE id >= 20 AND id < 30")
            .rows(0),
        vec![vec![json!(0)]]
    );
}

/// Concurrent inserts of the same key into one scope: exactly one wins, the others are
/// CONSTRAINT_VIOLATION (inserts share fsyncs, so their checks run while others write).
#[test]
fn concurrent_inserts_of_one_key_admit_exactly_one() {
    let s = TestServer::start();
    s.root("CREATE SHARED TABLE race (id BIGINT PRIMARY KEY, writer INT)");
    for key in 0..20 {
        let outcomes: Vec<(u16, String)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|w| {
                    let s = &s;
                    sc.spawn(move || {
                        let r = s.sql_as(
                            &Auth::root(),
                            &format!("INSERT INTO race VALUES ({key}, {w})"),
                        );
                        (r.status, r.code().to_string())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|(st, _)| *st == 200).count();
        assert_eq!(won, 1, "key {key}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|(st, c)| *st == 200 || c == "CONSTRAINT_VIOLATION"),
            "{outcomes:?}"
        );
    }
    assert_eq!(
        s.root("SELECT count(*) FROM race").rows(0),
        vec![vec![json!(20)]]
    );
}

/// Batched INSERTs check every key against what the scope holds: hot, flushed, deleted (hot
/// or flushed) and re-inserted keys, in random batches against a model, with flushes in
/// between. The check walks the keys in order and skips ahead (rows.rs `walk_sorted`); a
/// skipped key that exists would show up here as a duplicate admitted.
#[test]
fn batched_inserts_find_every_existing_key_hot_flushed_and_deleted() {
    let s = TestServer::start();
    s.root("CREATE USER TABLE ki (id BIGINT PRIMARY KEY, v TEXT); CREATE USER TABLE ks (k TEXT PRIMARY KEY, v TEXT)");
    let alice = s.create_user("alice", "user");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    // Text keys where one is a prefix of another ('a' < 'a0' < 'a00' < 'b').
    let text_key = |i: u64| {
        format!(
            "'{}'",
            ["a", "a0", "a00", "a1", "b", "b0", "ba"][(i % 7) as usize].to_string()
                + &"z".repeat((i / 7) as usize)
        )
    };
    let mut live = [
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    ];
    let (mut admitted, mut refused) = (0, 0);
    for round in 0..160 {
        let t = round % 2;
        let (table, key): (&str, &dyn Fn(u64) -> String) = if t == 0 {
            ("ki", &|i| i.to_string())
        } else {
            ("ks", &text_key)
        };
        match next(10) {
            0 => {
                s.flush_wait(&format!("default.{table}"));
            }
            1 | 2 => {
                let k = next(40);
                let deleted = s
                    .sql_as(
                        &alice,
                        &format!("DELETE FROM {table} WHERE {} = {}", ["id", "k"][t], key(k)),
                    )
                    .ok()
                    .row_count(0);
                assert_eq!(
                    deleted == 1,
                    live[t].remove(&k),
                    "round {round}: delete of {}",
                    key(k)
                );
            }
            _ => {
                let mut batch: Vec<u64> = (0..1 + next(6)).map(|_| next(40)).collect();
                batch.sort();
                batch.dedup();
                // Send them in a shuffled order; the server sorts.
                let n = batch.len();
                batch.swap(0, next(n as u64) as usize);
                let values: Vec<String> = batch
                    .iter()
                    .map(|k| format!("({}, 'r{round}')", key(*k)))
                    .collect();
                let r = s.sql_as(
                    &alice,
                    &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
                );
                if batch.iter().any(|k| live[t].contains(k)) {
                    assert_eq!(
                        (r.status, r.code()),
                        (409, "CONSTRAINT_VIOLATION"),
                        "round {round}: {batch:?} over {:?}",
                        live[t]
                    );
                    refused += 1;
                } else {
                    assert_eq!(
                        r.status, 200,
                        "round {round}: {batch:?} over {:?}: {}",
                        live[t], r.body
                    );
                    live[t].extend(batch);
                    admitted += 1;
                }
            }
        }
    }
    for (t, (table, col)) in [("ki", "id"), ("ks", "k")].into_iter().enumerate() {
        let n = s
            .sql_as(
                &alice,
                &format!("SELECT count(*), count(DISTINCT {col}) FROM {table}"),
            )
            .ok()
            .rows(0);
        assert_eq!(
            n,
            vec![vec![json!(live[t].len()), json!(live[t].len())]],
            "{table}"
        );
    }
    assert!(
        admitted > 20 && refused > 20,
        "admitted {admitted}, refused {refused}"
    );
}
