//! `kalamdb-slt [--mode hot|flushed|restarted|all] [--variant shared|user|all] [--complete] FILE...`
//!
//! Starts a kalamdb-server (the debug build next to this binary, or `KALAMDB_SERVER_BIN`) on
//! a free port with a temporary data directory and runs the given .slt files, as `make test`
//! does (tests/e2e/slt.rs), printing every failure. `--complete` rewrites each file's expected
//! results from the server's answers (hot mode, shared variant): for writing new cases; check
//! every answer it writes against PostgreSQL or by hand before committing it.

use std::path::PathBuf;
use std::time::Instant;

use kalamdb_tests::slt::{create_users, run_file, Mode, Variant};
use kalamdb_tests::TestServer;

fn main() -> std::process::ExitCode {
    let mut modes = vec![Mode::Hot];
    let mut variants = vec![Variant::Shared];
    let mut complete = false;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mode" => {
                modes = match args.next().as_deref() {
                    Some("hot") => vec![Mode::Hot],
                    Some("flushed") => vec![Mode::Flushed],
                    Some("restarted") => vec![Mode::Restarted],
                    Some("all") => Mode::ALL.to_vec(),
                    other => return usage(&format!("unknown mode {other:?}")),
                }
            }
            "--variant" => {
                variants = match args.next().as_deref() {
                    Some("shared") => vec![Variant::Shared],
                    Some("user") => vec![Variant::User],
                    Some("all") => Variant::ALL.to_vec(),
                    other => return usage(&format!("unknown variant {other:?}")),
                }
            }
            "--complete" => complete = true,
            "-h" | "--help" => return usage(""),
            f => files.push(PathBuf::from(f)),
        }
    }
    if files.is_empty() {
        return usage("no files given");
    }
    let mut server = TestServer::start();
    create_users(&server);
    let mut failures = 0usize;
    for file in &files {
        if complete {
            let out = run_file(&mut server, file, Mode::Hot, Variant::Shared, true);
            for f in &out.failures {
                println!("{f}");
            }
            failures += out.failures.len();
            println!("completed {}", file.display());
            continue;
        }
        for &mode in &modes {
            for &variant in &variants {
                let start = Instant::now();
                let out = run_file(&mut server, file, mode, variant, false);
                if out.skipped {
                    println!(
                        "{} [{} {}]: skipped (shared-only)",
                        file.display(),
                        mode.name(),
                        variant.name()
                    );
                    continue;
                }
                for f in &out.failures {
                    println!("{f}");
                }
                failures += out.failures.len();
                println!(
                    "{} [{} {}]: {} queries, {} statements, {} failure(s), {:.1} s",
                    file.display(),
                    mode.name(),
                    variant.name(),
                    out.queries,
                    out.statements,
                    out.failures.len(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    if failures == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        println!("{failures} failure(s)");
        std::process::ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> std::process::ExitCode {
    if !problem.is_empty() {
        eprintln!("kalamdb-slt: {problem}");
    }
    eprintln!("usage: kalamdb-slt [--mode hot|flushed|restarted|all] [--variant shared|user|all] [--complete] FILE...");
    std::process::ExitCode::from(2)
}
