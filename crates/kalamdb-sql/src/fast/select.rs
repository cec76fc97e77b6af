//! The fast path for a primary-key point read, `SELECT * | col, ... FROM t WHERE pk = literal`,
//! and for a whole-scope read, `SELECT * | col, ... FROM t` (a user reading their rows).
//!
//! Planning, optimizing and running such a query through DataFusion cost about 1 ms, most of
//! it fixed overhead around a single RocksDB seek (docs/BENCHMARKS.md, scenario 4). This
//! module reads the row straight from the row store's merged scan — the same scan, with the
//! same pk pushdown, that the table provider hands to DataFusion — after the same access
//! check, and returns it with the schema DataFusion would give the result.
//!
//! Only the exact shapes above qualify: plain column names (or `*`), one table without an
//! alias, and no WHERE or a WHERE that is one equality between the primary key and an integer
//! literal (integer keys) or a string literal (TEXT keys). Anything else returns `None` and is
//! planned. `limits.max_result_rows` and `limits.statement_timeout_secs` apply as for planned
//! queries (the scan stops at the limit or when the timeout fires).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::df::provider::{key_lookup, KalamTable, KeyLiteral};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use kalamdb_core::{Account, Db, Principal, Result, ScanColumn, ScanRange, SCAN_BATCH_ROWS};
use sqlparser::ast::{
    BinaryOperator, Expr, Query, Select, SelectItem, SetExpr, TableFactor, Value,
};

use crate::engine::too_many_rows;
use crate::fast::path::{is_bare, kalam_table, normalize};

/// A direct read ready to run.
pub struct DirectSelect {
    provider: Arc<dyn TableProvider>,
    columns: Vec<ScanColumn>,
    pub schema: SchemaRef,
    /// `None`: every row of the caller's scope.
    pk: Option<kalamdb_core::Value>,
}

fn plain_select(query: &Query) -> Option<&Select> {
    if !is_bare(query) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let s = select.as_ref();
    let plain = s.distinct.is_none()
        && s.top.is_none()
        && s.exclude.is_none()
        && s.into.is_none()
        && s.lateral_views.is_empty()
        && s.prewhere.is_none()
        && s.connect_by.is_empty()
        && matches!(&s.group_by, sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && s.cluster_by.is_empty()
        && s.distribute_by.is_empty()
        && s.sort_by.is_empty()
        && s.having.is_none()
        && s.named_window.is_empty()
        && s.qualify.is_none()
        && s.value_table_mode.is_none()
        && s.from.len() == 1
        && s.from[0].joins.is_empty();
    plain.then_some(s)
}

/// The direct read `query` describes, or `None` when it needs planning.
// long: each condition that sends a SELECT back to the planner is one early return, in one
// list (ADR 0005).
pub async fn prepare(
    db: &Arc<Db>,
    principal: &Principal,
    namespace: &str,
    query: &Query,
) -> Option<Result<DirectSelect>> {
    let select = plain_select(query)?;
    let TableFactor::Table {
        name,
        alias: None,
        args: None,
        with_hints,
        version: None,
        partitions,
        with_ordinality: false,
        json_path: None,
        sample: None,
        index_hints,
        ..
    } = &select.from[0].relation
    else {
        return None;
    };
    if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
        return None;
    }
    let provider = kalam_table(db, principal, namespace, name).await?;
    let table = provider.downcast_ref::<KalamTable>()?;
    let def = table.def();
    let pk = match &select.selection {
        None => None,
        Some(selection) => Some(pk_equality(def, selection)?),
    };

    // Projection: `*` or distinct plain column names.
    let schema = table.schema();
    let live: Vec<_> = def.live_columns().collect();
    let mut indices = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(opts)
                if opts.opt_ilike.is_none()
                    && opts.opt_exclude.is_none()
                    && opts.opt_except.is_none()
                    && opts.opt_replace.is_none()
                    && opts.opt_rename.is_none() =>
            {
                indices.extend(0..schema.fields().len());
            }
            SelectItem::UnnamedExpr(Expr::Identifier(c)) => {
                indices.push(schema.index_of(&normalize(c)).ok()?)
            }
            _ => return None,
        }
    }
    for (n, i) in indices.iter().enumerate() {
        if indices[..n].contains(i) {
            return None;
        }
    }
    let columns = indices
        .iter()
        .map(|&i| {
            let c = live.get(i)?;
            Some(ScanColumn::Column {
                id: c.id,
                data_type: c.data_type,
                value_for_older_rows: c.value_for_older_rows.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let schema = match schema.project(&indices) {
        Ok(s) => Arc::new(s),
        Err(_) => return None,
    };
    if let Err(e) = table.principal().check_read(def) {
        return Some(Err(e));
    }
    Some(Ok(DirectSelect {
        provider,
        columns,
        schema,
        pk,
    }))
}

/// The key value of `pk = literal` (either side), or `None` if `selection` is anything else.
fn pk_equality(def: &kalamdb_core::TableDef, selection: &Expr) -> Option<kalamdb_core::Value> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = selection
    else {
        return None;
    };
    let (col, lit) = match (left.as_ref(), right.as_ref()) {
        (Expr::Identifier(c), Expr::Value(v)) | (Expr::Value(v), Expr::Identifier(c)) => {
            (c, &v.value)
        }
        _ => return None,
    };
    let literal = match lit {
        Value::Number(n, false) => KeyLiteral::Integer(n.as_str()),
        Value::SingleQuotedString(s) => KeyLiteral::Text(s.as_str()),
        _ => return None,
    };
    key_lookup(def, &normalize(col), literal)
}

impl DirectSelect {
    /// Read the rows from the row store within the statement's row limit, memory limit (the
    /// batches read are charged to `account`: kalamdb_core::memory) and timeout.
    pub async fn run(
        self,
        db: &Arc<Db>,
        max_rows: usize,
        timeout: Duration,
        account: Arc<Account>,
    ) -> Result<(Vec<RecordBatch>, usize)> {
        let rows = db.rows.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let stop = cancelled.clone();
        let task = tokio::task::spawn_blocking(move || {
            let table = self
                .provider
                .downcast_ref::<KalamTable>()
                .expect("checked in prepare");
            let range = ScanRange {
                pk_equals: self.pk,
                ..ScanRange::default()
            };
            let mut batches = Vec::new();
            let mut n = 0usize;
            account.charged(|| {
                rows.scan(
                    table.def(),
                    table.scope(),
                    &self.columns,
                    self.schema.clone(),
                    &range,
                    SCAN_BATCH_ROWS,
                    |b| {
                        n += b.num_rows();
                        batches.push(b);
                        n <= max_rows && !stop.load(Ordering::Relaxed) && account.check().is_ok()
                    },
                )
            })?;
            if n > max_rows {
                return Err(too_many_rows(max_rows));
            }
            account.check()?;
            Ok((batches, n))
        });
        let deadline = std::time::Instant::now() + timeout;
        crate::engine::deadline::until_deadline(deadline, timeout, task, Some(&cancelled)).await
    }
}
