//! End-to-end tests: each starts the real `kalamdb-server` binary and speaks HTTP to it.
//! One test binary for the whole crate (modules below), so it links once.

mod concurrency;
mod crash;
mod docs;
mod durability;
mod errors;
mod flush_basic;
mod flush_failures;
mod flush_queries;
mod functions;
mod hostile;
mod isolation;
mod isolation_matrix;
mod ops;
mod returning;
mod slt;
mod sql_surface;
mod stress;
mod time_functions;
mod transactions;
mod types;
mod upsert;
mod views;
mod writes;
