//! The statement executor: runs a request's statements in order for one caller.
//!
//! KalamDB statements ([`crate::parser`]) run against the catalog directly; everything else
//! is planned by DataFusion over a per-statement catalog bound to the caller
//! ([`StatementCatalog`]). INSERT/UPDATE/DELETE are planned by DataFusion too, but their rows
//! are written here, through the row store, as one atomic synced batch per statement.
//! Statements that would touch the server's files or settings are refused for all but
//! `system`.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use futures::StreamExt;
use kalamdb_core::access::Principal;
use kalamdb_core::catalog::{Role, TableKind, ROWID_COLUMN};
use kalamdb_core::db::Db;
use kalamdb_core::jobs::{FlushTrigger, JobManager};
use kalamdb_core::memory::{Account, Charged, QueryHeap};
use kalamdb_core::provider::KalamTable;
use kalamdb_core::rows::RowStore;
use kalamdb_core::{Error, Result};
use sqlparser::ast::Statement as SqlStatement;
use sqlparser::dialect::GenericDialect;

use crate::ddl;
use crate::errors::from_datafusion;
use crate::parser::{parse_statement, KalamStatement, Parsed};
use crate::session::StatementSession;
use crate::split::split_statements;
use crate::{fast_insert, fast_select};

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most statements in one request.
    pub max_statements: usize,
    /// Most rows one query may return.
    pub max_result_rows: usize,
    /// Memory DataFusion may use for all queries together, in bytes.
    pub query_memory_bytes: usize,
    /// Deepest SQL expression nesting the parser accepts.
    pub max_parser_recursion: usize,
    /// Longest a statement may spend reading (a query, or the read side of a DML statement).
    /// Writes are never interrupted once they start, so a timeout never hides a commit.
    pub statement_timeout: std::time::Duration,
    /// Threads that execute queries.
    pub query_threads: usize,
    /// Largest value a function that builds values from a count (`lpad`, `repeat`, `range`,
    /// ...) may build, in bytes (crate::bounded).
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_statements: 1000,
            max_result_rows: 1_000_000,
            query_memory_bytes: 1 << 30,
            max_parser_recursion: 50,
            statement_timeout: std::time::Duration::from_secs(30),
            query_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_value_bytes: 16 << 20,
        }
    }
}

impl StatementOutput {
    /// The bytes of the rows it holds (of each column's slice: a column repeated in a select
    /// list counts each time, as it is rendered each time).
    fn bytes(&self) -> usize {
        let batches = match self {
            StatementOutput::Rows { batches, .. } => batches,
            StatementOutput::Job {
                job: Some((_, batches)),
                ..
            } => batches,
            _ => return 0,
        };
        batches
            .iter()
            .flat_map(|b| b.columns())
            .map(|c| {
                c.to_data()
                    .get_slice_memory_size()
                    .unwrap_or_else(|_| c.get_array_memory_size())
            })
            .sum()
    }
}

/// SQL longer than this is parsed on the query runtime, under the statement's deadline
/// (shorter SQL parses in microseconds, where the hop would cost more than the parse).
const LARGE_SQL_BYTES: usize = 64 * 1024;

fn results_too_large(bytes: usize, limit: usize) -> Error {
    Error::InvalidParameter(format!(
        "the request's results hold {bytes} bytes, more than limits.query_memory_bytes ({limit} bytes, \
         for all running queries and the results they are sending) allows; select fewer rows or columns"
    ))
}

/// Who runs a request and where unqualified names resolve.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub namespace: String,
}

/// What one statement produced.
#[derive(Debug)]
pub enum StatementOutput {
    /// A query's rows.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        row_count: usize,
    },
    /// DML: rows affected.
    Affected { row_count: u64, message: String },
    /// DDL and commands.
    Message(String),
    /// A job command: the job ids it concerns and, for `WAIT`, the job's final system.jobs row.
    Job {
        message: String,
        job_ids: Vec<String>,
        job: Option<(SchemaRef, Vec<RecordBatch>)>,
    },
}

/// Results of a request: one output per successful statement, and the first error.
#[derive(Debug)]
pub struct RequestOutcome {
    pub results: Vec<StatementOutput>,
    /// Index of the failed statement (0-based) and its error.
    pub error: Option<(usize, Error)>,
    /// What the results hold, counted with the running queries until the response is rendered:
    /// render under it ([`Account::charged`]) and [`Account::check`] while rendering.
    pub held: Option<Arc<Account>>,
}

