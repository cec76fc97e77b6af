//! Every contract type round-trips exactly: insert, select, restart, select.

use kalamdb_tests::TestServer;
use serde_json::{json, Value};

/// Create a table with one column of `sql_type`, insert `literals` (SQL text), and check the
/// values come back as `expected` JSON with the contract type name, before and after a restart.
fn round_trip(sql_type: &str, type_name: &str, literals: &[&str], expected: &[Value]) {
    let mut s = TestServer::start();
    s.root(&format!(
        "CREATE TABLE rt (id INT PRIMARY KEY, v {sql_type})"
    ));
    let values: Vec<String> = literals
        .iter()
        .enumerate()
        .map(|(i, l)| format!("({i}, {l})"))
        .collect();
    s.root(&format!(
        "INSERT INTO rt (id, v) VALUES {}, ({}, NULL)",
        values.join(", "),
        literals.len()
    ));
    let mut want: Vec<Value> = expected.to_vec();
    want.push(Value::Null);
    let check = |s: &TestServer| {
        let r = s.root("SELECT v FROM rt ORDER BY id");
        assert_eq!(
            r.body["results"][0]["schema"][0]["data_type"], type_name,
            "{}",
            r.body
        );
        let got: Vec<Value> = r.rows(0).into_iter().map(|row| row[0].clone()).collect();
        assert_eq!(got, want, "values of {sql_type}");
    };
    check(&s);
    s.restart();
    check(&s);
    s.kill9_and_restart();
    check(&s);
}

#[test]
fn boolean_round_trips() {
    round_trip(
        "BOOLEAN",
        "BOOLEAN",
        &["true", "false"],
        &[json!(true), json!(false)],
    );
}

#[test]
fn smallint_round_trips() {
    round_trip(
        "SMALLINT",
        "SMALLINT",
        &["-32768", "32767"],
        &[json!(-32768), json!(32767)],
    );
}

#[test]
fn int_round_trips() {
    round_trip(
        "INT",
        "INT",
        &["-2147483648", "2147483647"],
        &[json!(-2147483648i64), json!(2147483647)],
    );
}

#[test]
fn bigint_round_trips() {
    round_trip(
        "BIGINT",
        "BIGINT",
        &["-9223372036854775808", "9223372036854775807"],
        &[json!(i64::MIN), json!(i64::MAX)],
    );
}

#[test]
fn real_round_trips() {
    round_trip(
        "REAL",
        "REAL",
        &["3.25", "-0.1"],
        &[json!(3.25), json!(-0.1)],
    );
}

#[test]
fn double_round_trips_including_nan_and_infinity() {
    round_trip(
        "DOUBLE",
        "DOUBLE",
        &[
            "0.1",
            "-1.5e300",
            "CAST('NaN' AS DOUBLE)",
            "CAST('-inf' AS DOUBLE)",
        ],
        &[
            json!(0.1),
            json!(-1.5e300),
            json!("NaN"),
            json!("-Infinity"),
        ],
    );
}

#[test]
fn decimal_round_trips_as_text() {
    round_trip(
        "DECIMAL(12,3)",
        "DECIMAL(12,3)",
        &["12345.678", "-0.5", "'999999999.999'"],
        &[json!("12345.678"), json!("-0.500"), json!("999999999.999")],
    );
}

#[test]
fn text_round_trips() {
    round_trip(
        "TEXT",
        "TEXT",
        &["'héllo ''quoted'' 🚀'", "''", "'line1\nline2'"],
        &[json!("héllo 'quoted' 🚀"), json!(""), json!("line1\nline2")],
    );
}

#[test]
fn bytea_round_trips_as_base64() {
    round_trip(
        "BYTEA",
        "BYTEA",
        &["X'DEADBEEF00'", "X''"],
        &[json!("3q2+7wA="), json!("")],
    );
}

#[test]
fn date_round_trips() {
    round_trip(
        "DATE",
        "DATE",
        &["'2025-01-23'", "'1969-12-31'"],
        &[json!("2025-01-23"), json!("1969-12-31")],
    );
}

#[test]
fn time_round_trips() {
    round_trip(
        "TIME",
        "TIME",
        &["'10:00:00.123'", "'23:59:59.999999'", "'00:00:00'"],
        &[
            json!("10:00:00.123"),
            json!("23:59:59.999999"),
            json!("00:00:00"),
        ],
    );
}

#[test]
fn timestamp_round_trips() {
    round_trip(
        "TIMESTAMP",
        "TIMESTAMP",
        &[
            "'2025-01-23T10:00:00.123'",
            "'2025-01-23 10:00:00.123456'",
            "'1960-06-01T00:00:00'",
        ],
        &[
            json!("2025-01-23T10:00:00.123"),
            json!("2025-01-23T10:00:00.123456"),
            json!("1960-06-01T00:00:00"),
        ],
    );
}

#[test]
fn timestamptz_round_trips_in_utc() {
    round_trip(
        "TIMESTAMPTZ",
        "TIMESTAMPTZ",
        &["'2025-01-23T10:00:00.123Z'", "'2025-01-23T12:00:00+02:00'"],
        &[
            json!("2025-01-23T10:00:00.123Z"),
            json!("2025-01-23T10:00:00Z"),
        ],
    );
}

#[test]
fn json_round_trips_and_invalid_json_is_refused() {
    round_trip(
        "JSON",
        "JSON",
        &[r#"'{"a":[1,2,{"b":null}]}'"#, "'42'"],
        &[json!(r#"{"a":[1,2,{"b":null}]}"#), json!("42")],
    );
    let s = TestServer::start();
    s.root("CREATE TABLE j (id INT PRIMARY KEY, v JSON)");
    let r = s.sql_as(
        &kalamdb_tests::Auth::root(),
        "INSERT INTO j VALUES (1, '{not json')",
    );
    assert_eq!((r.status, r.code()), (400, "TYPE_MISMATCH"), "{}", r.body);
}

#[test]
fn uuid_round_trips_and_invalid_uuid_is_refused() {
    round_trip(
        "UUID",
        "UUID",
        &["'0192f2a8-3b4c-7def-8123-456789abcdef'"],
        &[json!("0192f2a8-3b4c-7def-8123-456789abcdef")],
    );
    let s = TestServer::start();
    s.root("CREATE TABLE u (id INT PRIMARY KEY, v UUID)");
    let r = s.sql_as(
        &kalamdb_tests::Auth::root(),
        "INSERT INTO u VALUES (1, 'not-a-uuid')",
    );
    assert_eq!((r.status, r.code()), (400, "TYPE_MISMATCH"), "{}", r.body);
}

#[test]
fn varchar_is_text_and_unknown_types_are_unsupported() {
    let s = TestServer::start();
    s.root("CREATE TABLE v (id INT PRIMARY KEY, name VARCHAR(20))");
    let r = s.root("DESCRIBE TABLE v");
    assert_eq!(r.rows(0)[1][1], "TEXT");
    let r = s.sql_as(
        &kalamdb_tests::Auth::root(),
        "CREATE TABLE bad (id INT, g GEOMETRY)",
    );
    assert_eq!((r.status, r.code()), (400, "UNSUPPORTED"), "{}", r.body);
}
