//! Per-user isolation of USER tables, EXECUTE AS, and the SHARED/SYSTEM role rules.

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

fn setup() -> (TestServer, Auth, Auth) {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), body TEXT NOT NULL)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    (s, alice, bob)
}

#[test]
fn two_users_see_only_their_own_rows() {
    let (s, alice, bob) = setup();
    s.sql_as(
        &alice,
        "INSERT INTO app.notes (id, body) VALUES (1, 'a1'), (2, 'a2')",
    )
    .ok();
    // Bob may use the same primary keys: each user has an isolated partition.
    s.sql_as(&bob, "INSERT INTO app.notes (id, body) VALUES (1, 'b1')")
        .ok();
    let a = s
        .sql_as(&alice, "SELECT id, body FROM app.notes ORDER BY id")
        .ok();
    assert_eq!(
        a.rows(0),
        vec![vec![json!(1), json!("a1")], vec![json!(2), json!("a2")]]
    );
    let b = s
        .sql_as(&bob, "SELECT id, body FROM app.notes ORDER BY id")
        .ok();
    assert_eq!(b.rows(0), vec![vec![json!(1), json!("b1")]]);
    // Aggregates, self-joins and subqueries see the same partition only.
    let b = s
        .sql_as(
            &bob,
            "SELECT count(*) FROM app.notes n1 JOIN app.notes n2 ON n1.id = n2.id",
        )
        .ok();
    assert_eq!(b.rows(0), vec![vec![json!(1)]]);
    let b = s
        .sql_as(
            &bob,
            "SELECT count(*) FROM app.notes WHERE id IN (SELECT id FROM app.notes)",
        )
        .ok();
    assert_eq!(b.rows(0), vec![vec![json!(1)]]);
    // Bob's UPDATE/DELETE cannot touch Alice's rows.
    assert_eq!(
        s.sql_as(&bob, "UPDATE app.notes SET body = 'x' WHERE id = 2")
            .ok()
            .row_count(0),
        0
    );
    assert_eq!(s.sql_as(&bob, "DELETE FROM app.notes").ok().row_count(0), 1);
    let a = s
        .sql_as(&alice, "SELECT body FROM app.notes ORDER BY id")
        .ok();
    assert_eq!(a.rows(0), vec![vec![json!("a1")], vec![json!("a2")]]);
}

#[test]
fn execute_as_user_is_for_service_and_dba_only() {
    let (s, alice, bob) = setup();
    let svc = s.create_user("svc", "service");
    let dba = s.create_user("dba1", "dba");
    s.sql_as(
        &svc,
        "EXECUTE AS USER 'alice' (INSERT INTO app.notes (id, body) VALUES (7, 'via service'))",
    )
    .ok();
    let a = s.sql_as(&alice, "SELECT id, body FROM app.notes").ok();
    assert_eq!(a.rows(0), vec![vec![json!(7), json!("via service")]]);
    let r = s
        .sql_as(&dba, "EXECUTE AS USER 'alice' (SELECT body FROM app.notes)")
        .ok();
    assert_eq!(r.rows(0), vec![vec![json!("via service")]]);
    // The service's own partition stays empty.
    assert!(s
        .sql_as(&svc, "SELECT * FROM app.notes")
        .ok()
        .rows(0)
        .is_empty());
    // A user-role caller may not act as another user.
    let r = s.sql_as(&bob, "EXECUTE AS USER 'alice' (SELECT * FROM app.notes)");
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
    // Nor may a service act as a stronger role.
    let r = s.sql_as(&svc, "EXECUTE AS USER 'dba1' (SELECT 1)");
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
    // Unknown users and injection attempts through the user name are refused.
    let r = s.sql_as(&svc, "EXECUTE AS USER 'nobody' (SELECT 1)");
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
    assert!(r.message().contains("does not exist"), "{}", r.body);
    let r = s.sql_as(&svc, "EXECUTE AS USER 'alice'' OR 1=1 --' (SELECT 1)");
    // Valid SQL naming a user that does not exist, like 'nobody' (it answered INVALID_SQL).
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
    assert!(r.message().contains("does not exist"), "{}", r.body);
}

