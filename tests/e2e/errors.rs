//! Every contract error code that applies, with its HTTP status; the server keeps answering.

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

fn expect(s: &TestServer, auth: &Auth, sql: &str, status: u16, code: &str) {
    let r = s.sql_as(auth, sql);
    assert_eq!((r.status, r.code()), (status, code), "{sql}: {}", r.body);
    assert_eq!(r.body["status"], "error");
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(s.healthy(), "server must keep answering after: {sql}");
}

#[test]
fn sql_errors_map_to_contract_codes() {
    let s = TestServer::start();
    let root = Auth::root();
    s.root("CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL, s TEXT)");
    s.root("INSERT INTO t VALUES (1, 1, 'a')");
    expect(&s, &root, "SELEC * FROM t", 400, "INVALID_SQL");
    expect(&s, &root, "SELECT nope FROM t", 400, "INVALID_SQL");
    expect(
        &s,
        &root,
        "INSERT INTO t VALUES (2, 'not a number', 'x')",
        400,
        "TYPE_MISMATCH",
    );
    expect(
        &s,
        &root,
        "INSERT INTO t VALUES (1, 2, 'dup')",
        409,
        "CONSTRAINT_VIOLATION",
    );
    expect(
        &s,
        &root,
        "INSERT INTO t (id, s) VALUES (3, 'no n')",
        409,
        "CONSTRAINT_VIOLATION",
    );
    expect(
        &s,
        &root,
        "SELECT * FROM nope.t",
        404,
        "NAMESPACE_NOT_FOUND",
    );
    expect(&s, &root, "SELECT * FROM missing", 404, "TABLE_NOT_FOUND");
    expect(&s, &root, "DROP TABLE missing", 404, "TABLE_NOT_FOUND");
    expect(&s, &root, "CREATE TABLE t (id INT)", 409, "ALREADY_EXISTS");
    expect(&s, &root, "CREATE NAMESPACE default", 409, "ALREADY_EXISTS");
    expect(
        &s,
        &root,
        "KILL JOB 'FL-000000000000'",
        404,
        "JOB_NOT_FOUND",
    );
    expect(
        &s,
        &root,
        "CREATE TABLE g (id INT, p POINT)",
        400,
        "UNSUPPORTED",
    );
    expect(
        &s,
        &root,
        "CREATE TABLE ../etc (id INT)",
        400,
        "INVALID_SQL",
    );
    expect(
        &s,
        &root,
        "CREATE NAMESPACE \"../x\"",
        400,
        "INVALID_PARAMETER",
    );
    expect(&s, &root, "SELECT 1 / 0", 400, "INVALID_PARAMETER");
    let user = s.create_user("u", "user");
    expect(&s, &user, "DROP TABLE t", 403, "PERMISSION_DENIED");
    expect(
        &s,
        &Auth::user("u", "wrong"),
        "SELECT 1",
        401,
        "UNAUTHORIZED",
    );
    expect(&s, &Auth::None, "SELECT 1", 401, "UNAUTHORIZED");
    expect(
        &s,
        &Auth::user("ghost", "x"),
        "SELECT 1",
        401,
        "UNAUTHORIZED",
    );
}

#[test]
fn invalid_sql_reports_line_and_column() {
    let s = TestServer::start();
    let r = s.sql_as(&Auth::root(), "SELECT 1;\nSELECT *\nFROM t WHERE a = = 1");
    assert_eq!((r.status, r.code()), (400, "INVALID_SQL"), "{}", r.body);
    assert_eq!(r.body["error"]["statement_index"], 1);
    // Positions are within the failing statement.
    assert_eq!(r.body["error"]["line"], 2, "{}", r.body);
    assert_eq!(r.body["error"]["column"], 18, "{}", r.body);
}

#[test]
fn multi_statement_requests_stop_at_the_first_error_with_results_so_far() {
    let s = TestServer::start();
    let r = s.sql_as(
        &Auth::root(),
        "CREATE TABLE m (id INT PRIMARY KEY); INSERT INTO m VALUES (1), (2); SELECT * FROM nope; INSERT INTO m VALUES (3)",
    );
    assert_eq!((r.status, r.code()), (404, "TABLE_NOT_FOUND"), "{}", r.body);
    assert_eq!(r.body["error"]["statement_index"], 2);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[1],
        json!({"row_count": 2, "message": "Inserted 2 row(s)"})
    );
    // The statement after the error did not run.
    assert_eq!(
        s.root("SELECT count(*) FROM m").rows(0),
        vec![vec![json!(2)]]
    );
}

