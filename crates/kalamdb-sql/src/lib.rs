//! kalamdb-sql: KalamDB's statements and the engine that runs a request's SQL.
//!
//! The folders (ARCHITECTURE.md has the codemap):
//! - `statement`: splitting a request into statements, KalamDB's own statements on top of
//!   sqlparser's tokenizer, syntax checks and placeholders;
//! - `engine`: the [`Engine`] that routes each statement, the per-statement session, bounded
//!   execution (deadline, memory account, row limit), DML and commands (flush, kill);
//! - `ddl`: namespaces, tables, users, SHOW and DESCRIBE, against the catalog;
//! - `fast`: the planner bypasses (literal INSERT, primary-key point SELECT), held to the
//!   planned path by their agreement tests;
//! - `planning`: what KalamDB adds to DataFusion's planning and execution: PostgreSQL type and
//!   value rules, bounded value functions, subqueries evaluated per row (ADR 0007), the
//!   execution guard, and the one mapping of DataFusion's errors to contract codes.
//!
//! Must not: know about HTTP, authentication headers or JSON encodings (kalamdb-server), nor
//! open RocksDB, Parquet or the object store (kalamdb-core).

mod ddl;
mod df;
mod engine;
mod fast;
mod planning;
mod statement;

#[cfg(test)]
mod fuzz_tests;

pub use engine::{
    Caller, Engine, Limits, RequestOutcome, Session, StatementOutput, TransactionStatus,
};
pub use statement::parser::parse_kalam_statement;
pub use statement::split::split_statements;
