//! A row until it is flushed: writes, key checks, expiry and counters of the hot buffer.
//! Never reads Parquet.

pub mod commit;
pub mod counters;
pub mod expiry;
pub mod overlay;
pub mod rows;
pub mod validate;
