//! What statements produce and who runs them: the engine's output types.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use kalamdb_core::{Account, Error, Principal};

/// Who runs a request and where unqualified names resolve.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub namespace: String,
    /// The request's own statement timeout (its `timeout_ms` option), instead of
    /// `limits.statement_timeout`; at most `limits.max_statement_timeout`.
    pub timeout: Option<std::time::Duration>,
    /// The transaction its statements run in (set by the engine from the session).
    pub(crate) transaction: Option<Arc<super::transaction::Transaction>>,
}

impl Caller {
    pub fn new(
        principal: Principal,
        namespace: String,
        timeout: Option<std::time::Duration>,
    ) -> Caller {
        Caller {
            principal,
            namespace,
            timeout,
            transaction: None,
        }
    }

    /// The caller as its statements run in `session` (in its transaction, if one is open).
    pub(super) fn in_session(&self, session: &super::transaction::Session) -> Caller {
        Caller {
            transaction: session.transaction.clone(),
            ..self.clone()
        }
    }
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

impl StatementOutput {
    /// The bytes of the rows it holds (of each column's slice: a column repeated in a select
    /// list counts each time, as it is rendered each time).
    pub(super) fn bytes(&self) -> usize {
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

pub(super) fn results_too_large(bytes: usize, limit: usize) -> Error {
    Error::InvalidParameter(format!(
        "the request's results hold {bytes} bytes, more than limits.query_memory_bytes ({limit} bytes, \
         for all running queries and the results they are sending) allows; select fewer rows or columns"
    ))
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
