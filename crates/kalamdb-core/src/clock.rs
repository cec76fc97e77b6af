//! The wall clock and the `seq` version generator.

use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch at which KalamDB seqs start (2024-01-01T00:00:00Z).
pub const SEQ_EPOCH_MS: u64 = 1_704_067_200_000;
const SEQ_COUNTER_BITS: u32 = 22;

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

    #[test]
    fn seqs_strictly_increase_and_carry_time() {
        let g = SeqGenerator::new(0);
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        assert!(seq_millis(b).abs_diff(now_millis()) < 10_000);
    }
}
