//! A statement's work stops at its deadline and when it holds more memory than allowed, also
//! inside DataFusion's operators.
//!
//! At the deadline the statement's task on the query runtime is aborted, but a tokio task is
//! only stopped when it yields, and a DataFusion pipeline whose inputs are always ready never
//! does: `count(*)` over a cross join of two `generate_series` ran inside one poll of the
//! aggregate for as long as the join produced batches, and kept a core busy long after its
//! 408. So the last physical optimizer rule puts a [`GuardExec`] over every scan and every
//! operator that can produce many more rows than it reads (joins, unnest): each batch it passes
//! on first checks the clock, and after the deadline it ends the stream with TIMEOUT, which
//! ends every operator above it at its next batch.
//!
//! The same guard runs its input's work charged to the statement's memory account
//! (kalamdb_core::memory, found in the task's session config) and ends the stream when the
//! statements together hold more than `limits.query_memory_bytes`. The statement's own task
//! is charged as a whole (crate::executor); the operators that run their inputs on tasks of
//! their own (repartitioning, merging, sorting, buffering) get a guard over each input, so
//! every operator's allocations are counted.
//!
//! A batch check is a clock read and two atomic loads; it is invisible in the benchmark. The
//! wrapper delegates its downcast identity to the operator it wraps, so code that inspects
//! plans is not affected; EXPLAIN shows it as `GuardExec`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::config::ConfigOptions;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;
use kalamdb_core::memory::Account;

/// DataFusion's operators that run their inputs on tasks of their own: the work below them
/// is not inside the statement's task's polls.
const RUNS_INPUTS_ON_TASKS: [&str; 6] = [
    "AnalyzeExec",
    "BufferExec",
    "CoalescePartitionsExec",
    "RepartitionExec",
    "SortExec",
    "SortPreservingMergeExec",
];

/// The physical optimizer rule (see the module docs); the last one of a statement's session.
#[derive(Debug)]
pub(crate) struct Guard {
    deadline: Instant,
}

impl Guard {
    pub(crate) fn new(deadline: Instant) -> Guard {
        Guard { deadline }
    }

    fn guarded(&self, node: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        if (node.as_ref() as &dyn std::any::Any).is::<GuardExec>() {
            return node;
        }
        Arc::new(GuardExec::new(node, self.deadline))
    }
}

impl PhysicalOptimizerRule for Guard {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let node = if RUNS_INPUTS_ON_TASKS.contains(&node.name()) {
                let children = node.children().into_iter().map(|c| self.guarded(c.clone())).collect();
                datafusion::physical_plan::replace_children_if_necessary(node, children)?
            } else {
                node
            };
            let multiplies = node.name().contains("Join") || node.name() == "UnnestExec";
            if node.children().is_empty() || multiplies {
                Ok(Transformed::yes(self.guarded(node)))
            } else {
                Ok(Transformed::yes(node))
            }
        })
        // The root too: a plan of several partitions is merged after planning (by
        // `execute_stream`), on tasks of their own.
        .map(|t| self.guarded(t.data))
    }

    fn name(&self) -> &str {
        "kalamdb_guard"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input's batches on, its work charged to the statement's memory account, until
/// the deadline or the memory limit, then ends with TIMEOUT or the memory error.
#[derive(Debug)]
struct GuardExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Instant,
}

impl GuardExec {
    fn new(input: Arc<dyn ExecutionPlan>, deadline: Instant) -> GuardExec {
        GuardExec { input, deadline }
    }
}

impl DisplayAs for GuardExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuardExec")
    }
}

impl ExecutionPlan for GuardExec {
    fn name(&self) -> &str {
        "GuardExec"
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.input.as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("GuardExec has one child".into()));
        }
        Ok(Arc::new(GuardExec::new(children.swap_remove(0), self.deadline)))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let account = Account::of(&context);
        let inner = match &account {
            Some(account) => account.charged(|| self.input.execute(partition, context))?,
            None => self.input.execute(partition, context)?,
        };
        Ok(Box::pin(GuardStream { inner, deadline: self.deadline, account, done: false }))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

struct GuardStream {
    inner: SendableRecordBatchStream,
    deadline: Instant,
    account: Option<Arc<Account>>,
    done: bool,
}

impl Stream for GuardStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if Instant::now() >= self.deadline {
            self.done = true;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(kalamdb_core::Error::Timeout(
                "the statement ran longer than its timeout (limits.statement_timeout_secs) and was stopped".into(),
            ))))));
        }
        let this = &mut *self;
        let Some(account) = &this.account else {
            return this.inner.as_mut().poll_next(cx);
        };
        let polled = account.charged(|| this.inner.as_mut().poll_next(cx));
        if let Err(e) = account.check() {
            this.done = true;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))));
        }
        polled
    }
}

impl RecordBatchStream for GuardStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
