//! Row keys of the hot store and the `seq` version generator.
//!
//! A row version's key is
//!
//! ```text
//! [table_id: u64 BE][scope_len: u8][scope: user id bytes, empty for SHARED][pk: order-preserving][!seq: u64 BE]
//! ```
//!
//! so that one scope (one user of a USER/STREAM table, or a SHARED table) is one contiguous
//! key range, all versions of one primary key sit next to each other, and the newest version
//! of a key comes first (the seq is stored inverted). A scan therefore sees each primary key's
//! latest version first and never needs a hash map to find it; a primary-key lookup is one seek.
//! See docs/adr/0002-row-key-layout.md for why the primary key sits before the seq.
//!
//! The flushed-key index (column family `flushed`) is keyed by `scope prefix | pk` and holds a
//! [`FlushedEntry`]: `[deleted: u8][seq: u64 BE]` of the version of that key held in Parquet.
//! This module is the only code that builds or takes apart these bytes.

use crate::types::Value;

/// The partition of a table a row belongs to: a user id for USER and STREAM tables,
/// empty for SHARED tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn shared() -> Scope {
        Scope(String::new())
    }

    pub fn user(user_id: &str) -> Scope {
        Scope(user_id.to_owned())
    }

    pub fn user_id(&self) -> Option<&str> {
        if self.0.is_empty() {
            None
        } else {
            Some(&self.0)
        }
    }
}

/// Key prefix of every row of a table.
pub fn table_prefix(table_id: u64) -> Vec<u8> {
    table_id.to_be_bytes().to_vec()
}

/// Key prefix of one scope of a table. User ids are at most 64 bytes (validated at creation).
pub fn scope_prefix(table_id: u64, scope: &Scope) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + scope.0.len() + 24);
    k.extend_from_slice(&table_id.to_be_bytes());
    k.push(scope.0.len() as u8);
    k.extend_from_slice(scope.0.as_bytes());
    k
}

/// Smallest key strictly greater than every key that starts with `prefix`.
pub fn prefix_upper_bound(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // Only reachable for an all-0xFF prefix, which table ids never produce.
    vec![0xFF; prefix.len() + 1]
}

/// Full key of one row version.
pub fn row_key(scope_prefix: &[u8], pk: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope_prefix.len() + pk.len() + 8);
    k.extend_from_slice(scope_prefix);
    k.extend_from_slice(pk);
    k.extend_from_slice(&(!seq).to_be_bytes());
    debug_assert_eq!(split_row_key(&k, scope_prefix.len()), Some((pk, seq)));
    k
}

/// The table id and scope of a row key (None: malformed).
pub fn scope_of_key(key: &[u8]) -> Option<(u64, Scope)> {
    let table_id = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let len = *key.get(8)? as usize;
    let user = std::str::from_utf8(key.get(9..9 + len)?).ok()?;
    Some((table_id, Scope(user.to_owned())))
}

/// The seq of a row key (None: too short to be one).
pub fn seq_of_key(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).and_then(|at| key.get(at..))?;
    Some(!u64::from_be_bytes(tail.try_into().ok()?))
}

/// Key of a primary key in the flushed-key index: the scope prefix, then the encoded pk.
pub fn flushed_key(scope_prefix: &[u8], pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope_prefix.len() + pk.len());
    k.extend_from_slice(scope_prefix);
    k.extend_from_slice(pk);
    k
}

/// What the flushed-key index holds for a key: the version of it in Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushedEntry {
    /// The flushed version is a tombstone: the key is not live unless written again.
    pub deleted: bool,
    pub seq: u64,
}

impl FlushedEntry {
    pub const LEN: usize = 9;

    pub fn encode(&self) -> [u8; FlushedEntry::LEN] {
        let mut v = [0u8; FlushedEntry::LEN];
        v[0] = self.deleted as u8;
        v[1..].copy_from_slice(&self.seq.to_be_bytes());
        debug_assert_eq!(FlushedEntry::decode(&v), Some(*self));
        v
    }

    /// None for bytes that are not an entry.
    pub fn decode(v: &[u8]) -> Option<FlushedEntry> {
        let (&deleted, seq) = v.split_first()?;
        if deleted > 1 || seq.len() != 8 {
            return None;
        }
        Some(FlushedEntry {
            deleted: deleted == 1,
            seq: u64::from_be_bytes(seq.try_into().ok()?),
        })
    }

    /// Whether an index value says its key is live in Parquet (a malformed value: not live).
    pub fn is_live(v: &[u8]) -> bool {
        FlushedEntry::decode(v).is_some_and(|e| !e.deleted)
    }
}

/// Split a row key (known to start with `scope_prefix_len` bytes of prefix) into its
/// encoded primary key and seq. Returns None for a malformed key.
pub fn split_row_key(key: &[u8], scope_prefix_len: usize) -> Option<(&[u8], u64)> {
    if key.len() < scope_prefix_len + 8 {
        return None;
    }
    let (rest, seq) = key.split_at(key.len() - 8);
    let mut b = [0u8; 8];
    b.copy_from_slice(seq);
    Some((&rest[scope_prefix_len..], !u64::from_be_bytes(b)))
}

