//! A row until it is flushed: writes, key checks, expiry and counters of the hot buffer.
//! Never reads Parquet.

pub mod counters;
pub mod expiry;
pub mod rows;
pub mod validate;
