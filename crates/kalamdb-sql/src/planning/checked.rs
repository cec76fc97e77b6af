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
//! The fast INSERT path applies the same rules through [`kalamdb_core::conform`].

use std::sync::{Arc, LazyLock};

use arrow::array::ArrayRef;
use arrow::datatypes::DataType as ArrowType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, ExprSchema, Result as DfResult, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use kalamdb_core::{assignment_refused, is_integer};

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
            let schema = crate::planning::coercion::scope_of(&node);
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
                Ok(Transformed::yes(CheckedArithmetic::combine(
                    *left, op, *right,
                )))
            } else {
                Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                })))
            }
        }
        Expr::Negative(inner) => {
            if is_integer(&inner.get_type(schema)?) {
                Ok(Transformed::yes(CheckedArithmetic::negate(*inner)))
            } else {
                Ok(Transformed::no(Expr::Negative(inner)))
            }
        }
        Expr::Cast(Cast { expr, field }) => {
            let data_type = field.data_type().clone();
            let from = expr.get_type(schema)?;
            if let Some(refusal) = assignment_refused(&from, &data_type) {
                return Err(DataFusionError::External(Box::new(
                    kalamdb_core::Error::TypeMismatch(refusal),
                )));
            }
            if let (true, ArrowType::Decimal128(p, s)) = (is_integer(&data_type), &from) {
                if *s > 0 {
                    // Arrow truncates a decimal cast to an integer; to scale 0 it rounds.
                    let whole = Expr::Cast(Cast::new(expr, ArrowType::Decimal128(*p, 0)));
                    return Ok(Transformed::yes(Expr::Cast(Cast {
                        expr: Box::new(whole),
                        field,
                    })));
                }
            }
            if is_integer(&data_type) && matches!(from, ArrowType::Float32 | ArrowType::Float64) {
                let rounded = ROUNDED.call(vec![*expr]);
                return Ok(Transformed::yes(Expr::Cast(Cast {
                    expr: Box::new(rounded),
                    field,
                })));
            }
            if matches!(
                from,
                ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
            ) && data_type == ArrowType::Float32
            {
                // Text read as a DOUBLE first, so '1e39' is out of range rather than Infinity.
                let double = Expr::Cast(Cast::new(expr, ArrowType::Float64));
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(TO_REAL.clone(), vec![double]),
                )));
            }
            if from == ArrowType::Float64 && data_type == ArrowType::Float32 {
                let udf = TO_REAL.clone();
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf, vec![*expr]),
                )));
            }
            Ok(Transformed::no(Expr::Cast(Cast { expr, field })))
        }
        other => Ok(Transformed::no(other)),
    }
}

static ROUNDED: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::new_from_impl(AssignmentCast::new(
        "rounded",
        ArrowType::Float64,
        kalamdb_core::rounded,
    )))
});
static TO_REAL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::new_from_impl(AssignmentCast::new(
        "to_real",
        ArrowType::Float32,
        kalamdb_core::doubles_to_reals,
    )))
});

/// One step of a checked arithmetic program (postfix): push an operand, or apply an operator
/// to the two values on top of the stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Operand(usize),
    Apply(Operator),
    /// Unary minus of the value on top of the stack.
    Negate,
}

/// A whole tree of integer `+`, `-`, `*` and unary `-` of one type as one function of its operands,
/// evaluated with arrow's checked kernels (an overflow is an error, never a wrapped value).
///
/// One function for the tree, not one per operator: DataFusion computes a nested function's
/// type by naming every sub-expression, which made `1 + 1 + ... + 1` (500 terms) take 22 s to
/// plan; a flat function over the operands plans as fast as the operators it replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArithmetic {
    program: Vec<Step>,
    signature: Signature,
}

impl CheckedArithmetic {
    /// `-operand`, absorbing an operand that is checked arithmetic itself.
    fn negate(operand: Expr) -> Expr {
        Self::build(vec![operand], Step::Negate)
    }

    /// `left op right`, absorbing operands that are checked arithmetic themselves.
    fn combine(left: Expr, op: Operator, right: Expr) -> Expr {
        Self::build(vec![left, right], Step::Apply(op))
    }