/// Executes SQL for callers.
pub struct Engine {
    db: Arc<Db>,
    jobs: Arc<JobManager>,
    /// Always Some until drop (a runtime may not be dropped inside async code: see Drop).
    query_runtime: Option<tokio::runtime::Runtime>,
    base_state: Arc<SessionState>,
    limits: Limits,
    /// The heap bytes all running statements' work holds (kalamdb_core::memory), held to
    /// `limits.query_memory_bytes` like DataFusion's pool.
    query_heap: Arc<QueryHeap>,
    /// Large parses at once (one per query thread): each can take hundreds of MB while tokens
    /// and syntax tree are built, and none can be interrupted.
    large_parses: Arc<tokio::sync::Semaphore>,
    /// One lock per (table, scope) that UPDATE and DELETE statements hold from their read to
    /// their write, so concurrent read-modify-write statements on one scope serialise and no
    /// update is lost (ADR 0008).
    dml_locks: parking_lot::Mutex<
        std::collections::HashMap<(u64, kalamdb_core::keys::Scope), Arc<tokio::sync::Mutex<()>>>,
    >,
    /// One lock per account name: every request holds it shared for the account it runs as
    /// (and EXECUTE AS for its target) from its start to its end; DROP USER holds it
    /// exclusively, so no write of the account is in flight while its rows are purged and none
    /// starts after (the account is looked up again under the lock).
    accounts: parking_lot::Mutex<std::collections::HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// The planner bypasses (fast_insert, fast_select) are taken; off only in the tests that
    /// hold them to the planned path (crate::fast_path_agreement).
    fast_paths: bool,
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
        // KalamDB's PostgreSQL type rules run before DataFusion's type coercion (crate::coercion).
        let mut analyzer_rules: Vec<
            Arc<dyn datafusion::optimizer::analyzer::AnalyzerRule + Send + Sync>,
        > = vec![Arc::new(crate::coercion::PostgresTypeRules)];
        analyzer_rules.extend(datafusion::optimizer::Analyzer::new().rules);
        // ... and its value rules after it, when every operand has its type (crate::checked).
        analyzer_rules.push(Arc::new(crate::checked::PostgresValueRules));
        let mut base_state = SessionStateBuilder::new()
            .with_default_features()
            .with_runtime_env(runtime)
            .with_analyzer_rules(analyzer_rules)
            .build();
        use datafusion::execution::FunctionRegistry;
        let pool = base_state.runtime_env().memory_pool.clone();
        crate::bounded::install(&mut base_state, limits.max_value_bytes, pool)?;
        crate::checked_sum::install(&mut base_state)?;
        crate::growing::install(&mut base_state)?;
        base_state
            .register_udf(Arc::new(db.snowflake_id_udf.clone()))
            .map_err(|e| Error::Internal(e.to_string()))?;
        base_state
            .register_udf(Arc::new(db.uuid_v7_udf.clone()))
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

