//! The k-way merge of a scope's sources: the hot buffer and each segment yield row versions
//! in primary-key order, at most one per key; the merge keeps, for each key, the version with
//! the highest seq. Memory holds one pending version per source, whatever the table's size.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rocksdb::{DBRawIteratorWithThreadMode, DB};

use crate::catalog::TableDef;
use crate::encoding::row_codec::{decode_row, is_tombstone};
use crate::encoding::row_key::split_row_key;
use crate::error::{Error, Result};
use crate::types::RowVersion;

pub(super) type Source<'a> = Box<dyn Iterator<Item = Result<RowVersion>> + 'a>;

/// The newest hot version of each key of a scope (tombstones and expired rows included, as
/// versions without values).
pub(super) struct HotSource<'a> {
    pub(super) it: DBRawIteratorWithThreadMode<'a, DB>,
    pub(super) def: &'a TableDef,
    pub(super) prefix_len: usize,
    pub(super) last_pk: Option<Vec<u8>>,
    pub(super) now_ms: u64,
    pub(super) started: bool,
}

impl HotSource<'_> {
    fn next_version(&mut self) -> Result<Option<RowVersion>> {
        if self.started {
            self.it.next();
        }
        self.started = true;
        while self.it.valid() {
            let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
                break;
            };
            let (pk, seq) = split_row_key(k, self.prefix_len)
                .ok_or_else(|| Error::Internal("malformed row key".into()))?;
            if self.last_pk.as_deref() == Some(pk) {
                self.it.next();
                continue; // an older version of a key already returned
            }
            self.last_pk = Some(pk.to_vec());
            if is_tombstone(v) || self.def.is_expired(seq, self.now_ms) {
                return Ok(Some(RowVersion {
                    pk: pk.to_vec(),
                    seq,
                    schema_version: 0,
                    values: None,
                }));
            }
            let row = decode_row(v)?;
            return Ok(Some(RowVersion {
                pk: pk.to_vec(),
                seq,
                schema_version: row.schema_version,
                values: row.values,
            }));
        }
        self.it.status()?;
        Ok(None)
    }
}

impl Iterator for HotSource<'_> {
    type Item = Result<RowVersion>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_version().transpose()
    }
}

/// A source's pending version, ordered for a min-heap on (pk asc, seq desc).
struct Head {
    row: RowVersion,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the smallest pk, then highest seq.
        other
            .row
            .pk
            .cmp(&self.row.pk)
            .then(self.row.seq.cmp(&other.row.seq))
    }
}

/// Yields the winning version of each key across sources.
pub(super) struct Merge<'a> {
    sources: Vec<Source<'a>>,
    heap: BinaryHeap<Head>,
}

impl<'a> Merge<'a> {
    pub(super) fn new(mut sources: Vec<Source<'a>>) -> Result<Merge<'a>> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(row) = s.next().transpose()? {
                heap.push(Head { row, source: i });
            }
        }
        Ok(Merge { sources, heap })
    }

    fn advance(&mut self, source: usize) -> Result<()> {
        if let Some(row) = self.sources[source].next().transpose()? {
            self.heap.push(Head { row, source });
        }
        Ok(())
    }

    /// The key of the next winner, without taking it.
    pub(super) fn peek_pk(&self) -> Option<&[u8]> {
        self.heap.peek().map(|h| h.row.pk.as_slice())
    }

    pub(super) fn next_winner(&mut self) -> Result<Option<RowVersion>> {
        let Some(top) = self.heap.pop() else {
            return Ok(None);
        };
        self.advance(top.source)?;
        // Drop every other source's (older) version of the same key.
        while self.heap.peek().is_some_and(|h| h.row.pk == top.row.pk) {
            if let Some(h) = self.heap.pop() {
                self.advance(h.source)?;
            }
        }
        Ok(Some(top.row))
    }
}
