//! Mapping DataFusion's errors onto KalamDB's contract codes.
//!
//! KalamDB errors raised inside DataFusion (permission checks in a scan, say) travel as
//! `DataFusionError::External` and come back out unchanged; DataFusion's own errors are
//! classified by kind. Anything unexpected is INTERNAL_ERROR, whose text is logged, not sent.

use arrow::error::ArrowError;
use datafusion::common::DataFusionError;
use datafusion::common::TableReference;
use datafusion::execution::SessionState;
use datafusion::sql::parser::Statement as DfStatement;
use kalamdb_core::Error;

use crate::df::session_catalog::Misses;
use crate::df::system_tables::CATALOG_NAME;

/// Convert a DataFusion error to a KalamDB error.
pub fn from_datafusion(e: DataFusionError) -> Error {
    tracing::debug!(error = %e, "DataFusion error");
    match e {
        DataFusionError::External(inner) => external(inner),
        DataFusionError::Context(_, inner) => from_datafusion(*inner),
        DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(e) => from_datafusion(e),
            // Held elsewhere too: our own error inside it is still ours (its code kept).
            Err(shared) => match shared.as_ref() {
                DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
                    Some(e) => e.clone(),
                    None => classify_message(&shared.to_string()),
                },
                _ => classify_message(&shared.to_string()),
            },
        },
        DataFusionError::Diagnostic(_, inner) => from_datafusion(*inner),
        DataFusionError::Collection(mut errs) if !errs.is_empty() => {
            from_datafusion(errs.swap_remove(0))
        }
        DataFusionError::SQL(parser_error, _) => {
            let message = parser_error.to_string();
            let (line, column) = line_and_column(&message);
            Error::InvalidSql {
                message,
                line,
                column,
            }
        }
        DataFusionError::ArrowError(a, _) => from_arrow(*a),
        DataFusionError::NotImplemented(m) => Error::Unsupported(without_internals(&m)),
        DataFusionError::ResourcesExhausted(m) => Error::InvalidParameter(format!(
            "the query needs more memory than the server allows (query_memory_bytes): {m}"
        )),
        DataFusionError::Plan(m) => classify_message(&m),
        DataFusionError::SchemaError(s, _) => Error::invalid_sql(s.to_string()),
        DataFusionError::Execution(m) => classify_message(&m),
        DataFusionError::ExecutionJoin(e) => Error::Internal(e.to_string()),
        DataFusionError::Configuration(m) => Error::InvalidParameter(m),
        other => Error::Internal(other.to_string()),
    }
}

/// A panic of a query's work. Arrow panics when one batch outgrows its 32-bit offsets (more
/// than 2 GiB of text or elements in one column of one batch: a cross join repeating a 1 MB
/// value for 3,000 rows): the query is too large, the server is fine (the work was the
/// statement's task, now gone).
pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
    let message = match payload.downcast::<String>() {
        Ok(m) => *m,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    };
    if message.contains("offset overflow") || message.contains("capacity overflow") {
        return Error::InvalidParameter(format!(
            "the query builds more than one batch can hold (2 GiB of values in one column; limits.query_memory_bytes): {message}"
        ));
    }
    Error::Internal(format!("the query's work panicked: {message}"))
}

fn external(inner: Box<dyn std::error::Error + Send + Sync>) -> Error {
    match inner.downcast::<Error>() {
        Ok(e) => *e,
        Err(inner) => match inner.downcast::<DataFusionError>() {
            Ok(e) => from_datafusion(*e),
            Err(inner) => match inner.downcast::<ArrowError>() {
                Ok(a) => from_arrow(*a),
                Err(other) => foreign(other),
            },
        },
    }
}

/// An error of a library DataFusion calls: a bad regular expression is the client's.
fn foreign(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    let bad_regex = |m: String| {
        Error::InvalidParameter(format!("invalid regular expression: {}", one_line(&m)))
    };
    match e.downcast::<regex::Error>() {
        Ok(r) => bad_regex(r.to_string()),
        Err(e) => match e.downcast::<regex_syntax::Error>() {
            // The optimizer compiles constant patterns while planning.
            Ok(r) => bad_regex(r.to_string()),
            Err(other) => Error::Internal(other.to_string()),
        },
    }
}

