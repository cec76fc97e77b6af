//! The DataFusion session one statement is planned and run with.
//!
//! Built per statement for one caller: its only catalog is a [`StatementCatalog`] bound to
//! the caller, unqualified names resolve in the request's namespace, and it carries the
//! statement's start time. `NOW()`, `CURRENT_DATE`, `CURRENT_TIME` and column defaults
//! (`DEFAULT NOW()`) all read that time, so one statement sees one time in all its rows, as
//! in PostgreSQL. (DataFusion folds those functions into literals while optimizing and fails
//! at execution when no start time is set; its `SessionContext` sets one, a state built by
//! hand, like this one, must set it itself.)
//!
//! Subqueries DataFusion cannot plan are evaluated per outer row ([`crate::planning::subquery`]) with a
//! session built again from the same [`StatementSession`], so they see exactly what the
//! statement sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::df::provider::KalamTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;

use crate::df::session_catalog::{Misses, StatementCatalog, ViewPlanner};
use crate::df::system_tables::CATALOG_NAME;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use kalamdb_core::{Account, Db, Principal, QueryHeap, ViewDef};

use super::transaction::Transaction;

/// Everything a statement's DataFusion session is made from.
#[derive(Debug, Clone)]
pub(crate) struct StatementSession {
    /// The engine's state: functions, rules, runtime (memory pool); shared, never changed.
    base: Arc<SessionState>,
    db: Arc<Db>,
    principal: Principal,
    namespace: String,
    with_rowid: bool,
    now: chrono::DateTime<chrono::Utc>,
    deadline: Instant,
    /// The statement timeout the deadline comes from (for the TIMEOUT message).
    timeout: std::time::Duration,
    max_rows: usize,
    /// The heap bytes the statement's work allocates (kalamdb_core::memory).
    account: Arc<Account>,
    /// Evaluate every subquery per outer row, none by DataFusion's decorrelation (the
    /// fallback when DataFusion's rewrite of one fails: crate::planning::subquery).
    all_subqueries: bool,
    /// The widest rows of the tables the statement reads, added
    /// ([`StatementSession::fit_batches`]); shared with the sessions built again for its
    /// subqueries.
    widest_rows: Arc<AtomicUsize>,
    /// What planning looked for and did not find (crate::df::session_catalog::Misses).
    misses: Arc<Misses>,
    /// The views (`ns.v`) whose queries this session plans, outermost first (empty for the
    /// statement itself): a view that reads itself, directly or through others, is refused.
    view_chain: Arc<Vec<String>>,
    /// The transaction the statement runs in (ADR 0014), if any.
    transaction: Option<Arc<Transaction>>,
}

/// Views read through views at most this deep.
const MAX_VIEW_DEPTH: usize = 16;

/// DataFusion's batch size, in rows, for statements over rows of ordinary widths.
const BATCH_ROWS: usize = 8192;

impl StatementSession {
    pub(crate) fn new(
        base: Arc<SessionState>,
        db: Arc<Db>,
        principal: Principal,
        namespace: String,
        with_rowid: bool,
        deadline: Instant,
        timeout: std::time::Duration,
        max_rows: usize,
        heap: &Arc<QueryHeap>,
        transaction: Option<Arc<Transaction>>,
    ) -> Arc<StatementSession> {
        Arc::new(StatementSession {
            base,
            db,
            principal,
            namespace,
            with_rowid,
            now: statement_time(),
            deadline,
            timeout,
            max_rows,
            account: Account::new(heap),
            all_subqueries: false,
            widest_rows: Arc::new(AtomicUsize::new(0)),
            misses: Default::default(),
            view_chain: Default::default(),
            transaction,
        })
    }

    /// The transaction the statement runs in.
    pub(crate) fn transaction(&self) -> Option<&Arc<Transaction>> {
        self.transaction.as_ref()
    }

