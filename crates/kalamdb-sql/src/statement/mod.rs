//! A request's text as statements: split, parsed (KalamDB's statements), checked.

pub(crate) mod ast;
mod cursor;
pub(crate) mod parser;
pub(crate) mod placeholders;
mod size;
pub(crate) mod split;
pub(crate) mod syntax;
