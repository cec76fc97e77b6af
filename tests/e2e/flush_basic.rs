//! Flush jobs: USER and SHARED tables move to Parquet, the job row tells what happened, and
//! queries see the same rows afterwards.

use std::path::Path;

use arrow::array::{Array, Int64Array};
use kalamdb_tests::{Auth, TestServer};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

/// Parquet files of one scope directory, sorted.
fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The BIGINT `column` of every row in a Parquet file, read with the arrow/parquet crates.
fn parquet_i64_column(file: &Path, column: &str) -> Vec<i64> {
    let f = std::fs::File::open(file).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}"));
        let a = col.as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend((0..a.len()).map(|i| a.value(i)));
    }
    out
}

fn result(job: &serde_json::Map<String, Value>) -> Value {
    serde_json::from_str(job["result"].as_str().expect("result text")).unwrap()
}

fn ids(s: &TestServer, who: &Auth, table: &str) -> Vec<i64> {
    s.sql_as(who, &format!("SELECT id FROM {table} ORDER BY id"))
        .ok()
        .rows(0)
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect()
}

#[test]
fn flush_single_user_table_writes_parquet_and_keeps_rows_queryable() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let alice = s.create_user("alice", "user");
    s.sql_as(
        &alice,
        "INSERT INTO app.notes VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .ok();
    let job = s.flush_wait("app.notes");
    assert_eq!(job["status"], "completed", "{job:?}");
    assert_eq!(job["error_message"], Value::Null);
    let r = result(&job);
    assert_eq!(r["rows_flushed"], 3);
    assert_eq!(r["users_processed"], 1);
    assert_eq!(r["users_failed"], 0);
    assert_eq!(r["files_written"], 1);
    assert!(r["bytes_written"].as_u64().unwrap() > 0);
    assert_eq!(r["errors"], json!([]));
    let files = parquet_files(&s.storage_dir().join("app/notes/alice"));
    assert_eq!(files.len(), 1, "{files:?}");
    // Segment 0 of the scope, named with the highest seq of its rows (never reused: ADR 0011).
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    let seq = name
        .strip_prefix("batch-0-")
        .and_then(|r| r.strip_suffix(".parquet"))
        .unwrap_or_else(|| panic!("segment name {name}"));
    assert_eq!(
        i64::from_str_radix(seq, 16).ok(),
        parquet_i64_column(&files[0], "_seq").into_iter().max(),
        "{name}"
    );
    assert_eq!(parquet_i64_column(&files[0], "id"), vec![1, 2, 3]);
    assert_eq!(ids(&s, &alice, "app.notes"), vec![1, 2, 3]);
    let t =
        s.root("SELECT buffered_rows, flushed_rows FROM system.tables WHERE table_name = 'notes'");
    assert_eq!(t.rows(0), vec![vec![json!(0), json!(3)]]);
    // Hot and cold merge: new rows, updates and deletes of flushed rows.
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (4, 'd')")
        .ok();
    s.sql_as(&alice, "UPDATE app.notes SET body = 'B' WHERE id = 2")
        .ok();
    s.sql_as(&alice, "DELETE FROM app.notes WHERE id = 3").ok();
    let r = s.sql_as(
        &Auth::user("alice", "alice-pw"),
        "INSERT INTO app.notes VALUES (1, 'dup')",
    );
    assert_eq!(
        (r.status, r.code()),
        (409, "CONSTRAINT_VIOLATION"),
        "flushed key still counts: {}",
        r.body
    );
    let want = vec![
        vec![json!(1), json!("a")],
        vec![json!(2), json!("B")],
        vec![json!(4), json!("d")],
    ];
    assert_eq!(
        s.sql_as(&alice, "SELECT id, body FROM app.notes ORDER BY id")
            .ok()
            .rows(0),
        want
    );
    // A second flush writes a second segment; the tombstone keeps hiding row 3.
    let job = s.flush_wait("app.notes");
    assert_eq!(result(&job)["rows_flushed"], 3, "{job:?}");
    assert_eq!(
        parquet_files(&s.storage_dir().join("app/notes/alice")).len(),
        2
    );
    assert_eq!(
        s.sql_as(&alice, "SELECT id, body FROM app.notes ORDER BY id")
            .ok()
            .rows(0),
        want
    );
    // Re-inserting a deleted, flushed key works.
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (3, 'again')")
        .ok();
    assert_eq!(ids(&s, &alice, "app.notes"), vec![1, 2, 3, 4]);
}

