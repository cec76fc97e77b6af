//! Flush failures: complete and partial failure, retry, a real I/O failure, concurrent
//! requests, KILL JOB, and kill -9 in the middle of a flush. In every case each row is either
//! hot or in a committed Parquet file, never both, never neither.

use std::time::Duration;

use kalamdb_tests::{Auth, TestServer};
use serde_json::{json, Value};

fn result(job: &serde_json::Map<String, Value>) -> Value {
    serde_json::from_str(job["result"].as_str().expect("result text")).unwrap()
}

/// Two users with rows in app.notes; returns their credentials.
fn two_users(s: &TestServer) -> (Auth, Auth) {
    s.root("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let alice = s.create_user("alice", "user");
    let bob = s.create_user("bob", "user");
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (1, 'a1'), (2, 'a2')")
        .ok();
    s.sql_as(
        &bob,
        "INSERT INTO app.notes VALUES (1, 'b1'), (2, 'b2'), (3, 'b3')",
    )
    .ok();
    (alice, bob)
}

fn count(s: &TestServer, who: &Auth) -> i64 {
    s.sql_as(who, "SELECT count(*) FROM app.notes").ok().rows(0)[0][0]
        .as_i64()
        .unwrap()
}

fn segment_count(s: &TestServer, user: &str) -> usize {
    std::fs::read_dir(s.storage_dir().join("app/notes").join(user))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn complete_failure_is_failed_with_every_users_error_and_keeps_rows() {
    let s = TestServer::start_with_env(&[("KALAMDB_JOBS_MAX_ATTEMPTS", "1")]);
    let (alice, bob) = two_users(&s);
    s.set_failpoints("flush.scope_error=*");
    let job = s.flush_wait("app.notes");
    assert_eq!(job["status"], "failed", "{job:?}");
    let msg = job["error_message"].as_str().unwrap();
    assert!(msg.starts_with("Flush failed for all users: "), "{msg}");
    assert!(
        msg.contains("user alice: ") && msg.contains("user bob: "),
        "{msg}"
    );
    let r = result(&job);
    assert_eq!(
        (r["rows_flushed"].clone(), r["users_failed"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(r["errors"].as_array().unwrap().len(), 2);
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    assert_eq!(
        (segment_count(&s, "alice"), segment_count(&s, "bob")),
        (0, 0)
    );
}

#[test]
fn partial_failure_is_completed_listing_the_failed_user_and_keeps_rows() {
    let s = TestServer::start_with_env(&[("KALAMDB_JOBS_MAX_ATTEMPTS", "1")]);
    let (alice, bob) = two_users(&s);
    s.set_failpoints("flush.scope_error=bob");
    let job = s.flush_wait("app.notes");
    assert_eq!(job["status"], "completed", "{job:?}");
    let r = result(&job);
    assert_eq!(r["rows_flushed"], 2);
    assert_eq!(r["users_processed"], 2);
    assert_eq!(r["users_failed"], 1);
    assert_eq!(r["errors"][0]["user_id"], "bob");
    assert!(
        job["error_message"]
            .as_str()
            .unwrap()
            .contains("user bob: "),
        "{job:?}"
    );
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    assert_eq!(
        (segment_count(&s, "alice"), segment_count(&s, "bob")),
        (1, 0)
    );
    // With the fault gone, the next flush moves bob's rows exactly once.
    s.set_failpoints("");
    let job = s.flush_wait("app.notes");
    assert_eq!(
        (job["status"].clone(), result(&job)["rows_flushed"].clone()),
        (json!("completed"), json!(3))
    );
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    assert_eq!(
        s.root("SELECT buffered_rows, flushed_rows FROM system.tables WHERE table_name = 'notes'")
            .rows(0),
        vec![vec![json!(0), json!(5)]]
    );
}

#[test]
fn retry_flushes_failed_users_once_the_fault_is_removed() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_JOBS_MAX_ATTEMPTS", "5"),
        ("KALAMDB_JOBS_RETRY_BACKOFF_MS", "400"),
    ]);
    let (alice, bob) = two_users(&s);
    s.set_failpoints("flush.scope_error=bob");
    let r = s.root("STORAGE FLUSH TABLE app.notes");
    let id = r.body["results"][0]["job_id"].as_str().unwrap().to_string();
    // Wait until the job is retrying, then remove the fault.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.job(&id).unwrap()["status"] != "retrying" {
        assert!(
            std::time::Instant::now() < deadline,
            "job never retried: {:?}",
            s.job(&id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.set_failpoints("");
    let job = s.wait_job(&id, 60);
    assert_eq!(job["status"], "completed", "{job:?}");
    assert!(job["attempt"].as_i64().unwrap() >= 2);
    assert_eq!(job["error_message"], Value::Null);
    let r = result(&job);
    assert_eq!(
        (r["rows_flushed"].clone(), r["users_failed"].clone()),
        (json!(5), json!(0))
    );
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    assert_eq!(
        (segment_count(&s, "alice"), segment_count(&s, "bob")),
        (1, 1)
    );
}

#[test]
fn a_file_in_place_of_the_users_directory_fails_that_user_cleanly() {
    let s = TestServer::start_with_env(&[("KALAMDB_JOBS_MAX_ATTEMPTS", "1")]);
    let (alice, bob) = two_users(&s);
    let blocker = s.storage_dir().join("app/notes/bob");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"not a directory").unwrap();
    let job = s.flush_wait("app.notes");
    assert_eq!(job["status"], "completed", "{job:?}");
    assert_eq!(result(&job)["errors"][0]["user_id"], "bob");
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    std::fs::remove_file(&blocker).unwrap();
    let job = s.flush_wait("app.notes");
    assert_eq!(
        (job["status"].clone(), result(&job)["rows_flushed"].clone()),
        (json!("completed"), json!(3))
    );
    assert_eq!(count(&s, &bob), 3);
}

#[test]
fn concurrent_flush_requests_share_one_job_and_kill_cancels_between_users() {
    // One scope at a time, so the kill lands between the two users (with the default
    // parallelism both users' flushes would already be running, and running scopes finish).
    let s = TestServer::start_with_env(&[("KALAMDB_FLUSH_PARALLELISM", "1")]);
    let (alice, bob) = two_users(&s);
    // Slow every segment commit down so the job is still running for the second request.
    s.set_failpoints("flush.pause_after_commit=1500");
    let a = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"].clone();
    let b = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"].clone();
    assert_eq!(a, b, "a second request gets the running job's id");
    assert_eq!(
        s.root("SELECT count(*) FROM system.jobs").rows(0),
        vec![vec![json!(1)]]
    );
    let id = a.as_str().unwrap();
    s.root(&format!("KILL JOB '{id}'"));
    let job = s.wait_job(id, 30);
    assert_eq!(job["status"], "cancelled", "{job:?}");
    // Whatever was committed stays flushed, the rest stays buffered: nothing lost.
    assert!(result(&job)["rows_flushed"].as_u64().unwrap() < 5);
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
}

#[test]
fn kill9_in_the_middle_of_a_flush_loses_and_duplicates_nothing() {
    let mut s = TestServer::start();
    let (alice, bob) = two_users(&s);
    // The first segment file is written, then the flush stops before its manifest commit.
    s.set_failpoints("flush.pause_after_write=60000");
    let id = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // (Scopes flush in key order, which is not name order: whichever user comes first.)
    while segment_count(&s, "alice") + segment_count(&s, "bob") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "segment never written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.set_failpoints("");
    s.kill9_and_restart();
    // The uncommitted file is gone, the job is failed, every row is there exactly once.
    assert_eq!(segment_count(&s, "alice") + segment_count(&s, "bob"), 0);
    let job = s.job(&id).unwrap();
    assert_eq!(
        (job["status"].clone(), job["error_message"].clone()),
        (json!("failed"), json!("interrupted by restart"))
    );
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    // Again, killed right after the first commit: that user's rows are in Parquet only.
    s.set_failpoints("flush.pause_after_commit=60000");
    s.root("STORAGE FLUSH TABLE app.notes");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s
        .root("SELECT flushed_rows FROM system.tables WHERE table_name = 'notes'")
        .rows(0)[0][0]
        == json!(0)
    {
        assert!(std::time::Instant::now() < deadline, "no commit happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.set_failpoints("");
    s.kill9_and_restart();
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    let job = s.flush_wait("app.notes");
    assert_eq!(job["status"], "completed");
    assert_eq!((count(&s, &alice), count(&s, &bob)), (2, 3));
    let t =
        s.root("SELECT buffered_rows, flushed_rows FROM system.tables WHERE table_name = 'notes'");
    assert_eq!(t.rows(0), vec![vec![json!(0), json!(5)]]);
}

#[test]
fn parallel_flush_of_many_users_flushes_each_once_and_lists_each_failed_user() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_JOBS_MAX_ATTEMPTS", "1"),
        ("KALAMDB_FLUSH_PARALLELISM", "3"),
    ]);
    s.root("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let users: Vec<String> = (0..12).map(|i| format!("u{i:02}")).collect();
    for (i, u) in users.iter().enumerate() {
        s.root(&format!("CREATE USER '{u}' ROLE user"));
        let values: Vec<String> = (1..=i as i64 + 1)
            .map(|k| format!("({k}, '{u}-{k}')"))
            .collect();
        s.root(&format!(
            "EXECUTE AS USER '{u}' (INSERT INTO app.notes VALUES {})",
            values.join(", ")
        ))
        .ok();
    }
    s.set_failpoints("flush.scope_error=u03,u10");
    let job = s.flush_wait("app.notes");
    assert_eq!(job["status"], "completed", "{job:?}");
    let r = result(&job);
    // Users u00..u11 hold 1..12 rows; u03 (4 rows) and u10 (11 rows) fail.
    assert_eq!(
        (
            r["rows_flushed"].clone(),
            r["users_processed"].clone(),
            r["users_failed"].clone()
        ),
        (json!(78 - 4 - 11), json!(12), json!(2))
    );
    let mut failed: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_id"].as_str().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["u03", "u10"]);
    for (i, u) in users.iter().enumerate() {
        let segments = if u == "u03" || u == "u10" { 0 } else { 1 };
        assert_eq!(segment_count(&s, u), segments, "{u}");
        let rows = s
            .root(&format!(
                "EXECUTE AS USER '{u}' (SELECT count(*), min(body) FROM app.notes)"
            ))
            .ok();
        assert_eq!(
            rows.rows(0),
            vec![vec![json!(i as i64 + 1), json!(format!("{u}-1"))]],
            "{u}"
        );
    }
    s.set_failpoints("");
    let job = s.flush_wait("app.notes");
    assert_eq!(
        (job["status"].clone(), result(&job)["rows_flushed"].clone()),
        (json!("completed"), json!(15))
    );
    let t =
        s.root("SELECT buffered_rows, flushed_rows FROM system.tables WHERE table_name = 'notes'");
    assert_eq!(t.rows(0), vec![vec![json!(0), json!(78)]]);
}

/// A flush paused between writing a segment and committing it while its table is dropped:
/// the job ends `failed`, saying so, and claims no rows (it said completed, 200 rows).
#[test]
fn a_flush_across_drop_table_fails_and_claims_nothing() {
    let s = TestServer::start_with_env(&[("KALAMDB_JOBS_MAX_ATTEMPTS", "1")]);
    let (alice, _bob) = two_users(&s);
    s.set_failpoints("flush.pause_after_write=2500");
    let job = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(s.root("DROP TABLE app.notes").status, 200);
    s.set_failpoints("");
    let done = s.wait_job(&job, 30);
    assert_eq!(done["status"], json!("failed"), "{done:?}");
    assert!(
        done["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("dropped"),
        "{done:?}"
    );
    assert_eq!(result(&done)["rows_flushed"], json!(0), "{done:?}");
    // A table created again under the name starts empty, hot and cold.
    s.root("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    assert_eq!(count(&s, &alice), 0);
    assert_eq!(segment_count(&s, "alice"), 0);
}

/// A flush requested while the table's flush is being killed gets a job of its own that runs
/// after the dying one (it was given the dying job's id, "Flush started", and nothing ran).
#[test]
fn a_flush_requested_during_a_kill_gets_its_own_job_and_flushes() {
    let s = TestServer::start_with_env(&[("KALAMDB_FLUSH_PARALLELISM", "1")]);
    s.root("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let users: Vec<Auth> = (0..4)
        .map(|i| s.create_user(&format!("u{i}"), "user"))
        .collect();
    for u in &users {
        assert_eq!(
            s.sql_as(u, "INSERT INTO app.notes VALUES (1, 'x'), (2, 'y')")
                .status,
            200
        );
    }
    s.set_failpoints("flush.pause_after_write=2000");
    let first = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(600));
    let r = s.root(&format!("KILL JOB '{first}'"));
    assert_eq!(r.status, 200, "{}", r.body);
    s.set_failpoints("");
    let r = s.root("STORAGE FLUSH TABLE app.notes");
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.body["results"][0]["job_id"].as_str().unwrap().to_string();
    assert_ne!(second, first, "a new job, not the dying one: {}", r.body);
    let first_done = s.wait_job(&first, 30);
    assert_eq!(first_done["status"], json!("cancelled"), "{first_done:?}");
    let second_done = s.wait_job(&second, 30);
    assert_eq!(second_done["status"], json!("completed"), "{second_done:?}");
    let flushed = result(&first_done)["rows_flushed"].as_u64().unwrap()
        + result(&second_done)["rows_flushed"].as_u64().unwrap();
    assert_eq!(
        flushed, 8,
        "between them every row was flushed once: {first_done:?} {second_done:?}"
    );
    assert!(
        result(&second_done)["rows_flushed"].as_u64().unwrap() > 0,
        "{second_done:?}"
    );
    for u in &users {
        assert_eq!(count(&s, u), 2);
    }
}

/// DROP NAMESPACE CASCADE and DROP TABLE leave no directories behind (empty per-user
/// directories stayed).
#[test]
fn dropped_tables_and_namespaces_leave_no_directories() {
    let s = TestServer::start();
    let (_alice, _bob) = two_users(&s);
    s.root("CREATE SHARED TABLE app.shared_t (id INT PRIMARY KEY)");
    s.root("INSERT INTO app.shared_t VALUES (1)");
    assert_eq!(s.flush_wait("app.notes")["status"], json!("completed"));
    assert_eq!(s.flush_wait("app.shared_t")["status"], json!("completed"));
    assert!(s.storage_dir().join("app/notes/alice").is_dir());
    assert_eq!(s.root("DROP TABLE app.shared_t").status, 200);
    assert!(
        !s.storage_dir().join("app/shared_t").exists(),
        "the dropped table's directory is gone"
    );
    assert!(
        s.storage_dir().join("app/notes/alice").is_dir(),
        "the other table's stays"
    );
    assert_eq!(s.root("DROP NAMESPACE app CASCADE").status, 200);
    assert!(
        !s.storage_dir().join("app").exists(),
        "nothing of the namespace is left on disk"
    );
}

/// `STORAGE FLUSH ... WAIT` is held to the statement timeout: it waited for the job without
/// any bound, past the timeout every other statement keeps. At the deadline it answers
/// TIMEOUT naming the job, which goes on and completes; a request's `timeout_ms` raises the
/// bound (up to `limits.max_statement_timeout_secs`) and then the same WAIT gets the job's row.
#[test]
fn flush_wait_is_held_to_the_statement_timeout_and_timeout_ms_raises_it() {
    let s = TestServer::start_with_env(&[
        ("KALAMDB_LIMITS_STATEMENT_TIMEOUT_SECS", "1"),
        ("KALAMDB_LIMITS_MAX_STATEMENT_TIMEOUT_SECS", "20"),
    ]);
    let (alice, _bob) = two_users(&s);
    s.set_failpoints("flush.pause_after_write=2500");
    let started = std::time::Instant::now();
    let r = s.sql_as(&Auth::root(), "STORAGE FLUSH TABLE app.notes WAIT");
    assert_eq!((r.status, r.code()), (408, "TIMEOUT"), "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let job = r
        .message()
        .split_whitespace()
        .find(|w| w.starts_with("FL-"))
        .unwrap_or_else(|| panic!("the message names the job: {}", r.body))
        .to_string();
    s.set_failpoints("");
    let done = s.wait_job(&job, 30);
    assert_eq!(done["status"], json!("completed"), "{done:?}");
    assert_eq!(result(&done)["rows_flushed"], json!(5), "{done:?}");
    assert_eq!(count(&s, &alice), 2);

    // The same WAIT with a raised timeout ends with the job's row.
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (9, 'a9')")
        .ok();
    s.set_failpoints("flush.pause_after_write=1500");
    let r = s.request(
        &Auth::root(),
        json!({"sql": "STORAGE FLUSH TABLE app.notes WAIT", "timeout_ms": 15000}),
    );
    s.set_failpoints("");
    let r = r.ok();
    let message = r.body["results"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("finished with status completed"),
        "{}",
        r.body
    );
    assert_eq!(count(&s, &alice), 3);

    // Above the cap, zero, or not a number: refused before anything runs.
    for bad in [
        json!(20001),
        json!(0),
        json!("5000"),
        json!(-1),
        json!(1.5),
        json!(0.0),
        json!({}),
    ] {
        let r = s.request(&Auth::root(), json!({"sql": "SELECT 1", "timeout_ms": bad}));
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_PARAMETER"),
            "{bad}: {}",
            r.body
        );
    }
    // A whole number spelled as a float is a whole number.
    let r = s.request(
        &Auth::root(),
        json!({"sql": "SELECT 1", "timeout_ms": 1000.0}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Within the cap it also bounds a query: a short timeout stops a long one, and says
    // which setting it was.
    let r = s.request(
        &Auth::root(),
        json!({
            "sql": "SELECT count(*) FROM generate_series(1, 1000000) AS a(x) CROSS JOIN generate_series(1, 1000000) AS b(y)",
            "timeout_ms": 300
        }),
    );
    assert_eq!((r.status, r.code()), (408, "TIMEOUT"), "{}", r.body);
    assert!(r.message().contains("timeout_ms"), "{}", r.body);
    assert!(s.healthy());
}

/// A flush of a table created again under the name of one dropped during its flush is a job
/// of its own: it joined the dropped table's job (retrying against the name), answered that
/// job's failure and flushed nothing; a flush queued for the dropped table flushed the new one
/// under the old job. Now jobs are per table, not per name, and a dropped table's job stops
/// retrying and claims nothing it wrote.
#[test]
fn a_table_created_again_during_its_predecessors_flush_gets_its_own_flush() {
    let s = TestServer::start_with_env(&[("KALAMDB_JOBS_RETRY_BACKOFF_MS", "3000")]);
    let (alice, bob) = two_users(&s);
    // Bob's scope fails and is retried with backoff; alice's pauses before its commit.
    s.set_failpoints("flush.scope_error=bob\nflush.pause_after_write=1500");
    let old = s.root("STORAGE FLUSH TABLE app.notes").body["results"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(500));
    s.root("DROP TABLE app.notes");
    s.set_failpoints("");
    s.root("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    s.sql_as(&alice, "INSERT INTO app.notes VALUES (7, 'new')")
        .ok();
    s.sql_as(&bob, "INSERT INTO app.notes VALUES (8, 'new'), (9, 'new')")
        .ok();
    let r = s.root("STORAGE FLUSH TABLE app.notes WAIT");
    let new = r.body["results"][0]["job_id"].as_str().unwrap().to_string();
    assert_ne!(
        new, old,
        "the new table's flush joined the dropped table's job: {}",
        r.body
    );
    let done = s.wait_job(&new, 30);
    assert_eq!(done["status"], json!("completed"), "{done:?}");
    assert_eq!(result(&done)["rows_flushed"], json!(3), "{done:?}");
    let t =
        s.root("SELECT buffered_rows, flushed_rows FROM system.tables WHERE table_name = 'notes'");
    assert_eq!(t.rows(0), vec![vec![json!(0), json!(3)]]);
    // The dropped table's job failed, saying so, claiming nothing it wrote.
    let gone = s.wait_job(&old, 30);
    assert_eq!(gone["status"], json!("failed"), "{gone:?}");
    assert!(
        gone["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("dropped"),
        "{gone:?}"
    );
    for counter in ["rows_flushed", "files_written", "bytes_written"] {
        assert_eq!(result(&gone)[counter], json!(0), "{counter}: {gone:?}");
    }
    assert_eq!(count(&s, &alice), 1);
    assert_eq!(count(&s, &bob), 2);
}
