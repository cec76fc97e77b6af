//! Views (issue #14, item 4) through the real server: a view never shows more than its
//! reader may read (each user its own rows of a USER table, no private SHARED table for a
//! `user`), it is listed in information_schema.tables and system.tables, it survives a
//! restart, and it cannot be made to read itself.

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

#[test]
fn a_view_shows_each_reader_only_what_it_may_read() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, done BOOLEAN)");
    s.root("CREATE SHARED TABLE app.secrets (id BIGINT PRIMARY KEY, v TEXT)");
    s.root("INSERT INTO app.secrets VALUES (1, 'classified')");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    s.sql_as(
        &alice,
        "INSERT INTO app.notes VALUES (1, 'a-open', false), (2, 'a-done', true)",
    )
    .ok();
    s.sql_as(&bob, "INSERT INTO app.notes VALUES (1, 'b-open', false)")
        .ok();
    s.flush_wait("app.notes");
    s.sql_as(&bob, "INSERT INTO app.notes VALUES (3, 'b-hot', false)")
        .ok();
    s.root("CREATE VIEW app.open_notes AS SELECT id, body FROM notes WHERE NOT done")
        .ok();
    s.root("CREATE VIEW app.leak AS SELECT v FROM app.secrets")
        .ok();

    assert_eq!(
        s.sql_as(&alice, "SELECT id, body FROM app.open_notes ORDER BY id")
            .ok()
            .rows(0),
        vec![vec![json!(1), json!("a-open")]]
    );
    assert_eq!(
        s.sql_as(&bob, "SELECT id, body FROM app.open_notes ORDER BY id")
            .ok()
            .rows(0),
        vec![
            vec![json!(1), json!("b-open")],
            vec![json!(3), json!("b-hot")]
        ]
    );
    // Root, who created the views, has no rows of its own in the USER table.
    assert_eq!(
        s.root("SELECT count(*) FROM app.open_notes").rows(0),
        vec![vec![json!(0)]]
    );
    // A private SHARED table stays private through a view; so does a user's DDL right.
    let r = s.sql_as(&alice, "SELECT * FROM app.leak");
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.body
    );
    let r = s.sql_as(
        &alice,
        "SELECT * FROM app.open_notes o JOIN app.leak l ON true",
    );
    assert_eq!(r.code(), "PERMISSION_DENIED", "{}", r.body);
    let r = s.sql_as(&alice, "CREATE VIEW app.mine AS SELECT * FROM app.notes");
    assert_eq!(r.code(), "PERMISSION_DENIED", "{}", r.body);
    let r = s.sql_as(&alice, "DROP VIEW app.open_notes");
    assert_eq!(r.code(), "PERMISSION_DENIED", "{}", r.body);
}

#[test]
fn views_are_listed_survive_a_restart_and_cannot_read_themselves() {
    let mut s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)");
    s.root("INSERT INTO app.t VALUES (1, 'x'), (2, 'y')");
    s.root("CREATE VIEW app.a AS SELECT id, v FROM app.t WHERE id > 1")
        .ok();
    s.root("CREATE VIEW app.b AS SELECT id FROM app.a").ok();
    assert_eq!(
        s.root("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'app' ORDER BY table_name")
            .rows(0),
        vec![
            vec![json!("a"), json!("VIEW")],
            vec![json!("b"), json!("VIEW")],
            vec![json!("t"), json!("SHARED")]
        ]
    );
    let listed = s
        .root("SELECT table_type, options FROM system.tables WHERE namespace = 'app' AND table_name = 'a'")
        .rows(0);
    assert_eq!(listed[0][0], json!("VIEW"));
    assert!(
        listed[0][1].as_str().unwrap_or("").contains("WHERE id > 1"),
        "{listed:?}"
    );

    // A circle through OR REPLACE is refused, and the old definition stays.
    let root = Auth::root();
    let r = s.sql_as(
        &root,
        "CREATE OR REPLACE VIEW app.a AS SELECT id, 'z' AS v FROM app.b",
    );
    assert_eq!(r.code(), "INVALID_SQL", "{}", r.body);
    assert!(r.message().contains("read itself"), "{}", r.body);
    let r = s.sql_as(&root, "CREATE OR REPLACE VIEW app.a AS SELECT * FROM app.a");
    assert_eq!(r.code(), "INVALID_SQL", "{}", r.body);

    s.restart();
    assert_eq!(
        s.root("SELECT id FROM app.b").rows(0),
        vec![vec![json!(2)]],
        "views survive a restart"
    );
    // DROP NAMESPACE needs CASCADE for views too, and takes them with it.
    s.root("DROP TABLE app.t").ok();
    let r = s.sql_as(&root, "DROP NAMESPACE app");
    assert_eq!(r.code(), "CONSTRAINT_VIOLATION", "{}", r.body);
    s.root("DROP NAMESPACE app CASCADE").ok();
    s.root("CREATE NAMESPACE app").ok();
    let r = s.sql_as(&root, "SELECT * FROM app.b");
    assert_eq!(r.code(), "TABLE_NOT_FOUND", "{}", r.body);
}