#[test]
fn flush_multi_user_table_writes_one_file_per_user() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    s.sql_as(
        &alice,
        "INSERT INTO app.notes VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .ok();
    s.sql_as(&bob, "INSERT INTO app.notes VALUES (1, 'x'), (10, 'y')")
        .ok();
    let job = s.flush_wait("app.notes");
    let r = result(&job);
    assert_eq!(
        (
            r["rows_flushed"].clone(),
            r["users_processed"].clone(),
            r["files_written"].clone()
        ),
        (json!(5), json!(2), json!(2))
    );
    assert_eq!(
        parquet_i64_column(
            &parquet_files(&s.storage_dir().join("app/notes/alice"))[0],
            "id"
        ),
        vec![1, 2, 3]
    );
    assert_eq!(
        parquet_i64_column(
            &parquet_files(&s.storage_dir().join("app/notes/bob"))[0],
            "id"
        ),
        vec![1, 10]
    );
    assert_eq!(ids(&s, &alice, "app.notes"), vec![1, 2, 3]);
    assert_eq!(ids(&s, &bob, "app.notes"), vec![1, 10]);
}

#[test]
fn flush_shared_table() {
    let s = TestServer::start();
    s.root("CREATE TABLE prices (id BIGINT PRIMARY KEY, p DOUBLE)");
    s.root("INSERT INTO prices VALUES (1, 1.5), (2, 2.5)");
    let job = s.flush_wait("prices");
    assert_eq!(job["status"], "completed");
    let files = parquet_files(&s.storage_dir().join("default/prices/shared"));
    assert_eq!(parquet_i64_column(&files[0], "id"), vec![1, 2]);
    assert_eq!(
        s.root("SELECT sum(p) FROM prices").rows(0),
        vec![vec![json!(4.0)]]
    );
}

#[test]
fn flush_job_row_lifecycle_and_visibility() {
    let s = TestServer::start();
    s.root("CREATE USER TABLE t (id BIGINT PRIMARY KEY)");
    let svc = s.create_user("svc", "service");
    let user = s.create_user("u", "user");
    s.sql_as(&user, "INSERT INTO t VALUES (1)").ok();
    let r = s.sql_as(&svc, "STORAGE FLUSH TABLE default.t").ok();
    let job_id = r.body["results"][0]["job_id"].as_str().unwrap().to_string();
    assert!(job_id.starts_with("FL-") && job_id.len() == 15, "{job_id}");
    assert_eq!(
        r.body["results"][0]["message"],
        format!("Flush started for table 'default.t'. Job ID: {job_id}")
    );
    let job = s.wait_job(&job_id, 30);
    assert_eq!(job["job_type"], "flush");
    assert_eq!(job["status"], "completed");
    assert_eq!(job["namespace"], "default");
    assert_eq!(job["table_name"], "t");
    assert_eq!(job["created_by"], "svc");
    assert_eq!(job["attempt"], 1);
    assert_eq!(
        serde_json::from_str::<Value>(job["parameters"].as_str().unwrap()).unwrap()["trigger"],
        "manual"
    );
    for k in [
        "created_at",
        "started_at",
        "completed_at",
        "duration_ms",
        "node_id",
        "max_attempts",
    ] {
        assert!(!job[k].is_null(), "{k} is null: {job:?}");
    }
    // A user may not flush, and sees only jobs it created.
    let r = s.sql_as(&user, "STORAGE FLUSH TABLE default.t");
    assert_eq!((r.status, r.code()), (403, "PERMISSION_DENIED"));
    assert!(s
        .sql_as(&user, "SELECT * FROM system.jobs")
        .ok()
        .rows(0)
        .is_empty());
    assert_eq!(
        s.sql_as(&svc, "SELECT job_id FROM system.jobs")
            .ok()
            .rows(0),
        vec![vec![json!(job_id)]]
    );
    // KILL JOB of an unknown id.
    let r = s.sql_as(&Auth::root(), "KILL JOB 'FL-000000000000'");
    assert_eq!((r.status, r.code()), (404, "JOB_NOT_FOUND"));
}

