//! Any bytes as a stored row: decoding must never panic, and whatever decodes re-encodes to
//! the same bytes.
#![no_main]
use kalamdb_core::{decode_row, encode_row, encode_tombstone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(row) = decode_row(data) {
        let mut again = Vec::new();
        match &row.values {
            Some(values) => encode_row(row.schema_version, values, &mut again),
            None => encode_tombstone(row.schema_version, &mut again),
        }
        let back = decode_row(&again).expect("re-encoded row decodes");
        assert_eq!(back.schema_version, row.schema_version);
        assert_eq!(back.values.as_ref().map(|v| v.len()), row.values.as_ref().map(|v| v.len()));
    }
});
