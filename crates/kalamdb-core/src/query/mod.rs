//! What DataFusion sees of the database: table providers, the per-statement catalog,
//! system tables and SQL functions.

pub mod functions;
pub mod provider;
pub mod session_catalog;
pub mod system_tables;
