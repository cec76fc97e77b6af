//! The conformance suite: every tests/slt/*.slt file, in each mode (hot, flushed, restarted)
//! and both table variants (shared; user, as two users), against the real server. One test
//! per mode, so nextest runs the three side by side; each spreads its files over two servers.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use kalamdb_tests::slt::{create_users, run_file, slt_files, Mode, Variant};
use kalamdb_tests::TestServer;

/// Servers (and threads) per mode.
const WORKERS: usize = 2;

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("slt")
}

fn run_suite(mode: Mode) {
    let files = slt_files(&suite_dir());
    assert!(
        files.len() >= 10,
        "the suite holds only {} files",
        files.len()
    );
    let start = Instant::now();
    let next = Mutex::new(files.iter());
    let totals = Mutex::new((0usize, 0usize, Vec::<String>::new()));
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                let mut server = TestServer::start();
                create_users(&server);
                loop {
                    let Some(file) = next.lock().unwrap().next().cloned() else {
                        break;
                    };
                    for variant in Variant::ALL {
                        let out = run_file(&mut server, &file, mode, variant, false);
                        let mut t = totals.lock().unwrap();
                        t.0 += out.queries;
                        t.1 += out.statements;
                        t.2.extend(out.failures);
                    }
                }
            });
        }
    });
    let (queries, statements, failures) = totals.into_inner().unwrap();
    eprintln!(
        "slt {}: {} files, {queries} queries and {statements} statements (both variants), {:.1} s",
        mode.name(),
        files.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn slt_suite_with_every_row_hot() {
    run_suite(Mode::Hot);
}

#[test]
fn slt_suite_with_a_flush_after_every_write() {
    run_suite(Mode::Flushed);
}

#[test]
fn slt_suite_after_a_restart_at_the_end_of_setup() {
    run_suite(Mode::Restarted);
}