/// Append the order-preserving, prefix-free encoding of a primary-key value.
///
/// Integers are big-endian with the sign bit flipped; text and bytes escape 0x00 as
/// 0x00 0xFF and end with 0x00 0x00. Returns false for values that cannot be keys (NULL).
pub fn encode_pk(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Null => return false,
        Value::Boolean(b) => out.push(*b as u8),
        Value::SmallInt(x) => out.extend_from_slice(&((*x as u16) ^ 0x8000).to_be_bytes()),
        Value::Int(x) | Value::Date(x) => {
            out.extend_from_slice(&((*x as u32) ^ 0x8000_0000).to_be_bytes())
        }
        Value::BigInt(x) | Value::Time(x) | Value::Timestamp(x) => {
            out.extend_from_slice(&((*x as u64) ^ (1 << 63)).to_be_bytes())
        }
        Value::Decimal(x) => out.extend_from_slice(&((*x as u128) ^ (1 << 127)).to_be_bytes()),
        Value::Real(x) => out.extend_from_slice(&ordered_f32_bits(*x).to_be_bytes()),
        Value::Double(x) => out.extend_from_slice(&ordered_f64_bits(*x).to_be_bytes()),
        Value::Text(s) => escape_bytes(s.as_bytes(), out),
        Value::Bytes(b) => escape_bytes(b, out),
    }
    true
}

/// The bits of a float whose unsigned order is the float's order (negatives inverted, the
/// sign bit set on the rest); -0.0 sorts just before 0.0.
pub fn ordered_f32_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    }
}

/// [`ordered_f32_bits`] for doubles.
pub fn ordered_f64_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The BIGINT a [`encode_pk`] of `Value::BigInt` wrote (the hidden row id of tables without a
/// primary key); None for other bytes.
pub fn decode_bigint_pk(pk: &[u8]) -> Option<i64> {
    let b: [u8; 8] = pk.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

fn escape_bytes(b: &[u8], out: &mut Vec<u8>) {
    for &c in b {
        out.push(c);
        if c == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(encode_pk(v, &mut out));
        out
    }

    proptest! {
        #[test]
        fn bigint_keys_sort_like_values(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a.cmp(&b), enc(&Value::BigInt(a)).cmp(&enc(&Value::BigInt(b))));
        }

        #[test]
        fn text_keys_sort_like_values_and_are_prefix_free(a in ".*", b in ".*") {
            let (ea, eb) = (enc(&Value::Text(a.clone())), enc(&Value::Text(b.clone())));
            prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()), ea.cmp(&eb));
            if a != b {
                prop_assert!(!ea.starts_with(&eb) && !eb.starts_with(&ea));
            }
        }

        #[test]
        fn double_keys_sort_like_values(a in -1e300f64..1e300, b in -1e300f64..1e300) {
            prop_assert_eq!(a.partial_cmp(&b).unwrap(), enc(&Value::Double(a)).cmp(&enc(&Value::Double(b))));
        }
    }

    #[test]
    fn newer_versions_sort_first_and_split_back() {
        let p = scope_prefix(7, &Scope::user("alice"));
        let pk = enc(&Value::BigInt(1));
        let old = row_key(&p, &pk, 10);
        let new = row_key(&p, &pk, 11);
        assert!(new < old);
        assert_eq!(split_row_key(&new, p.len()), Some((pk.as_slice(), 11)));
    }

    #[test]
    fn scopes_are_disjoint_ranges() {
        let a = scope_prefix(1, &Scope::user("a"));
        let ab = scope_prefix(1, &Scope::user("ab"));
        assert!(!ab.starts_with(&a));
        assert!(prefix_upper_bound(&a) > a);
    }

    proptest! {
        #[test]
        fn row_keys_split_back_into_their_parts(
            table in any::<u64>(), user in "[a-zA-Z0-9_@.-]{0,64}", pk in any::<i64>(), seq in any::<u64>()
        ) {
            let scope = if user.is_empty() { Scope::shared() } else { Scope::user(&user) };
            let prefix = scope_prefix(table, &scope);
            let pk = enc(&Value::BigInt(pk));
            let key = row_key(&prefix, &pk, seq);
            prop_assert!(key.starts_with(&prefix));
            prop_assert_eq!(split_row_key(&key, prefix.len()), Some((pk.as_slice(), seq)));
            prop_assert_eq!(scope_of_key(&key), Some((table, scope)));
            prop_assert_eq!(seq_of_key(&key), Some(seq));
            prop_assert!(flushed_key(&prefix, &pk).starts_with(&prefix));
        }

        #[test]
        fn flushed_entries_read_back(deleted in any::<bool>(), seq in any::<u64>()) {
            let e = FlushedEntry { deleted, seq };
            prop_assert_eq!(FlushedEntry::decode(&e.encode()), Some(e));
            prop_assert_eq!(FlushedEntry::is_live(&e.encode()), !deleted);
        }

        #[test]
        fn bigint_keys_decode_back(x in any::<i64>()) {
            prop_assert_eq!(decode_bigint_pk(&enc(&Value::BigInt(x))), Some(x));
        }

        #[test]
        fn real_keys_sort_like_values(a in -1e30f32..1e30, b in -1e30f32..1e30) {
            prop_assert_eq!(a.partial_cmp(&b).unwrap(), enc(&Value::Real(a)).cmp(&enc(&Value::Real(b))));
        }
    }

    #[test]
    fn malformed_flushed_values_are_not_entries() {
        assert_eq!(FlushedEntry::decode(&[]), None);
        assert_eq!(FlushedEntry::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(FlushedEntry::decode(&[0, 1]), None);
        assert!(!FlushedEntry::is_live(&[]));
    }
}
