//! A transaction's own writes, read by its statements as one more source of each scan
//! (ADR 0014): read-your-writes with no second read path.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::storage::rocks::ReadPoint;
use crate::types::{RowVersion, Value};

/// The rows a transaction wrote to one scope and has not committed: encoded primary key ->
/// the row (live-column order of `schema_version`), or None where it deleted the row.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub schema_version: u32,
    pub rows: BTreeMap<Vec<u8>, Option<Vec<Value>>>,
}

/// What a read sees: the database now, or a transaction's snapshot and its own writes.
#[derive(Debug, Clone, Default)]
pub struct ReadView {
    /// The snapshot the read sees (now when None).
    pub at: Option<Arc<ReadPoint>>,
    /// The transaction's uncommitted writes of the scope read, newer than any stored version.
    pub overlay: Option<Arc<Overlay>>,
}

impl ReadView {
    pub(crate) fn at(&self) -> Option<&ReadPoint> {
        self.at.as_deref()
    }

    /// Whether the overlay holds a row of the scope.
    pub(crate) fn has_writes(&self) -> bool {
        self.overlay.as_ref().is_some_and(|o| !o.rows.is_empty())
    }

    /// The overlay's versions (all, or those of `keys`, sorted and distinct), in key order,
    /// with a seq above every stored version's: the merge prefers them.
    pub(crate) fn versions(&self, keys: Option<&[Vec<u8>]>) -> Vec<RowVersion> {
        let Some(overlay) = &self.overlay else {
            return Vec::new();
        };
        let version = |pk: &Vec<u8>, row: &Option<Vec<Value>>| RowVersion {
            pk: pk.clone(),
            seq: u64::MAX,
            schema_version: overlay.schema_version,
            values: row.clone(),
        };
        match keys {
            None => overlay.rows.iter().map(|(k, v)| version(k, v)).collect(),
            Some(keys) => keys
                .iter()
                .filter_map(|k| overlay.rows.get_key_value(k).map(|(k, v)| version(k, v)))
                .collect(),
        }
    }
}