    /// Fit DataFusion's batch size to the widest rows the statement reads, for `state` and
    /// every state built for it later. Operators build batches of a number of rows, whatever
    /// their width: a hash join gathers up to a batch of matched pairs into one output batch,
    /// so a 1 MB row matched by 2,000 rows was one 2 GB batch, allocated before any check of
    /// the memory limit could see it, and repartitioning and coalescing regroup to the same
    /// number. A row of any operator's output holds at most one row of every table scan below
    /// it, besides what the operators compute (wide literals: [`StatementSession::batch_rows`];
    /// functions that build large values are bounded by crate::planning::bounded_values), so batches of
    /// `TARGET_BATCH_BYTES / (the widest rows of the statement's scans, added)` rows stay near
    /// that size. Tables of ordinary rows (under 4 KB together) keep 8,192.
    pub(crate) fn fit_batches(&self, state: &mut SessionState, plan: &LogicalPlan) {
        self.widest_rows
            .store(self.widest_of(plan), Ordering::Relaxed);
        let config = std::mem::take(state.config_mut());
        *state.config_mut() = config.with_batch_size(self.batch_rows(0));
    }

    /// The widest rows of the tables `plan` scans (through views too), added.
    fn widest_of(&self, plan: &LogicalPlan) -> usize {
        let mut widest = 0usize;
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if let Ok(provider) =
                    datafusion::catalog::default_table_source::source_as_provider(&scan.source)
                {
                    if let Some(table) = provider.downcast_ref::<KalamTable>() {
                        widest = widest.saturating_add(self.db.rows.widest_row(table.def()));
                    }
                    if let Some(view) =
                        provider.downcast_ref::<datafusion::catalog::view::ViewTable>()
                    {
                        widest = widest.saturating_add(self.widest_of(view.logical_plan()));
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        widest
    }

    /// The batch size for rows of the statement's tables and `computed` more bytes (the
    /// widest literal of its physical plan: a constant is repeated in every row of a batch,
    /// and a join repeats it again for every match).
    pub(crate) fn batch_rows(&self, computed: usize) -> usize {
        let widest = self
            .widest_rows
            .load(Ordering::Relaxed)
            .saturating_add(computed);
        (crate::planning::guard::TARGET_BATCH_BYTES / widest.max(1)).clamp(1, BATCH_ROWS)
    }

    /// The same statement, with every subquery evaluated per outer row.
    pub(crate) fn evaluating_all_subqueries(&self) -> Arc<StatementSession> {
        Arc::new(StatementSession {
            all_subqueries: true,
            ..self.clone()
        })
    }

    /// What the statement's work has allocated.
    pub(crate) fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// When the statement must have finished.
    pub(crate) fn misses(&self) -> &Arc<Misses> {
        &self.misses
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The statement timeout its deadline comes from.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// A DataFusion state for this statement (cheap enough to build per statement; built
    /// again only when a subquery runs per outer row).
    pub(crate) fn state(self: &Arc<Self>) -> SessionState {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, &self.namespace)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .set_str("datafusion.execution.time_zone", "UTC")
            // No round-robin repartition after our single-partition scans: it buffered batches
            // for the slower of its consumers without a bound (count(s) over 300 rows of 1 MB
            // grew the server by 600 MB). Hash repartitioning (joins, GROUP BY) stays.
            .set_bool("datafusion.optimizer.enable_round_robin_repartition", false)
            .with_batch_size(self.batch_rows(0))
            .with_extension(self.account.clone());
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(
            CATALOG_NAME.to_string(),
            Arc::new(
                StatementCatalog::new(
                    self.db.clone(),
                    self.principal.clone(),
                    self.with_rowid,
                    self.now.timestamp_micros(),
                    self.misses.clone(),
                )
                .with_views(self.clone())
                .in_transaction(
                    self.transaction
                        .clone()
                        .map(|t| t as Arc<dyn crate::df::provider::TransactionReads>),
                ),
            ),
        );
        let context: Arc<dyn crate::planning::subquery::StatementContext> = self.clone();
        let (analyzer_rule, optimizer_rule) = crate::planning::subquery::rules(&context);
        let mut state = SessionStateBuilder::new_from_existing(self.base.as_ref().clone())
            .with_config(config)
            .with_catalog_list(catalogs)
            .with_analyzer_rule(analyzer_rule)
            .with_analyzer_rule(Arc::new(crate::planning::growing::InWindows))
            .with_optimizer_rule(optimizer_rule)
            .with_physical_optimizer_rule(Arc::new(crate::planning::guard::Guard::new(
                self.deadline,
            )))
            .build();
        state.mark_start_execution();
        state.execution_props_mut().query_execution_start_time = Some(self.now);
        state
    }
}

/// Now, to the microsecond (the precision of TIMESTAMP columns, so a stored `NOW()` reads
/// back equal to the `NOW()` of the statement that stored it).
pub(crate) fn statement_time() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl StatementSession {
    /// The same statement, planning the query of view `namespace.name` (to read it, or to
    /// check it in CREATE VIEW): unqualified names resolve in its namespace.
    pub(crate) fn in_view(
        &self,
        namespace: &str,
        name: &str,
    ) -> kalamdb_core::Result<Arc<StatementSession>> {
        let qualified = format!("{namespace}.{name}");
        if self.view_chain.contains(&qualified) {
            let mut circle: Vec<String> = self.view_chain.to_vec();
            circle.push(qualified);
            return Err(kalamdb_core::Error::invalid_sql(format!(
                "view '{namespace}.{name}' would read itself: {}",
                circle.join(" -> ")
            )));
        }
        if self.view_chain.len() >= MAX_VIEW_DEPTH {
            return Err(kalamdb_core::Error::invalid_sql(format!(
                "views nest more than {MAX_VIEW_DEPTH} deep"
            )));
        }
        let mut chain = self.view_chain.to_vec();
        chain.push(qualified);
        Ok(Arc::new(StatementSession {
            namespace: namespace.to_string(),
            with_rowid: false,
            view_chain: Arc::new(chain),
            ..self.clone()
        }))
    }
}

impl StatementSession {
    /// Plan `sql` (one query; a view's) in this session, whose namespace unqualified names
    /// resolve in.
    pub(crate) async fn plan_query(
        self: &Arc<Self>,
        sql: &str,
    ) -> kalamdb_core::Result<LogicalPlan> {
        use crate::planning::errors::{from_datafusion, missing_table};
        let mut statements = datafusion::sql::parser::DFParser::parse_sql_with_dialect(
            sql,
            &sqlparser::dialect::GenericDialect {},
        )
        .map_err(from_datafusion)?;
        let (Some(statement), None) = (statements.pop_front(), statements.pop_front()) else {
            return Err(kalamdb_core::Error::Internal(
                "a view's query is not one statement".into(),
            ));
        };
        let state = self.state();
        match state.statement_to_plan(statement.clone()).await {
            Ok(plan) => Ok(plan),
            Err(e) => Err(missing_table(&state, &statement, &self.misses)
                .unwrap_or_else(|| from_datafusion(e))),
        }
    }
}

#[async_trait::async_trait]
impl ViewPlanner for StatementSession {
    async fn plan_view(&self, view: &ViewDef) -> kalamdb_core::Result<LogicalPlan> {
        let inner = self.in_view(&view.namespace, &view.name)?;
        inner.plan_query(&view.sql).await
    }
}

impl crate::planning::subquery::StatementContext for StatementSession {
    fn evaluate_all_subqueries(&self) -> bool {
        self.all_subqueries
    }

    fn account(&self) -> &Arc<Account> {
        &self.account
    }

    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn max_rows(&self) -> usize {
        self.max_rows
    }

    fn new_state(self: Arc<Self>) -> SessionState {
        self.state()
    }
}