#[test]
fn flush_empty_missing_and_stream_tables() {
    let s = TestServer::start();
    s.root("CREATE TABLE empty_t (id BIGINT PRIMARY KEY)");
    let job = s.flush_wait("empty_t");
    assert_eq!(job["status"], "completed");
    assert_eq!(result(&job)["rows_flushed"], 0);
    let r = s.sql_as(&Auth::root(), "STORAGE FLUSH TABLE default.nope");
    assert_eq!((r.status, r.code()), (404, "TABLE_NOT_FOUND"), "{}", r.body);
    let r = s.sql_as(&Auth::root(), "STORAGE FLUSH TABLE nons.nope");
    assert_eq!(
        (r.status, r.code()),
        (404, "NAMESPACE_NOT_FOUND"),
        "{}",
        r.body
    );
    s.root("CREATE STREAM TABLE ev (id BIGINT PRIMARY KEY) WITH (TTL_SECONDS = 60)");
    let r = s.sql_as(&Auth::root(), "STORAGE FLUSH TABLE ev");
    assert_eq!((r.status, r.code()), (400, "UNSUPPORTED"), "{}", r.body);
    // Only the empty table's job exists.
    assert_eq!(
        s.root("SELECT count(*) FROM system.jobs").rows(0),
        vec![vec![json!(1)]]
    );
}

#[test]
fn flush_all_starts_one_job_per_table_with_buffered_rows() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app; CREATE TABLE app.a (id BIGINT PRIMARY KEY); CREATE TABLE app.b (id BIGINT PRIMARY KEY); CREATE TABLE app.c (id BIGINT PRIMARY KEY)");
    s.root("INSERT INTO app.a VALUES (1); INSERT INTO app.b VALUES (2)");
    let r = s.root("STORAGE FLUSH ALL IN app");
    let ids = r.body["results"][0]["job_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2, "{}", r.body);
    for id in ids {
        assert_eq!(s.wait_job(id.as_str().unwrap(), 30)["status"], "completed");
    }
}

#[test]
fn flush_policy_starts_jobs_by_row_count() {
    let s = TestServer::start();
    s.root("CREATE TABLE pol (id BIGINT PRIMARY KEY) WITH (FLUSH_POLICY = 'rows:5')");
    s.root("INSERT INTO pol VALUES (1), (2), (3), (4), (5), (6)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = s.root("SELECT status, parameters, created_by FROM system.jobs");
        if let Some(row) = r.rows(0).first() {
            if row[0] == "completed" {
                assert_eq!(
                    serde_json::from_str::<Value>(row[1].as_str().unwrap()).unwrap()["trigger"],
                    "policy"
                );
                assert_eq!(row[2], "system");
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "policy did not flush");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        s.root("SELECT count(*) FROM pol").rows(0),
        vec![vec![json!(6)]]
    );
    assert_eq!(
        s.root("SELECT buffered_rows FROM system.tables WHERE table_name = 'pol'")
            .rows(0),
        vec![vec![json!(0)]]
    );
}

#[test]
fn flush_policy_starts_jobs_by_interval_and_finished_jobs_are_pruned() {
    let s = TestServer::start_with_env(&[("KALAMDB_JOBS_RETENTION_SECS", "2")]);
    s.root("CREATE TABLE tick (id BIGINT PRIMARY KEY) WITH (FLUSH_POLICY = 'interval:1')");
    s.root("INSERT INTO tick VALUES (1)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s
        .root("SELECT flushed_rows FROM system.tables WHERE table_name = 'tick'")
        .rows(0)[0][0]
        != json!(1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "interval policy did not flush"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The finished job disappears from system.jobs once past the 2 s retention.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !s.root("SELECT job_id FROM system.jobs").rows(0).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "finished job was not pruned"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(
        s.root("SELECT count(*) FROM tick").rows(0),
        vec![vec![json!(1)]]
    );
}
