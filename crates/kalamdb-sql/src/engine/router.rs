//! The engine's front: a request's statements in order, each routed to what runs it.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use kalamdb_core::{Account, Db, Error, JobManager, QueryHeap, Result};

use super::session::StatementSession;
use crate::ddl;
use crate::fast::insert as fast_insert;
use crate::statement::parser::{parse_statement, KalamStatement, Parsed};
use crate::statement::placeholders::json_to_scalar;
use crate::statement::split::split_statements;

use super::limits::{defaults_within, Limits, LARGE_SQL_BYTES};
use super::output::{results_too_large, Caller, RequestOutcome, StatementOutput};

/// Executes SQL for callers.
pub struct Engine {
    pub(super) db: Arc<Db>,
    pub(super) jobs: Arc<JobManager>,
    /// Always Some until drop (a runtime may not be dropped inside async code: see Drop).
    pub(super) query_runtime: Option<tokio::runtime::Runtime>,
    pub(super) base_state: Arc<SessionState>,
    pub(super) limits: Limits,
    /// The heap bytes all running statements' work holds (kalamdb_core::memory), held to
    /// `limits.query_memory_bytes` like DataFusion's pool.
    pub(super) query_heap: Arc<QueryHeap>,
    /// Large parses at once (one per query thread): each can take hundreds of MB while tokens
    /// and syntax tree are built, and none can be interrupted.
    pub(super) large_parses: Arc<tokio::sync::Semaphore>,
    /// One lock per (table, scope) that UPDATE and DELETE statements hold from their read to
    /// their write, so concurrent read-modify-write statements on one scope serialise and no
    /// update is lost (ADR 0008).
    pub(super) dml_locks: parking_lot::Mutex<
        std::collections::HashMap<(u64, kalamdb_core::Scope), Arc<tokio::sync::Mutex<()>>>,
    >,
    /// One lock per account name: every request holds it shared for the account it runs as
    /// (and EXECUTE AS for its target) from its start to its end; DROP USER holds it
    /// exclusively, so no write of the account is in flight while its rows are purged and none
    /// starts after (the account is looked up again under the lock).
    pub(super) accounts:
        parking_lot::Mutex<std::collections::HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// The planner bypasses (fast_insert, fast_select) are taken; off only in the tests that
    /// hold them to the planned path (crate::fast::agreement).
    pub(super) fast_paths: bool,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.query_runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Engine {
    pub fn new(db: Arc<Db>, jobs: Arc<JobManager>, limits: Limits) -> Result<Engine> {
        // No spilling to the OS temp directory: a query that does not fit the memory pool
        // fails (INVALID_PARAMETER) instead of filling a disk the operator did not plan for.
        let runtime: Arc<RuntimeEnv> = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.query_memory_bytes, 1.0)
            .with_disk_manager_builder(
                datafusion::execution::disk_manager::DiskManagerBuilder::default()
                    .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Queries execute on their own threads, so CPU-heavy queries neither starve the HTTP
        // server nor delay the statement timeout, which runs on the server's runtime.
        let query_runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("kalamdb-query")
            .worker_threads(limits.query_threads.max(1))
            .thread_stack_size(64 * 1024 * 1024)
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))?;
        // KalamDB's PostgreSQL type rules run before DataFusion's type coercion (crate::planning::coercion).
        let mut analyzer_rules: Vec<
            Arc<dyn datafusion::optimizer::analyzer::AnalyzerRule + Send + Sync>,
        > = vec![Arc::new(crate::planning::coercion::PostgresTypeRules)];
        analyzer_rules.extend(datafusion::optimizer::Analyzer::new().rules);
        // ... and its value rules after it, when every operand has its type (crate::planning::checked).
        analyzer_rules.push(Arc::new(crate::planning::checked::PostgresValueRules));
        let mut base_state = SessionStateBuilder::new()
            .with_default_features()
            .with_runtime_env(runtime)
            .with_analyzer_rules(analyzer_rules)
            .build();
        use datafusion::execution::FunctionRegistry;
        let pool = base_state.runtime_env().memory_pool.clone();
        crate::planning::bounded_values::install(&mut base_state, limits.max_value_bytes, pool)?;
        crate::planning::checked_sum::install(&mut base_state)?;
        crate::planning::growing::install(&mut base_state)?;
        base_state
            .register_udf(Arc::new(crate::df::functions::snowflake_id_udf(
                db.seq.clone(),
            )))
            .map_err(|e| Error::Internal(e.to_string()))?;
        base_state
            .register_udf(Arc::new(crate::df::functions::uuid_v7_udf()))
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Engine {
            db,
            jobs,
            base_state: Arc::new(base_state),
            query_heap: QueryHeap::new(limits.query_memory_bytes),
            large_parses: Arc::new(tokio::sync::Semaphore::new(limits.query_threads.max(1))),
            limits,
            query_runtime: Some(query_runtime),
            dml_locks: Default::default(),
            accounts: Default::default(),
            fast_paths: true,
        })
    }

    /// The same engine with every planner bypass off (tests comparing the two paths).
    #[cfg(test)]
    pub(crate) fn planned_only(mut self) -> Engine {
        self.fast_paths = false;
        self
    }

    /// Run every statement of `sql` in order, stopping at the first error, in a session of
    /// its own: a transaction the request leaves open is rolled back (nothing of it written).
    pub async fn execute(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[serde_json::Value],
    ) -> RequestOutcome {
        let mut session = super::transaction::Session::new();
        self.execute_in(&mut session, caller, sql, params).await
    }

    /// Run every statement of `sql` in order in `session`, stopping at the first error (which
    /// aborts the session's transaction, if one is open).
    // long: the request's checks, its account lease and the statement loop with the results'
    // memory accounting.
    pub async fn execute_in(
        &self,
        session: &mut super::transaction::Session,
        caller: &Caller,
        sql: &str,
        params: &[serde_json::Value],
    ) -> RequestOutcome {
        let mut outcome = RequestOutcome {
            results: Vec::new(),
            error: None,
            held: None,
        };
        let (statements, params) = match self.check_request(caller, sql, params) {
            Ok(checked) => checked,
            Err(e) => {
                outcome.error = Some((0, e));
                return outcome;
            }
        };
        let _account = match self
            .hold_account(&caller.principal.user_id, Error::Unauthorized)
            .await
        {
            Ok(lease) => lease,
            Err(e) => {
                outcome.error = Some((0, e));
                return outcome;
            }
        };
        // The request's namespace is where unqualified names resolve, like a search path: it is
        // looked up when a statement names a table, so a request may create it first.
        // What the results hold is what the response renders (several times over, as text):
        // held to the query memory limit too, across the request's statements.
        // Other requests' results count too: they are held beside the running queries until
        // rendered, so those of many concurrent requests stay under the limit together.
        let held = Account::new(&self.query_heap);
        outcome.held = Some(held.clone());
        let mut result_bytes = 0usize;
        for (i, stmt) in statements.iter().enumerate() {
            let result = match super::transaction::control(stmt) {
                Some(Ok(control)) => {
                    self.run_control(session, control, std::time::Instant::now())
                        .await
                }
                Some(Err(e)) => Err(e),
                None => {
                    let caller = caller.in_session(session);
                    match self.check_transaction(&caller) {
                        Ok(()) => self.execute_statement(&caller, stmt, &params, true).await,
                        Err(e) => Err(e),
                    }
                }
            };
            if result.is_err() {
                session.failed();
            }
            match result {
                Ok(out) => {
                    let bytes = out.bytes();
                    result_bytes += bytes;
                    held.hold(bytes);
                    if result_bytes > self.limits.query_memory_bytes || held.check().is_err() {
                        outcome.error = Some((
                            i,
                            results_too_large(result_bytes, self.limits.query_memory_bytes),
                        ));
                        break;
                    }
                    outcome.results.push(out)
                }
                Err(e) => {
                    outcome.error = Some((i, e));
                    break;
                }
            }
        }
        outcome
    }

    /// A request's statements and params, once it is within the limits.
    fn check_request<'s>(
        &self,
        caller: &Caller,
        sql: &'s str,
        params: &[serde_json::Value],
    ) -> Result<(Vec<&'s str>, Vec<ScalarValue>)> {
        let statements = split_statements(sql);
        if statements.is_empty() {
            return Err(Error::invalid_sql("the request contains no SQL statement"));
        }
        if statements.len() > self.limits.max_statements {
            return Err(Error::InvalidParameter(format!(
                "a request may hold at most {} statements; this one has {}",
                self.limits.max_statements,
                statements.len()
            )));
        }
        if let Some(asked) = caller.timeout {
            if asked > self.limits.max_statement_timeout || asked.is_zero() {
                return Err(Error::InvalidParameter(format!(
                    "timeout_ms must be from 1 to {} (limits.max_statement_timeout_secs); it is {}",
                    self.limits.max_statement_timeout.as_millis(),
                    asked.as_millis()
                )));
            }
        }
        if !params.is_empty() && statements.len() > 1 {
            return Err(Error::InvalidParameter(
                "params bind a single statement; this request has several".into(),
            ));
        }
        let params = params.iter().map(json_to_scalar).collect::<Result<_>>()?;
        Ok((statements, params))
    }

    async fn execute_statement(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[ScalarValue],
        allow_execute_as: bool,
    ) -> Result<StatementOutput> {
        let in_transaction = caller.transaction.is_some();
        if params.is_empty() && self.fast_paths && !in_transaction {
            if let Some(rows) = fast_insert::from_text(sql) {
                if let Some(out) = self.write_literal_rows(caller, rows).await {
                    return out;
                }
            }
        }
        // The statement's time runs from here: parsing counts against its timeout.
        let started = std::time::Instant::now();
        let parsed = if sql.len() > LARGE_SQL_BYTES {
            let text = sql.to_string();
            self.off_the_http_workers(started, self.statement_timeout(caller), move || {
                parse_statement(&text)
            })
            .await?
        } else {
            parse_statement(sql)?
        };
        let stmt = match parsed {
            Parsed::Kalam(stmt) if in_transaction && !stmt.reads_only() => {
                return Err(Self::refused_in_transaction(stmt.kind()))
            }
            Parsed::Kalam(stmt) => stmt,
            Parsed::Sql(tokens) => {
                return self
                    .execute_datafusion(caller, tokens, params, started)
                    .await
            }
        };
        match stmt {
            KalamStatement::ExecuteAs { user_id, statement } => {
                if !allow_execute_as {
                    return Err(Error::invalid_sql("EXECUTE AS cannot be nested"));
                }
                self.execute_as(caller, &user_id, &statement, params).await
            }
            KalamStatement::FlushTable { table, wait } => {
                self.flush_table(caller, &table, wait, started).await
            }
            KalamStatement::FlushAll { namespace, wait } => {
                self.flush_all(caller, namespace.as_deref(), wait, started)
                    .await
            }
            KalamStatement::KillJob { job_id } => self.kill_job(caller, job_id),
            KalamStatement::ShowFunctions => self.show_functions(),
            // Acting as a user is for that user's data: an impersonator never gets what the
            // user may do to its own account (its password) nor anything on other accounts.
            KalamStatement::CreateUser { .. }
            | KalamStatement::AlterUser { .. }
            | KalamStatement::DropUser { .. }
                if !allow_execute_as =>
            {
                Err(Error::PermissionDenied(
                    "EXECUTE AS USER may not create, alter or drop users, passwords or roles"
                        .into(),
                ))
            }
            stmt => {
                if !params.is_empty() {
                    return Err(Error::InvalidParameter(
                        "params are only accepted by queries and DML statements".into(),
                    ));
                }
                self.execute_ddl(caller, stmt).await
            }
        }
    }

    /// EXECUTE AS USER: the statement runs as `user_id` (checked by the access rules), under
    /// the target's account as the caller's is held.
    async fn execute_as(
        &self,
        caller: &Caller,
        user_id: &str,
        statement: &str,
        params: &[ScalarValue],
    ) -> Result<StatementOutput> {
        let target = self.impersonate(caller, user_id)?;
        let _account = if user_id == caller.principal.user_id {
            None
        } else {
            Some(self.hold_account(user_id, Error::InvalidParameter).await?)
        };
        Box::pin(self.execute_statement(&target, statement, params, false)).await
    }

    /// KILL JOB (the rule: `Principal::check_kill_job`, asked by the job manager).
    fn kill_job(&self, caller: &Caller, job_id: String) -> Result<StatementOutput> {
        let job = self.jobs.kill(&job_id, &caller.principal)?;
        Ok(StatementOutput::Job {
            message: if job.status.is_finished() {
                format!("Job '{job_id}' already ended with status {}", job.status)
            } else {
                format!("Job '{job_id}' will stop at the next user boundary")
            },
            job_ids: vec![job_id],
            job: None,
        })
    }

    /// DDL, users and SHOW/DESCRIBE (crate::ddl), off the async workers (catalog writes are
    /// synced). DROP USER waits for the account's requests in flight and keeps new ones out.
    async fn execute_ddl(&self, caller: &Caller, stmt: KalamStatement) -> Result<StatementOutput> {
        let _exclusive = match &stmt {
            KalamStatement::DropUser { user_id, .. } => {
                if *user_id == caller.principal.user_id {
                    return Err(Error::InvalidParameter("a user cannot drop itself".into()));
                }
                Some(self.hold_account_exclusively(user_id).await?)
            }
            _ => None,
        };
        defaults_within(&stmt, self.limits.max_value_bytes)?;
        let db = self.db.clone();
        let caller = caller.clone();
        tokio::task::spawn_blocking(move || ddl::execute(&db, &caller, stmt))
            .await
            .map_err(|e| Error::Internal(format!("statement task failed: {e}")))?
    }

    /// How long the caller's statements may run: the request's `timeout_ms`, else
    /// `limits.statement_timeout`.
    pub(super) fn statement_timeout(&self, caller: &Caller) -> std::time::Duration {
        caller.timeout.unwrap_or(self.limits.statement_timeout)
    }

    /// The DataFusion session one statement is planned and run with (crate::engine::session).
    pub(super) fn session_for(
        &self,
        caller: &Caller,
        with_rowid: bool,
        started: std::time::Instant,
    ) -> Arc<StatementSession> {
        StatementSession::new(
            self.base_state.clone(),
            self.db.clone(),
            caller.principal.clone(),
            caller.namespace.clone(),
            with_rowid,
            started + self.statement_timeout(caller),
            self.statement_timeout(caller),
            self.limits.max_result_rows,
            &self.query_heap,
            caller.transaction.clone(),
        )
    }
}
