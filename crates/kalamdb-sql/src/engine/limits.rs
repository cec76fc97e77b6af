//! The limits every request is held to, and the errors that say which one was reached.

use arrow::array::{Array, RecordBatch};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use kalamdb_core::{Error, Result};

use crate::statement::parser::KalamStatement;

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
    /// Most a request may raise its statements' timeout to (its `timeout_ms` option).
    pub max_statement_timeout: std::time::Duration,
    /// Threads that execute queries.
    pub query_threads: usize,
    /// Largest value a function that builds values from a count (`lpad`, `repeat`, `range`,
    /// ...) may build, in bytes (crate::planning::bounded_values).
    pub max_value_bytes: usize,
    /// Most rows one transaction may write (its write set, ADR 0014).
    pub max_transaction_rows: usize,
    /// Longest a transaction may stay open, from BEGIN to COMMIT.
    pub transaction_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_statements: 1000,
            max_result_rows: 1_000_000,
            query_memory_bytes: 1 << 30,
            max_parser_recursion: 50,
            statement_timeout: std::time::Duration::from_secs(30),
            max_statement_timeout: std::time::Duration::from_secs(300),
            query_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_value_bytes: 16 << 20,
            max_transaction_rows: 100_000,
            transaction_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// SQL longer than this is parsed on the query runtime, under the statement's deadline
/// (shorter SQL parses in microseconds, where the hop would cost more than the parse).
pub(super) const LARGE_SQL_BYTES: usize = 64 * 1024;

/// A value to be stored is at most `limits.max_value_bytes`: what a statement computes
/// (`body || body`, `string_agg`) is otherwise unbounded, and a stored value must stay readable
/// (a flushed segment's values are read whole, under the query memory limit).
pub(super) fn values_within(batch: &RecordBatch, max_value_bytes: usize) -> Result<()> {
    use crate::planning::guard::widest;
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
pub(super) fn defaults_within(stmt: &KalamStatement, max_value_bytes: usize) -> Result<()> {
    use crate::statement::parser::{AlterTableOp, DefaultSpec};
    let specs: Vec<&crate::statement::parser::ColumnSpec> = match stmt {
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
        "the statement ran longer than {} s (its timeout: the request's timeout_ms, else limits.statement_timeout_secs) and was stopped",
        timeout.as_secs_f64()
    ))
}

/// Most nodes a statement's logical plan may have, counted as a tree: a CTE is planned at each
/// reference, so a chain of CTEs that each join the previous one twice doubles per level (29
/// levels, 1 KB of SQL, took the server to 22 GB while planning, past its timeout: planning
/// cannot be interrupted). Ordinary statements have tens to a few thousand nodes.
const MAX_PLAN_NODES: usize = 5_000;

pub(super) fn check_plan_size(plan: &LogicalPlan) -> Result<()> {
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
