//! The scenarios, one file each, as `impl Bench` blocks: each loads its data, measures
//! KalamDB, its raw components and (unless --no-pg) PostgreSQL on the same work, and adds
//! its figures.

mod analytics;
mod flush;
mod ingest;
mod mixed;
mod reads;
mod upsert;
mod writes;
