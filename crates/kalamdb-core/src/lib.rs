//! kalamdb-core: storage, catalog and DataFusion table providers of KalamDB.
//!
//! Owns: the RocksDB hot buffer ([`store`], [`keys`], [`codec`], [`rows`]), the catalog
//! ([`catalog`]), the role rules ([`access`]) and what DataFusion sees of all of it
//! ([`provider`], [`session_catalog`], [`system_tables`], [`functions`]).
//! Must not: parse SQL text or know about HTTP; those live in kalamdb-sql and kalamdb-server.

pub mod access;
pub mod batch;
pub mod catalog;
pub mod codec;
pub mod db;
pub mod error;
pub mod functions;
pub mod keys;
pub mod password;
pub mod provider;
pub mod rows;
pub mod session_catalog;
pub mod store;
pub mod system_tables;
pub mod types;

pub use error::{Error, ErrorCode, Result};
