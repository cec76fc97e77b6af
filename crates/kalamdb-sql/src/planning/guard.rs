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
//! is charged as a whole (crate::engine); the operators that run their inputs on tasks of
//! their own (repartitioning, merging, sorting, buffering) get a guard over each input, so
//! every operator's allocations are counted.
//!
//! A cross join repeats each row of its build side for every row of a probe batch: one output
//! batch was 2,100 copies of a 1 MB value (2 GB before any check could see it). So the guard
//! over a cross join's build side records its widest row, and the guard over its probe side
//! cuts probe batches (zero-copy slices) so that one build row repeated for a piece stays near
//! [`TARGET_BATCH_BYTES`]; the join then builds many small batches, each checked. A
//! nested-loop join's probe batches are cut the same way, and also by the number of pairs
//! with its build rows it evaluates its filter for inside one poll
//! ([`PAIRS_PER_PROBE_PIECE`]), so that the deadline is seen between pieces.
//!
//! A batch check is a clock read and two atomic loads; it is invisible in the benchmark. The
//! wrapper delegates its downcast identity to the operator it wraps, so code that inspects
//! plans is not affected; EXPLAIN shows it as `GuardExec`.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType as ArrowType;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::config::ConfigOptions;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;
use kalamdb_core::Account;

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

/// About how many bytes one output batch of a join may hold (see the module docs), and what
/// the statement's batch size in rows is fitted to (engine::session): a filter's coalescing of
/// its output gathers up to one such batch beside the scan's own (a range query over rows of
/// 1 MB held 78 MB under a 64 MiB limit with 32 MiB here and 16 MiB scan batches).
pub(crate) const TARGET_BATCH_BYTES: usize = 16 << 20;

/// DataFusion's joins that collect their build side (the first child) and repeat each of its
/// rows for a whole probe batch. (Hash and nested-loop joins repeat rows too, but cutting
/// their probe batches did not bound their output: a 1 MB row matched by 3,000 rows still
/// made one 3 GB batch. Not done yet: docs/SECURITY.md.)
const REPEATS_BUILD_ROWS: [&str; 1] = ["CrossJoinExec"];

/// The join that evaluates its filter for every build row against a whole probe batch inside
/// one poll (build rows x probe rows pairs, then the next probe batch): two inputs of 100,000
/// rows and a selective filter kept both cores busy long after the 408, since the deadline is
/// seen only between probe batches. Its probe batches are cut to about
/// [`PAIRS_PER_PROBE_PIECE`] pairs (~75 ms of a release build), never below
/// [`MIN_PROBE_PIECE_ROWS`] rows: it evaluates the filter once per build row and piece, ~1 µs
/// each, so smaller pieces cost more (16 M pairs made a 20,000 x 20,000 join 1.85x slower).
const PAIRS_PER_BUILD_AND_PROBE: [&str; 1] = ["NestedLoopJoinExec"];
const PAIRS_PER_PROBE_PIECE: usize = 64 << 20;
const MIN_PROBE_PIECE_ROWS: usize = 1024;

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
        Arc::new(GuardExec::new(node, self.deadline, Role::Plain))
    }

    /// A join's build side measured and its probe side cut to the widest build row (and, when
    /// `by_pairs`, to a number of pairs with the build rows).
    fn join_inputs(
        &self,
        node: Arc<dyn ExecutionPlan>,
        by_pairs: bool,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let build_side = Arc::new(BuildSide {
            widest: AtomicUsize::new(0),
            rows: AtomicUsize::new(0),
            by_pairs,
        });
        let children = node.children();
        let [build, probe] = children.as_slice() else {
            return Ok(node.clone());
        };
        let children = vec![
            Arc::new(GuardExec::new(
                (*build).clone(),
                self.deadline,
                Role::Widest(build_side.clone()),
            )) as Arc<dyn ExecutionPlan>,
            Arc::new(GuardExec::new(
                (*probe).clone(),
                self.deadline,
                Role::Fanout(build_side),
            )),
        ];
        datafusion::physical_plan::replace_children_if_necessary(node.clone(), children)
    }
}

impl Guard {
    /// An operator's inputs cut into pieces of `TARGET_BATCH_BYTES / widest` rows.
    fn cut_inputs(
        &self,
        node: Arc<dyn ExecutionPlan>,
        widest: usize,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let children = node
            .children()
            .into_iter()
            .map(|c| {
                let side = Arc::new(BuildSide {
                    widest: AtomicUsize::new(widest),
                    rows: AtomicUsize::new(0),
                    by_pairs: false,
                });
                Arc::new(GuardExec::new(c.clone(), self.deadline, Role::Fanout(side)))
                    as Arc<dyn ExecutionPlan>
            })
            .collect();
        datafusion::physical_plan::replace_children_if_necessary(node, children)
    }
}

