//! The only code that opens RocksDB or the object store.

pub mod keyspace;
pub mod objects;
pub mod rocks;
