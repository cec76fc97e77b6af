//! The only code that moves rows from the hot buffer to Parquet, and when it does.

pub mod policy;
pub mod protocol;