    /// Run every statement of `sql` in order, stopping at the first error.
    pub async fn execute(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[serde_json::Value],
    ) -> RequestOutcome {
        let statements = split_statements(sql);
        let mut outcome = RequestOutcome {
            results: Vec::new(),
            error: None,
            held: None,
        };
        if statements.is_empty() {
            outcome.error = Some((
                0,
                Error::invalid_sql("the request contains no SQL statement"),
            ));
            return outcome;
        }
        if statements.len() > self.limits.max_statements {
            outcome.error = Some((
                0,
                Error::InvalidParameter(format!(
                    "a request may hold at most {} statements; this one has {}",
                    self.limits.max_statements,
                    statements.len()
                )),
            ));
            return outcome;
        }
        if !params.is_empty() && statements.len() > 1 {
            outcome.error = Some((
                0,
                Error::InvalidParameter(
                    "params bind a single statement; this request has several".into(),
                ),
            ));
            return outcome;
        }
        let params = match params
            .iter()
            .map(json_to_scalar)
            .collect::<Result<Vec<_>>>()
        {
            Ok(p) => p,
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
            match self.execute_statement(caller, stmt, &params, true).await {
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

    async fn execute_statement(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[ScalarValue],
        allow_execute_as: bool,
    ) -> Result<StatementOutput> {
        if params.is_empty() && self.fast_paths {
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
            self.off_the_http_workers(started, move || parse_statement(&text))
                .await?
        } else {
            parse_statement(sql)?
        };
        let stmt = match parsed {
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
                let target = self.impersonate(caller, &user_id)?;
                // The target's account, held as the caller's is (the caller's own is held).
                let _account = if user_id == caller.principal.user_id {
                    None
                } else {
                    Some(self.hold_account(&user_id, Error::InvalidParameter).await?)
                };
                Box::pin(self.execute_statement(&target, &statement, params, false)).await
            }
            KalamStatement::FlushTable { table, wait } => {
                self.flush_table(caller, &table, wait).await
            }
            KalamStatement::FlushAll { namespace, wait } => {
                self.flush_all(caller, namespace.as_deref(), wait).await
            }
            KalamStatement::KillJob { job_id } => {
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
                // DROP USER waits for the account's requests in flight and keeps new ones out.
                let _exclusive = match &stmt {
                    KalamStatement::DropUser { user_id, .. } => {
                        if *user_id == caller.principal.user_id {
                            return Err(Error::InvalidParameter(
                                "a user cannot drop itself".into(),
                            ));
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
        }
    }

    fn flush_target(
        &self,
        caller: &Caller,
        table: &crate::parser::TableName,
    ) -> Result<Arc<kalamdb_core::catalog::TableDef>> {
        if caller.principal.role < Role::Service {
            return Err(Error::PermissionDenied(
                "flush commands need the service role or above".into(),
            ));
        }
        let ns = table
            .namespace
            .clone()
            .unwrap_or_else(|| caller.namespace.clone());
        if kalamdb_core::catalog::RESERVED_NAMESPACES.contains(&ns.as_str()) {
            return Err(Error::Unsupported(format!(
                "{ns} tables are views of the server's state and are never flushed"
            )));
        }
        if self.db.catalog.namespace(&ns).is_none() {
            return Err(Error::NamespaceNotFound(ns));
        }
        self.db
            .catalog
            .table(&ns, &table.name)
            .ok_or_else(|| Error::TableNotFound(format!("{ns}.{}", table.name)))
    }

    async fn flush_table(
        &self,
        caller: &Caller,
        table: &crate::parser::TableName,
        wait: bool,
    ) -> Result<StatementOutput> {
        let def = self.flush_target(caller, table)?;
        let name = def.qualified_name();
        let (job_id, _created) =
            self.jobs
                .start_flush(def, &caller.principal.user_id, FlushTrigger::Manual)?;
        if !wait {
            return Ok(StatementOutput::Job {
                message: format!("Flush started for table '{name}'. Job ID: {job_id}"),
                job_ids: vec![job_id],
                job: None,
            });
        }
        let job = self.jobs.wait(&job_id).await?;
        let batch = kalamdb_core::system_tables::jobs_batch(std::slice::from_ref(&job))?;
        let schema = batch.schema();
        let batches = vec![batch];
        Ok(StatementOutput::Job {
            message: format!(
                "Flush of table '{name}' finished with status {}. Job ID: {job_id}",
                job.status
            ),
            job_ids: vec![job_id],
            job: Some((schema, batches)),
        })
    }

    async fn flush_all(
        &self,
        caller: &Caller,
        namespace: Option<&str>,
        wait: bool,
    ) -> Result<StatementOutput> {
        if caller.principal.role < Role::Service {
            return Err(Error::PermissionDenied(
                "flush commands need the service role or above".into(),
            ));
        }
        let tables = match namespace {
            Some(ns) => {
                if self.db.catalog.namespace(ns).is_none() {
                    return Err(Error::NamespaceNotFound(ns.to_string()));
                }
                self.db.catalog.tables_in(ns)
            }
            None => self.db.catalog.tables(),
        };
        let mut ids = Vec::new();
        for def in tables {
            if !matches!(def.kind, TableKind::User | TableKind::Shared)
                || self.db.rows.buffered(def.id) == 0
            {
                continue;
            }
            ids.push(
                self.jobs
                    .start_flush(def, &caller.principal.user_id, FlushTrigger::Manual)?
                    .0,
            );
        }
        if !wait {
            return Ok(StatementOutput::Job {
                message: format!("Flush started for {} table(s)", ids.len()),
                job_ids: ids,
                job: None,
            });
        }
        let mut jobs = Vec::with_capacity(ids.len());
        for id in &ids {
            jobs.push(self.jobs.wait(id).await?);
        }
        let completed = jobs
            .iter()
            .filter(|j| j.status == kalamdb_core::jobs::JobStatus::Completed)
            .count();
        let batch = kalamdb_core::system_tables::jobs_batch(&jobs)?;
        let schema = batch.schema();
        Ok(StatementOutput::Job {
            message: format!(
                "Flush of {} table(s) finished: {completed} completed",
                ids.len()
            ),
            job_ids: ids,
            job: Some((schema, vec![batch])),
        })
    }

    /// `SHOW FUNCTIONS`: name, kind and canonical name of every function a statement may
    /// call (an alias lists the function it names).
    fn show_functions(&self) -> Result<StatementOutput> {
        let mut rows: Vec<(String, &str, String)> = Vec::new();
        for (name, f) in self.base_state.scalar_functions() {
            rows.push((name.clone(), "scalar", f.name().to_string()));
        }
        for (name, f) in self.base_state.aggregate_functions() {
            rows.push((name.clone(), "aggregate", f.name().to_string()));
        }
        for (name, f) in self.base_state.window_functions() {
            rows.push((name.clone(), "window", f.name().to_string()));
        }
        rows.sort();
        let schema = text_schema(&["function_name", "function_type", "canonical_name"]);
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.2.as_str()),
            )),
        ];
        let row_count = rows.len();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(StatementOutput::Rows {
            schema,
            batches: vec![batch],
            row_count,
        })
    }

    /// The caller to run an `EXECUTE AS USER` body as.
    fn impersonate(&self, caller: &Caller, user_id: &str) -> Result<Caller> {
        if caller.principal.role < Role::Service {
            return Err(Error::PermissionDenied(format!(
                "role '{}' may not use EXECUTE AS USER",
                caller.principal.role
            )));
        }
        let target = self.db.catalog.user(user_id).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "user '{}' does not exist",
                kalamdb_core::catalog::truncate_for_message(user_id)
            ))
        })?;
        if target.role > caller.principal.role {
            return Err(Error::PermissionDenied(format!(
                "role '{}' may not act as a user with role '{}'",
                caller.principal.role, target.role
            )));
        }
        Ok(Caller {
            principal: Principal {
                user_id: target.user_id,
                role: target.role,
            },
            namespace: caller.namespace.clone(),
        })
    }

    /// The DataFusion session one statement is planned and run with (crate::session).
    fn session_for(
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
            started + self.limits.statement_timeout,
            self.limits.max_result_rows,
            &self.query_heap,
        )
    }

    /// Write a literal INSERT without planning, or `None` when it needs planning.
    async fn write_literal_rows(
        &self,
        caller: &Caller,
        rows: fast_insert::LiteralRows<'_>,
    ) -> Option<Result<StatementOutput>> {
        let prepared =
            match fast_insert::prepare_rows(&self.db, &caller.principal, &caller.namespace, rows)
                .await?
            {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
        let table = prepared.table(); // write permission checked in prepare_rows
        Some(
            self.write_rows(
                table.def().clone(),
                table.scope().clone(),
                WriteOp::Insert(InsertOp::Append),
                vec![prepared.batch],
                false,
            )
            .await,
        )
    }

    async fn execute_datafusion(
        &self,
        caller: &Caller,
        tokens: Vec<sqlparser::tokenizer::TokenWithSpan>,
        params: &[ScalarValue],
        started: std::time::Instant,
    ) -> Result<StatementOutput> {
        if params.is_empty() {
            if let Some(rows) = fast_insert::from_tokens(&tokens) {
                if let Some(out) = self.write_literal_rows(caller, rows).await {
                    return out;
                }
            }
        }
        let recursion_limit = self.limits.max_parser_recursion;
        let large = tokens.len() > LARGE_SQL_BYTES / 8;
        let parse = move || {
            DFParserBuilder::new(tokens)
                .with_dialect(&GenericDialect {})
                .with_recursion_limit(recursion_limit)
                .build()
                .and_then(|mut p| p.parse_statements())
        };
        let parsed = if large {
            self.off_the_http_workers(started, move || Ok(parse()))
                .await?
        } else {
            parse()
        };
        let mut parsed = parsed.map_err(|e| from_datafusion(e.into(), &self.db))?;
        if parsed.len() != 1 {
            return Err(Error::invalid_sql("expected exactly one statement"));
        }
        let Some(statement) = parsed.pop_front() else {
            return Err(Error::invalid_sql("expected a statement"));
        };
        crate::placeholders::check(&statement, params.len())?;
        let is_system = caller.principal.role == Role::System;
        let with_rowid = match &statement {
            DfStatement::Statement(s) => match s.as_ref() {
                SqlStatement::Query(_) | SqlStatement::Insert(_) | SqlStatement::Explain { .. } => {
                    false
                }
                SqlStatement::Update(_) | SqlStatement::Delete(_) => true,
                SqlStatement::Set(sqlparser::ast::Set::SetRole { .. }) => {
                    return Err(Error::Unsupported(
                        "SET ROLE is not supported: a user's role is part of the account \
                         (ALTER USER name SET ROLE role, by a dba or system user)"
                            .into(),
                    ))
                }
                SqlStatement::Set(_) | SqlStatement::Copy { .. } if !is_system => {
                    return Err(Error::PermissionDenied(
                        "only the system role may change settings or copy files".into(),
                    ))
                }
                SqlStatement::Set(_) | SqlStatement::Copy { .. } => false,
                other => {
                    return Err(Error::Unsupported(format!(
                        "statement not supported: {}",
                        kalamdb_core::catalog::truncate_for_message(&other.to_string())
                    )))
                }
            },
            DfStatement::CreateExternalTable(_)
            | DfStatement::CopyTo(_)
            | DfStatement::Reset(_) => {
                if !is_system {
                    return Err(Error::PermissionDenied(
                        "only the system role may read or write server files or settings".into(),
                    ));
                }
                false
            }
            DfStatement::Explain(_) => false,
        };
        if params.is_empty() && self.fast_paths {
            if let DfStatement::Statement(s) = &statement {
                if let SqlStatement::Query(query) = s.as_ref() {
                    if let Some(point) =
                        fast_select::prepare(&self.db, &caller.principal, &caller.namespace, query)
                            .await
                    {
                        let point = point?;
                        let schema = point.schema.clone();
                        let account = Account::new(&self.query_heap);
                        let (batches, row_count) = point
                            .run(
                                &self.db,
                                self.limits.max_result_rows,
                                self.limits.statement_timeout,
                                account,
                            )
                            .await?;
                        return Ok(StatementOutput::Rows {
                            schema,
                            batches,
                            row_count,
                        });
                    }
                }
                if let SqlStatement::Insert(insert) = s.as_ref() {
                    if let Some(rows) = fast_insert::from_ast(insert) {
                        if let Some(out) = self.write_literal_rows(caller, rows).await {
                            return out;
                        }
                    }
                }
            }
        }
        // Repeated names in a select list (`SELECT d, d`) get private aliases, renamed back in
        // the result (crate::names).
        let mut statement = statement;
        if let DfStatement::Statement(s) = &mut statement {
            crate::syntax::check(s.as_ref())?;
            crate::syntax::correct(s.as_mut());
        }
        let original = statement.clone();
        let alias = |st: &mut DfStatement, every: bool| match st {
            DfStatement::Statement(s) => crate::names::alias_duplicates(s.as_mut(), every),
            _ => Ok(None),
        };
        let explicit = alias(&mut statement, false)?;
        let session = self.session_for(caller, with_rowid, started);
        let mut state = session.state();
        // Building the logical plan is the statement's work too: on the query runtime, charged
        // to its account and under its deadline (a 2 MB argument list planned for seconds on an
        // HTTP worker, past the timeout, while /health waited behind it).
        let planning = {
            let state = state.clone();
            let db = self.db.clone();
            async move {
                match state.statement_to_plan(statement).await {
                    Ok(plan) => Ok((plan, explicit)),
                    Err(e) if crate::names::is_duplicate_name_error(&e) => {
                        let mut statement = original;
                        let explicit = alias(&mut statement, true)?;
                        let plan = state
                            .statement_to_plan(statement)
                            .await
                            .map_err(|e| from_datafusion(e, &db))?;
                        Ok((plan, explicit))
                    }
                    Err(e) => Err(from_datafusion(e, &db)),
                }
            }
        };
        let (plan, explicit) = self.on_query_runtime(&session, planning).await?;
        check_plan_size(&plan)?;
        session.fit_batches(&mut state, &plan);
        let renames = match explicit {
            Some(explicit) => crate::names::renames(&plan, explicit),
            None => Default::default(),
        };
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(ParamValues::from(params.to_vec()))
                .map_err(|e| from_datafusion(e, &self.db))?
        };
        match plan {
            LogicalPlan::Dml(dml) => self.execute_dml(&session, &state, dml).await,
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
                if !is_system =>
            {
                Err(Error::PermissionDenied("statement not allowed".into()))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => {
                let df = DataFrame::new(state, plan);
                df.collect()
                    .await
                    .map_err(|e| from_datafusion(e, &self.db))?;
                Ok(StatementOutput::Message("OK".into()))
            }
            plan => self.execute_query(&session, state, plan, &renames).await,
        }
    }

    async fn execute_query(
        &self,
        session: &Arc<StatementSession>,
        state: SessionState,
        plan: LogicalPlan,
        renames: &std::collections::HashMap<String, String>,
    ) -> Result<StatementOutput> {
        if let LogicalPlan::Explain(explain) = &plan {
            // A table the caller may not read (in a subquery too), or a DML target it may not
            // write, is refused (403) as the statement itself would be, never described.
            check_explained_access(&explain.plan)?;
            // DataFusion writes a planning error of the explained statement into the plan's
            // rows ("physical_plan_error"); such an error is refused the same way.
            let inner = DataFrame::new(state.clone(), explain.plan.as_ref().clone());
            if let Err(e) = inner.create_physical_plan().await {
                if let e @ Error::PermissionDenied(_) = from_datafusion(e, &self.db) {
                    return Err(e);
                }
            }
        }
        let fallback =
            crate::subquery::has_subqueries(&plan).then(|| (session.clone(), plan.clone()));
        let df = DataFrame::new(state, plan);
        // The executed plan's schema: the logical plan's is the one before type coercion (a
        // CASE of 1 and 2.5 would claim BIGINT).
        let (schema, batches, row_count) = self.collect_bounded(df, fallback, session).await?;
        let schema: SchemaRef = crate::names::rename_schema(schema, renames);
        Ok(StatementOutput::Rows {
            schema,
            batches,
            row_count,
        })
    }

    /// Run a plan to completion on the query runtime, within the row limit, the memory limit
    /// (what the work allocates, counted at the allocator: kalamdb_core::memory) and by the
    /// statement's deadline (its start plus the statement timeout: planning and waiting for a
    /// lock count). At the deadline the execution is aborted (dropping DataFusion's streams
    /// cancels it).
    ///
    /// `fallback` is the statement's session and plan when the plan holds subqueries: if
    /// DataFusion cannot plan the statement with its own decorrelation of them, it is planned
    /// again with every subquery evaluated by KalamDB (crate::subquery, ADR 0007).
    async fn collect_bounded(
        &self,
        df: DataFrame,
        fallback: Option<(Arc<StatementSession>, LogicalPlan)>,
        session: &StatementSession,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, usize)> {
        let account = session.account().clone();
        let fitted = Arc::new(session.clone());
        let db = self.db.clone();
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
                            .map_err(|e| from_datafusion(e, &db))?,
                        state,
                    )
                }
                (Err(e), None) => return Err(from_datafusion(e, &db)),
            };
            // A wide constant is repeated in every row (StatementSession::fit_batches).
            let rows = fitted.batch_rows(crate::guard::plan_widest_text_literal(&physical));
            if rows != state.config().batch_size() {
                let config = std::mem::take(state.config_mut());
                *state.config_mut() = config.with_batch_size(rows);
            }
            let task_ctx = Arc::new(TaskContext::from(&state));
            let schema = physical.schema();
            let mut stream = datafusion::physical_plan::execute_stream(physical, task_ctx)
                .map_err(|e| from_datafusion(e, &db))?;
            let mut batches = Vec::new();
            let mut row_count = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| from_datafusion(e, &db))?;
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
    async fn on_query_runtime<T: Send + 'static>(
        &self,
        session: &StatementSession,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.run_until(session.account().clone(), session.deadline(), work)
            .await
    }

    /// Parse a large statement on the query runtime's blocking threads, under the statement's
    /// deadline: sqlparser took 5 s (release) for 7 MB of `coalesce(NULL, ...)` arguments on
    /// an HTTP worker, and two such requests held both workers (and /health) for as long. It
    /// cannot be interrupted; the answer (TIMEOUT) comes at the deadline and the work ends with
    /// the parse.
    async fn off_the_http_workers<T: Send + 'static>(
        &self,
        started: std::time::Instant,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let runtime = self.query_runtime()?;
        // A blocking thread, not a query worker: two long parses on the two workers held every
        // other statement's planning and execution until they ended.
        let deadline = started + self.limits.statement_timeout;
        let permit = match tokio::time::timeout_at(
            deadline.into(),
            self.large_parses.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Error::Internal("the parse semaphore is closed".into())),
            Err(_) => return Err(timed_out(self.limits.statement_timeout)),
        };
        let account = Account::new(&self.query_heap);
        // The permit goes with the work: an abandoned parse still holds it until it ends.
        let task = runtime.spawn_blocking(move || {
            let _permit = permit;
            account.charged(work)
        });
        self.until_deadline(deadline, task).await
    }

    async fn run_until<T: Send + 'static>(
        &self,
        account: Arc<Account>,
        deadline: std::time::Instant,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let task = self.query_runtime()?.spawn(Charged::new(account, work));
        self.until_deadline(deadline, task).await
    }

    /// A task's answer, or TIMEOUT at the deadline (the task is aborted at its next await; a
    /// blocking one runs to its end). A panic is the query's error (errors::from_panic).
    async fn until_deadline<T>(
        &self,
        deadline: std::time::Instant,
        task: tokio::task::JoinHandle<Result<T>>,
    ) -> Result<T> {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(deadline.into(), task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if e.is_panic() => Err(crate::errors::from_panic(e.into_panic())),
            Ok(Err(e)) => Err(Error::Internal(format!("query task failed: {e}"))),
            Err(_) => {
                abort.abort();
                Err(timed_out(self.limits.statement_timeout))
            }
        }
    }

    fn query_runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.query_runtime
            .as_ref()
            .ok_or_else(|| Error::Internal("the query runtime is shut down".into()))
    }

    async fn execute_dml(
        &self,
        session: &Arc<StatementSession>,
        state: &SessionState,
        dml: DmlStatement,
    ) -> Result<StatementOutput> {
        let provider = datafusion::catalog::default_table_source::source_as_provider(&dml.target)
            .map_err(|e| from_datafusion(e, &self.db))?;
        let Some(table) = provider.downcast_ref::<KalamTable>() else {
            return Err(Error::PermissionDenied(format!(
                "table '{}' is read-only",
                dml.table_name
            )));
        };
        let def = table.def().clone();
        let scope = table.scope().clone();
        table.principal().check_write(&def)?;
        if matches!(dml.op, WriteOp::Update) {
            check_key_not_assigned(
                &dml.input,
                def.primary_key.as_deref().unwrap_or(ROWID_COLUMN),
            )?;
        }
        let with_rowid = table.has_rowid();
        // UPDATE and DELETE read the rows they then write, and so does an INSERT whose query
        // reads its own table (`INSERT ... SELECT ... WHERE NOT EXISTS (...)`): no other such
        // statement of the scope may write between the read and the write (a lost update, or
        // a duplicate, otherwise). Other INSERTs (VALUES, params, other tables) never wait.
        let reads_target = || {
            let mut found = false;
            let _ = dml.input.apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    found |= scan.table_name.table() == def.name
                        && scan
                            .table_name
                            .schema()
                            .is_none_or(|ns| ns == def.namespace);
                }
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            });
            found
        };
        let _serial = match dml.op {
            WriteOp::Update | WriteOp::Delete => Some(
                self.lock_scope_for_dml(def.id, &scope, session.deadline())
                    .await?,
            ),
            WriteOp::Insert(_) if reads_target() => Some(
                self.lock_scope_for_dml(def.id, &scope, session.deadline())
                    .await?,
            ),
            _ => None,
        };
        let input = Arc::unwrap_or_clone(dml.input);
        let fallback =
            crate::subquery::has_subqueries(&input).then(|| (session.clone(), input.clone()));
        let df = DataFrame::new(state.clone(), input);
        let (_, batches, _) = self.collect_bounded(df, fallback, session).await?;
        self.write_rows(def, scope, dml.op.clone(), batches, with_rowid)
            .await
    }

    fn account_lock(&self, user_id: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut accounts = self.accounts.lock();
        if accounts.len() > 10_000 {
            // Bound memory: drop the locks nobody holds or waits for right now.
            accounts.retain(|_, l| Arc::strong_count(l) > 1);
        }
        accounts.entry(user_id.to_string()).or_default().clone()
    }

    /// Hold `user_id`'s account for a request (shared), once it is sure to exist: a request
    /// authenticated just before its account was dropped is refused here (`missing` makes the
    /// error: UNAUTHORIZED for the caller, INVALID_PARAMETER for an EXECUTE AS target).
    async fn hold_account(
        &self,
        user_id: &str,
        missing: fn(String) -> Error,
    ) -> Result<tokio::sync::OwnedRwLockReadGuard<()>> {
        let lock = self.account_lock(user_id);
        let wait = tokio::time::timeout(self.limits.statement_timeout, lock.read_owned());
        let guard = wait
            .await
            .map_err(|_| timed_out(self.limits.statement_timeout))?;
        if self.db.catalog.user(user_id).is_none() {
            return Err(missing(format!(
                "user '{}' does not exist",
                kalamdb_core::catalog::truncate_for_message(user_id)
            )));
        }
        Ok(guard)
    }

    /// Hold `user_id`'s account alone (DROP USER): waits for its requests in flight.
    async fn hold_account_exclusively(
        &self,
        user_id: &str,
    ) -> Result<tokio::sync::OwnedRwLockWriteGuard<()>> {
        let lock = self.account_lock(user_id);
        tokio::time::timeout(self.limits.statement_timeout, lock.write_owned())
            .await
            .map_err(|_| timed_out(self.limits.statement_timeout))
    }

    /// Wait (until the statement's deadline) for the scope's read-modify-write lock.
    async fn lock_scope_for_dml(
        &self,
        table_id: u64,
        scope: &kalamdb_core::keys::Scope,
        deadline: std::time::Instant,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self.dml_locks.lock();
            if locks.len() > 10_000 {
                // Bound memory: drop the locks nobody holds or waits for right now.
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry((table_id, scope.clone())).or_default().clone()
        };
        match tokio::time::timeout_at(deadline.into(), lock.lock_owned()).await {
            Ok(guard) => Ok(guard),
            Err(_) => Err(timed_out(self.limits.statement_timeout)),
        }
    }

    /// Write a DML statement's rows through the row store, off the async runtime.
    async fn write_rows(
        &self,
        def: Arc<kalamdb_core::catalog::TableDef>,
        scope: kalamdb_core::keys::Scope,
        op: WriteOp,
        batches: Vec<RecordBatch>,
        with_rowid: bool,
    ) -> Result<StatementOutput> {
        if !matches!(op, WriteOp::Delete) {
            for b in &batches {
                values_within(b, self.limits.max_value_bytes)?;
            }
        }
        let rows_store = self.db.rows.clone();
        tokio::task::spawn_blocking(move || -> Result<StatementOutput> {
            let rows_of = |batches: &[RecordBatch],
                           with_rowid: bool|
             -> Result<Vec<Vec<kalamdb_core::types::Value>>> {
                let mut rows = Vec::new();
                for b in batches {
                    rows.extend(RowStore::rows_from_batch(&def, b, with_rowid)?);
                }
                Ok(rows)
            };
            match op {
                WriteOp::Insert(_) => {
                    let n = rows_store.insert(&def, &scope, rows_of(&batches, false)?)?;
                    Ok(StatementOutput::Affected {
                        row_count: n,
                        message: format!("Inserted {n} row(s)"),
                    })
                }
                WriteOp::Update => {
                    let n = rows_store.update(&def, &scope, rows_of(&batches, with_rowid)?)?;
                    Ok(StatementOutput::Affected {
                        row_count: n,
                        message: format!("Updated {n} row(s)"),
                    })
                }
                WriteOp::Delete => {
                    let key_index = match &def.primary_key {
                        Some(pk) => def.live_columns().position(|c| &c.name == pk),
                        None => Some(def.live_columns().count()),
                    }
                    .ok_or_else(|| Error::Internal("primary key column missing".into()))?;
                    let keys: Vec<_> = rows_of(&batches, with_rowid)?
                        .into_iter()
                        .filter_map(|mut r| (key_index < r.len()).then(|| r.swap_remove(key_index)))
                        .collect();
                    let n = rows_store.delete(&def, &scope, keys)?;
                    Ok(StatementOutput::Affected {
                        row_count: n,
                        message: format!("Deleted {n} row(s)"),
                    })
                }
                other => Err(Error::Unsupported(format!("{other} is not supported"))),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("write task failed: {e}")))?
    }
}

