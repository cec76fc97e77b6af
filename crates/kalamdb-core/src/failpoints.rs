//! Test-only fault injection for the flush protocol.
//!
//! Active only in debug builds (what `make test` builds) and only when the environment
//! variable `KALAMDB_FAILPOINTS_FILE` names a file. The file is re-read at every check, so a
//! test can add and remove faults while the server runs. Each line is `name=value`:
//!
//! ```text
//! flush.scope_error=alice,bob      # flushing these scopes fails ("shared" for SHARED tables, * for all)
//! flush.pause_after_temp=30000     # sleep (ms) after the .tmp file is written and fsynced, before the rename
//! flush.pause_after_write=30000    # sleep (ms) after the segment file is renamed into place, before the commit
//! flush.pause_after_commit=30000   # sleep (ms) after the manifest commit
//! transaction.pause_before_commit=1000  # sleep (ms) at COMMIT, before its locks and checks
//! ```
//!
//! Release builds compile the checks to nothing that can be switched on.

use std::time::Duration;

use crate::error::{Error, Result};

fn value(name: &str) -> Option<String> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let path = std::env::var_os("KALAMDB_FAILPOINTS_FILE")?;
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// Fail with an injected error if `name` lists `scope` (or `*`).
pub fn fail_for_scope(name: &str, scope: &str) -> Result<()> {
    if let Some(v) = value(name) {
        if v.split(',').any(|s| s.trim() == scope || s.trim() == "*") {
            return Err(Error::Internal(format!(
                "injected failure ({name}) for scope '{scope}'"
            )));
        }
    }
    Ok(())
}

/// The pause `name` gives, if any (for async code, which must not block its thread).
pub fn pause_of(name: &str) -> Option<Duration> {
    value(name)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// Sleep for the number of milliseconds `name` gives, if any.
pub fn pause(name: &str) {
    if let Some(ms) = value(name).and_then(|v| v.parse::<u64>().ok()) {
        tracing::warn!(failpoint = name, ms, "pausing at failpoint");
        std::thread::sleep(Duration::from_millis(ms));
    }
}
