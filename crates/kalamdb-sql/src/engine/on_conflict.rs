//! An INSERT's ON CONFLICT clause: taken out of the statement before DataFusion plans it,
//! checked against the table (the target must be its primary key), and turned into the query
//! that computes DO UPDATE's new rows (engine::upsert runs it).

use datafusion::sql::parser::Statement as DfStatement;
use kalamdb_core::{Error, Result, TableDef};
use sqlparser::ast::{
    AssignmentTarget, ConflictTarget, Expr, Ident, OnConflictAction, OnInsert,
    Statement as SqlStatement, TableObject,
};

use crate::fast::path::normalize;

/// The in-memory table of proposed rows, and its column of input positions.
pub(super) const EXCLUDED_TABLE: &str = "__kalamdb_excluded";
pub(super) const ORDINAL: &str = "__kalamdb_ordinal";

/// An INSERT's ON CONFLICT clause, taken out of it before planning.
#[derive(Debug, Clone)]
pub(crate) struct OnConflict {
    /// The conflict target's columns (normalized), None when the clause names none.
    columns: Option<Vec<String>>,
    pub(super) action: Action,
    /// The target as the statement names it (`app.t`, `t AS x`), and the name its columns
    /// are qualified with in SET and WHERE (`t`, `x`).
    target: String,
    qualifier: Ident,
}

#[derive(Debug, Clone)]
pub(super) enum Action {
    Nothing,
    Update {
        assignments: Vec<(String, Expr)>,
        selection: Option<Box<Expr>>,
    },
}

/// Take the ON CONFLICT clause out of an INSERT (None for anything else).
pub(crate) fn take_on_conflict(statement: &mut DfStatement) -> Result<Option<OnConflict>> {
    let DfStatement::Statement(s) = statement else {
        return Ok(None);
    };
    let SqlStatement::Insert(insert) = s.as_mut() else {
        return Ok(None);
    };
    let clause = match insert.on.take() {
        None => return Ok(None),
        Some(OnInsert::OnConflict(c)) => c,
        Some(OnInsert::DuplicateKeyUpdate(_)) => {
            return Err(Error::Unsupported(
                "ON DUPLICATE KEY UPDATE is not supported; use ON CONFLICT (key) DO UPDATE".into(),
            ))
        }
        Some(other) => {
            return Err(Error::Unsupported(format!("INSERT ... {other}")));
        }
    };
    let TableObject::TableName(name) = &insert.table else {
        return Err(Error::Unsupported("ON CONFLICT on a table function".into()));
    };
    let (target, qualifier) = match &insert.table_alias {
        Some(a) => (format!("{name} AS {}", a.alias), a.alias.clone()),
        None => {
            let last = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .ok_or_else(|| Error::invalid_sql("INSERT without a table name"))?;
            (name.to_string(), last.clone())
        }
    };
    let columns = match clause.conflict_target {
        None => None,
        Some(ConflictTarget::Columns(cs)) => Some(cs.iter().map(normalize).collect()),
        Some(ConflictTarget::OnConstraint(c)) => {
            return Err(Error::Unsupported(format!(
                "ON CONFLICT ON CONSTRAINT {c}; name the primary key column: ON CONFLICT (key)"
            )))
        }
    };
    let action = parse_action(clause.action, columns.is_some())?;
    Ok(Some(OnConflict {
        columns,
        action,
        target,
        qualifier,
    }))
}

/// DO NOTHING, or DO UPDATE's assignments (to bare column names) and WHERE.
fn parse_action(action: OnConflictAction, has_target: bool) -> Result<Action> {
    let update = match action {
        OnConflictAction::DoNothing => return Ok(Action::Nothing),
        OnConflictAction::DoUpdate(update) => update,
    };
    if !has_target {
        return Err(Error::invalid_sql(
            "ON CONFLICT DO UPDATE needs a conflict target: ON CONFLICT (key) DO UPDATE",
        ));
    }
    let mut assignments = Vec::with_capacity(update.assignments.len());
    for a in update.assignments {
        let AssignmentTarget::ColumnName(column) = &a.target else {
            return Err(Error::Unsupported(
                "assigning a tuple of columns in ON CONFLICT DO UPDATE".into(),
            ));
        };
        let [part] = column.0.as_slice() else {
            return Err(Error::invalid_sql(format!(
                "column '{column}' in ON CONFLICT DO UPDATE SET: name the column without a table"
            )));
        };
        let ident = part
            .as_ident()
            .ok_or_else(|| Error::invalid_sql(format!("bad SET target '{column}'")))?;
        assignments.push((normalize(ident), a.value));
    }
    if let Some(hidden) = assignments
        .iter()
        .map(|(_, e)| e)
        .chain(update.selection.as_ref())
        .find_map(internal_name)
    {
        return Err(Error::invalid_sql(format!(
            "column '{hidden}' does not exist"
        )));
    }
    let reads_rows = assignments
        .iter()
        .map(|(_, e)| e)
        .chain(update.selection.as_ref())
        .any(has_subquery);
    if reads_rows {
        return Err(Error::Unsupported(
            "subqueries in ON CONFLICT DO UPDATE are not supported".into(),
        ));
    }
    Ok(Action::Update {
        assignments,
        selection: update.selection.map(Box::new),
    })
}