/// A value to be stored is at most `limits.max_value_bytes`: what a statement computes
/// (`body || body`, `string_agg`) is otherwise unbounded, and a stored value must stay readable
/// (a flushed segment's values are read whole, under the query memory limit).
fn values_within(batch: &RecordBatch, max_value_bytes: usize) -> Result<()> {
    use crate::guard::widest;
    use arrow::array::AsArray;
    use arrow::datatypes::DataType as A;
    for (column, field) in batch.columns().iter().zip(batch.schema().fields()) {
        let longest = match column.data_type() {
            A::Utf8 => widest(column.as_string::<i32>().offsets()),
            A::LargeUtf8 => widest(column.as_string::<i64>().offsets()),
            A::Binary => widest(column.as_binary::<i32>().offsets()),
            A::LargeBinary => widest(column.as_binary::<i64>().offsets()),
            A::Utf8View => column.as_string_view().lengths().max().unwrap_or(0) as usize,
            A::BinaryView => column.as_binary_view().lengths().max().unwrap_or(0) as usize,
            _ => 0,
        };
        if longest > max_value_bytes {
            return Err(Error::InvalidParameter(format!(
                "a value of {longest} bytes for column '{}' is larger than the {max_value_bytes} bytes \
                 a stored value may hold (limits.max_value_bytes)",
                field.name()
            )));
        }
    }
    Ok(())
}

