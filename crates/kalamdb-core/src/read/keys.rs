//! Reading some keys of one scope: an upsert's conflicting rows. The hot versions are found by
//! one seek per key through one RocksDB snapshot, each segment that may hold a key is opened
//! once and only its pages that may hold one are decoded; the scan's merge does the rest.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::merge::{HotSource, Merge, Source};
use super::scan::{column_ids, ScanColumn, ScanRange, Sources};
use crate::catalog::TableDef;
use crate::clock::now_millis;
use crate::cold::manifest;
use crate::cold::segment::SegmentReader;
use crate::encoding::row_key::{encode_pk, prefix_upper_bound, scope_prefix, Scope};
use crate::error::Result;
use crate::hot::overlay::ReadView;
use crate::hot::rows::RowStore;
use crate::storage::keyspace::CF_ROWS;
use crate::storage::rocks::Store;
use crate::types::Value;

impl RowStore {
    /// The latest live versions of the rows with these primary-key values, hot or flushed,
    /// every live column (`schema` is the table's, without the row id), in key order; a key
    /// without a live row yields nothing. One scan: the hot
    /// versions by one seek per key, each segment that may hold a key opened once, only its
    /// pages that may hold one decoded (an upsert's conflicting rows). None when `deadline`
    /// passed (checked between batches).
    pub fn read_keys(
        &self,
        def: &TableDef,
        scope: &Scope,
        schema: SchemaRef,
        keys: &[Value],
        view: ReadView,
        deadline: std::time::Instant,
    ) -> Result<Option<Vec<RecordBatch>>> {
        let columns: Vec<ScanColumn> = def
            .live_columns()
            .map(|c| ScanColumn::Column {
                id: c.id,
                data_type: c.data_type,
                value_for_older_rows: c.value_for_older_rows.clone(),
            })
            .collect();
        let mut out = Vec::new();
        let range = ScanRange {
            pk_in: Some(keys.to_vec()),
            view,
            ..ScanRange::default()
        };
        let mut late = false;
        self.scan(def, scope, &columns, schema, &range, 8192, |b| {
            out.push(b);
            late = std::time::Instant::now() > deadline;
            !late
        })?;
        Ok((!late).then_some(out))
    }

    /// The sources of a scan of some keys: the newest hot version of each (one seek each,
    /// through one RocksDB snapshot taken before the manifest is read, so that a flush
    /// committing in between shows a row in both, never in neither), and each segment that
    /// may hold one of them, filtered to them.
    pub(super) fn open_key_sources<'s>(
        &'s self,
        def: &'s TableDef,
        scope: &Scope,
        columns: &[ScanColumn],
        keys: &[Value],
        view: &ReadView,
        batch_rows: usize,
    ) -> Result<Option<Sources<'s>>> {
        let prefix = scope_prefix(def.id, scope);
        let mut pks: Vec<Vec<u8>> = keys
            .iter()
            .filter_map(|v| {
                let mut pk = Vec::new();
                encode_pk(v, &mut pk).then_some(pk) // a NULL key matches nothing
            })
            .collect();
        pks.sort_unstable();
        pks.dedup();
        if pks.is_empty() {
            return Ok(None);
        }
        let store = self.store();
        let mut hot = Vec::new();
        {
            let own;
            let snapshot = match view.at() {
                Some(at) => at.snapshot(),
                None => {
                    own = store.db().snapshot();
                    &own
                }
            };
            for pk in &pks {
                let mut lower = prefix.clone();
                lower.extend_from_slice(pk);
                let upper = prefix_upper_bound(&lower);
                let mut read_options = Store::range_read_options(&lower, &upper);
                read_options.set_snapshot(snapshot);
                let mut it = store
                    .db()
                    .raw_iterator_cf_opt(store.cf(CF_ROWS)?, read_options);
                it.seek(&lower);
                let mut source = HotSource {
                    it,
                    def,
                    prefix_len: prefix.len(),
                    last_pk: None,
                    now_ms: now_millis(),
                    started: false,
                };
                if let Some(version) = source.next().transpose()? {
                    if &version.pk == pk {
                        hot.push(version);
                    }
                }
            }
        }
        let manifest = manifest::load_at(store, def.id, scope, view.at())?;
        let wanted = column_ids(columns);
        let mut sources: Vec<Source<'_>> = vec![Box::new(hot.into_iter().map(Ok))];
        if view.has_writes() {
            sources.push(Box::new(view.versions(Some(&pks)).into_iter().map(Ok)));
        }
        let pks = Arc::new(pks);
        for seg in &manifest.segments {
            if !pks.iter().any(|pk| seg.may_contain(pk)) {
                continue;
            }
            let data = self.segment_bytes(def, scope, &seg.path)?;
            sources.push(Box::new(SegmentReader::open(
                def,
                data,
                seg.schema_version,
                &wanted,
                Some(pks.clone()),
                batch_rows,
            )?));
        }
        Ok(Some(Sources {
            merge: Merge::new(sources)?,
            columnar: Vec::new(),
            wanted,
        }))
    }
}
