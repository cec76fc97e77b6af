//! What DataFusion sees of the database: table providers, the per-statement catalog,
//! system tables and SQL functions.

pub(crate) mod functions;
pub(crate) mod provider;
pub(crate) mod session_catalog;
pub(crate) mod system_tables;
