//! Every key of the `catalog` column family, and the column families themselves.
//!
//! The catalog family holds small JSON values under readable string keys, one prefix per
//! kind; no prefix is a prefix of another kind's keys, so a scan of one kind never sees
//! another. Table ids are written with a fixed width so that one table's keys sort together
//! and a table id is never a prefix of another's.
//!
//! ```text
//! ns/{namespace}                      NamespaceDef
//! table/{namespace}/{table}           TableDef
//! view/{namespace}/{view}             ViewDef
//! user/{user_id}                      UserDef
//! storage/{storage_id}                StorageDef
//! job/{job_id}                        JobRecord
//! manifest/{table_id:020}/{user_id}   ManifestHeader (user id empty for SHARED)
//! segment/{table_id:020}/{user_id}/{n:020}   SegmentMeta of segment n of the scope
//! widest/{table_id:016x}              widest-row mark: u64 BE
//! meta/next_table_id                  u64 (JSON)
//! meta/token_signing_key              32 random bytes
//! ```

use crate::encoding::row_key::Scope;

pub const CF_CATALOG: &str = "catalog";
/// The hot buffer: row versions keyed as in [`crate::encoding::row_key`], values from
/// [`crate::encoding::row_codec`].
pub const CF_ROWS: &str = "rows";
/// Index of flushed primary keys: `scope prefix | pk` -> [`crate::encoding::row_key::FlushedEntry`]
/// of the version held in Parquet, so key checks need no Parquet read.
pub const CF_FLUSHED: &str = "flushed";

pub const NAMESPACES: &str = "ns/";
pub const TABLES: &str = "table/";
pub const VIEWS: &str = "view/";
pub const USERS: &str = "user/";
pub const STORAGES: &str = "storage/";
pub const JOBS: &str = "job/";
pub const MANIFESTS: &str = "manifest/";
/// User ids never hold a '/' (catalog::validate_user_id), so a scope's entries are one range.
pub const SEGMENTS: &str = "segment/";
pub const NEXT_TABLE_ID: &str = "meta/next_table_id";
pub const TOKEN_SIGNING_KEY: &str = "meta/token_signing_key";

pub fn namespace(name: &str) -> String {
    format!("{NAMESPACES}{name}")
}

pub fn table(namespace: &str, name: &str) -> String {
    format!("{TABLES}{namespace}/{name}")
}

pub fn view(namespace: &str, name: &str) -> String {
    format!("{VIEWS}{namespace}/{name}")
}

pub fn user(user_id: &str) -> String {
    format!("{USERS}{user_id}")
}

pub fn storage(storage_id: &str) -> String {
    format!("{STORAGES}{storage_id}")
}

pub fn job(job_id: &str) -> String {
    format!("{JOBS}{job_id}")
}

/// A table's widest-row mark (`RowStore::widest_row`): 8 bytes, big-endian.
pub fn widest_row(table_id: u64) -> String {
    format!("widest/{table_id:016x}")
}

/// Prefix of every manifest of a table.
pub fn table_manifests(table_id: u64) -> String {
    format!("{MANIFESTS}{table_id:020}/")
}

/// Key of one scope's manifest.
pub fn manifest(table_id: u64, scope: &Scope) -> String {
    let key = format!(
        "{}{}",
        table_manifests(table_id),
        scope.user_id().unwrap_or("")
    );
    debug_assert_eq!(
        manifest_scope(table_id, &key).as_ref(),
        Some(scope),
        "manifest keys read back"
    );
    key
}

/// Prefix of every segment entry of a table.
pub fn table_segments(table_id: u64) -> String {
    format!("{SEGMENTS}{table_id:020}/")
}

/// Prefix of one scope's segment entries.
pub fn scope_segments(table_id: u64, scope: &Scope) -> String {
    format!(
        "{}{}/",
        table_segments(table_id),
        scope.user_id().unwrap_or("")
    )
}

/// Key of one segment's entry: segment numbers zero-padded, so key order is segment order.
pub fn segment(table_id: u64, scope: &Scope, n: u64) -> String {
    format!("{}{n:020}", scope_segments(table_id, scope))
}

/// The scope a manifest key of `table_id` names (None: not a manifest key of that table).
pub fn manifest_scope(table_id: u64, key: &str) -> Option<Scope> {
    let user = key.strip_prefix(&table_manifests(table_id))?;
    Some(if user.is_empty() {
        Scope::shared()
    } else {
        Scope::user(user)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn manifest_keys_read_back_and_stay_in_their_table(
            a in any::<u64>(), b in any::<u64>(), user in "[a-z0-9_]{0,64}"
        ) {
            let scope = if user.is_empty() { Scope::shared() } else { Scope::user(&user) };
            let key = manifest(a, &scope);
            prop_assert_eq!(manifest_scope(a, &key), Some(scope.clone()));
            if a != b {
                prop_assert!(!key.starts_with(&table_manifests(b)));
            }
            // A scope's segments are its own range: neither another scope's nor another table's.
            let seg = segment(a, &scope, 9);
            prop_assert!(seg.starts_with(&scope_segments(a, &scope)));
            prop_assert!(seg.starts_with(&table_segments(a)));
            let other = Scope::user(&format!("{user}x"));
            prop_assert!(!seg.starts_with(&scope_segments(a, &other)));
            if a != b {
                prop_assert!(!seg.starts_with(&table_segments(b)));
            }
        }

        #[test]
        fn kinds_never_share_a_prefix(name in "[a-z0-9_]{1,64}") {
            let keys = [namespace(&name), table(&name, &name), user(&name), storage(&name), job(&name),
                manifest(7, &Scope::user(&name)), segment(7, &Scope::user(&name), 3)];
            let prefixes = [NAMESPACES, TABLES, USERS, STORAGES, JOBS, MANIFESTS, SEGMENTS, "widest/", "meta/"];
            for (i, k) in keys.iter().enumerate() {
                let owners: Vec<_> = prefixes.iter().filter(|p| k.starts_with(*p)).collect();
                prop_assert_eq!(owners.len(), 1, "{} is under {:?}", k, owners);
                prop_assert_eq!(owners[0], &prefixes[i]);
            }
        }
    }
}