#[test]
fn shared_tables_follow_public_and_private_rules() {
    let s = TestServer::start();
    s.root("CREATE SHARED TABLE pub_t (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'public')");
    s.root(
        "CREATE SHARED TABLE priv_t (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'private')",
    );
    s.root("CREATE TABLE default_t (id INT PRIMARY KEY, v TEXT)");
    let user = s.create_user("u1", "user");
    let svc = s.create_user("s1", "service");
    // Writes need service or above.
    for t in ["pub_t", "priv_t", "default_t"] {
        let r = s.sql_as(&user, &format!("INSERT INTO {t} VALUES (1, 'x')"));
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{t}: {}",
            r.body
        );
        s.sql_as(&svc, &format!("INSERT INTO {t} VALUES (1, 'x')"))
            .ok();
    }
    // Public tables are readable by users; private (and default, which is private) are not.
    assert_eq!(
        s.sql_as(&user, "SELECT v FROM pub_t").ok().rows(0),
        vec![vec![json!("x")]]
    );
    for t in ["priv_t", "default_t"] {
        let r = s.sql_as(&user, &format!("SELECT * FROM {t}"));
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{t}: {}",
            r.body
        );
        let r = s.sql_as(
            &user,
            &format!("SELECT p.v FROM pub_t p JOIN {t} q ON p.id = q.id"),
        );
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "join through {t}: {}",
            r.body
        );
        assert_eq!(
            s.sql_as(&svc, &format!("SELECT v FROM {t}")).ok().rows(0),
            vec![vec![json!("x")]]
        );
    }
    // Shared rows are the same for every reader.
    let r = s.sql_as(&user, "UPDATE pub_t SET v = 'y'");
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
}

#[test]
fn system_tables_are_for_dba_and_never_show_password_hashes() {
    let (s, alice, _bob) = setup();
    let dba = s.create_user("d", "dba");
    for t in [
        "system.users",
        "system.tables",
        "system.namespaces",
        "system.storages",
    ] {
        let r = s.sql_as(&alice, &format!("SELECT * FROM {t}"));
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{t}: {}",
            r.body
        );
        s.sql_as(&dba, &format!("SELECT * FROM {t}")).ok();
    }
    let r = s.sql_as(&dba, "SELECT * FROM system.users").ok();
    let text = r.body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("alice-pw"),
        "{text}"
    );
    let r = s.sql_as(
        &dba,
        "INSERT INTO system.users VALUES ('x', 'system', true, now(), now())",
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
    assert!(r.message().contains("read-only"), "{}", r.body);
}

#[test]
fn ddl_and_user_management_need_dba() {
    let (s, alice, _bob) = setup();
    let svc = s.create_user("svc", "service");
    for who in [&alice, &svc] {
        for sql in [
            "CREATE NAMESPACE x",
            "CREATE TABLE t9 (a INT)",
            "DROP TABLE app.notes",
            "ALTER TABLE app.notes ADD COLUMN c INT",
            "CREATE USER 'eve' WITH PASSWORD 'p' ROLE user",
            "DROP USER 'bob'",
        ] {
            let r = s.sql_as(who, sql);
            assert_eq!(
                (r.status, r.code()),
                (403, "PERMISSION_DENIED"),
                "{sql}: {}",
                r.body
            );
        }
    }
    let dba = s.create_user("d", "dba");
    s.sql_as(&dba, "CREATE NAMESPACE x").ok();
    // A dba cannot mint system users.
    let r = s.sql_as(&dba, "CREATE USER 'god' WITH PASSWORD 'p' ROLE system");
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
    // Users may change their own password, and the old one stops working.
    s.sql_as(&alice, "ALTER USER 'alice' SET PASSWORD 'new-pw'")
        .ok();
    let r = s.sql_as(&alice, "SELECT 1");
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.body);
    s.sql_as(&Auth::user("alice", "new-pw"), "SELECT 1").ok();
}

#[test]
fn files_and_settings_statements_are_refused_for_non_system_roles() {
    let s = TestServer::start();
    let dba = s.create_user("d", "dba");
    for sql in [
        "CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let r = s.sql_as(&dba, sql);
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{sql}: {}",
            r.body
        );
    }
    assert!(s.healthy());
}

/// EXECUTE AS acts on the target's data, never on accounts: not the target's own password,
/// not another account, whatever the caller's role (a `service` once reset alice's password).
#[test]
fn execute_as_never_creates_alters_or_drops_users() {
    let s = TestServer::start();
    let alice = s.create_user("alice", "user");
    let service = s.create_user("svc", "service");
    let _peer = s.create_user("svc2", "service");
    let dba = s.create_user("boss", "dba");
    for (who, auth) in [
        ("service", &service),
        ("dba", &dba),
        ("root", &Auth::root()),
    ] {
        for target in ["alice", "svc2"] {
            for stmt in [
                format!("ALTER USER '{target}' SET PASSWORD 'taken'"),
                format!("ALTER USER '{target}' SET ROLE dba"),
                format!("DROP USER '{target}'"),
                "CREATE USER 'mallory' WITH PASSWORD 'm' ROLE user".to_string(),
            ] {
                let sql = format!("EXECUTE AS USER '{target}' ({stmt})");
                let r = s.sql_as(auth, &sql);
                assert_eq!(
                    (r.status, r.code()),
                    (403, "PERMISSION_DENIED"),
                    "{who}: {sql}: {}",
                    r.body
                );
            }
        }
    }
    // Nothing changed: alice and svc2 log in with their passwords, keep their roles, and no
    // mallory exists.
    assert_eq!(s.sql_as(&alice, "SELECT 1").status, 200);
    assert_eq!(
        s.sql_as(&Auth::user("svc2", "svc2-pw"), "SELECT 1").status,
        200
    );
    let users = s.root("SELECT user_id, role FROM system.users WHERE user_id IN ('alice', 'svc2', 'mallory') ORDER BY user_id");
    assert_eq!(
        users.rows(0),
        vec![
            vec![json!("alice"), json!("user")],
            vec![json!("svc2"), json!("service")]
        ]
    );
    // Acting as alice on her data still works.
    s.root("CREATE USER TABLE notes (id INT PRIMARY KEY, v TEXT)");
    let r = s.sql_as(
        &service,
        "EXECUTE AS USER 'alice' (INSERT INTO notes VALUES (1, 'a'))",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.sql_as(&alice, "SELECT v FROM notes").rows(0),
        vec![vec![json!("a")]]
    );
}

