//! The engine: runs a request's statements in order for one caller.
//!
//! KalamDB statements ([`crate::statement::parser`]) run against the catalog directly; everything else
//! is planned by DataFusion over a per-statement catalog bound to the caller
//! ([`StatementCatalog`]). INSERT/UPDATE/DELETE are planned by DataFusion too, but their rows
//! are written here, through the row store, as one atomic synced batch per statement.
//! Statements that would touch the server's files or settings are refused for all but
//! `system`.

mod accounts;
mod commands;
pub(crate) mod deadline;
mod dml;
mod limits;
mod on_conflict;
mod output;
mod query;
mod returning;
mod router;
mod run;
pub(crate) mod session;
mod transact;
mod transaction;
mod upsert;
mod views;

pub(crate) use limits::too_many_rows;
pub use limits::Limits;
pub(crate) use output::text_schema;
pub use output::{Caller, RequestOutcome, StatementOutput};
pub use router::Engine;
pub use transaction::{Session, TransactionStatus};