/// A column's DEFAULT is a value every insert that omits the column stores (and every older
/// row reads, for an added column): held to the same limit as a stored value (a 1.2 MB
/// DEFAULT was accepted, then every UPDATE of an older row failed on it).
fn defaults_within(stmt: &KalamStatement, max_value_bytes: usize) -> Result<()> {
    use crate::parser::{AlterTableOp, DefaultSpec};
    let specs: Vec<&crate::parser::ColumnSpec> = match stmt {
        KalamStatement::CreateTable(create) => create.columns.iter().collect(),
        KalamStatement::AlterTable {
            op: AlterTableOp::AddColumn { spec, .. },
            ..
        } => vec![spec],
        _ => return Ok(()),
    };
    for spec in specs {
        let bytes = match &spec.default {
            Some(DefaultSpec::Literal(text)) => text.len(),
            Some(DefaultSpec::Bytes(bytes)) => bytes.len(),
            _ => 0,
        };
        if bytes > max_value_bytes {
            return Err(Error::InvalidParameter(format!(
                "the DEFAULT of column '{}' holds {bytes} bytes, more than the {max_value_bytes} bytes a stored value \
                 may hold (limits.max_value_bytes)",
                spec.name
            )));
        }
    }
    Ok(())
}

pub(crate) fn too_many_rows(max_rows: usize) -> Error {
    Error::InvalidParameter(format!(
        "the statement reads more than {max_rows} rows (limits.max_result_rows); add a LIMIT or a WHERE clause"
    ))
}

