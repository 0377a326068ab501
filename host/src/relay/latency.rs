//! Produce latency (hand-off to librdkafka → broker acknowledgement) as a
//! histogram of fixed buckets, lock-free: the delivery callback records,
//! the relay reports quantiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// 100 µs buckets below 100 ms, then 10 ms buckets up to 10 s; slower
/// lands in the last.
const FINE: usize = 1000;
const COARSE: usize = 990;

pub struct ProduceLatency {
    buckets: Vec<AtomicU64>,
}

impl Default for ProduceLatency {
    fn default() -> Self {
        ProduceLatency {
            buckets: (0..FINE + COARSE).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl ProduceLatency {
    pub fn record(&self, latency: Duration) {
        let micros = latency.as_micros() as usize;
        let bucket = if micros < 100 * FINE {
            micros / 100
        } else {
            (FINE + (micros - 100 * FINE) / 10_000).min(FINE + COARSE - 1)
        };
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The upper edge of the bucket holding quantile `q` (0–1); `None`
    /// before anything was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                let micros = if i < FINE {
                    (i as u64 + 1) * 100
                } else {
                    100 * FINE as u64 + (i - FINE + 1) as u64 * 10_000
                };
                return Some(Duration::from_micros(micros));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_edges() {
        let latency = ProduceLatency::default();
        assert_eq!(latency.quantile(0.5), None);
        for ms in 1..=100 {
            latency.record(Duration::from_micros(ms * 1000 - 50));
        }
        assert_eq!(latency.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(latency.quantile(0.99), Some(Duration::from_millis(99)));
        latency.record(Duration::from_secs(60));
        assert_eq!(latency.quantile(1.0), Some(Duration::from_secs(10)));
    }
}
