//! Namespaces, SHOW/DESCRIBE, information_schema and full SELECT over KalamDB tables.

use kalamdb_tests::{Auth, TestServer};
use serde_json::json;

#[test]
fn namespaces_can_be_created_listed_and_dropped() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE NAMESPACE IF NOT EXISTS app");
    let names: Vec<_> = s
        .root("SHOW NAMESPACES")
        .rows(0)
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        names.contains(&json!("app")) && names.contains(&json!("default")),
        "{names:?}"
    );
    s.root("CREATE TABLE app.t (id INT PRIMARY KEY)");
    let r = s.sql_as(&Auth::root(), "DROP NAMESPACE app");
    assert_eq!(
        (r.status, r.code()),
        (409, "CONSTRAINT_VIOLATION"),
        "non-empty namespace needs CASCADE: {}",
        r.body
    );
    assert!(r.message().contains("CASCADE"), "{}", r.body);
    s.root("DROP NAMESPACE app CASCADE");
    s.root("DROP NAMESPACE IF EXISTS app");
    let r = s.sql_as(&Auth::root(), "SELECT * FROM app.t");
    assert_eq!(r.code(), "NAMESPACE_NOT_FOUND", "{}", r.body);
    let r = s.sql_as(&Auth::root(), "DROP NAMESPACE default");
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER"),
        "{}",
        r.body
    );
    assert!(r.message().contains("default namespace"), "{}", r.body);
    // A table re-created under the same name starts empty.
    s.root("CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)");
    assert!(s.root("SELECT * FROM app.t").rows(0).is_empty());
}

#[test]
fn show_tables_describe_and_information_schema_list_every_kind() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, body TEXT NOT NULL DEFAULT 'x')");
    s.root("CREATE SHARED TABLE app.s (id INT PRIMARY KEY) WITH (FLUSH_POLICY = 'rows:100,interval:60')");
    s.root("CREATE STREAM TABLE app.e (id INT PRIMARY KEY) WITH (TTL_SECONDS = 60)");
    let r = s.root("SHOW TABLES IN app");
    let mut kinds: Vec<(String, String)> = r
        .rows(0)
        .iter()
        .map(|row| {
            (
                row[1].as_str().unwrap().into(),
                row[2].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("e".into(), "STREAM".into()),
            ("s".into(), "SHARED".into()),
            ("u".into(), "USER".into())
        ]
    );
    let r = s.root("DESCRIBE TABLE app.u");
    assert_eq!(
        r.rows(0),
        vec![
            vec![
                json!("id"),
                json!("BIGINT"),
                json!("NO"),
                json!("YES"),
                json!("")
            ],
            vec![
                json!("body"),
                json!("TEXT"),
                json!("NO"),
                json!("NO"),
                json!("'x'")
            ],
        ]
    );
    let r = s.root("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema IN ('app', 'system') ORDER BY table_name");
    let rows = r.rows(0);
    for (name, kind) in [
        ("e", "STREAM"),
        ("s", "SHARED"),
        ("u", "USER"),
        ("users", "SYSTEM"),
        ("tables", "SYSTEM"),
    ] {
        assert!(
            rows.contains(&vec![json!(name), json!(kind)]),
            "{name} {kind} missing: {rows:?}"
        );
    }
    let r = s.root("SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'u' ORDER BY ordinal_position");
    assert_eq!(
        r.rows(0),
        vec![
            vec![json!("id"), json!("BIGINT"), json!("NO")],
            vec![json!("body"), json!("TEXT"), json!("NO")]
        ]
    );
    let r = s.root("SELECT options FROM system.tables WHERE table_name = 's'");
    let opts: serde_json::Value = serde_json::from_str(r.rows(0)[0][0].as_str().unwrap()).unwrap();
    assert_eq!(opts["flush_policy"], "rows:100,interval:60");
}

