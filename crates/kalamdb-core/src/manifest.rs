//! Per-scope manifests: the list of committed Parquet segments of one scope of a table.
//!
//! A manifest is a small JSON value in the `catalog` column family under
//! `manifest/{table_id}/{scope}`. It is only ever changed inside the same synced WriteBatch
//! that deletes the flushed hot keys, so a segment is either listed here and its rows gone
//! from the hot buffer, or not listed and its rows still hot. Files not listed in any manifest
//! are garbage and removed at startup.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::Scope;
use crate::store::Store;

/// One committed segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Object path in the cold store.
    pub path: String,
    pub batch: u64,
    pub rows: u64,
    pub bytes: u64,
    pub seq_min: u64,
    pub seq_max: u64,
    /// Smallest and largest encoded primary key (hex), for pruning.
    pub pk_min: String,
    pub pk_max: String,
    pub schema_version: u32,
    pub created_at_ms: u64,
    /// Per column id: min/max of the order-preserving value encoding (hex) and NULL count.
    /// Only key ranges prune today: a segment may hold an old version of a key whose newer
    /// version lives elsewhere, so skipping a segment by a non-key column could resurface it.
    #[serde(default)]
    pub column_stats: std::collections::BTreeMap<u32, ColumnStats>,
}

/// Statistics of one column in one segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub min: Option<String>,
    pub max: Option<String>,
    pub null_count: u64,
}

impl ColumnStats {
    /// Column statistics of rows in a layout (tombstones skipped).
    pub fn of_rows(layout: &[u32], rows: &[crate::rows::RowVersion]) -> std::collections::BTreeMap<u32, ColumnStats> {
        let mut out = std::collections::BTreeMap::new();
        for (i, id) in layout.iter().enumerate() {
            let (mut min, mut max): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
            let mut nulls = 0;
            let mut buf = Vec::new();
            for r in rows {
                let Some(values) = &r.values else { continue };
                buf.clear();
                match values.get(i) {
                    Some(v) if crate::keys::encode_pk(v, &mut buf) => {
                        if min.as_ref().is_none_or(|m| buf < *m) {
                            min = Some(buf.clone());
                        }
                        if max.as_ref().is_none_or(|m| buf > *m) {
                            max = Some(buf.clone());
                        }
                    }
                    _ => nulls += 1,
                }
            }
            out.insert(
                *id,
                ColumnStats {
                    min: min.map(|m| lower_bound_hex(&m)),
                    max: max.map(|m| upper_bound_hex(&m)),
                    null_count: nulls,
                },
            );
        }
        out
    }
}

impl SegmentMeta {
    /// Whether the segment may hold `pk` (encoded).
    pub fn may_contain(&self, pk: &[u8]) -> bool {
        lower_bound_hex(pk) >= self.pk_min && to_hex(pk) <= self.pk_max
    }
}

/// The committed segments of one scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeManifest {
    pub segments: Vec<SegmentMeta>,
    /// Number of the next segment file.
    pub next_batch: u64,
}

impl ScopeManifest {
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }
}

/// Hex with lowercase digits: byte order is preserved by string order.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Longest encoded value kept as a bound in a manifest.
pub const MAX_BOUND_BYTES: usize = 64;

/// A lower bound of `b`, at most 64 bytes, as hex.
pub fn lower_bound_hex(b: &[u8]) -> String {
    to_hex(&b[..b.len().min(MAX_BOUND_BYTES)])
}

/// An upper bound of `b`, at most 65 bytes, as hex (a truncated value is rounded up).
pub fn upper_bound_hex(b: &[u8]) -> String {
    if b.len() <= MAX_BOUND_BYTES {
        to_hex(b)
    } else {
        to_hex(&crate::keys::prefix_upper_bound(&b[..MAX_BOUND_BYTES]))
    }
}

/// Catalog key of a scope's manifest.
pub fn manifest_key(table_id: u64, scope: &Scope) -> String {
    format!("{}{}", table_manifest_prefix(table_id), scope.user_id().unwrap_or(""))
}

/// Catalog key prefix of all manifests of a table.
pub fn table_manifest_prefix(table_id: u64) -> String {
    format!("manifest/{table_id:020}/")
}

/// Load a scope's manifest (empty if it has none).
pub fn load(store: &Store, table_id: u64, scope: &Scope) -> Result<ScopeManifest> {
    match store.catalog_get(&manifest_key(table_id, scope))? {
        None => Ok(ScopeManifest::default()),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Internal(format!("corrupt manifest of table {table_id}: {e}"))),
    }
}

/// All manifests of a table, with their scopes.
pub fn load_table(store: &Store, table_id: u64) -> Result<Vec<(Scope, ScopeManifest)>> {
    let prefix = table_manifest_prefix(table_id);
    let mut out = Vec::new();
    for (k, v) in store.catalog_scan(&prefix)? {
        let user = &k[prefix.len()..];
        let scope = if user.is_empty() { Scope::shared() } else { Scope::user(user) };
        let m: ScopeManifest = serde_json::from_slice(&v)
            .map_err(|e| Error::Internal(format!("corrupt manifest {k}: {e}")))?;
        out.push((scope, m));
    }
    Ok(out)
}

/// Every segment path referenced by any manifest.
pub fn all_segment_paths(store: &Store) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for (k, v) in store.catalog_scan("manifest/")? {
        let m: ScopeManifest = serde_json::from_slice(&v)
            .map_err(|e| Error::Internal(format!("corrupt manifest {k}: {e}")))?;
        out.extend(m.segments.into_iter().map(|s| s.path));
    }
    Ok(out)
}

/// Serialise a manifest for a WriteBatch.
pub fn encode(m: &ScopeManifest) -> Result<Vec<u8>> {
    serde_json::to_vec(m).map_err(|e| Error::Internal(format!("manifest encode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: &[u8], last: &[u8]) -> SegmentMeta {
        SegmentMeta {
            path: String::new(),
            batch: 0,
            rows: 2,
            bytes: 0,
            seq_min: 0,
            seq_max: 0,
            pk_min: lower_bound_hex(first),
            pk_max: upper_bound_hex(last),
            schema_version: 1,
            created_at_ms: 0,
            column_stats: Default::default(),
        }
    }

    #[test]
    fn key_ranges_never_prune_a_key_inside_them_even_when_truncated() {
        let long_a = [b'a'; 100];
        let long_m = [b'm'; 100];
        let s = seg(&long_a, &long_m);
        for inside in [&long_a[..], &long_m[..], b"b", &[b'a'; 101][..]] {
            assert!(s.may_contain(inside), "{inside:?}");
        }
        assert!(!s.may_contain(b"z"));
        assert!(!s.may_contain(b"A"));
    }
}