/// A multi-line library message on one line.
fn one_line(m: &str) -> String {
    m.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn from_arrow(a: ArrowError) -> Error {
    match a {
        ArrowError::ExternalError(inner) => match inner.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => foreign(other),
        },
        ArrowError::DivideByZero => Error::InvalidParameter("division by zero".into()),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => Error::TypeMismatch(m),
        ArrowError::ArithmeticOverflow(m) => Error::TypeMismatch(format!("value out of range: {m}")),
        ArrowError::InvalidArgumentError(m) | ArrowError::ComputeError(m)
            if m.contains("too large") || m.contains("too small") || m.contains("overflow") || m.contains("out of range") =>
        {
            Error::TypeMismatch(format!("value out of range: {m}"))
        }
        ArrowError::InvalidArgumentError(m) | ArrowError::ComputeError(m) => {
            Error::InvalidParameter(m)
        }
        ArrowError::MemoryError(m) => Error::InvalidParameter(m),
        // One batch past Arrow's 32-bit offsets (a hash join repeating a 1 MB value for 3,000
        // matches): the query is too large, as when the same overflow panics (from_panic).
        ArrowError::OffsetOverflowError(n) => Error::InvalidParameter(format!(
            "the query builds more than one batch can hold (2 GiB of values in one column; limits.query_memory_bytes): {n} bytes"
        )),
        other => Error::Internal(other.to_string()),
    }
}

/// A DataFusion message without the Rust debug form of a plan or expression it sometimes
/// embeds (`InSubquery(InSubquery { expr: Column(Column { relation: ...`): the part before
/// it, then the construct it names in words.
pub(crate) fn without_internals(m: &str) -> String {
    let Some(brace) = m.find(" { ") else {
        return m.to_string();
    };
    let before = &m[..brace];
    let start = before
        .rfind(|c: char| c.is_whitespace())
        .map(|i| i + 1)
        .unwrap_or(0);
    let construct: String = before[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let head = m[..start].trim_end().trim_end_matches(':');
    let named = match construct.as_str() {
        "InSubquery" => "IN (subquery)".to_string(),
        "ScalarSubquery" => "a scalar subquery".to_string(),
        "Exists" => "EXISTS (subquery)".to_string(),
        "SetComparison" => "a comparison with ANY/ALL (subquery)".to_string(),
        "OuterReferenceColumn" => "a reference to an outer query's column".to_string(),
        "" => "this construct".to_string(),
        other => {
            // CamelCase -> words.
            let mut words = String::new();
            for (i, ch) in other.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    words.push(' ');
                }
                words.push(ch.to_ascii_lowercase());
            }
            words
        }
    };
    if head.is_empty() {
        format!("unsupported: {named}")
    } else {
        format!("{head} {named}")
    }
}

/// `Internal error: Arrow error: Cast error: x` -> `Cast error: x` (DataFusion's names of its
/// error kinds, and its note asking for a bug report, are not for our users).
pub(crate) fn without_kind_prefixes(m: &str) -> String {
    const PREFIXES: [&str; 8] = [
        "Internal error: ",
        "External error: ",
        "Arrow error: ",
        "Execution error: ",
        "Error during planning: ",
        "Schema error: ",
        "Optimizer rule ",
        "Shared error: ",
    ];
    let mut rest = m.trim_start();
    'strip: loop {
        for p in PREFIXES {
            if let Some(r) = rest.strip_prefix(p) {
                rest = if p == "Optimizer rule " {
                    // `Optimizer rule 'x' failed\ncaused by\n...`: keep what caused it.
                    match r.find("caused by\n") {
                        Some(i) => &r[i + "caused by\n".len()..],
                        None => break 'strip,
                    }
                } else {
                    r
                };
                continue 'strip;
            }
        }
        break;
    }
    let rest = match rest.find(".\nThis issue was likely caused by a bug in DataFusion") {
        Some(i) => &rest[..i],
        None => rest,
    };
    let rest = match rest.find(" This issue was likely caused by a bug in DataFusion") {
        Some(i) => &rest[..i],
        None => rest,
    };
    rest.trim().to_string()
}

/// Classify a planning/execution message from DataFusion.
fn classify_message(m: &str) -> Error {
    let m = &without_internals(m);
    // Classified by DataFusion's whole text (its kind prefixes say what failed); reported
    // without the prefixes, which name DataFusion's error kinds, not the user's mistake.
    let lower = m.to_ascii_lowercase();
    let m = &without_kind_prefixes(m);
    if lower.contains("resources exhausted") {
        return Error::InvalidParameter(format!(
            "the query needs more memory than the server allows (limits.query_memory_bytes): {m}"
        ));
    }
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        Error::InvalidParameter("division by zero".into())
    } else if lower.contains("cast")
        || lower.contains("cannot coerce")
        || lower.contains("type") && lower.contains("mismatch")
    {
        Error::TypeMismatch(m.to_string())
    } else if lower.contains("placeholder") || lower.contains("param") {
        Error::InvalidParameter(m.to_string())
    } else if lower.contains("overflow") || lower.contains("out of range") {
        Error::TypeMismatch(m.to_string())
    } else if lower.contains("not supported") || lower.contains("not implemented") {
        // Valid SQL this version does not run (`INSERT ... RETURNING`, `DELETE ... USING`).
        Error::Unsupported(m.to_string())
    } else {
        Error::invalid_sql(m.to_string())
    }
}

