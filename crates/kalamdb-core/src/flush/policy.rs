//! Flush policies: when a table's hot buffer is flushed (the scheduler in
//! [`crate::jobs::scheduler`] applies them).
//!
//! `FLUSH_POLICY = 'rows:N,interval:S'` on a table, else the server default. A table is
//! flushed (trigger `policy`, created by `system`) when it holds at least N buffered row
//! versions, or when it has buffered rows and S seconds passed since its last policy check
//! that flushed it (or since startup).

use crate::error::{Error, Result};

/// A parsed flush policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushPolicy {
    pub rows: Option<u64>,
    pub interval_secs: Option<u64>,
}

impl FlushPolicy {
    /// Parse `rows:N,interval:S` (either part optional, each once, both positive).
    pub fn parse(text: &str) -> Result<FlushPolicy> {
        let bad = || {
            Error::InvalidParameter(format!(
                "FLUSH_POLICY must look like 'rows:10000,interval:300', not '{}'",
                crate::error::truncate_for_message(text)
            ))
        };
        let mut p = FlushPolicy::default();
        for part in text.split(',') {
            let (k, n) = part.trim().split_once(':').ok_or_else(bad)?;
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            let slot = match k.trim().to_ascii_lowercase().as_str() {
                "rows" => &mut p.rows,
                "interval" => &mut p.interval_secs,
                _ => return Err(bad()),
            };
            if slot.replace(n).is_some() {
                return Err(bad());
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_bad_ones_are_refused() {
        assert_eq!(
            FlushPolicy::parse("rows:100,interval:5").unwrap(),
            FlushPolicy {
                rows: Some(100),
                interval_secs: Some(5)
            }
        );
        assert_eq!(
            FlushPolicy::parse("interval:5").unwrap(),
            FlushPolicy {
                rows: None,
                interval_secs: Some(5)
            }
        );
        for bad in ["", "rows:0", "rows:x", "bytes:5", "rows:1,rows:2"] {
            assert!(FlushPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
