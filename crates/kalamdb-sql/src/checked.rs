//! Value rules PostgreSQL applies and DataFusion 55 does not, fixed after DataFusion's type
//! coercion (an analyzer rule placed last, when every operand has its final type):
//!
//! - **Integer arithmetic never wraps.** `9223372036854775807 + 1` is an error in PostgreSQL
//!   ("bigint out of range"); DataFusion's `+`, `-` and `*` wrap. They are replaced by checked
//!   functions (arrow's checked kernels), which answer TYPE_MISMATCH "value out of range".
//!   Constant folding keeps such an expression unfolded when it fails, so the error comes at
//!   execution, from the same kernel. (Integer division is checked by DataFusion already.)
//! - **A fraction stored in an integer is rounded**, not truncated: `1.5` and `2.5` into INT
//!   are 2 and 3, as PostgreSQL assigns a numeric literal (half away from zero), from a float
//!   or a decimal.
//! - **A REAL out of range is an error**, not Infinity: `CAST(1e39 AS REAL)` and a `1e300`
//!   parameter into a REAL column answer TYPE_MISMATCH (PostgreSQL: "value out of range:
//!   overflow"); Infinity itself (`'Infinity'`) stays a REAL value.
//! - **Numbers are not times or bytes.** PostgreSQL has no cast from a number to a date, a
//!   time, a timestamp or bytea (`INSERT INTO t (ts) VALUES (99999999999)` is refused);
//!   DataFusion reads such a number as a count of seconds, days or bytes.
//!
//! The fast INSERT path applies the same rules through [`kalamdb_core::batch::conform`].

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, Float32Array, Float64Array};
use arrow::datatypes::DataType as ArrowType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, ExprSchema, Result as DfResult, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use kalamdb_core::batch::{assignment_refused, is_integer};

/// The analyzer rule (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct PostgresValueRules;

impl AnalyzerRule for PostgresValueRules {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        // The replacements name themselves as the expressions they replace (`a + b`, `x`), so
        // every name in the plan stays as it was and nothing needs an alias.
        //
        // Sort keys and window definitions keep DataFusion's operators: its ordering analysis
        // did not recognise a sort on a replaced expression as satisfying the same requirement
        // ("does not satisfy order requirements"). An overflow there changes an order, never a
        // value a query returns or a write stores.
        plan.transform_up_with_subqueries(|node| {
            if matches!(node, LogicalPlan::Sort(_) | LogicalPlan::Window(_)) {
                return Ok(Transformed::no(node));
            }
            let schema = crate::coercion::scope_of(&node);
            node.map_expressions(|e| e.transform_up(|e| rewrite(e, &schema)))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kalamdb_postgres_value_rules"
    }
}

fn rewrite(e: Expr, schema: &dyn ExprSchema) -> DfResult<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) =>
        {
            let (lt, rt) = (left.get_type(schema)?, right.get_type(schema)?);
            if lt == rt && is_integer(&lt) {
                let udf = checked(op);
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*left, *right]))))
            } else {
                Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })))
            }
        }
        Expr::Cast(Cast { expr, field }) => {
            let data_type = field.data_type().clone();
            let from = expr.get_type(schema)?;
            if let Some(refusal) = assignment_refused(&from, &data_type) {
                return Err(DataFusionError::External(Box::new(kalamdb_core::Error::TypeMismatch(refusal))));
            }
            if let (true, ArrowType::Decimal128(p, s)) = (is_integer(&data_type), &from) {
                if *s > 0 {
                    // Arrow truncates a decimal cast to an integer; to scale 0 it rounds.
                    let whole = Expr::Cast(Cast::new(expr, ArrowType::Decimal128(*p, 0)));
                    return Ok(Transformed::yes(Expr::Cast(Cast { expr: Box::new(whole), field })));
                }
            }
            if is_integer(&data_type) && matches!(from, ArrowType::Float32 | ArrowType::Float64) {
                let rounded = ROUNDED.call(vec![*expr]);
                return Ok(Transformed::yes(Expr::Cast(Cast { expr: Box::new(rounded), field })));
            }
            if from == ArrowType::Float64 && data_type == ArrowType::Float32 {
                let udf = TO_REAL.clone();
                return Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*expr]))));
            }
            Ok(Transformed::no(Expr::Cast(Cast { expr, field })))
        }
        other => Ok(Transformed::no(other)),
    }
}

