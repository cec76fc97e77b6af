//! Per-scope manifests: the committed Parquet segments of one scope of a table.
//!
//! A manifest is paged ([`crate::storage::keyspace`]): a small header under
//! `manifest/{table_id}/{scope}` (the next segment number and the totals) and one entry per
//! segment under `segment/{table_id}/{scope}/{n}`. A commit writes the header and its one new
//! entry, whatever the number of segments (the whole list was rewritten on every commit, so
//! a scope's commits grew with its segments). It is only ever changed inside the same synced
//! WriteBatch that deletes the flushed hot keys, so a segment is either listed here and its
//! rows gone from the hot buffer, or not listed and its rows still hot. Files not listed in
//! any manifest are garbage and removed at startup. Headers written before paging held their
//! segments inline; they are read as they are and paged by their scope's next commit.

use serde::{Deserialize, Serialize};

use crate::encoding::row_key::Scope;
use crate::error::{Error, Result};
use crate::storage::keyspace;
use crate::storage::rocks::{ReadPoint, Store};
use crate::types::Value;

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
    pub fn of_rows(
        layout: &[u32],
        rows: &[crate::types::RowVersion],
    ) -> std::collections::BTreeMap<u32, ColumnStats> {
        let mut out = std::collections::BTreeMap::new();
        for (i, id) in layout.iter().enumerate() {
            // Compare values in place and encode only the two winners (encoding every value
            // was 4% of a flush's CPU).
            let (mut min, mut max): (Option<&Value>, Option<&Value>) = (None, None);
            let mut nulls = 0;
            for r in rows {
                let Some(values) = &r.values else { continue };
                match values.get(i) {
                    Some(v) if !v.is_null() => {
                        if min.is_none_or(|m| key_order(v, m).is_lt()) {
                            min = Some(v);
                        }
                        if max.is_none_or(|m| key_order(v, m).is_gt()) {
                            max = Some(v);
                        }
                    }
                    _ => nulls += 1,
                }
            }
            let hex = |v: Option<&Value>, bound: fn(&[u8]) -> String| {
                let mut buf = Vec::new();
                v.filter(|v| crate::encoding::row_key::encode_pk(v, &mut buf))
                    .map(|_| bound(&buf))
            };
            out.insert(
                *id,
                ColumnStats {
                    min: hex(min, lower_bound_hex),
                    max: hex(max, upper_bound_hex),
                    null_count: nulls,
                },
            );
        }
        out
    }
}

/// The order of `encode_pk`'s bytes, without encoding: numbers by value, floats by their
/// ordered bits, text and bytes bytewise (the escaping preserves byte order).
fn key_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    use crate::encoding::row_key::{ordered_f32_bits as f32_bits, ordered_f64_bits as f64_bits};
    match (a, b) {
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::SmallInt(x), Value::SmallInt(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) | (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::BigInt(x), Value::BigInt(y))
        | (Value::Time(x), Value::Time(y))
        | (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Decimal(x), Value::Decimal(y)) => x.cmp(y),
        (Value::Real(x), Value::Real(y)) => f32_bits(*x).cmp(&f32_bits(*y)),
        (Value::Double(x), Value::Double(y)) => f64_bits(*x).cmp(&f64_bits(*y)),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        _ => {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            crate::encoding::row_key::encode_pk(a, &mut ea);
            crate::encoding::row_key::encode_pk(b, &mut eb);
            ea.cmp(&eb)
        }
    }
}

impl SegmentMeta {
    /// Whether the segment may hold `pk` (encoded).
    pub fn may_contain(&self, pk: &[u8]) -> bool {
        lower_bound_hex(pk) >= self.pk_min && to_hex(pk) <= self.pk_max
    }

    /// The bounds of the segment's keys (None: unreadable bounds, which prune nothing).
    pub fn key_range(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        from_hex(&self.pk_min).zip(from_hex(&self.pk_max))
    }

