//! Views: `CREATE [OR REPLACE] VIEW [IF NOT EXISTS] ns.v AS SELECT ...`, `DROP VIEW [IF
//! EXISTS]`, and the planning of a view's query for each statement that reads it.
//!
//! A view stores the text of its query. Every statement that reads it plans that query again,
//! as the statement's own caller, with unqualified names resolved in the view's namespace
//! (crate::df::session_catalog::ViewPlanner). So a view over a USER table shows each caller its
//! own rows, a caller who may not read a table cannot read it through a view, and a view
//! follows ALTERs of its tables; one whose table is gone fails as its query would
//! (TABLE_NOT_FOUND). CREATE VIEW plans the query once, as its creator, so that a view that
//! cannot be read is refused when it is created. Views are read-only.

use std::time::Instant;

use datafusion::sql::parser::Statement as DfStatement;
use kalamdb_core::{Error, Result, ViewDef};
use sqlparser::ast::{ObjectName, ObjectType, Statement as SqlStatement};

use super::output::{Caller, StatementOutput};
use super::router::Engine;

/// Whether a query body only reads: sqlparser also accepts `CREATE VIEW v AS INSERT ...`.
fn is_query(body: &sqlparser::ast::SetExpr) -> bool {
    use sqlparser::ast::SetExpr;
    match body {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => true,
        SetExpr::Query(q) => is_query(&q.body),
        SetExpr::SetOperation { left, right, .. } => is_query(left) && is_query(right),
        _ => false,
    }
}

/// `ns.name` of a view as the statement names it (the caller's namespace by default).
fn view_name(caller: &Caller, name: &ObjectName) -> Result<(String, String)> {
    let parts = crate::fast::path::name_parts(name)
        .ok_or_else(|| Error::invalid_sql(format!("bad view name '{name}'")))?;
    match parts.as_slice() {
        [v] => Ok((caller.namespace.clone(), v.clone())),
        [ns, v] => Ok((ns.clone(), v.clone())),
        _ => Err(Error::invalid_sql(format!(
            "a view is named namespace.view, not '{name}'"
        ))),
    }
}

impl Engine {
    /// CREATE VIEW or DROP VIEW; None for any other statement.
    pub(super) async fn view_ddl(
        &self,
        caller: &Caller,
        statement: &DfStatement,
        started: Instant,
    ) -> Option<Result<StatementOutput>> {
        let DfStatement::Statement(s) = statement else {
            return None;
        };
        let is_view_ddl = matches!(
            s.as_ref(),
            SqlStatement::CreateView(_)
                | SqlStatement::Drop {
                    object_type: ObjectType::View,
                    ..
                }
        );
        if is_view_ddl && caller.transaction.is_some() {
            return Some(Err(Self::refused_in_transaction(
                "CREATE VIEW or DROP VIEW",
            )));
        }
        match s.as_ref() {
            SqlStatement::CreateView(create) => {
                Some(self.create_view(caller, create, started).await)
            }
            SqlStatement::Drop {
                object_type: ObjectType::View,
                if_exists,
                names,
                ..
            } => Some(self.drop_views(caller, names, *if_exists)),
            _ => None,
        }
    }

    async fn create_view(
        &self,
        caller: &Caller,
        create: &sqlparser::ast::CreateView,
        started: Instant,
    ) -> Result<StatementOutput> {
        caller.principal.check_admin("create views")?;
        let refused = [
            (create.materialized, "MATERIALIZED views"),
            (create.temporary, "TEMPORARY views"),
            (create.or_alter, "CREATE OR ALTER VIEW"),
            (
                !create.columns.is_empty(),
                "a column list in CREATE VIEW (alias the columns in the query)",
            ),
            (create.to.is_some(), "CREATE VIEW ... TO"),
        ];
        if let Some((_, what)) = refused.iter().find(|(yes, _)| *yes) {
            return Err(Error::Unsupported(format!("{what} is not supported")));
        }
        if !is_query(&create.query.body) {
            return Err(Error::invalid_sql(
                "a view's body must be a query (SELECT, VALUES, set operations), not a write",
            ));
        }
        let (ns, name) = view_name(caller, &create.name)?;
        if ns == "system" || ns == "information_schema" {
            return Err(Error::InvalidParameter(format!(
                "namespace '{ns}' holds the server's own tables; create the view in another"
            )));
        }
        let sql = create.query.to_string();
        let query_statement =
            DfStatement::Statement(Box::new(SqlStatement::Query(create.query.clone())));
        crate::statement::placeholders::check(&query_statement, 0)
            .map_err(|_| Error::invalid_sql("a view's query cannot have parameters ($1, ...)"))?;
        if create.if_not_exists && self.db.catalog.view(&ns, &name).is_some() {
            return Ok(StatementOutput::Message(format!(
                "View '{ns}.{name}' already exists"
            )));
        }
        if self.db.catalog.namespace(&ns).is_none() {
            return Err(Error::NamespaceNotFound(ns));
        }
        // Planned once as its creator: a view that cannot be read is refused now.
        let session = self
            .session_for(caller, false, started)
            .in_view(&ns, &name)?;
        let plan = {
            let (inner, sql) = (session.clone(), sql.clone());
            self.on_query_runtime(&session, async move { inner.plan_query(&sql).await })
                .await?
        };
        let columns: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(Error::invalid_sql(format!(
                "column '{twice}' appears twice in the view's query; alias the columns"
            )));
        }
        let replaced = self.db.catalog.view(&ns, &name).is_some();
        self.db.catalog.create_view(
            ViewDef {
                namespace: ns.clone(),
                name: name.clone(),
                sql,
                columns,
                created_by: caller.principal.user_id.clone(),
                created_at_ms: 0,
            },
            create.or_replace,
        )?;
        Ok(StatementOutput::Message(if replaced {
            format!("View '{ns}.{name}' replaced")
        } else {
            format!("View '{ns}.{name}' created")
        }))
    }

    fn drop_views(
        &self,
        caller: &Caller,
        names: &[ObjectName],
        if_exists: bool,
    ) -> Result<StatementOutput> {
        caller.principal.check_admin("drop views")?;
        let names = names
            .iter()
            .map(|n| view_name(caller, n))
            .collect::<Result<Vec<_>>>()?;
        for (ns, name) in &names {
            if self.db.catalog.table(ns, name).is_some() {
                return Err(Error::invalid_sql(format!(
                    "'{ns}.{name}' is a table, not a view: use DROP TABLE"
                )));
            }
            if !if_exists && self.db.catalog.view(ns, name).is_none() {
                return Err(match self.db.catalog.namespace(ns) {
                    None => Error::NamespaceNotFound(ns.clone()),
                    Some(_) => Error::TableNotFound(format!("{ns}.{name}")),
                });
            }
        }
        let mut dropped = Vec::new();
        for (ns, name) in &names {
            if self.db.catalog.drop_view(ns, name, if_exists)? {
                dropped.push(format!("{ns}.{name}"));
            }
        }
        Ok(StatementOutput::Message(match dropped.as_slice() {
            [] => "No view dropped".to_string(),
            [one] => format!("View '{one}' dropped"),
            many => format!("Views {} dropped", many.join(", ")),
        }))
    }
}
