//! Planner bypasses: a literal INSERT written without planning, a primary-key point SELECT
//! read without planning. Each answers exactly what the planned path answers (the agreement
//! tests run both); anything they do not recognise goes to the planner.

#[cfg(test)]
mod agreement;
pub(crate) mod insert;
mod literals;
pub(crate) mod path;
mod reader;
pub(crate) mod select;
