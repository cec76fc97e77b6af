//! kalamdb-sql: KalamDB's statements and the executor that runs a request's SQL.
//!
//! Owns: splitting requests into statements ([`split`]), parsing KalamDB statements on top of
//! sqlparser's tokenizer ([`parser`]), running them ([`ddl`], [`executor`], literal INSERTs and primary-key point reads without planning: `fast_insert`, `fast_select`) and mapping
//! DataFusion's errors to contract codes ([`errors`]).
//! Must not: know about HTTP, authentication headers or JSON encodings (kalamdb-server).

pub mod ddl;
pub mod errors;
pub mod executor;
mod fast_insert;
mod fast_path;
mod fast_select;
pub mod parser;
pub mod split;

#[cfg(test)]
mod fuzz_tests;

pub use executor::{Caller, Engine, Limits, RequestOutcome, StatementOutput};
