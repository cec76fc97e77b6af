//! A statement's work stops at its deadline, also inside DataFusion's operators.
//!
//! At the deadline the statement's task on the query runtime is aborted, but a tokio task is
//! only stopped when it yields, and a DataFusion pipeline whose inputs are always ready never
//! does: `count(*)` over a cross join of two `generate_series` ran inside one poll of the
//! aggregate for as long as the join produced batches, and kept a core busy long after its
//! 408. So the last physical optimizer rule puts a [`DeadlineExec`] over every scan and every
//! operator that can produce many more rows than it reads (joins, unnest): each batch it passes
//! on first checks the clock, and after the deadline it ends the stream with TIMEOUT, which
//! ends every operator above it at its next batch.
//!
//! A batch check is a clock read; it is invisible in the benchmark. The wrapper delegates its
//! downcast identity to the operator it wraps, so code that inspects plans is not affected;
//! EXPLAIN shows it as `DeadlineExec`.

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

/// The physical optimizer rule (see the module docs); the last one of a statement's session.
#[derive(Debug)]
pub(crate) struct StopAtDeadline {
    deadline: Instant,
}

impl StopAtDeadline {
    pub(crate) fn new(deadline: Instant) -> StopAtDeadline {
        StopAtDeadline { deadline }
    }
}

impl PhysicalOptimizerRule for StopAtDeadline {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let multiplies = node.name().contains("Join") || node.name() == "UnnestExec";
            if node.children().is_empty() || multiplies {
                Ok(Transformed::yes(Arc::new(DeadlineExec::new(node, self.deadline)) as Arc<dyn ExecutionPlan>))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kalamdb_stop_at_deadline"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input's batches on until the deadline, then ends with TIMEOUT.
#[derive(Debug)]
struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Instant,
}

impl DeadlineExec {
    fn new(input: Arc<dyn ExecutionPlan>, deadline: Instant) -> DeadlineExec {
        DeadlineExec { input, deadline }
    }
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeadlineExec")
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
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
            return Err(DataFusionError::Internal("DeadlineExec has one child".into()));
        }
        Ok(Arc::new(DeadlineExec::new(children.swap_remove(0), self.deadline)))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let inner = self.input.execute(partition, context)?;
        Ok(Box::pin(DeadlineStream { inner, deadline: self.deadline, done: false }))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

struct DeadlineStream {
    inner: SendableRecordBatchStream,
    deadline: Instant,
    done: bool,
}

impl Stream for DeadlineStream {
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
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
