//! The one binary row codec of the hot store.
//!
//! Layout of an encoded row version (all integers little-endian):
//!
//! ```text
//! [format: u8 = 1][flags: u8][schema_version: u32][ncols: u16] ncols x ([tag: u8][payload])
//! ```
//!
//! `flags` bit 0 marks a tombstone (a DELETE), which carries no columns. Each value is
//! tagged with its physical type so a row decodes without its schema, and the schema version
//! tells which columns (in which order) the row was written with, so ALTER TABLE never has
//! to rewrite stored rows. Decoding never panics: any malformed input is an error.

use crate::types::Value;

const FORMAT_V1: u8 = 1;
const FLAG_TOMBSTONE: u8 = 1;
const HEADER_LEN: usize = 8;

const TAG_NULL: u8 = 0;
const TAG_BOOL: u8 = 1;
const TAG_I16: u8 = 2;
const TAG_I32: u8 = 3;
const TAG_I64: u8 = 4;
const TAG_F32: u8 = 5;
const TAG_F64: u8 = 6;
const TAG_DECIMAL: u8 = 7;
const TAG_TEXT: u8 = 8;
const TAG_BYTES: u8 = 9;
const TAG_DATE: u8 = 10;
const TAG_TIME: u8 = 11;
const TAG_TIMESTAMP: u8 = 12;

/// A decoded row version.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRow {
    pub schema_version: u32,
    /// `None` for a tombstone.
    pub values: Option<Vec<Value>>,
}

/// Why bytes could not be decoded as a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt row encoding: {0}")]
pub struct CodecError(pub &'static str);

impl From<CodecError> for crate::error::Error {
    fn from(e: CodecError) -> crate::error::Error {
        crate::error::Error::Internal(e.to_string())
    }
}

/// Append the encoding of a live row to `out`.
pub fn encode_row(schema_version: u32, values: &[Value], out: &mut Vec<u8>) {
    debug_assert!(values.len() <= u16::MAX as usize);
    out.push(FORMAT_V1);
    out.push(0);
    out.extend_from_slice(&schema_version.to_le_bytes());
    out.extend_from_slice(&(values.len() as u16).to_le_bytes());
    for v in values {
        encode_value(v, out);
    }
}

/// Append the encoding of a tombstone to `out`.
pub fn encode_tombstone(schema_version: u32, out: &mut Vec<u8>) {
    out.push(FORMAT_V1);
    out.push(FLAG_TOMBSTONE);
    out.extend_from_slice(&schema_version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
}

/// Whether encoded bytes are a tombstone, without decoding the row.
pub fn is_tombstone(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[1] & FLAG_TOMBSTONE != 0
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(TAG_NULL),
        Value::Boolean(b) => {
            out.push(TAG_BOOL);
            out.push(*b as u8);
        }
        Value::SmallInt(x) => {
            out.push(TAG_I16);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Int(x) => {
            out.push(TAG_I32);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::BigInt(x) => {
            out.push(TAG_I64);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Real(x) => {
            out.push(TAG_F32);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Double(x) => {
            out.push(TAG_F64);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Decimal(x) => {
            out.push(TAG_DECIMAL);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Text(s) => {
            out.push(TAG_TEXT);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::Date(x) => {
            out.push(TAG_DATE);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Time(x) => {
            out.push(TAG_TIME);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Timestamp(x) => {
            out.push(TAG_TIMESTAMP);
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Decode one row version.
pub fn decode_row(bytes: &[u8]) -> Result<DecodedRow, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError("truncated header"));
    }
    if bytes[0] != FORMAT_V1 {
        return Err(CodecError("unknown format version"));
    }
    let flags = bytes[1];
    let schema_version = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let ncols = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    if flags & FLAG_TOMBSTONE != 0 {
        return Ok(DecodedRow {
            schema_version,
            values: None,
        });
    }
    let mut r = Reader {
        buf: bytes,
        pos: HEADER_LEN,
    };
    let mut values = Vec::with_capacity(ncols);
    for _ in 0..ncols {
        values.push(r.value()?);
    }
    if r.pos != bytes.len() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(DecodedRow {
        schema_version,
        values: Some(values),
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CodecError("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(CodecError("truncated value"))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn value(&mut self) -> Result<Value, CodecError> {
        let tag = self.array::<1>()?[0];
        Ok(match tag {
            TAG_NULL => Value::Null,
            TAG_BOOL => match self.array::<1>()?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => return Err(CodecError("invalid boolean")),
            },
            TAG_I16 => Value::SmallInt(i16::from_le_bytes(self.array()?)),
            TAG_I32 => Value::Int(i32::from_le_bytes(self.array()?)),
            TAG_I64 => Value::BigInt(i64::from_le_bytes(self.array()?)),
            TAG_F32 => Value::Real(f32::from_bits(u32::from_le_bytes(self.array()?))),
            TAG_F64 => Value::Double(f64::from_bits(u64::from_le_bytes(self.array()?))),
            TAG_DECIMAL => Value::Decimal(i128::from_le_bytes(self.array()?)),
            TAG_TEXT => {
                let len = u32::from_le_bytes(self.array()?) as usize;
                let s = self.take(len)?;
                let s = std::str::from_utf8(s).map_err(|_| CodecError("invalid utf-8"))?;
                Value::Text(s.to_owned())
            }
            TAG_BYTES => {
                let len = u32::from_le_bytes(self.array()?) as usize;
                Value::Bytes(self.take(len)?.to_vec())
            }
            TAG_DATE => Value::Date(i32::from_le_bytes(self.array()?)),
            TAG_TIME => Value::Time(i64::from_le_bytes(self.array()?)),
            TAG_TIMESTAMP => Value::Timestamp(i64::from_le_bytes(self.array()?)),
            _ => return Err(CodecError("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            any::<i16>().prop_map(Value::SmallInt),
            any::<i32>().prop_map(Value::Int),
            any::<i64>().prop_map(Value::BigInt),
            any::<u32>().prop_map(|b| Value::Real(f32::from_bits(b))),
            any::<u64>().prop_map(|b| Value::Double(f64::from_bits(b))),
            any::<i128>().prop_map(Value::Decimal),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
            any::<i32>().prop_map(Value::Date),
            any::<i64>().prop_map(Value::Time),
            any::<i64>().prop_map(Value::Timestamp),
        ]
    }

    /// Compare by bits so NaN payloads count as round-tripping exactly.
    fn same_bits(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
            (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn every_value_round_trips_bit_for_bit(
            version in any::<u32>(),
            values in proptest::collection::vec(value_strategy(), 0..20),
        ) {
            let mut buf = Vec::new();
            encode_row(version, &values, &mut buf);
            let row = decode_row(&buf).unwrap();
            prop_assert_eq!(row.schema_version, version);
            let got = row.values.unwrap();
            prop_assert_eq!(got.len(), values.len());
            for (a, b) in got.iter().zip(values.iter()) {
                prop_assert!(same_bits(a, b), "{:?} != {:?}", a, b);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_row(&bytes);
        }
    }

    #[test]
    fn tombstone_decodes_as_deleted() {
        let mut buf = Vec::new();
        encode_tombstone(3, &mut buf);
        assert!(is_tombstone(&buf));
        assert_eq!(
            decode_row(&buf).unwrap(),
            DecodedRow {
                schema_version: 3,
                values: None
            }
        );
    }

    #[test]
    fn truncated_row_is_an_error() {
        let mut buf = Vec::new();
        encode_row(1, &[Value::Text("hello".into())], &mut buf);
        buf.pop();
        assert!(decode_row(&buf).is_err());
    }
}
