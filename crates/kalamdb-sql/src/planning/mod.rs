//! What KalamDB adds to DataFusion's planning and execution.

pub(crate) mod bounded_values;
pub(crate) mod checked;
pub(crate) mod checked_sum;
pub(crate) mod coercion;
pub(crate) mod errors;
pub(crate) mod growing;
pub(crate) mod guard;
pub(crate) mod names;
pub(crate) mod subquery;