/// An unknown user name costs the server the same password-hashing work as a wrong password
/// for an existing user (it answered 700x faster, so names could be discovered by timing).
/// A ratio of medians with a wide margin, not a speed: both sides run argon2 once.
#[test]
fn unknown_user_names_cannot_be_told_from_wrong_passwords_by_timing() {
    let s = TestServer::start();
    s.create_user("alice", "user");
    let median = |auth: &Auth| {
        let mut times: Vec<f64> = (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                let r = s.sql_as(auth, "SELECT 1");
                assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.body);
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        times[3]
    };
    let wrong_password = median(&Auth::user("alice", "not-her-password"));
    let unknown_name = median(&Auth::user("nobody-by-this-name", "not-her-password"));
    assert!(
        unknown_name * 4.0 >= wrong_password,
        "an unknown name answers in {unknown_name:.4} s, a wrong password in {wrong_password:.4} s"
    );
}

/// Files under `dir` whose path contains `needle`.
fn files_under(dir: &std::path::Path, needle: &str) -> Vec<String> {
    kalamdb_tests::files_under(dir)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.contains(needle))
        .collect()
}

/// A dropped user's rows go with it, hot and flushed, in every USER table: a new user of the
/// same name starts empty (it read the old one's rows), also when DROP USER runs while a
/// flush of that user is writing its segment.
#[test]
fn a_dropped_users_rows_never_pass_to_the_next_user_of_that_name() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.notes (id INT PRIMARY KEY, v TEXT)");
    s.root("CREATE USER TABLE app.cold (id INT PRIMARY KEY, v TEXT)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    for who in [&alice, &bob] {
        assert_eq!(
            s.sql_as(who, "INSERT INTO app.notes VALUES (1, 'hot'), (2, 'hot')")
                .status,
            200
        );
        assert_eq!(
            s.sql_as(who, "INSERT INTO app.cold VALUES (1, 'flushed')")
                .status,
            200
        );
    }
    assert_eq!(s.flush_wait("app.cold")["status"], json!("completed"));
    assert!(
        !files_under(&s.storage_dir(), "bob").is_empty(),
        "bob's rows were flushed to a file"
    );
    let r = s.root("DROP USER 'bob'");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        files_under(&s.storage_dir(), "bob").is_empty(),
        "bob's files are gone: {:?}",
        files_under(&s.storage_dir(), "bob")
    );
    assert!(
        !s.storage_dir().join("app/cold/bob").exists(),
        "and bob's directory"
    );
    assert!(
        s.storage_dir().join("app/cold/alice").is_dir(),
        "alice's stays"
    );
    // Bob's hot rows leave the buffered count with him (it stayed at 4).
    let r = s.root(
        "SELECT buffered_rows FROM system.tables WHERE namespace = 'app' AND table_name = 'notes'",
    );
    assert_eq!(
        r.rows(0),
        vec![vec![json!(2)]],
        "alice's two hot rows are all that is buffered"
    );
    let bob2 = s.create_user("bob", "user");
    assert_eq!(
        s.sql_as(&bob2, "SELECT count(*) FROM app.notes").rows(0),
        vec![vec![json!(0)]]
    );
    assert_eq!(
        s.sql_as(&bob2, "SELECT count(*) FROM app.cold").rows(0),
        vec![vec![json!(0)]]
    );
    assert_eq!(
        s.sql_as(&alice, "SELECT count(*) FROM app.notes").rows(0),
        vec![vec![json!(2)]],
        "alice keeps hers"
    );
    assert_eq!(
        s.sql_as(&alice, "SELECT v FROM app.cold").rows(0),
        vec![vec![json!("flushed")]]
    );

    // DROP USER while a flush of bob's rows is paused between writing and committing.
    assert_eq!(
        s.sql_as(&bob2, "INSERT INTO app.notes VALUES (5, 'mid-flush')")
            .status,
        200
    );
    s.set_failpoints("flush.pause_after_write=3000");
    let job = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(s.root("DROP USER 'bob'").status, 200);
    s.set_failpoints("");
    let done = s.wait_job(&job, 30);
    // The paused attempt finds bob's rows deleted and commits nothing; the job's retry
    // flushes alice's rows only and says so.
    assert_eq!(done["status"], json!("completed"), "{done:?}");
    let result: serde_json::Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert_eq!(
        result["rows_flushed"],
        json!(2),
        "only alice's two rows were flushed: {done:?}"
    );
    let bob3 = s.create_user("bob", "user");
    assert_eq!(
        s.sql_as(&bob3, "SELECT count(*) FROM app.notes").rows(0),
        vec![vec![json!(0)]],
        "job: {done:?}"
    );
    assert_eq!(
        s.sql_as(&alice, "SELECT count(*) FROM app.notes").rows(0),
        vec![vec![json!(2)]]
    );
    // After a restart too.
    let mut s = s;
    s.restart();
    assert_eq!(
        s.sql_as(&bob3, "SELECT count(*) FROM app.notes").rows(0),
        vec![vec![json!(0)]]
    );
    assert_eq!(
        s.sql_as(&alice, "SELECT count(*) FROM app.notes").rows(0),
        vec![vec![json!(2)]]
    );
}

