//! RETURNING (issue #14, item 1) through the real server: the values returned are the values
//! stored (generated defaults included), hot and flushed, each user only its own rows,
//! parameters bound, and an error in the clause writes nothing.

use kalamdb_tests::{Auth, TestServer};
use serde_json::{json, Value};

#[test]
fn returned_defaults_are_the_stored_values_hot_and_flushed() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root(
        "CREATE SHARED TABLE app.ev (id BIGINT PRIMARY KEY, v TEXT, sid BIGINT DEFAULT SNOWFLAKE_ID(), u UUID DEFAULT UUID_V7(), ts TIMESTAMP DEFAULT NOW())",
    );
    let returned = s
        .root("INSERT INTO app.ev (id, v) VALUES (1, 'a'), (2, 'b') RETURNING id, sid, u, ts")
        .rows(0);
    assert_eq!(returned.len(), 2);
    let stored = s
        .root("SELECT id, sid, u, ts FROM app.ev ORDER BY id")
        .rows(0);
    assert_eq!(returned, stored, "RETURNING shows what was written");
    assert_ne!(returned[0][1], returned[1][1], "SNOWFLAKE_ID() per row");

    s.flush_wait("app.ev");
    let updated = s
        .root("UPDATE app.ev SET v = v || '!' WHERE id = 2 RETURNING id, v, sid")
        .rows(0);
    assert_eq!(
        updated,
        vec![vec![json!(2), json!("b!"), stored[1][1].clone()]]
    );
    let deleted = s
        .root("DELETE FROM app.ev WHERE id = 1 RETURNING *")
        .rows(0);
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0][0], json!(1));
    assert_eq!(deleted[0][2], stored[0][1], "the deleted row's stored sid");
    assert_eq!(
        s.root("SELECT id, v FROM app.ev").rows(0),
        vec![vec![json!(2), json!("b!")]]
    );
}

#[test]
fn returning_shows_each_user_only_its_own_rows_and_binds_params() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (1, 'a1'), (2, 'a2')")
        .ok();
    s.sql_as(&bob, "INSERT INTO app.notes VALUES (1, 'b1')")
        .ok();
    let request = |auth: &Auth, sql: &str, params: Value| {
        s.request(auth, json!({ "sql": sql, "params": params }))
            .ok()
    };
    let rows = request(
        &bob,
        "UPDATE app.notes SET body = body || $1 RETURNING id, body",
        json!(["!"]),
    )
    .rows(0);
    assert_eq!(rows, vec![vec![json!(1), json!("b1!")]], "bob's row only");
    let rows = request(
        &alice,
        "DELETE FROM app.notes WHERE id >= $1 RETURNING body",
        json!([1]),
    )
    .rows(0);
    let mut bodies: Vec<String> = rows.iter().map(|r| r[0].as_str().unwrap().into()).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["a1", "a2"], "alice's rows only");
    assert_eq!(
        s.sql_as(&bob, "SELECT id, body FROM app.notes")
            .ok()
            .rows(0),
        vec![vec![json!(1), json!("b1!")]],
        "bob's row survives alice's DELETE"
    );
}

#[test]
fn an_error_in_returning_writes_nothing() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)");
    s.root("INSERT INTO app.t VALUES (1, 'a')");
    for sql in [
        "INSERT INTO app.t VALUES (2, 'b') RETURNING 1 / 0",
        "UPDATE app.t SET v = 'z' RETURNING 1 / 0",
        "DELETE FROM app.t RETURNING 1 / 0",
        "INSERT INTO app.t VALUES (3, 'c') RETURNING nope",
    ] {
        let r = s.sql_as(&Auth::root(), sql);
        assert_eq!(r.status / 100, 4, "{sql}: {}", r.body);
    }
    assert_eq!(
        s.root("SELECT id, v FROM app.t").rows(0),
        vec![vec![json!(1), json!("a")]]
    );
}
