//! Statements DataFusion plans: parse, route to a fast path, plan under the deadline, run.

use super::session::StatementSession;
use crate::df::provider::KalamTable;
use crate::fast::insert as fast_insert;
use crate::fast::select as fast_select;
use crate::planning::errors::from_datafusion;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::view::ViewTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use kalamdb_core::{Account, Error, Result};
use sqlparser::ast::Statement as SqlStatement;
use sqlparser::dialect::GenericDialect;
use std::sync::Arc;

use super::limits::*;
use super::output::*;
use super::router::Engine;

impl Engine {
    /// Literal rows as a batch of their table's columns (write permission checked), or `None`
    /// when they need planning.
    async fn prepare_literal(
        &self,
        caller: &Caller,
        rows: fast_insert::LiteralRows<'_>,
    ) -> Option<Result<fast_insert::LiteralInsert>> {
        fast_insert::prepare_rows(&self.db, &caller.principal, &caller.namespace, rows).await
    }

    /// Write a literal INSERT without planning, or `None` when it needs planning.
    pub(super) async fn write_literal_rows(
        &self,
        caller: &Caller,
        rows: fast_insert::LiteralRows<'_>,
    ) -> Option<Result<StatementOutput>> {
        let prepared = match self.prepare_literal(caller, rows).await? {
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

    pub(super) async fn execute_datafusion(
        &self,
        caller: &Caller,
        tokens: Vec<sqlparser::tokenizer::TokenWithSpan>,
        params: &[ScalarValue],
        started: std::time::Instant,
    ) -> Result<StatementOutput> {
        // The planner bypasses read and write the database now: not inside a transaction.
        let fast_paths = self.fast_paths && caller.transaction.is_none();
        if params.is_empty() && fast_paths {
            if let Some(rows) = fast_insert::from_tokens(&tokens) {
                if let Some(out) = self.write_literal_rows(caller, rows).await {
                    return out;
                }
            }
        }
        let statement = self.parse_tokens(caller, tokens, started).await?;
        if let Some(out) = self.view_ddl(caller, &statement, started).await {
            return out;
        }
        crate::statement::placeholders::check(&statement, params.len())?;
        let with_rowid = Self::with_rowid(caller, &statement)?;
        if params.is_empty() && fast_paths {
            if let Some(out) = self.try_fast_path(caller, &statement, started).await {
                return out;
            }
        }
        self.plan_and_run(caller, statement, params, with_rowid, started)
            .await
    }

    /// DataFusion's parse of a statement's tokens (large ones off the HTTP workers).
    async fn parse_tokens(
        &self,
        caller: &Caller,
        tokens: Vec<sqlparser::tokenizer::TokenWithSpan>,
        started: std::time::Instant,
    ) -> Result<DfStatement> {
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
            self.off_the_http_workers(started, self.statement_timeout(caller), move || Ok(parse()))
                .await?
        } else {
            parse()
        };
        let mut parsed = parsed.map_err(|e| from_datafusion(e.into()))?;
        if parsed.len() != 1 {
            return Err(Error::invalid_sql("expected exactly one statement"));
        }
        parsed
            .pop_front()
            .ok_or_else(|| Error::invalid_sql("expected a statement"))
    }

    /// Whether the statement reads `_rowid` (UPDATE, DELETE), refusing what no caller or only
    /// `system` may run.
    fn with_rowid(caller: &Caller, statement: &DfStatement) -> Result<bool> {
        let is_system = caller.principal.may_touch_server();
        Ok(match statement {
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
                        kalamdb_core::truncate_for_message(&other.to_string())
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
        })
    }

    /// A point read or a literal INSERT without planning (ADR 0005), or `None`: plan it.
    async fn try_fast_path(
        &self,
        caller: &Caller,
        statement: &DfStatement,
        started: std::time::Instant,
    ) -> Option<Result<StatementOutput>> {
        let DfStatement::Statement(s) = statement else {
            return None;
        };
        if let SqlStatement::Query(query) = s.as_ref() {
            let point =
                fast_select::prepare(&self.db, &caller.principal, &caller.namespace, query).await?;
            return Some(self.run_point_read(caller, point).await);
        }
        if let SqlStatement::Insert(insert) = s.as_ref() {
            if insert.on.is_some() {
                return self.literal_upsert(caller, statement, started).await;
            }
            let rows = fast_insert::from_ast(insert)?;
            return self.write_literal_rows(caller, rows).await;
        }
        None
    }

    /// An upsert of literal rows without planning its INSERT (the rows are built as a literal
    /// INSERT's are: the planner took 40 ms of a 1,000-row upsert's 45), or `None`: plan it.
    /// Its ON CONFLICT clause runs as it does after planning (engine::upsert).
    async fn literal_upsert(
        &self,
        caller: &Caller,
        statement: &DfStatement,
        started: std::time::Instant,
    ) -> Option<Result<StatementOutput>> {
        let mut statement = statement.clone();
        let on_conflict = match super::on_conflict::take_on_conflict(&mut statement) {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let DfStatement::Statement(s) = &statement else {
            return None;
        };
        let SqlStatement::Insert(insert) = s.as_ref() else {
            return None;
        };
        let rows = fast_insert::from_ast(insert)?;
        let prepared = match self.prepare_literal(caller, rows).await? {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let table = prepared.table(); // write permission checked in prepare_rows
        let (def, scope) = (table.def().clone(), table.scope().clone());
        let session = self.session_for(caller, false, started);
        let state = session.state();
        let run = async {
            let _serial = self
                .lock_scope_for_dml(def.id, &scope, session.deadline())
                .await?;
            self.upsert(
                &session,
                &state,
                def,
                scope,
                vec![prepared.batch],
                &on_conflict,
                None,
                &[],
            )
            .await
        };
        Some(run.await)
    }

    async fn run_point_read(
        &self,
        caller: &Caller,
        point: Result<fast_select::DirectSelect>,
    ) -> Result<StatementOutput> {
        let point = point?;
        let schema = point.schema.clone();
        let account = Account::new(&self.query_heap);
        let (batches, row_count) = point
            .run(
                &self.db,
                self.limits.max_result_rows,
                self.statement_timeout(caller),
                account,
            )
            .await?;
        Ok(StatementOutput::Rows {
            schema,
            batches,
            row_count,
        })
    }

    /// Plan the statement on the query runtime under its deadline and run the plan.
    // long: planning on the query runtime (with its one retry for duplicate names) and the
    // dispatch on the plan's kind; each arm is a call.
    async fn plan_and_run(
        &self,
        caller: &Caller,
        statement: DfStatement,
        params: &[ScalarValue],
        with_rowid: bool,
        started: std::time::Instant,
    ) -> Result<StatementOutput> {
        let is_system = caller.principal.may_touch_server();
        // Repeated names in a select list (`SELECT d, d`) get private aliases, renamed back in
        // the result (crate::planning::names).
        let mut statement = statement;
        if let DfStatement::Statement(s) = &mut statement {
            crate::statement::syntax::check(s.as_ref())?;
            crate::statement::syntax::correct(s.as_mut());
        }
        let returning = super::returning::take_returning(&mut statement)?;
        let on_conflict = super::on_conflict::take_on_conflict(&mut statement)?;
        let original = statement.clone();
        let alias = |st: &mut DfStatement, every: bool| match st {
            DfStatement::Statement(s) => {
                crate::planning::names::alias_duplicates(s.as_mut(), every)
            }
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
            let misses = session.misses().clone();
            async move {
                let missing = |e, statement: &DfStatement| {
                    crate::planning::errors::missing_table(&state, statement, &misses)
                        .unwrap_or_else(|| from_datafusion(e))
                };
                match state.statement_to_plan(statement).await {
                    Ok(plan) => Ok((plan, explicit)),
                    Err(e) if crate::planning::names::is_duplicate_name_error(&e) => {
                        let mut statement = original.clone();
                        let explicit = alias(&mut statement, true)?;
                        let plan = state
                            .statement_to_plan(statement)
                            .await
                            .map_err(|e| missing(e, &original))?;
                        Ok((plan, explicit))
                    }
                    Err(e) => Err(missing(e, &original)),
                }
            }
        };
        let (plan, explicit) = self.on_query_runtime(&session, planning).await?;
        check_plan_size(&plan)?;
        // Every table the statement reads or writes, checked on the plan as written: the
        // optimizer may remove a scan it proves empty (`WHERE false`), never the check.
        check_plan_access(&plan)?;
        session.fit_batches(&mut state, &plan);
        let renames = match explicit {
            Some(explicit) => crate::planning::names::renames(&plan, explicit),
            None => Default::default(),
        };
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(ParamValues::from(params.to_vec()))
                .map_err(from_datafusion)?
        };
        match plan {
            LogicalPlan::Dml(dml) => {
                let clauses = super::dml::Clauses {
                    returning: returning.as_ref(),
                    on_conflict: on_conflict.as_ref(),
                };
                self.execute_dml(&session, &state, dml, clauses, params)
                    .await
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
                if !is_system =>
            {
                Err(Error::PermissionDenied("statement not allowed".into()))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => {
                let df = DataFrame::new(state, plan);
                df.collect().await.map_err(from_datafusion)?;
                Ok(StatementOutput::Message("OK".into()))
            }
            plan => self.execute_query(&session, state, plan, &renames).await,
        }
    }

    pub(super) async fn execute_query(
        &self,
        session: &Arc<StatementSession>,
        state: SessionState,
        plan: LogicalPlan,
        renames: &std::collections::HashMap<String, String>,
    ) -> Result<StatementOutput> {
        if let LogicalPlan::Explain(explain) = &plan {
            // Writes and DDL are not run by DataFusion's physical plans: their EXPLAIN would
            // describe a plan that never runs, or an internal error.
            match explain.plan.as_ref() {
                LogicalPlan::Dml(_) => {
                    return Err(Error::Unsupported(
                        "EXPLAIN of INSERT, UPDATE or DELETE is not supported; EXPLAIN its query"
                            .into(),
                    ))
                }
                LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => {
                    return Err(Error::Unsupported(
                        "EXPLAIN of DDL or a utility statement is not supported".into(),
                    ))
                }
                _ => {}
            }
            // DataFusion writes a planning error of the explained statement into the plan's
            // rows ("physical_plan_error"); such an error is refused the same way.
            let inner = DataFrame::new(state.clone(), explain.plan.as_ref().clone());
            if let Err(e) = inner.create_physical_plan().await {
                if let e @ Error::PermissionDenied(_) = from_datafusion(e) {
                    return Err(e);
                }
            }
        }
        let fallback = crate::planning::subquery::has_subqueries(&plan)
            .then(|| (session.clone(), plan.clone()));
        let df = DataFrame::new(state, plan);
        // The executed plan's schema: the logical plan's is the one before type coercion (a
        // CASE of 1 and 2.5 would claim BIGINT).
        let (schema, batches, row_count) = self.collect_bounded(df, fallback, session).await?;
        let schema: SchemaRef = crate::planning::names::rename_schema(schema, renames);
        Ok(StatementOutput::Rows {
            schema,
            batches,
            row_count,
        })
    }
}

/// The access checks of every table a statement reads or writes (an explained one too),
/// on its logical plan before optimization.
fn check_plan_access(plan: &LogicalPlan) -> Result<()> {
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
                if let Some(view) = provider.downcast_ref::<ViewTable>() {
                    // A view's tables, as its reader reads them.
                    if let Err(e) = check_plan_access(view.logical_plan()) {
                        denied = Some(e);
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
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