pub(crate) fn timed_out(timeout: std::time::Duration) -> Error {
    Error::Timeout(format!(
        "the statement ran longer than {} s (limits.statement_timeout_secs) and was stopped",
        timeout.as_secs_f64()
    ))
}

/// Refuse an UPDATE that assigns the row's key column (primary key or `_rowid`).
fn check_key_not_assigned(input: &LogicalPlan, key: &str) -> Result<()> {
    let LogicalPlan::Projection(p) = input else {
        return Ok(());
    };
    for e in &p.expr {
        if let Expr::Alias(a) = e {
            let identity = matches!(a.expr.as_ref(), Expr::Column(c) if c.name == key);
            if a.name == key && !identity {
                return Err(Error::Unsupported(format!(
                    "updating the primary key column '{key}' is not supported; delete and insert the row instead"
                )));
            }
        }
    }
    Ok(())
}

/// Most nodes a statement's logical plan may have, counted as a tree: a CTE is planned at each
/// reference, so a chain of CTEs that each join the previous one twice doubles per level (29
/// levels, 1 KB of SQL, took the server to 22 GB while planning, past its timeout: planning
/// cannot be interrupted). Ordinary statements have tens to a few thousand nodes.
const MAX_PLAN_NODES: usize = 5_000;

fn check_plan_size(plan: &LogicalPlan) -> Result<()> {
    let mut nodes = 0usize;
    let _ = plan.apply_with_subqueries(|_| {
        nodes += 1;
        Ok(if nodes > MAX_PLAN_NODES {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    if nodes > MAX_PLAN_NODES {
        return Err(Error::invalid_sql(format!(
            "the statement's plan has more than {MAX_PLAN_NODES} nodes (each reference to a CTE or view plans it again); simplify it"
        )));
    }
    Ok(())
}

/// The access checks of every table an explained statement reads or writes.
fn check_explained_access(plan: &LogicalPlan) -> Result<()> {
    let mut denied: Option<Error> = None;
    let _ = plan.apply_with_subqueries(|node| {
        let (source, write) = match node {
            LogicalPlan::TableScan(scan) => (Some(&scan.source), false),
            LogicalPlan::Dml(dml) => (Some(&dml.target), true),
            _ => (None, false),
        };
        if let Some(source) = source {
            if let Ok(provider) =
                datafusion::catalog::default_table_source::source_as_provider(source)
            {
                if let Some(table) = provider.downcast_ref::<KalamTable>() {
                    let check = if write {
                        table.principal().check_write(table.def())
                    } else {
                        table.principal().check_read(table.def())
                    };
                    if let Err(e) = check {
                        denied = Some(e);
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    denied.map_or(Ok(()), Err)
}

/// A JSON request parameter as a DataFusion scalar.
fn json_to_scalar(v: &serde_json::Value) -> Result<ScalarValue> {
    Ok(match v {
        serde_json::Value::Null => ScalarValue::Null,
        serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int64(Some(i))
            } else if let Some(f) = n.as_f64() {
                ScalarValue::Float64(Some(f))
            } else {
                return Err(Error::InvalidParameter(format!(
                    "parameter {n} is out of range"
                )));
            }
        }
        serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        _ => {
            return Err(Error::InvalidParameter(
                "parameters must be null, booleans, numbers or strings".into(),
            ))
        }
    })
}

/// Schema of a result built by a KalamDB statement (SHOW, DESCRIBE).
pub fn text_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, ArrowType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}
