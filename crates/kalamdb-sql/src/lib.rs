//! kalamdb-sql: KalamDB's statements and the executor that runs a request's SQL.
//!
//! Owns: splitting requests into statements ([`split`]), parsing KalamDB statements on top of
//! sqlparser's tokenizer ([`parser`]), running them ([`ddl`], [`executor`], literal INSERTs and primary-key point reads without planning: `fast_insert`, `fast_select`) and mapping
//! DataFusion's errors to contract codes ([`errors`]). Each statement gets its own DataFusion
//! session (`session`); subqueries DataFusion cannot plan are evaluated per outer row
//! (`subquery`, ADR 0007).
//! Must not: know about HTTP, authentication headers or JSON encodings (kalamdb-server).

mod bounded;
mod checked;
mod checked_sum;
mod coercion;
pub mod ddl;
pub mod errors;
pub mod executor;
mod fast_insert;
mod fast_path;
mod fast_select;
mod growing;
mod guard;
mod names;
pub mod parser;
mod placeholders;
mod session;
pub mod split;
mod subquery;
mod syntax;

#[cfg(test)]
mod fast_path_agreement;
#[cfg(test)]
mod fuzz_tests;

pub use executor::{Caller, Engine, Limits, RequestOutcome, StatementOutput};
