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

use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::Value;

/// Milliseconds since the Unix epoch at which KalamDB seqs start (2024-01-01T00:00:00Z).
pub const SEQ_EPOCH_MS: u64 = 1_704_067_200_000;
const SEQ_COUNTER_BITS: u32 = 22;

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
    k
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
        Value::Real(x) => {
            let bits = x.to_bits();
            let ordered = if bits >> 31 == 1 {
                !bits
            } else {
                bits | (1 << 31)
            };
            out.extend_from_slice(&ordered.to_be_bytes())
        }
        Value::Double(x) => {
            let bits = x.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes())
        }
        Value::Text(s) => escape_bytes(s.as_bytes(), out),
        Value::Bytes(b) => escape_bytes(b, out),
    }
    true
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

/// Generator of `seq` values: snowflake-style (milliseconds since [`SEQ_EPOCH_MS`] in the
/// high bits, a counter in the low 22), strictly increasing within the process.
///
/// At startup it is seeded above the largest seq found on disk, so seqs stay increasing
/// across restarts even if the wall clock moved backwards.
#[derive(Debug, Default)]
pub struct SeqGenerator {
    last: AtomicU64,
}

impl SeqGenerator {
    pub fn new(floor: u64) -> SeqGenerator {
        SeqGenerator {
            last: AtomicU64::new(floor),
        }
    }

    /// Next seq, strictly greater than every seq handed out before.
    pub fn next(&self) -> u64 {
        let now = seq_from_millis(now_millis());
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(last + 1);
            match self.last.compare_exchange_weak(
                last,
                candidate,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return candidate,
                Err(actual) => last = actual,
            }
        }
    }

    /// Raise the floor (used when recovering the largest seq on disk).
    pub fn observe(&self, seq: u64) {
        self.last.fetch_max(seq, Ordering::AcqRel);
    }
}

/// The smallest seq that could be generated at `unix_ms`.
pub fn seq_from_millis(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(SEQ_EPOCH_MS) << SEQ_COUNTER_BITS
}

/// Unix milliseconds a seq was generated at.
pub fn seq_millis(seq: u64) -> u64 {
    (seq >> SEQ_COUNTER_BITS) + SEQ_EPOCH_MS
}

/// Current wall-clock time in Unix milliseconds.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

    #[test]
    fn seqs_strictly_increase_and_carry_time() {
        let g = SeqGenerator::new(0);
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        assert!(seq_millis(b).abs_diff(now_millis()) < 10_000);
    }
}
