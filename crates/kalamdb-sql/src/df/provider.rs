//! DataFusion table provider over one scope of a KalamDB table.
//!
//! The provider is built per statement for one [`Principal`]: the scope (the caller's user
//! partition of a USER/STREAM table, or the SHARED partition) is fixed when it is built, so a
//! query can never read outside it, whatever SQL it runs. Scans stream Arrow batches from the
//! hot store on a blocking thread; projections decode only the needed columns and
//! `pk = literal` filters become a single-key seek.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};

use kalamdb_core::{
    value_from_text, ColumnDefault, DataType, Error, Principal, ReadView, RowStore, ScanColumn,
    ScanRange, Scope, SeqGenerator, TableDef, Value, ROWID_COLUMN, SCAN_BATCH_ROWS,
    TYPE_METADATA_KEY,
};

use super::functions::{snowflake_id_udf, uuid_v7_udf};

/// Wrap a KalamDB error so it crosses DataFusion and can be recovered at the edge.
pub fn df_error(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Arrow schema of a table's live columns (plus `_rowid` when `with_rowid`).
///
/// Every field is nullable: NOT NULL is enforced by the row store with the contract's error
/// code, not by DataFusion's generic checks. JSON and UUID columns, stored as text, say their
/// type in the field metadata; no other field carries any (DataFusion refuses to union fields
/// whose metadata differ, as a recursive CTE's two sides often do).
pub fn table_schema(def: &TableDef, with_rowid: bool) -> SchemaRef {
    let mut fields: Vec<Field> = def
        .live_columns()
        .map(|c| {
            let field = Field::new(&c.name, c.data_type.arrow_type(), true);
            match c.data_type {
                DataType::Json | DataType::Uuid => field.with_metadata(HashMap::from([(
                    TYPE_METADATA_KEY.to_string(),
                    c.data_type.to_string(),
                )])),
                _ => field,
            }
        })
        .collect();
    if with_rowid {
        fields.push(Field::new(
            ROWID_COLUMN,
            arrow::datatypes::DataType::Int64,
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// What a transaction's statements read (ADR 0014): its snapshot and, per scope, its own
/// uncommitted writes.
pub(crate) trait TransactionReads: Send + Sync + std::fmt::Debug {
    fn view(&self, table_id: u64, scope: &Scope) -> ReadView;
}

/// A KalamDB table as DataFusion sees it for one statement.
#[derive(Debug)]
pub struct KalamTable {
    def: Arc<TableDef>,
    rows: Arc<RowStore>,
    principal: Principal,
    scope: Scope,
    with_rowid: bool,
    schema: SchemaRef,
    defaults: HashMap<String, Expr>,
    /// What its scans see: the database now, or a transaction's snapshot and writes.
    view: ReadView,
}

impl KalamTable {
    /// Build the provider. `with_rowid` exposes the hidden `_rowid` column (UPDATE/DELETE
    /// of tables without a primary key need it to address rows).
    pub fn new(
        def: Arc<TableDef>,
        rows: Arc<RowStore>,
        principal: Principal,
        with_rowid: bool,
        statement_time_micros: i64,
        seq: &Arc<SeqGenerator>,
    ) -> KalamTable {
        let with_rowid = with_rowid && def.primary_key.is_none();
        let schema = table_schema(&def, with_rowid);
        let mut defaults = HashMap::new();
        for c in def.live_columns() {
            let expr = match &c.default {
                None => continue,
                // The statement's time, the same instant its NOW() returns: every row of one
                // INSERT gets the same value, equal to an explicit NOW() in the same statement.
                Some(ColumnDefault::Now) => {
                    datafusion::logical_expr::lit(ScalarValue::TimestampMicrosecond(
                        Some(statement_time_micros),
                        Some("UTC".into()),
                    ))
                }
                Some(ColumnDefault::SnowflakeId) => snowflake_id_udf(seq.clone()).call(vec![]),
                Some(ColumnDefault::UuidV7) => uuid_v7_udf().call(vec![]),
                Some(ColumnDefault::Literal(v)) => match scalar_of(v, &c.data_type) {
                    Some(s) => datafusion::logical_expr::lit(s),
                    None => continue,
                },
            };
            defaults.insert(c.name.clone(), expr);
        }
        let scope = principal.scope_for(&def);
        KalamTable {
            def,
            rows,
            principal,
            scope,
            with_rowid,
            schema,
            defaults,
            view: ReadView::default(),
        }
    }

    /// The same table read as a transaction reads it.
    pub(crate) fn read_as(mut self, reads: &dyn TransactionReads) -> KalamTable {
        self.view = reads.view(self.def.id, &self.scope);
        self
    }

    pub fn def(&self) -> &Arc<TableDef> {
        &self.def
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn has_rowid(&self) -> bool {
        self.with_rowid
    }

    /// `pk = literal` among the filters, as a value of the key's type ([`key_lookup`]).
    fn pk_equality(&self, filters: &[Expr]) -> Option<Value> {
        filters.iter().find_map(|f| {
            let Expr::BinaryExpr(b) = f else { return None };
            if b.op != Operator::Eq {
                return None;
            }
            match (b.left.as_ref(), b.right.as_ref()) {
                (Expr::Column(c), Expr::Literal(s, _)) | (Expr::Literal(s, _), Expr::Column(c)) => {
                    key_lookup(&self.def, &c.name, KeyLiteral::Typed(s))
                }
                _ => None,
            }
        })
    }
}

/// The literal of a `pk = literal` comparison, as each reader of one sees it.
pub(crate) enum KeyLiteral<'a> {
    /// After planning: DataFusion has given the literal the column's type ('5' = 5).
    Typed(&'a ScalarValue),
    /// Before planning (the point SELECT bypass): an unsigned integer literal as written.
    Integer(&'a str),
    /// Before planning: a single-quoted string as written.
    Text(&'a str),
}

/// The one rule for `pk = literal`: the key it addresses, or `None` when the comparison is
/// not an exact lookup of `def`'s primary key (another column, NULL, a literal that does not
/// convert exactly, or, before planning, a literal whose type the planner would still have
/// to coerce). Both the table scan and the point SELECT bypass ask it.
pub(crate) fn key_lookup(def: &TableDef, column: &str, literal: KeyLiteral<'_>) -> Option<Value> {
    let pk = def.primary_key.as_deref()?;
    if column != pk {
        return None;
    }
    let dt = def.column(pk)?.data_type;
    let text = match literal {
        // Through text so the key gets SQL's casting rules; a NULL key matches nothing.
        KeyLiteral::Typed(s) if s.is_null() => return None,
        KeyLiteral::Typed(s) => s.to_string(),
        KeyLiteral::Integer(n)
            if matches!(dt, DataType::BigInt | DataType::Int | DataType::SmallInt)
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            n.to_string()
        }
        KeyLiteral::Text(s) if dt == DataType::Text => s.to_string(),
        KeyLiteral::Integer(_) | KeyLiteral::Text(_) => return None,
    };
    // An integer outside the key type's range matches nothing; the planner says so.
    value_from_text(&text, &dt).ok()
}

/// The ScalarValue of a stored literal, for column defaults.
fn scalar_of(v: &Value, dt: &DataType) -> Option<ScalarValue> {
    Some(match (v, dt) {
        (Value::Null, _) => return None,
        (Value::Boolean(x), _) => ScalarValue::Boolean(Some(*x)),
        (Value::SmallInt(x), _) => ScalarValue::Int16(Some(*x)),
        (Value::Int(x), _) => ScalarValue::Int32(Some(*x)),
        (Value::BigInt(x), _) => ScalarValue::Int64(Some(*x)),
        (Value::Real(x), _) => ScalarValue::Float32(Some(*x)),
        (Value::Double(x), _) => ScalarValue::Float64(Some(*x)),
        (Value::Decimal(x), DataType::Decimal { precision, scale }) => {
            ScalarValue::Decimal128(Some(*x), *precision, *scale)
        }
        (Value::Text(s), _) => ScalarValue::Utf8(Some(s.clone())),
        (Value::Bytes(b), _) => ScalarValue::Binary(Some(b.clone())),
        (Value::Date(x), _) => ScalarValue::Date32(Some(*x)),
        (Value::Time(x), _) => ScalarValue::Time64Microsecond(Some(*x)),
        (Value::Timestamp(x), DataType::TimestampTz) => {
            ScalarValue::TimestampMicrosecond(Some(*x), Some("UTC".into()))
        }
        (Value::Timestamp(x), _) => ScalarValue::TimestampMicrosecond(Some(*x), None),
        _ => return None,
    })
}

#[async_trait]
impl TableProvider for KalamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters are used to narrow the key range; DataFusion still applies them exactly.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.principal.check_read(&self.def).map_err(df_error)?;
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let indices = projection.unwrap_or(&all);
        let live: Vec<_> = self.def.live_columns().collect();
        let columns: Vec<ScanColumn> = indices
            .iter()
            .map(|&i| match live.get(i) {
                Some(c) => ScanColumn::Column {
                    id: c.id,
                    data_type: c.data_type,
                    value_for_older_rows: c.value_for_older_rows.clone(),
                },
                None => ScanColumn::RowId,
            })
            .collect();
        let schema = Arc::new(self.schema.project(indices)?);
        let partition = HotScan {
            def: self.def.clone(),
            rows: self.rows.clone(),
            scope: self.scope.clone(),
            columns,
            schema: schema.clone(),
            range: ScanRange {
                pk_equals: self.pk_equality(filters),
                limit,
                view: self.view.clone(),
                ..ScanRange::default()
            },
        };
        let exec = StreamingTableExec::try_new(
            schema,
            vec![Arc::new(partition)],
            None,
            Vec::new(),
            false,
            limit,
        )?;
        Ok(Arc::new(exec))
    }
}

/// One scope's hot rows as a DataFusion partition stream.
#[derive(Debug)]
struct HotScan {
    def: Arc<TableDef>,
    rows: Arc<RowStore>,
    scope: Scope,
    columns: Vec<ScanColumn>,
    schema: SchemaRef,
    range: ScanRange,
}

impl PartitionStream for HotScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // The reader runs on a blocking thread: its batches are charged to the statement. One
        // batch waits in the channel: the reader still works while the consumer does, and what
        // a scan holds stays a few batches (SCAN_BATCH_BYTES).
        let account = kalamdb_core::Account::of(&ctx);
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 1);
        let tx = builder.tx();
        let (def, rows, scope, columns, schema, range) = (
            self.def.clone(),
            self.rows.clone(),
            self.scope.clone(),
            self.columns.clone(),
            self.schema.clone(),
            self.range.clone(),
        );
        builder.spawn_blocking(move || {
            let scan = || {
                rows.scan(
                    &def,
                    &scope,
                    &columns,
                    schema,
                    &range,
                    SCAN_BATCH_ROWS,
                    |batch| tx.blocking_send(Ok(batch)).is_ok(),
                )
                .map_err(df_error)
            };
            match account {
                Some(account) => account.charged(scan),
                None => scan(),
            }
        });
        builder.build()
    }
}
