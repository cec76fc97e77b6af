//! kalamdb-core: storage, catalog and DataFusion table providers of KalamDB.
//!
//! The folders are the stages of a row's life (ARCHITECTURE.md has the codemap):
//! [`encoding`] (bytes and arrays, no I/O), [`storage`] (RocksDB and the object store),
//! [`catalog`] (definitions and every role rule), [`hot`] (the hot buffer), [`cold`] (Parquet
//! segments and manifests), [`flush`] (hot -> cold), [`read`] (both tiers merged), [`jobs`]
//! (background work). What DataFusion sees of them (table providers, the statement catalog,
//! system tables) is kalamdb-sql's `df/`.
//! Must not: parse SQL text or know about HTTP; those live in kalamdb-sql and kalamdb-server.

mod catalog;
mod clock;
mod cold;
mod db;
mod encoding;
mod error;
pub mod failpoints;
mod flush;
mod hot;
mod jobs;
mod memory;
mod read;
mod storage;
mod types;

// The facade: what kalamdb-sql, kalamdb-server, the bench and the fuzz targets may use.
// Everything else is crate-private.

// The database handle and its errors.
pub use clock::{now_millis, SeqGenerator};
pub use db::Db;
pub use error::{truncate_for_message, Error, ErrorCode, Result};
pub use types::{DataType, Value, TYPE_METADATA_KEY};

// Definitions and every role rule.
pub use catalog::access::Principal;
pub use catalog::password::{hash_password, verify_password};
pub use catalog::{
    validate_name, validate_user_id, AccessLevel, Catalog, ColumnDef, ColumnDefault, Role,
    TableDef, TableKind, TableOptions, UserDef, ViewDef, DEFAULT_NAMESPACE, RESERVED_NAMESPACES,
    ROOT_USER, ROWID_COLUMN,
};

// Rows: written through the hot buffer, read through both tiers merged.
pub use cold::manifest::table_headers;
pub use encoding::arrow_values::{
    assignment_refused, conform, doubles_to_reals, is_integer, rounded, value_from_text,
    SCAN_BATCH_ROWS,
};
pub use encoding::row_key::Scope;
pub use hot::commit::{Committed, ScopeWrites};
pub use hot::overlay::{Overlay, ReadView};
pub use hot::rows::{display_value, RowStore};
pub use hot::validate::rows_from_batch;
pub use read::scan::{ScanColumn, ScanRange};

// Jobs and the flush policy.
pub use flush::policy::FlushPolicy;
pub use jobs::flush_job::{start_flush, FlushTrigger};
pub use jobs::manager::{JobManager, JobSettings};
pub use jobs::record::{list_jobs, JobRecord, JobStatus};
pub use jobs::scheduler::run_scheduler;

// The memory each statement's work may hold.
pub use memory::{check_current, current_limit, Account, Charged, Counting, QueryHeap};

// The formats themselves, for the fuzz targets and kalamdb-bench's raw RocksDB baseline.
pub use encoding::row_codec::{decode_row, encode_row, encode_tombstone};
pub use encoding::row_key::{encode_pk, row_key, scope_prefix};
pub use storage::keyspace::CF_ROWS;
pub use storage::rocks::{ReadPoint, Store};