    /// Whether both bounds are keys of the segment as they are (not truncated to
    /// [`MAX_BOUND_BYTES`]).
    pub fn bounds_exact(&self) -> bool {
        let exact = |h: &str| h.len() < 2 * MAX_BOUND_BYTES;
        exact(&self.pk_min) && exact(&self.pk_max)
    }
}

/// The committed segments of one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeManifest {
    pub segments: Vec<SegmentMeta>,
    /// Number of the next segment file.
    pub next_batch: u64,
}

/// A scope's manifest header: what a commit reads and writes besides its one new segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// Number of the next segment file.
    pub next_batch: u64,
    /// Totals over the scope's segments.
    #[serde(default)]
    pub segment_count: u64,
    #[serde(default)]
    pub rows: u64,
    #[serde(default)]
    pub bytes: u64,
    /// Segments of a header written before paging (empty once its scope committed again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentMeta>,
}

impl ManifestHeader {
    /// Totals of a header written before paging, which held only its segments.
    fn with_totals(mut self) -> ManifestHeader {
        if !self.segments.is_empty() && self.segment_count == 0 {
            self.segment_count = self.segments.len() as u64;
            self.rows = self.segments.iter().map(|s| s.rows).sum();
            self.bytes = self.segments.iter().map(|s| s.bytes).sum();
        }
        self
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt manifest {what}: {e}"))
}

fn decode_header(key: &str, b: &[u8]) -> Result<ManifestHeader> {
    serde_json::from_slice::<ManifestHeader>(b)
        .map(ManifestHeader::with_totals)
        .map_err(|e| corrupt(key, e))
}

/// A scope's header (empty if it has none).
pub fn load_header(store: &Store, table_id: u64, scope: &Scope) -> Result<ManifestHeader> {
    load_header_at(store, table_id, scope, None)
}

fn load_header_at(
    store: &Store,
    table_id: u64,
    scope: &Scope,
    at: Option<&ReadPoint>,
) -> Result<ManifestHeader> {
    let key = keyspace::manifest(table_id, scope);
    match store.catalog_get_at(&key, at)? {
        None => Ok(ManifestHeader::default()),
        Some(b) => decode_header(&key, &b),
    }
}

/// Add `segment` to a scope's manifest in `batch`: its entry and the header `stored` (as the
/// committing flush read it) moved on. Returns the header written. A header from before
/// paging has its inline segments paged in the same batch.
pub fn commit_into(
    batch: &mut rocksdb::WriteBatch,
    store: &Store,
    table_id: u64,
    scope: &Scope,
    stored: &ManifestHeader,
    segment: &SegmentMeta,
) -> Result<ManifestHeader> {
    let cf = store.cf(keyspace::CF_CATALOG)?;
    let encode = |v: &SegmentMeta| serde_json::to_vec(v).map_err(|e| corrupt("entry", e));
    for old in &stored.segments {
        batch.put_cf(
            cf,
            keyspace::segment(table_id, scope, old.batch),
            encode(old)?,
        );
    }
    batch.put_cf(
        cf,
        keyspace::segment(table_id, scope, segment.batch),
        encode(segment)?,
    );
    let next = ManifestHeader {
        next_batch: segment.batch + 1,
        segment_count: stored.segment_count + 1,
        rows: stored.rows + segment.rows,
        bytes: stored.bytes + segment.bytes,
        segments: Vec::new(),
    };
    let header = serde_json::to_vec(&next).map_err(|e| corrupt("header", e))?;
    batch.put_cf(cf, keyspace::manifest(table_id, scope), header);
    Ok(next)
}

/// The segment entries stored under `prefix`, in key order, with the scope each names.
fn entries(store: &Store, prefix: &str) -> Result<Vec<(String, SegmentMeta)>> {
    entries_at(store, prefix, None)
}

fn entries_at(
    store: &Store,
    prefix: &str,
    at: Option<&ReadPoint>,
) -> Result<Vec<(String, SegmentMeta)>> {
    store
        .catalog_scan_at(prefix, at)?
        .into_iter()
        .map(|(k, v)| {
            let meta = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
            Ok((k, meta))
        })
        .collect()
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
        to_hex(&crate::encoding::row_key::prefix_upper_bound(
            &b[..MAX_BOUND_BYTES],
        ))
    }
}

