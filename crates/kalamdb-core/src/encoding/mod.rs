//! Pure functions that define how values are laid out in bytes and arrays; never any I/O.

pub mod arrow_values;
pub mod layout;
pub mod row_codec;
pub mod row_key;