#[test]
fn full_select_joins_aggregates_windows_and_ctes() {
    let s = TestServer::start();
    s.root("CREATE TABLE emp (id INT PRIMARY KEY, dept TEXT, salary BIGINT)");
    s.root("CREATE TABLE dept (name TEXT PRIMARY KEY, floor INT)");
    s.root(
        "INSERT INTO emp VALUES (1, 'eng', 100), (2, 'eng', 120), (3, 'ops', 90), (4, 'sales', 80)",
    );
    s.root("INSERT INTO dept VALUES ('eng', 3), ('ops', 1)");
    let r = s.root("SELECT d.floor, count(*) AS n, sum(e.salary) FROM emp e JOIN dept d ON e.dept = d.name GROUP BY d.floor ORDER BY d.floor");
    assert_eq!(
        r.rows(0),
        vec![
            vec![json!(1), json!(1), json!(90)],
            vec![json!(3), json!(2), json!(220)]
        ]
    );
    let r = s.root("SELECT id, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM emp WHERE dept = 'eng' ORDER BY id");
    assert_eq!(
        r.rows(0),
        vec![vec![json!(1), json!(2)], vec![json!(2), json!(1)]]
    );
    let r =
        s.root("WITH rich AS (SELECT * FROM emp WHERE salary >= 100) SELECT count(*) FROM rich");
    assert_eq!(r.rows(0), vec![vec![json!(2)]]);
    let r =
        s.root("SELECT e.id FROM emp e LEFT JOIN dept d ON e.dept = d.name WHERE d.name IS NULL");
    assert_eq!(r.rows(0), vec![vec![json!(4)]]);
    let r = s.root(
        "SELECT id FROM emp WHERE salary > (SELECT avg(salary) FROM emp) ORDER BY id LIMIT 1",
    );
    assert_eq!(r.rows(0), vec![vec![json!(1)]]);
    let r = s.root("SELECT id FROM emp WHERE id = 3");
    assert_eq!(r.rows(0), vec![vec![json!(3)]]);
}

#[test]
fn request_namespace_sets_where_unqualified_names_resolve() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)");
    let r = s
        .request(
            &Auth::root(),
            json!({"sql": "INSERT INTO t VALUES (5); SELECT id FROM t", "namespace": "app"}),
        )
        .ok();
    assert_eq!(r.rows(1), vec![vec![json!(5)]]);
    // The namespace is looked up when a statement names a table, like a search path.
    let r = s.request(
        &Auth::root(),
        json!({"sql": "SELECT * FROM t", "namespace": "nope"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (404, "NAMESPACE_NOT_FOUND"),
        "{}",
        r.body
    );
    let r = s
        .request(
            &Auth::root(),
            json!({"sql": "SELECT 1", "namespace": "nope"}),
        )
        .ok();
    assert_eq!(r.rows(0), vec![vec![json!(1)]]);
}

#[test]
fn a_request_may_create_the_namespace_it_then_uses() {
    let s = TestServer::start();
    let r = s
        .request(
            &Auth::root(),
            json!({
                "sql": "CREATE NAMESPACE IF NOT EXISTS x; CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); \
                        INSERT INTO t VALUES (1, 'a'); SELECT id, v FROM t; SELECT id FROM x.t",
                "namespace": "x"
            }),
        )
        .ok();
    assert_eq!(r.rows(3), vec![vec![json!(1), json!("a")]]);
    assert_eq!(r.rows(4), vec![vec![json!(1)]]);
    // And the table is really in x, not in default.
    let r = s.request(&Auth::root(), json!({"sql": "SELECT * FROM t"}));
    assert_eq!((r.status, r.code()), (404, "TABLE_NOT_FOUND"), "{}", r.body);
}

#[test]
fn plain_sql_scripts_run_unchanged_in_the_default_namespace() {
    let s = TestServer::start();
    let r = s.root(
        "CREATE TABLE t1(a INTEGER, b TEXT);\n\
         INSERT INTO t1 VALUES (1, 'one'), (2, 'two');\n\
         INSERT INTO t1 SELECT a + 10, b FROM t1;\n\
         SELECT a, b FROM t1 ORDER BY a;",
    );
    assert_eq!(
        r.last_rows(),
        vec![
            vec![json!(1), json!("one")],
            vec![json!(2), json!("two")],
            vec![json!(11), json!("one")],
            vec![json!(12), json!("two")],
        ]
    );
    assert_eq!(
        s.root("SELECT count(*) FROM default.t1").rows(0),
        vec![vec![json!(4)]]
    );
}