/// Load a scope's manifest, every segment in segment order (empty if it has none).
pub fn load(store: &Store, table_id: u64, scope: &Scope) -> Result<ScopeManifest> {
    load_at(store, table_id, scope, None)
}

/// A scope's manifest as of `at` (now when None): a transaction's snapshot.
pub fn load_at(
    store: &Store,
    table_id: u64,
    scope: &Scope,
    at: Option<&ReadPoint>,
) -> Result<ScopeManifest> {
    let header = load_header_at(store, table_id, scope, at)?;
    let paged = header.segment_count as usize > header.segments.len();
    let mut segments = header.segments;
    // Entries are written with their header, in one batch: a scope whose header counts none
    // beyond its inline ones has none (every scan of a never-flushed scope skips the read).
    if paged {
        segments.extend(
            entries_at(store, &keyspace::scope_segments(table_id, scope), at)?
                .into_iter()
                .map(|(_, s)| s),
        );
    }
    Ok(ScopeManifest {
        segments,
        next_batch: header.next_batch,
    })
}

/// Every scope's header of a table: the totals, without reading its segments.
pub fn table_headers(store: &Store, table_id: u64) -> Result<Vec<(Scope, ManifestHeader)>> {
    let mut out = Vec::new();
    for (k, v) in store.catalog_scan(&keyspace::table_manifests(table_id))? {
        let scope = keyspace::manifest_scope(table_id, &k)
            .ok_or_else(|| Error::Internal(format!("malformed manifest key {k}")))?;
        out.push((scope, decode_header(&k, &v)?));
    }
    Ok(out)
}

/// The path of every segment of a table, all scopes.
pub fn table_segment_paths(store: &Store, table_id: u64) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (_, h) in table_headers(store, table_id)? {
        out.extend(h.segments.into_iter().map(|s| s.path));
    }
    for (_, s) in entries(store, &keyspace::table_segments(table_id))? {
        out.push(s.path);
    }
    Ok(out)
}

/// Every segment path referenced by any manifest.
pub fn all_segment_paths(store: &Store) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for (k, v) in store.catalog_scan(keyspace::MANIFESTS)? {
        out.extend(decode_header(&k, &v)?.segments.into_iter().map(|s| s.path));
    }
    for (_, s) in entries(store, keyspace::SEGMENTS)? {
        out.insert(s.path);
    }
    Ok(out)
}