/// A literal wider than this is repeated for every row of a batch when an operator evaluates
/// it into a column: a 1 MB value (a constant `repeat()`, a `$1`, a scalar subquery's answer)
/// over 3,000 rows was one 3 GB column, and took a server past 6 GB. The inputs of an operator
/// with such a literal are cut so that its column stays near [`TARGET_BATCH_BYTES`].
const WIDE_LITERAL_BYTES: usize = 64 << 10;

/// The bytes of the widest literal in `node`'s own expressions.
fn widest_literal(node: &Arc<dyn ExecutionPlan>) -> usize {
    widest_literal_by(node, |v| v.size())
}

/// The widest literal of `node`'s own expressions, as `bytes` measures it.
fn widest_literal_by(
    node: &Arc<dyn ExecutionPlan>,
    bytes: fn(&datafusion::common::ScalarValue) -> usize,
) -> usize {
    use datafusion::common::tree_node::TreeNode as _;
    use datafusion::physical_expr::expressions::Literal;
    let mut widest = 0usize;
    let _ = node.apply_expressions(&mut |root| {
        root.apply(|e| {
            if let Some(literal) = e.downcast_ref::<Literal>() {
                widest = widest.max(bytes(literal.value()));
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    widest
}

/// The bytes of the widest text or binary literal over 1 KB in the whole plan (0 if none).
/// Arrays are left out: a literal array is mostly unnested, into slices of one buffer (a
/// batch size fitted to `range(100000)` made an unnest of it thousands of batches, each
/// reserving the whole buffer in the pool).
pub(crate) fn plan_widest_text_literal(plan: &Arc<dyn ExecutionPlan>) -> usize {
    use datafusion::common::ScalarValue;
    fn text_bytes(v: &ScalarValue) -> usize {
        match v {
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)) => v.len(),
            ScalarValue::Binary(Some(v))
            | ScalarValue::LargeBinary(Some(v))
            | ScalarValue::BinaryView(Some(v))
            | ScalarValue::FixedSizeBinary(_, Some(v)) => v.len(),
            _ => 0,
        }
    }
    let mut widest = 0usize;
    let _ = plan.apply(|node| {
        widest = widest.max(widest_literal_by(node, text_bytes));
        Ok(TreeNodeRecursion::Continue)
    });
    if widest > 1024 {
        widest
    } else {
        0
    }
}

impl PhysicalOptimizerRule for Guard {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let literal = widest_literal(&node);
            let node = if literal > WIDE_LITERAL_BYTES {
                self.cut_inputs(node, literal)?
            } else {
                node
            };
            let node = if REPEATS_BUILD_ROWS.contains(&node.name()) {
                self.join_inputs(node, false)?
            } else if PAIRS_PER_BUILD_AND_PROBE.contains(&node.name()) {
                self.join_inputs(node, true)?
            } else if RUNS_INPUTS_ON_TASKS.contains(&node.name()) {
                let children = node
                    .children()
                    .into_iter()
                    .map(|c| self.guarded(c.clone()))
                    .collect();
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

/// What a guard does besides the deadline and the memory account.
#[derive(Debug, Clone)]
enum Role {
    Plain,
    /// Over a join's build side: records the widest row (bytes) and the rows it passes on.
    Widest(Arc<BuildSide>),
    /// Over a join's probe side: cuts each batch into pieces of at most
    /// `TARGET_BATCH_BYTES / widest build row` rows (and, by pairs, see
    /// [`PAIRS_PER_PROBE_PIECE`]).
    Fanout(Arc<BuildSide>),
}

/// What the guard over a join's build side saw, for the guard over its probe side (the join
/// collects its build side before it reads the probe side).
#[derive(Debug)]
struct BuildSide {
    widest: AtomicUsize,
    rows: AtomicUsize,
    by_pairs: bool,
}

impl BuildSide {
    /// Rows of a probe piece.
    fn piece_rows(&self) -> usize {
        let by_bytes = (TARGET_BATCH_BYTES / self.widest.load(Ordering::Relaxed).max(1)).max(1);
        if !self.by_pairs {
            return by_bytes;
        }
        let by_pairs = (PAIRS_PER_PROBE_PIECE / self.rows.load(Ordering::Relaxed).max(1))
            .max(MIN_PROBE_PIECE_ROWS);
        by_bytes.min(by_pairs)
    }
}

/// Passes its input's batches on, its work charged to the statement's memory account, until
/// the deadline or the memory limit, then ends with TIMEOUT or the memory error.
#[derive(Debug)]
struct GuardExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Instant,
    role: Role,
}

impl GuardExec {
    fn new(input: Arc<dyn ExecutionPlan>, deadline: Instant, role: Role) -> GuardExec {
        GuardExec {
            input,
            deadline,
            role,
        }
    }
}

impl DisplayAs for GuardExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role {
            Role::Plain => write!(f, "GuardExec"),
            Role::Widest(_) => write!(f, "GuardExec: widest row"),
            Role::Fanout(_) => write!(f, "GuardExec: cut to the widest row"),
        }
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
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("GuardExec has one child".into()));
        }
        Ok(Arc::new(GuardExec::new(
            children.swap_remove(0),
            self.deadline,
            self.role.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let account = Account::of(&context);
        let inner = match &account {
            Some(account) => account.charged(|| self.input.execute(partition, context))?,
            None => self.input.execute(partition, context)?,
        };
        Ok(Box::pin(GuardStream {
            inner,
            deadline: self.deadline,
            account,
            role: self.role.clone(),
            pending: None,
            done: false,
        }))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

struct GuardStream {
    inner: SendableRecordBatchStream,
    deadline: Instant,
    account: Option<Arc<Account>>,
    role: Role,
    /// A probe batch being cut, and where its next piece starts.
    pending: Option<(RecordBatch, usize)>,
    done: bool,
}

impl GuardStream {
    fn pass(&mut self, batch: RecordBatch) -> RecordBatch {
        if let Role::Widest(build) = &self.role {
            build
                .widest
                .fetch_max(widest_row(&batch), Ordering::Relaxed);
            build.rows.fetch_add(batch.num_rows(), Ordering::Relaxed);
        }
        if matches!(self.role, Role::Fanout(_)) {
            return self.cut(batch, 0);
        }
        batch
    }

    /// The piece of `batch` from `offset` that one output batch may repeat each build row
    /// for; the rest stays pending.
    fn cut(&mut self, batch: RecordBatch, offset: usize) -> RecordBatch {
        let Role::Fanout(build) = &self.role else {
            return batch;
        };
        let rows = build.piece_rows();
        let left = batch.num_rows() - offset;
        if left <= rows {
            return if offset == 0 {
                batch
            } else {
                batch.slice(offset, left)
            };
        }
        let piece = batch.slice(offset, rows);
        self.pending = Some((batch, offset + rows));
        piece
    }
}

/// The longest value between consecutive offsets of a variable-width column (NULLs span none).
pub(crate) fn widest<O: arrow::array::OffsetSizeTrait>(offsets: &[O]) -> usize {
    offsets
        .windows(2)
        .map(|w| (w[1] - w[0]).as_usize())
        .max()
        .unwrap_or(0)
}

/// An upper bound of the bytes of the widest row of `batch`: each column's widest value.
fn widest_row(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            ArrowType::Utf8 => widest(c.as_string::<i32>().offsets()),
            ArrowType::LargeUtf8 => widest(c.as_string::<i64>().offsets()),
            ArrowType::Binary => widest(c.as_binary::<i32>().offsets()),
            ArrowType::LargeBinary => widest(c.as_binary::<i64>().offsets()),
            // Lists and the rest: their average row (an array column of one long list is
            // seen as long as it is over a one-row build side, the case that matters).
            _ => c.to_data().get_slice_memory_size().unwrap_or(0) / c.len().max(1),
        })
        .sum()
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
                "the statement ran longer than its timeout (the request's timeout_ms, else limits.statement_timeout_secs) and was stopped".into(),
            ))))));
        }
        let this = &mut *self;
        if let Some((batch, offset)) = this.pending.take() {
            return Poll::Ready(Some(Ok(this.cut(batch, offset))));
        }
        let polled = match &this.account {
            Some(account) => {
                let polled = account.charged(|| this.inner.as_mut().poll_next(cx));
                if let Err(e) = account.check() {
                    this.done = true;
                    return Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))));
                }
                polled
            }
            None => this.inner.as_mut().poll_next(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(batch))) => Poll::Ready(Some(Ok(this.pass(batch)))),
            other => other,
        }
    }
}

impl RecordBatchStream for GuardStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
