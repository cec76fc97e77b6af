//! The only code that merges the two tiers into one table.

pub mod scan;