/// A name of the server's own columns of `excluded` (`__kalamdb_...`), if `expr` uses one.
fn internal_name(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        let idents: &[Ident] = match e {
            Expr::Identifier(i) => std::slice::from_ref(i),
            Expr::CompoundIdentifier(parts) => parts,
            _ => &[],
        };
        if let Some(i) = idents
            .iter()
            .find(|i| normalize(i).starts_with("__kalamdb_"))
        {
            found = Some(i.value.clone());
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

fn has_subquery(expr: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        found |= matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        );
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

impl OnConflict {
    /// The query of DO UPDATE over the in-memory tables: each column's new value (assigned,
    /// or the existing row's), and the input position, for the rows WHERE accepts.
    pub(super) fn update_query(
        &self,
        def: &TableDef,
        names: &[String],
        assignments: &[(String, Expr)],
        selection: Option<&Expr>,
    ) -> String {
        let q = Ident::with_quote('"', normalize(&self.qualifier));
        let mut select = Vec::with_capacity(names.len() + 1);
        for name in names {
            let quoted = Ident::with_quote('"', name.as_str());
            match assignments.iter().find(|(c, _)| c == name) {
                Some((_, value)) => {
                    let value = qualify_columns(value.clone(), &q, names);
                    select.push(format!("({value}) AS {quoted}"));
                }
                None => select.push(format!("{q}.{quoted} AS {quoted}")),
            }
        }
        select.push(format!("excluded.{ORDINAL} AS {ORDINAL}"));
        let pk = def.primary_key.as_deref().unwrap_or_default();
        let pk_q = Ident::with_quote('"', pk);
        let ns = Ident::with_quote('"', def.namespace.as_str());
        let mut sql = format!(
            "SELECT {} FROM {} JOIN {ns}.{EXCLUDED_TABLE} AS excluded ON {q}.{pk_q} = excluded.{pk_q}",
            select.join(", "),
            self.target
        );
        if let Some(w) = selection {
            sql.push_str(&format!(
                " WHERE ({})",
                qualify_columns(w.clone(), &q, names)
            ));
        }
        sql
    }

    /// The primary key the conflict target names (the only key there is to conflict on).
    pub(super) fn check_target(&self, def: &TableDef) -> Result<String> {
        let table = def.qualified_name();
        let Some(pk) = def.primary_key.clone() else {
            return Err(Error::invalid_sql(format!(
                "ON CONFLICT needs a primary key; table '{table}' has none"
            )));
        };
        if let Some(columns) = &self.columns {
            if columns.as_slice() != [pk.clone()] {
                return Err(Error::invalid_sql(format!(
                    "ON CONFLICT ({}) does not match the primary key of table '{table}'; use ON CONFLICT ({pk})",
                    columns.join(", ")
                )));
            }
        }
        if let Action::Update { assignments, .. } = &self.action {
            let mut seen = std::collections::HashSet::new();
            for (column, _) in assignments {
                if !def.live_columns().any(|c| &c.name == column) {
                    return Err(Error::invalid_sql(format!(
                        "column '{column}' of table '{table}' does not exist"
                    )));
                }
                if !seen.insert(column) {
                    return Err(Error::invalid_sql(format!(
                        "column '{column}' is assigned more than once"
                    )));
                }
                if column == &pk {
                    return Err(Error::Unsupported(format!(
                        "updating the primary key column '{pk}' is not supported; delete and insert the row instead"
                    )));
                }
            }
        }
        Ok(pk)
    }
}

/// Unqualified column names of the table in SET and WHERE mean the existing row's (as in
/// PostgreSQL): qualify them, so that they are not ambiguous beside `excluded`'s.
fn qualify_columns(mut expr: Expr, qualifier: &Ident, names: &[String]) -> Expr {
    let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        if let Expr::Identifier(id) = e {
            if names.iter().any(|n| n == &normalize(id)) {
                *e = Expr::CompoundIdentifier(vec![qualifier.clone(), id.clone()]);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    expr
}