    fn build(sides: Vec<Expr>, last: Step) -> Expr {
        let mut program = Vec::new();
        let mut operands = Vec::new();
        for side in sides {
            match side {
                Expr::ScalarFunction(ScalarFunction { func, args })
                    if (func.inner().as_ref() as &dyn std::any::Any).is::<CheckedArithmetic>() =>
                {
                    let any = func.inner().as_ref() as &dyn std::any::Any;
                    let inner = any
                        .downcast_ref::<CheckedArithmetic>()
                        .expect("checked above");
                    let offset = operands.len();
                    program.extend(inner.program.iter().map(|s| match s {
                        Step::Operand(i) => Step::Operand(i + offset),
                        other => other.clone(),
                    }));
                    operands.extend(args);
                }
                other => {
                    program.push(Step::Operand(operands.len()));
                    operands.push(other);
                }
            }
        }
        program.push(last);
        let n = operands.len();
        let udf = CheckedArithmetic {
            program,
            signature: Signature::any(n, Volatility::Immutable),
        };
        Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(udf)),
            operands,
        ))
    }

    /// The expression as DataFusion names the operators it replaces (`a + b * c`, no
    /// parentheses), so every name in the plan stays as it was.
    fn infix(&self, operands: &[String]) -> DfResult<String> {
        let mut stack: Vec<String> = Vec::new();
        for step in &self.program {
            match step {
                Step::Operand(i) => stack.push(operands.get(*i).cloned().unwrap_or_default()),
                Step::Apply(op) => {
                    let (r, l) = (stack.pop(), stack.pop());
                    match (l, r) {
                        (Some(l), Some(r)) => stack.push(format!("{l} {op} {r}")),
                        _ => {
                            return Err(DataFusionError::Internal(
                                "checked arithmetic: bad program".into(),
                            ))
                        }
                    }
                }
                Step::Negate => match stack.pop() {
                    Some(x) => stack.push(format!("(- {x})")),
                    None => {
                        return Err(DataFusionError::Internal(
                            "checked arithmetic: bad program".into(),
                        ))
                    }
                },
            }
        }
        stack
            .pop()
            .ok_or_else(|| DataFusionError::Internal("checked arithmetic: empty program".into()))
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        "checked_arithmetic"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[ArrowType]) -> DfResult<ArrowType> {
        args.first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("checked arithmetic without operands".into()))
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.infix(
            &args
                .iter()
                .map(|a| a.schema_name().to_string())
                .collect::<Vec<_>>(),
        )
    }
    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        self.schema_name(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use arrow::compute::kernels::numeric::{add, mul, sub};
        let mut stack: Vec<ColumnarValue> = Vec::new();
        for step in &self.program {
            match step {
                Step::Operand(i) => stack.push(args.args.get(*i).cloned().ok_or_else(|| {
                    DataFusionError::Internal("checked arithmetic: operand".into())
                })?),
                Step::Apply(op) => {
                    let (Some(r), Some(l)) = (stack.pop(), stack.pop()) else {
                        return Err(DataFusionError::Internal(
                            "checked arithmetic: bad program".into(),
                        ));
                    };
                    let kernel = match op {
                        Operator::Plus => add,
                        Operator::Minus => sub,
                        _ => mul,
                    };
                    let value = match (&l, &r) {
                        (ColumnarValue::Array(a), ColumnarValue::Array(b)) => {
                            ColumnarValue::Array(kernel(a, b)?)
                        }
                        (ColumnarValue::Array(a), ColumnarValue::Scalar(b)) => {
                            ColumnarValue::Array(kernel(a, &b.to_scalar()?)?)
                        }
                        (ColumnarValue::Scalar(a), ColumnarValue::Array(b)) => {
                            ColumnarValue::Array(kernel(&a.to_scalar()?, b)?)
                        }
                        (ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)) => {
                            let out = kernel(&a.to_scalar()?, &b.to_scalar()?)?;
                            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
                        }
                    };
                    stack.push(value);
                }
                Step::Negate => {
                    let value = match stack.pop() {
                        Some(ColumnarValue::Array(a)) => {
                            ColumnarValue::Array(arrow::compute::kernels::numeric::neg(&a)?)
                        }
                        Some(ColumnarValue::Scalar(x)) => {
                            let out = arrow::compute::kernels::numeric::neg(&x.to_array()?)?;
                            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
                        }
                        None => {
                            return Err(DataFusionError::Internal(
                                "checked arithmetic: bad program".into(),
                            ))
                        }
                    };
                    stack.push(value);
                }
            }
        }
        stack
            .pop()
            .ok_or_else(|| DataFusionError::Internal("checked arithmetic: empty program".into()))
    }
}

/// A cast the planned path makes the way core `batch::conform` makes it on the literal path:
/// floats rounded before they become integers, DOUBLEs range-checked into REALs.
#[derive(Debug)]
struct AssignmentCast {
    name: &'static str,
    to: ArrowType,
    convert: fn(&ArrayRef) -> kalamdb_core::Result<ArrayRef>,
    signature: Signature,
}

// One function per name (the `convert` of a name never changes).
impl PartialEq for AssignmentCast {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for AssignmentCast {}
impl std::hash::Hash for AssignmentCast {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl AssignmentCast {
    fn new(
        name: &'static str,
        to: ArrowType,
        convert: fn(&ArrayRef) -> kalamdb_core::Result<ArrayRef>,
    ) -> AssignmentCast {
        AssignmentCast {
            name,
            to,
            convert,
            signature: Signature::exact(vec![ArrowType::Float64], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for AssignmentCast {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(self.to.clone())
    }
    // A cast's name is its operand's; so is the name of a function standing in for a cast.
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        match args {
            [x] => Ok(x.schema_name().to_string()),
            _ => Err(DataFusionError::Internal("a cast takes one operand".into())),
        }
    }
    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        self.schema_name(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [x] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes one operand",
                self.name
            )));
        };
        let convert =
            |a: &ArrayRef| (self.convert)(a).map_err(|e| DataFusionError::External(Box::new(e)));
        match x {
            ColumnarValue::Scalar(s) => Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &convert(&s.to_array()?)?,
                0,
            )?)),
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(convert(a)?)),
        }
    }
}
