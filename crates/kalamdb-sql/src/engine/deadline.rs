//! The one way a statement's work is held to its deadline: its task is awaited until then and
//! stopped at it (an async task is aborted at its next await; blocking work is told through a
//! flag it checks, and work that cannot check one runs to its end with its answer dropped).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kalamdb_core::{Error, Result};

use super::limits::timed_out;

/// A task's answer, or TIMEOUT (naming `timeout`) at `deadline`. A panic is the statement's
/// error (errors::from_panic), not the server's.
pub(crate) async fn until_deadline<T>(
    deadline: Instant,
    timeout: Duration,
    task: tokio::task::JoinHandle<Result<T>>,
    stop: Option<&AtomicBool>,
) -> Result<T> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(deadline.into(), task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_panic() => Err(crate::planning::errors::from_panic(e.into_panic())),
        Ok(Err(e)) => Err(Error::Internal(format!("statement task failed: {e}"))),
        Err(_) => {
            abort.abort();
            if let Some(stop) = stop {
                stop.store(true, Ordering::Relaxed);
            }
            Err(timed_out(timeout))
        }
    }
}
