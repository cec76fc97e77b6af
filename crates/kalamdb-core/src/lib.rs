//! kalamdb-core: storage, catalog and DataFusion table providers of KalamDB.
//!
//! The folders are the stages of a row's life (ARCHITECTURE.md has the codemap):
//! [`encoding`] (bytes and arrays, no I/O), [`storage`] (RocksDB and the object store),
//! [`catalog`] (definitions and every role rule), [`hot`] (the hot buffer), [`cold`] (Parquet
//! segments and manifests), [`flush`] (hot -> cold), [`read`] (both tiers merged), [`jobs`]
//! (background work) and [`query`] (what DataFusion sees).
//! Must not: parse SQL text or know about HTTP; those live in kalamdb-sql and kalamdb-server.

pub mod catalog;
pub mod clock;
pub mod cold;
pub mod db;
pub mod encoding;
pub mod error;
pub mod failpoints;
pub mod flush;
pub mod hot;
pub mod jobs;
pub mod memory;
pub mod query;
pub mod read;
pub mod storage;
pub mod types;

pub use error::{Error, ErrorCode, Result};
