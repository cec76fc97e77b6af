//! Bounded execution, the one way a statement's work runs: on the query runtime, charged to
//! its memory account, within its row limit, stopped at its deadline.

use super::session::StatementSession;
use crate::planning::errors::from_datafusion;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use kalamdb_core::{Account, Charged, Error, Result};
use std::sync::Arc;

use super::limits::*;
use super::router::Engine;

impl Engine {
    /// Run a plan to completion on the query runtime, within the row limit, the memory limit
    /// (what the work allocates, counted at the allocator: kalamdb_core::memory) and by the
    /// statement's deadline (its start plus the statement timeout: planning and waiting for a
    /// lock count). At the deadline the execution is aborted (dropping DataFusion's streams
    /// cancels it).
    ///
    /// `fallback` is the statement's session and plan when the plan holds subqueries: if
    /// DataFusion cannot plan the statement with its own decorrelation of them, it is planned
    /// again with every subquery evaluated by KalamDB (crate::planning::subquery, ADR 0007).
    pub(super) async fn collect_bounded(
        &self,
        df: DataFrame,
        fallback: Option<(Arc<StatementSession>, LogicalPlan)>,
        session: &StatementSession,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, usize)> {
        let account = session.account().clone();
        let fitted = Arc::new(session.clone());
        let max_rows = self.limits.max_result_rows;
        let work = async move {
            let (state, plan) = df.into_parts();
            let (physical, mut state) = match (state.create_physical_plan(&plan).await, fallback) {
                (Ok(p), _) => (p, state),
                (Err(first), Some((session, plan))) => {
                    tracing::debug!(error = %first, "planning again with every subquery evaluated per row");
                    let state = session.evaluating_all_subqueries().state();
                    (
                        state
                            .create_physical_plan(&plan)
                            .await
                            .map_err(from_datafusion)?,
                        state,
                    )
                }
                (Err(e), None) => return Err(from_datafusion(e)),
            };
            // A wide constant is repeated in every row (StatementSession::fit_batches).
            let rows =
                fitted.batch_rows(crate::planning::guard::plan_widest_text_literal(&physical));
            if rows != state.config().batch_size() {
                let config = std::mem::take(state.config_mut());
                *state.config_mut() = config.with_batch_size(rows);
            }
            let task_ctx = Arc::new(TaskContext::from(&state));
            let schema = physical.schema();
            let mut stream = datafusion::physical_plan::execute_stream(physical, task_ctx)
                .map_err(from_datafusion)?;
            let mut batches = Vec::new();
            let mut row_count = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(from_datafusion)?;
                row_count += batch.num_rows();
                if row_count > max_rows {
                    return Err(too_many_rows(max_rows));
                }
                batches.push(batch);
                account.check()?;
            }
            Ok((schema, batches, row_count))
        };
        self.on_query_runtime(session, work).await
    }

    /// Run a statement's work on the query runtime, charged to its account, until its
    /// deadline: then the task is aborted (at its next await) and the statement is TIMEOUT.
    /// A panic of the work is the query's error (errors::from_panic), not the server's.
    pub(super) async fn on_query_runtime<T: Send + 'static>(
        &self,
        session: &StatementSession,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.run_until(
            session.account().clone(),
            session.deadline(),
            session.timeout(),
            work,
        )
        .await
    }

    /// Parse a large statement on the query runtime's blocking threads, under the statement's
    /// deadline: sqlparser took 5 s (release) for 7 MB of `coalesce(NULL, ...)` arguments on
    /// an HTTP worker, and two such requests held both workers (and /health) for as long. It
    /// cannot be interrupted; the answer (TIMEOUT) comes at the deadline and the work ends with
    /// the parse.
    pub(super) async fn off_the_http_workers<T: Send + 'static>(
        &self,
        started: std::time::Instant,
        timeout: std::time::Duration,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let runtime = self.query_runtime()?;
        // A blocking thread, not a query worker: two long parses on the two workers held every
        // other statement's planning and execution until they ended.
        let deadline = started + timeout;
        let permit = match tokio::time::timeout_at(
            deadline.into(),
            self.large_parses.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Error::Internal("the parse semaphore is closed".into())),
            Err(_) => return Err(timed_out(timeout)),
        };
        let account = Account::new(&self.query_heap);
        // The permit goes with the work: an abandoned parse still holds it until it ends.
        let task = runtime.spawn_blocking(move || {
            let _permit = permit;
            account.charged(work)
        });
        super::deadline::until_deadline(deadline, timeout, task, None).await
    }

    pub(super) async fn run_until<T: Send + 'static>(
        &self,
        account: Arc<Account>,
        deadline: std::time::Instant,
        timeout: std::time::Duration,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let task = self.query_runtime()?.spawn(Charged::new(account, work));
        super::deadline::until_deadline(deadline, timeout, task, None).await
    }

    pub(super) fn query_runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.query_runtime
            .as_ref()
            .ok_or_else(|| Error::Internal("the query runtime is shut down".into()))
    }
}