#[test]
fn malformed_requests_get_400_and_huge_bodies_413() {
    let s = TestServer::start_with_env(&[]);
    let root = Auth::root();
    for (body, code) in [
        (&b"{not json"[..], "INVALID_PARAMETER"),
        (&b"[1,2]"[..], "INVALID_PARAMETER"),
        (&b"{\"sql\": 5}"[..], "INVALID_PARAMETER"),
        (&b"{}"[..], "INVALID_SQL"),
        (&b"{\"sql\": \"\"}"[..], "INVALID_SQL"),
        (&b"{\"sql\": \"   \"}"[..], "INVALID_SQL"),
        (
            &b"{\"sql\": \"SELECT 1\", \"params\": 3}"[..],
            "INVALID_PARAMETER",
        ),
        (&b"\xff\xfe"[..], "INVALID_PARAMETER"),
    ] {
        let r = s.post_raw("/v1/api/sql", &root, body);
        assert_eq!(
            (r.status, r.code()),
            (400, code),
            "{}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
    }
    // Default limit is 10 MiB.
    let big = format!("{{\"sql\": \"SELECT '{}'\"}}", "x".repeat(11 * 1024 * 1024));
    let r = s.post_raw("/v1/api/sql", &root, big.as_bytes());
    assert_eq!(
        (r.status, r.code()),
        (413, "PAYLOAD_TOO_LARGE"),
        "{}",
        r.body
    );
    assert!(s.healthy());
}

#[test]
fn params_bind_placeholders() {
    let s = TestServer::start();
    s.root("CREATE TABLE p (id INT PRIMARY KEY, name TEXT)");
    let r = s.request(
        &Auth::root(),
        json!({"sql": "INSERT INTO p VALUES ($1, $2)", "params": [1, "o'brien"]}),
    );
    assert_eq!(r.ok().row_count(0), 1);
    let r = s
        .request(
            &Auth::root(),
            json!({"sql": "SELECT name FROM p WHERE id = $1", "params": [1]}),
        )
        .ok();
    assert_eq!(r.rows(0), vec![vec![json!("o'brien")]]);
    let r = s.request(
        &Auth::root(),
        json!({"sql": "SELECT $1 + $2", "params": [1]}),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
    assert!(r.message().contains("no parameter $2"), "{}", r.body);
    let r = s.request(
        &Auth::root(),
        json!({"sql": "SELECT 1; SELECT 2", "params": [1]}),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
}

#[test]
fn login_issues_bearer_tokens_revoked_by_password_change() {
    let s = TestServer::start();
    s.create_user("tok", "user");
    let r = s.post_raw(
        "/v1/api/auth/login",
        &Auth::None,
        br#"{"username":"tok","password":"tok-pw"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    assert!(r.body["expires_at"].as_u64().unwrap() > 0);
    let bearer = Auth::Bearer(token.clone());
    s.sql_as(&bearer, "SELECT 1").ok();
    let r = s.post_raw(
        "/v1/api/auth/login",
        &Auth::None,
        br#"{"username":"tok","password":"nope"}"#,
    );
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));
    let r = s.sql_as(&Auth::Bearer(format!("{token}x")), "SELECT 1");
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.body);
    s.root("ALTER USER 'tok' SET PASSWORD 'changed'");
    let r = s.sql_as(&bearer, "SELECT 1");
    assert_eq!(
        (r.status, r.code()),
        (401, "UNAUTHORIZED"),
        "old token is revoked: {}",
        r.body
    );
    assert!(r.message().contains("revoked"), "{}", r.body);
}

#[test]
fn user_without_password_cannot_log_in_but_can_be_acted_for() {
    let s = TestServer::start();
    s.root("CREATE USER 'nopw' ROLE user").ok();
    s.root("CREATE USER TABLE default.notes (id BIGINT PRIMARY KEY, body TEXT)")
        .ok();
    for attempt in [Auth::user("nopw", ""), Auth::user("nopw", "anything")] {
        let r = s.sql_as(&attempt, "SELECT 1");
        assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.body);
    }
    let r = s.post_raw(
        "/v1/api/auth/login",
        &Auth::None,
        br#"{"username":"nopw","password":""}"#,
    );
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.body);
    s.root("EXECUTE AS USER 'nopw' (INSERT INTO default.notes VALUES (1, 'kept'))")
        .ok();
    let r = s
        .root("EXECUTE AS USER 'nopw' (SELECT id, body FROM default.notes)")
        .ok();
    assert_eq!(r.rows(0), vec![vec![json!(1), json!("kept")]]);
    s.root("ALTER USER 'nopw' SET PASSWORD 'now-set'").ok();
    let r = s
        .sql_as(
            &Auth::user("nopw", "now-set"),
            "SELECT body FROM default.notes",
        )
        .ok();
    assert_eq!(r.rows(0), vec![vec![json!("kept")]]);
}

/// Found by the black-box attack of issue #13: EXPLAIN of a write or of DDL answered 200 with
/// DataFusion's internal "physical_plan_error" text (and EXPLAIN DROP TABLE of a missing
/// table, or by a `user`, described a plan); DDL naming the server's views answered
/// NAMESPACE_NOT_FOUND for a namespace every query can read.
#[test]
fn explain_of_writes_and_ddl_and_ddl_on_the_servers_views_are_refused_clearly() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)");
    let root = Auth::root();
    let alice = s.create_user("alice", "user");
    for sql in [
        "EXPLAIN INSERT INTO app.t VALUES (1, 'a')",
        "EXPLAIN UPDATE app.t SET v = 'b' WHERE id = 1",
        "EXPLAIN DELETE FROM app.t WHERE id = 1",
        "EXPLAIN DROP TABLE app.nope",
        "EXPLAIN CREATE TABLE app.zz (a INT)",
    ] {
        expect(&s, &root, sql, 400, "UNSUPPORTED");
    }
    expect(&s, &alice, "EXPLAIN DROP TABLE app.t", 400, "UNSUPPORTED");
    for sql in [
        "DROP TABLE system.users",
        "DROP TABLE IF EXISTS system.users",
        "DROP TABLE information_schema.tables",
        "ALTER TABLE system.users ADD COLUMN x INT",
    ] {
        expect(&s, &root, sql, 400, "UNSUPPORTED");
    }
    for sql in [
        "DESCRIBE TABLE system.nope",
        "ALTER TABLE system.nope ADD COLUMN x INT",
        "DROP TABLE information_schema.nope",
    ] {
        expect(&s, &root, sql, 404, "TABLE_NOT_FOUND");
    }
    s.root("DROP TABLE IF EXISTS system.nope");
    assert_eq!(s.root("SELECT count(*) FROM system.users").rows(0).len(), 1);
}