static ADD: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(CheckedArithmetic::new(Operator::Plus))));
static SUBTRACT: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(CheckedArithmetic::new(Operator::Minus))));
static MULTIPLY: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(CheckedArithmetic::new(Operator::Multiply))));
static ROUNDED: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(Rounded::default())));
static TO_REAL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(ToReal::default())));

/// One function per operator, shared by every plan (equal plans hold the same function).
fn checked(op: Operator) -> Arc<ScalarUDF> {
    match op {
        Operator::Plus => ADD.clone(),
        Operator::Minus => SUBTRACT.clone(),
        _ => MULTIPLY.clone(),
    }
}

/// `+`, `-` or `*` of two integers of one type that fails on overflow instead of wrapping.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArithmetic {
    op: Operator,
    signature: Signature,
}

impl CheckedArithmetic {
    fn new(op: Operator) -> CheckedArithmetic {
        CheckedArithmetic { op, signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_subtract",
            _ => "checked_multiply",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(args[0].clone())
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        let [l, r] = args else {
            return Err(DataFusionError::Internal("checked arithmetic takes two operands".into()));
        };
        Ok(format!("{} {} {}", l.schema_name(), self.op, r.schema_name()))
    }
    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        self.schema_name(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use arrow::compute::kernels::numeric::{add, mul, sub};
        let [l, r] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("checked arithmetic takes two operands".into()));
        };
        let kernel = match self.op {
            Operator::Plus => add,
            Operator::Minus => sub,
            _ => mul,
        };
        let result = match (l, r) {
            (ColumnarValue::Array(a), ColumnarValue::Array(b)) => kernel(a, b),
            (ColumnarValue::Array(a), ColumnarValue::Scalar(b)) => kernel(a, &b.to_scalar()?),
            (ColumnarValue::Scalar(a), ColumnarValue::Array(b)) => kernel(&a.to_scalar()?, b),
            (ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)) => {
                let out = kernel(&a.to_scalar()?, &b.to_scalar()?)?;
                return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
            }
        }?;
        Ok(ColumnarValue::Array(result))
    }
}

/// DOUBLE to REAL that refuses a finite value beyond REAL's range.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToReal {
    signature: Signature,
}

impl Default for ToReal {
    fn default() -> ToReal {
        ToReal { signature: Signature::exact(vec![ArrowType::Float64], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToReal {
    fn name(&self) -> &str {
        "to_real"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(ArrowType::Float32)
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        same_name(args)
    }
    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        same_name(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [x] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("to_real takes one operand".into()));
        };
        match x {
            ColumnarValue::Scalar(s) => {
                let a = s.to_array()?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&to_real(&a)?, 0)?))
            }
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(to_real(a)?)),
        }
    }
}

fn to_real(a: &ArrayRef) -> DfResult<ArrayRef> {
    let doubles = a
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| DataFusionError::Internal("to_real of a non-DOUBLE".into()))?;
    let mut out = Vec::with_capacity(doubles.len());
    for v in doubles.iter() {
        out.push(match v {
            None => None,
            Some(d) => Some(kalamdb_core::batch::double_to_real(d).map_err(|e| DataFusionError::External(Box::new(e)))?),
        });
    }
    Ok(Arc::new(Float32Array::from(out)))
}

/// A cast's name is its operand's; so is the name of a function standing in for a cast.
fn same_name(args: &[Expr]) -> DfResult<String> {
    match args {
        [x] => Ok(x.schema_name().to_string()),
        _ => Err(DataFusionError::Internal("a cast takes one operand".into())),
    }
}

/// A float rounded half away from zero (as a DOUBLE), before its cast to an integer.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Rounded {
    signature: Signature,
}

impl Default for Rounded {
    fn default() -> Rounded {
        Rounded { signature: Signature::uniform(1, vec![ArrowType::Float64], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Rounded {
    fn name(&self) -> &str {
        "rounded"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(ArrowType::Float64)
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        same_name(args)
    }
    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        same_name(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [x] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("rounded takes one operand".into()));
        };
        let round = |a: &ArrayRef| -> DfResult<ArrayRef> {
            let a = arrow::compute::cast(a, &ArrowType::Float64)?;
            let doubles = a
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| DataFusionError::Internal("rounded of a non-float".into()))?;
            Ok(Arc::new(doubles.unary::<_, arrow::datatypes::Float64Type>(f64::round)))
        };
        match x {
            ColumnarValue::Scalar(s) => {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&round(&s.to_array()?)?, 0)?))
            }
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(round(a)?)),
        }
    }
}
