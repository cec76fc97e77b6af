//! kalamdb-core: storage, catalog and DataFusion table providers of KalamDB.
//!
//! Owns: the RocksDB hot buffer ([`store`], [`keys`], [`codec`], [`rows`]), the Parquet cold
//! store ([`cold`], [`segment`], [`manifest`]), the flush protocol ([`flush`]) and the jobs
//! that run it ([`jobs`], [`policy`]), reads over both tiers ([`scan`]), the catalog
//! ([`catalog`]), the role rules ([`access`]) and what DataFusion sees of all of it
//! ([`provider`], [`session_catalog`], [`system_tables`], [`functions`]).
//! Must not: parse SQL text or know about HTTP; those live in kalamdb-sql and kalamdb-server.

pub mod access;
pub mod batch;
pub mod catalog;
pub mod codec;
pub mod cold;
pub mod db;
pub mod error;
pub mod failpoints;
pub mod flush;
pub mod functions;
pub mod jobs;
pub mod keys;
pub mod manifest;
pub mod memory;
pub mod password;
pub mod policy;
pub mod provider;
pub mod rows;
pub mod scan;
pub mod segment;
pub mod session_catalog;
pub mod store;
pub mod system_tables;
pub mod types;

pub use error::{Error, ErrorCode, Result};
