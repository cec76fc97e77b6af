//! The only code that merges the two tiers into one table.

mod keys;
mod merge;
pub mod scan;