/// DROP USER while that user's writes are in flight: the drop waits for them and refuses the
/// ones after it (401), so a new user of the same name starts empty. Before, a write already
/// past authentication could land after the purge and the next 'dora' inherited it.
#[test]
fn drop_user_racing_the_users_own_writes_leaves_the_next_user_empty() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.feed (id BIGINT PRIMARY KEY, v TEXT)");
    let dba = s.create_user("dropper", "dba");
    for round in 0..5 {
        let dora = s.create_user("dora", "user");
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (client, dora, stop) = (TestServer::attach(s.port), dora.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut acked = 0u32;
                    for i in 0..100_000i64 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = client.sql_as(
                            &dora,
                            &format!(
                                "INSERT INTO app.feed VALUES ({}, 'w{w}')",
                                w * 1_000_000 + i
                            ),
                        );
                        match (r.status, r.code()) {
                            (200, _) => acked += 1,
                            // The account is gone: every later write is refused the same way.
                            (401, "UNAUTHORIZED") => break,
                            other => panic!("round {round} writer {w}: {other:?}: {}", r.body),
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(150 + round * 40));
        let r = s.sql_as(&dba, "DROP USER 'dora'");
        assert_eq!(r.status, 200, "{}", r.body);
        stop.store(true, Ordering::Relaxed);
        let acked: u32 = writers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(
            acked > 0,
            "round {round}: the writers wrote nothing before the drop"
        );
        let next = s.create_user("dora", "user");
        let r = s.sql_as(&next, "SELECT count(*) FROM app.feed").ok();
        assert_eq!(
            r.rows(0),
            vec![vec![json!(0)]],
            "round {round}: the new dora inherited rows ({acked} acknowledged)"
        );
        assert_eq!(s.sql_as(&dba, "DROP USER 'dora'").status, 200);
    }
    // A user cannot drop itself (its own request holds its account).
    let r = s.sql_as(&dba, "DROP USER 'dropper'");
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
}

/// Found by the black-box attack of issue #13: a predicate the optimizer proves empty
/// (`WHERE false`, `id = NULL`, `LIMIT 0`) removed the scan, and the read check with it, so a
/// `user` got 200 and no rows from a private SHARED table it may not read at all.
#[test]
fn a_table_one_may_not_read_is_refused_whatever_the_predicate() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, v TEXT)");
    s.root("INSERT INTO app.s VALUES (1, 'secret')");
    let alice = s.create_user("alice", "user");
    for sql in [
        "SELECT * FROM app.s",
        "SELECT * FROM app.s WHERE false",
        "SELECT * FROM app.s WHERE id = NULL",
        "SELECT * FROM app.s LIMIT 0",
        "SELECT EXISTS (SELECT 1 FROM app.s WHERE false)",
        "SELECT 1 WHERE false UNION ALL SELECT id FROM app.s WHERE false",
        "EXPLAIN SELECT * FROM app.s WHERE false",
    ] {
        let r = s.sql_as(&alice, sql);
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{sql}: {}",
            r.body
        );
    }
    let r = s.request(
        &alice,
        json!({"sql": "SELECT * FROM app.s WHERE id = $1", "params": [null]}),
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
}
