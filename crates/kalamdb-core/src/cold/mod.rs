//! The Parquet tier: segment files and the manifests that name them. Never reads the hot rows.

pub mod manifest;
pub mod segment;