/// Why a statement failed to plan when it names a table that does not exist: the first such
/// table as written, with the error the catalog recorded when planning asked for it
/// ([`Misses`]: NAMESPACE_NOT_FOUND or TABLE_NOT_FOUND), or TABLE_NOT_FOUND for a catalog
/// other than KalamDB's. Never read out of DataFusion's message. A bare name that is a table
/// function (`generate_series`) is not a table.
pub(crate) fn missing_table(
    state: &SessionState,
    statement: &DfStatement,
    misses: &Misses,
) -> Option<Error> {
    let mut references = state.resolve_table_references(statement).ok()?;
    // In the order the statement names them (DataFusion's set is sorted), so that of two
    // missing tables the first written is reported.
    let order = in_text_order(statement);
    let position = |r: &TableReference| order.iter().position(|t| t == r);
    references.sort_by_key(|r| position(r).unwrap_or(usize::MAX));
    let defaults = &state.config_options().catalog;
    for reference in references {
        if let TableReference::Bare { table } = &reference {
            if state.table_functions().contains_key(table.as_ref()) {
                continue;
            }
        }
        let r = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        if r.catalog.as_ref() != CATALOG_NAME {
            return Some(Error::TableNotFound(r.to_string()));
        }
        if let Some(e) = misses.find(&r.schema, &r.table) {
            return Some(e);
        }
    }
    None
}

/// The relations a statement names, in the order they are written (CTE names included; the
/// caller keeps those DataFusion resolved as tables).
fn in_text_order(statement: &DfStatement) -> Vec<TableReference> {
    let mut names = Vec::new();
    let mut inner = statement;
    while let DfStatement::Explain(e) = inner {
        inner = e.statement.as_ref();
    }
    if let DfStatement::Statement(s) = inner {
        let _ = sqlparser::ast::visit_relations(s.as_ref(), |name| {
            if let Ok(r) =
                datafusion::sql::planner::object_name_to_table_reference(name.clone(), true)
            {
                names.push(r);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    names
}

/// `... at Line: 1, Column: 8` -> (1, 8).
fn line_and_column(m: &str) -> (Option<u64>, Option<u64>) {
    let num_after = |key: &str| -> Option<u64> {
        let i = m.find(key)? + key.len();
        let digits: String = m[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    (num_after("Line: "), num_after("Column: "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_past_arrows_offsets_is_the_querys_size_other_panics_are_internal() {
        let e = from_panic(Box::new(String::from("offset overflow")));
        assert_eq!(e.code(), kalamdb_core::ErrorCode::InvalidParameter);
        let e = from_panic(Box::new("index out of bounds"));
        assert_eq!(e.code(), kalamdb_core::ErrorCode::InternalError);
    }

    #[test]
    fn parser_positions_are_extracted() {
        assert_eq!(
            line_and_column("Expected: x, found: y at Line: 2, Column: 17"),
            (Some(2), Some(17))
        );
        assert_eq!(line_and_column("no position"), (None, None));
    }

    #[test]
    fn debug_forms_are_replaced_by_the_construct_name() {
        let m = "Physical plan does not support logical expression InSubquery(InSubquery { expr: Column(Column { relation: Some(Bare { table: \"t1\" }), name: \"a\" }), negated: false })";
        assert_eq!(
            without_internals(m),
            "Physical plan does not support logical expression IN (subquery)"
        );
        assert_eq!(without_internals("plain message"), "plain message");
        assert_eq!(
            without_internals("X: ScalarSubquery(Subquery { a: 1 })"),
            "X a scalar subquery"
        );
    }

    #[test]
    fn error_kind_prefixes_are_dropped() {
        assert_eq!(
            without_kind_prefixes("Internal error: Arrow error: Cast error: bad"),
            "Cast error: bad"
        );
        assert_eq!(without_kind_prefixes("Error during planning: x"), "x");
        assert_eq!(
            without_kind_prefixes("Internal error: oops.\nThis issue was likely caused by a bug in DataFusion's code."),
            "oops"
        );
        assert_eq!(without_kind_prefixes("plain"), "plain");
    }
}