/// The bytes of a bound written by [`to_hex`] (None: not such a bound).
pub fn from_hex(h: &str) -> Option<Vec<u8>> {
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// For each segment, its first key if no other source can hold any of its keys — no other
/// segment's key range and not the hot rows' range overlaps its own — so its rows are the
/// winning versions as they stand and need no merge. Only segments whose manifest bounds are
/// exact keys (not truncated) qualify; truncated bounds still count, conservatively, as
/// ranges others must avoid.
pub fn isolated_segments(
    segments: &[SegmentMeta],
    hot: Option<&(Vec<u8>, Vec<u8>)>,
) -> Vec<Option<Vec<u8>>> {
    let bounds: Vec<Option<(Vec<u8>, Vec<u8>)>> =
        segments.iter().map(SegmentMeta::key_range).collect();
    let mut order: Vec<usize> = (0..segments.len())
        .filter(|&i| bounds[i].is_some())
        .collect();
    if order.len() != segments.len() {
        return vec![None; segments.len()]; // an unreadable bound: merge everything
    }
    order.sort_by(|&a, &b| {
        bounds[a]
            .as_ref()
            .map(|x| &x.0)
            .cmp(&bounds[b].as_ref().map(|x| &x.0))
    });
    let mut out = vec![None; segments.len()];
    let mut max_before: Option<&Vec<u8>> = None;
    for (n, &i) in order.iter().enumerate() {
        let (min, max) = bounds[i].as_ref().expect("checked above");
        let clear_before = max_before.is_none_or(|m| m < min);
        let clear_after = order
            .get(n + 1)
            .is_none_or(|&j| max < &bounds[j].as_ref().expect("checked above").0);
        let clear_hot = hot.is_none_or(|(hmin, hmax)| hmax < min || max < hmin);
        if clear_before && clear_after && clear_hot && segments[i].bounds_exact() {
            out[i] = Some(min.clone());
        }
        if max_before.is_none_or(|m| m < max) {
            max_before = Some(max);
        }
    }
    out
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

    fn same_kind_pair() -> impl proptest::strategy::Strategy<Value = (Value, Value)> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<bool>(), any::<bool>())
                .prop_map(|(a, b)| (Value::Boolean(a), Value::Boolean(b))),
            (any::<i16>(), any::<i16>())
                .prop_map(|(a, b)| (Value::SmallInt(a), Value::SmallInt(b))),
            (any::<i32>(), any::<i32>()).prop_map(|(a, b)| (Value::Int(a), Value::Int(b))),
            (any::<i64>(), any::<i64>())
                .prop_map(|(a, b)| (Value::Timestamp(a), Value::Timestamp(b))),
            (any::<i128>(), any::<i128>())
                .prop_map(|(a, b)| (Value::Decimal(a), Value::Decimal(b))),
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| (
                Value::Real(f32::from_bits(a)),
                Value::Real(f32::from_bits(b))
            )),
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| (
                Value::Double(f64::from_bits(a)),
                Value::Double(f64::from_bits(b))
            )),
            (-2.0f64..2.0, -2.0f64..2.0).prop_map(|(a, b)| (Value::Double(a), Value::Double(b))),
            {
                let edge = || {
                    proptest::sample::select(vec![
                        -0.0,
                        0.0,
                        f64::NAN,
                        -f64::NAN,
                        f64::INFINITY,
                        f64::NEG_INFINITY,
                        -1.0,
                        1.0,
                    ])
                };
                (edge(), edge()).prop_map(|(a, b)| (Value::Double(a), Value::Double(b)))
            },
            (".{0,6}", ".{0,6}").prop_map(|(a, b)| (Value::Text(a), Value::Text(b))),
            ("[a\\x00]{0,4}", "[a\\x00]{0,4}").prop_map(|(a, b)| (Value::Text(a), Value::Text(b))),
            (
                proptest::collection::vec(0u8..3, 0..5),
                proptest::collection::vec(0u8..3, 0..5)
            )
                .prop_map(|(a, b)| (Value::Bytes(a), Value::Bytes(b))),
        ]
    }

    proptest::proptest! {
        /// Column statistics pick min/max without encoding: that order must be the encoded one.
        #[test]
        fn key_order_is_the_order_of_the_encoded_values((a, b) in same_kind_pair()) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            crate::encoding::row_key::encode_pk(&a, &mut ea);
            crate::encoding::row_key::encode_pk(&b, &mut eb);
            proptest::prop_assert_eq!(key_order(&a, &b), ea.cmp(&eb), "{:?} vs {:?}", a, b);
        }
    }

    proptest::proptest! {
        #[test]
        fn bounds_hold_their_key_and_read_back(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            proptest::prop_assert_eq!(from_hex(&to_hex(&b)), Some(b.clone()));
            let s = seg(&b, &b);
            proptest::prop_assert!(s.may_contain(&b));
            proptest::prop_assert_eq!(s.bounds_exact(), b.len() < MAX_BOUND_BYTES);
            let (lo, hi) = s.key_range().unwrap();
            proptest::prop_assert!(lo.as_slice() <= b.as_slice() && b.as_slice() <= hi.as_slice());
        }
    }

    fn paged_segment(n: u64) -> SegmentMeta {
        let mut s = seg(&n.to_be_bytes(), &n.to_be_bytes());
        s.batch = n;
        s.path = format!("app/t/alice/batch-{n}-{n:x}.parquet");
        s.bytes = 10;
        s
    }

    #[test]
    fn a_manifest_of_10000_segments_commits_in_constant_size_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scope = Scope::user("alice");
        let mut header = load_header(&store, 7, &scope).unwrap();
        let mut batch = rocksdb::WriteBatch::default();
        let mut commit_bytes = Vec::new();
        for n in 0..10_000u64 {
            let before = batch.size_in_bytes();
            header =
                commit_into(&mut batch, &store, 7, &scope, &header, &paged_segment(n)).unwrap();
            commit_bytes.push(batch.size_in_bytes() - before);
            if n % 1000 == 999 {
                store.write(std::mem::take(&mut batch)).unwrap();
            }
        }
        // The 10,000th commit writes what the first did (a few more digits), not the list.
        assert!(
            commit_bytes[9_999] <= commit_bytes[0] + 32,
            "first commit {} bytes, last {}",
            commit_bytes[0],
            commit_bytes[9_999]
        );
        let m = load(&store, 7, &scope).unwrap();
        assert_eq!((m.segments.len(), m.next_batch), (10_000, 10_000));
        assert!(m.segments.windows(2).all(|w| w[0].batch + 1 == w[1].batch));
        let h = load_header(&store, 7, &scope).unwrap();
        assert_eq!(
            (h.segment_count, h.rows, h.bytes),
            (10_000, 20_000, 100_000)
        );
        assert_eq!(table_headers(&store, 7).unwrap().len(), 1);
        // Other scopes and tables hold none of them.
        assert!(load(&store, 7, &Scope::user("alic"))
            .unwrap()
            .segments
            .is_empty());
        assert!(load(&store, 7, &Scope::shared())
            .unwrap()
            .segments
            .is_empty());
        assert!(table_segment_paths(&store, 70).unwrap().is_empty());
        assert_eq!(table_segment_paths(&store, 7).unwrap().len(), 10_000);
        assert_eq!(all_segment_paths(&store).unwrap().len(), 10_000);
    }

    #[test]
    fn a_manifest_written_before_paging_reads_and_its_next_commit_pages_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scope = Scope::shared();
        let old = serde_json::json!({
            "segments": [paged_segment(0), paged_segment(1)],
            "next_batch": 2,
        });
        let mut b = rocksdb::WriteBatch::default();
        b.put_cf(
            store.cf(keyspace::CF_CATALOG).unwrap(),
            keyspace::manifest(3, &scope),
            serde_json::to_vec(&old).unwrap(),
        );
        store.write(b).unwrap();
        let m = load(&store, 3, &scope).unwrap();
        let rows: u64 = m.segments.iter().map(|s| s.rows).sum();
        assert_eq!((m.segments.len(), m.next_batch, rows), (2, 2, 4));
        let h = load_header(&store, 3, &scope).unwrap();
        assert_eq!((h.segment_count, h.rows, h.bytes), (2, 4, 20));
        assert_eq!(all_segment_paths(&store).unwrap().len(), 2);

        let mut b = rocksdb::WriteBatch::default();
        commit_into(&mut b, &store, 3, &scope, &h, &paged_segment(2)).unwrap();
        store.write(b).unwrap();
        let m = load(&store, 3, &scope).unwrap();
        assert_eq!(
            m.segments,
            vec![paged_segment(0), paged_segment(1), paged_segment(2)]
        );
        let raw = store
            .catalog_get(&keyspace::manifest(3, &scope))
            .unwrap()
            .unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert!(raw.get("segments").is_none(), "paged: {raw}");
        assert_eq!(raw["segment_count"], 3);
    }
}
