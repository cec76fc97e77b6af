//! Execution of KalamDB's own statements: namespaces, tables, users, SHOW and DESCRIBE.
//!
//! Each function checks the caller's role, validates the statement completely, then makes one
//! catalog change. Runs on a blocking thread (catalog writes sync to disk).

mod common;
mod namespaces;
mod tables;
mod users;

use kalamdb_core::{Db, Error, Result};

use crate::engine::{Caller, StatementOutput};
use crate::statement::parser::KalamStatement;

pub fn execute(db: &Db, caller: &Caller, stmt: KalamStatement) -> Result<StatementOutput> {
    match stmt {
        KalamStatement::CreateNamespace {
            name,
            if_not_exists,
        } => namespaces::create(db, caller, name, if_not_exists),
        KalamStatement::DropNamespace {
            name,
            if_exists,
            cascade,
        } => namespaces::drop(db, caller, name, if_exists, cascade),
        KalamStatement::ShowNamespaces => namespaces::show(db),
        KalamStatement::CreateTable(ct) => tables::create_table(db, caller, ct),
        KalamStatement::AlterTable { table, op } => tables::alter_table(db, caller, table, op),
        KalamStatement::DropTable { table, if_exists } => {
            tables::drop(db, caller, table, if_exists)
        }
        KalamStatement::ShowTables { namespace } => tables::show(db, namespace),
        KalamStatement::DescribeTable { table } => tables::describe(db, caller, table),
        KalamStatement::CreateUser {
            user_id,
            password,
            role,
            if_not_exists,
        } => users::create(db, caller, user_id, password, role, if_not_exists),
        KalamStatement::AlterUser { user_id, op } => users::alter(db, caller, user_id, op),
        KalamStatement::DropUser { user_id, if_exists } => {
            users::drop(db, caller, user_id, if_exists)
        }
        KalamStatement::ExecuteAs { .. }
        | KalamStatement::FlushTable { .. }
        | KalamStatement::FlushAll { .. }
        | KalamStatement::KillJob { .. }
        | KalamStatement::ShowFunctions => Err(Error::Internal(
            "statement routed to the wrong executor".into(),
        )),
    }
}
