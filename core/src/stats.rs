//! A trigger's statistics for the console's charts: deliveries per time
//! bucket by status, and dispatch latency percentiles.
//!
//! The object reads grouped counts and latency samples from its ledger; this
//! module fixes the window and its buckets from the query, places counts in
//! buckets and computes percentiles, with no clock and no I/O.

use serde::Serialize;

use crate::api::DeliveryStatus;
use crate::query::{bounded, QueryError};
use crate::Timestamp;

/// The window when `hours` is absent.
pub const DEFAULT_HOURS: u32 = 24;
/// The longest window: the default retention.
pub const MAX_HOURS: u32 = 30 * 24;
/// Buckets when `buckets` is absent.
pub const DEFAULT_BUCKETS: u32 = 24;
/// Most buckets a window may be cut into.
pub const MAX_BUCKETS: u32 = 240;
/// Most latency samples read for the percentiles (the newest ones).
pub const MAX_LATENCY_SAMPLES: u32 = 10_000;

/// The time window of a stats request, cut into equal buckets that end at
/// a bucket boundary at or after `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start of the first bucket (ms since the epoch), inclusive.
    pub from_ms: i64,
    /// End of the last bucket, exclusive.
    pub to_ms: i64,
    /// Each bucket's length.
    pub bucket_ms: i64,
    /// How many buckets.
    pub buckets: u32,
}

impl Window {
    /// The window of `hours` ending with the bucket that holds `now`, from
    /// the raw `hours` and `buckets` parameters.
    pub fn parse(
        now: Timestamp,
        hours: Option<&str>,
        buckets: Option<&str>,
    ) -> Result<Window, QueryError> {
        let hours = bounded("hours", hours, DEFAULT_HOURS, MAX_HOURS)?;
        let buckets = bounded("buckets", buckets, DEFAULT_BUCKETS, MAX_BUCKETS)?;
        let span = i64::from(hours) * 3_600_000;
        // Whole seconds per bucket, so bucket starts are readable times.
        let bucket_ms = (span / i64::from(buckets)).max(1000) / 1000 * 1000;
        let to_ms = (now.millis() / bucket_ms + 1) * bucket_ms;
        Ok(Window {
            from_ms: to_ms - bucket_ms * i64::from(buckets),
            to_ms,
            bucket_ms,
            buckets,
        })
    }

    /// The bucket holding `at_ms`, if it is in the window.
    pub fn index(&self, at_ms: i64) -> Option<usize> {
        (self.from_ms..self.to_ms)
            .contains(&at_ms)
            .then(|| ((at_ms - self.from_ms) / self.bucket_ms) as usize)
    }
}

/// Deliveries by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// All of them.
    pub total: u64,
    /// Runs not finished (or held).
    pub queued: u64,
    /// Every run succeeded.
    pub delivered: u64,
    /// A run failed.
    pub failed: u64,
    /// The signature was not accepted.
    pub rejected: u64,
    /// Genuine, but nothing to run.
    pub ignored: u64,
}

impl StatusCounts {
    /// Adds `n` deliveries in `status`.
    pub fn add(&mut self, status: DeliveryStatus, n: u64) {
        self.total += n;
        let slot = match status {
            DeliveryStatus::Queued => &mut self.queued,
            DeliveryStatus::Delivered => &mut self.delivered,
            DeliveryStatus::Failed => &mut self.failed,
            DeliveryStatus::Rejected => &mut self.rejected,
            DeliveryStatus::Ignored => &mut self.ignored,
        };
        *slot += n;
    }
}

/// One bucket of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Its start (RFC 3339).
    pub start: String,
    /// Deliveries received in it, by their status now.
    pub counts: StatusCounts,
}

/// Percentiles of the time from a delivery's receipt to the end of its
/// first successful attempt, over the window's successful runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Successful runs measured (at most [`MAX_LATENCY_SAMPLES`], newest).
    pub count: u64,
    /// Median, in milliseconds (`null` without samples).
    pub p50: Option<u64>,
    /// 90th percentile.
    pub p90: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// The slowest.
    pub max: Option<u64>,
}

impl Latency {
    /// Nearest-rank percentiles of `samples` (milliseconds).
    pub fn of(mut samples: Vec<u64>) -> Latency {
        samples.sort_unstable();
        let rank = |p: f64| -> Option<u64> {
            if samples.is_empty() {
                return None;
            }
            let k = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples.get(k - 1).copied()
        };
        Latency {
            count: samples.len() as u64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied(),
        }
    }
}

/// `GET /api/triggers/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Start of the window (RFC 3339).
    pub from: String,
    /// End of the window.
    pub to: String,
    /// Each bucket's length.
    pub bucket_seconds: i64,
    /// The buckets, oldest first; empty ones included.
    pub buckets: Vec<Bucket>,
    /// The whole window.
    pub totals: StatusCounts,
    /// Receipt to first successful attempt.
    pub dispatch_latency_ms: Latency,
    /// The change feed's head when these were read: poll
    /// `changes?after=seq` to learn what changed since.
    pub seq: i64,
}

impl Stats {
    /// Shapes `counts` (bucket start in ms, status, count, as the ledger
    /// groups them) and latency `samples` into the window's stats.
    pub fn build(
        window: &Window,
        counts: impl IntoIterator<Item = (i64, DeliveryStatus, u64)>,
        samples: Vec<u64>,
        seq: i64,
    ) -> Stats {
        let mut buckets: Vec<Bucket> = (0..window.buckets)
            .map(|i| Bucket {
                start: Timestamp(window.from_ms + i64::from(i) * window.bucket_ms).to_rfc3339(),
                counts: StatusCounts::default(),
            })
            .collect();
        let mut totals = StatusCounts::default();
        for (at, status, n) in counts {
            if let Some(b) = window.index(at).and_then(|i| buckets.get_mut(i)) {
                b.counts.add(status, n);
                totals.add(status, n);
            }
        }
        Stats {
            from: Timestamp(window.from_ms).to_rfc3339(),
            to: Timestamp(window.to_ms).to_rfc3339(),
            bucket_seconds: window.bucket_ms / 1000,
            buckets,
            totals,
            dispatch_latency_ms: Latency::of(samples),
            seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn the_window_ends_with_the_bucket_holding_now() {
        let now = Timestamp(100 * HOUR + 1234);
        let w = Window::parse(now, None, None).expect("defaults");
        assert_eq!((w.bucket_ms, w.buckets), (HOUR, 24));
        assert_eq!(w.to_ms, 101 * HOUR);
        assert_eq!(w.from_ms, 77 * HOUR);
        assert_eq!(w.index(now.millis()), Some(23));
        assert_eq!(w.index(77 * HOUR), Some(0));
        assert_eq!(w.index(77 * HOUR - 1), None);
        assert_eq!(w.index(101 * HOUR), None);
        let w = Window::parse(now, Some("1"), Some("60")).expect("a minute each");
        assert_eq!((w.bucket_ms, w.to_ms - w.from_ms), (60_000, HOUR));
        // Buckets are whole seconds, at least one.
        let w = Window::parse(now, Some("1"), Some("240")).expect("15 s each");
        assert_eq!(w.bucket_ms, 15_000);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let now = Timestamp(HOUR);
        for (h, b, field) in [
            (Some("0"), None, "hours"),
            (Some("721"), None, "hours"),
            (Some("x"), None, "hours"),
            (None, Some("0"), "buckets"),
            (None, Some("241"), "buckets"),
            (None, Some("-3"), "buckets"),
        ] {
            let err = Window::parse(now, h, b).expect_err("refused");
            assert_eq!(err.field, field, "{h:?} {b:?}");
        }
    }

    #[test]
    fn counts_land_in_their_buckets_and_the_totals() {
        let w = Window::parse(Timestamp(10 * HOUR + 5), Some("3"), Some("3")).expect("window");
        let s = Stats::build(
            &w,
            [
                (8 * HOUR, DeliveryStatus::Delivered, 4),
                (8 * HOUR, DeliveryStatus::Failed, 1),
                (10 * HOUR, DeliveryStatus::Queued, 2),
                (10 * HOUR, DeliveryStatus::Rejected, 3),
                // Outside the window: not counted.
                (7 * HOUR, DeliveryStatus::Delivered, 100),
            ],
            vec![],
            42,
        );
        assert_eq!(s.buckets.len(), 3);
        assert_eq!(s.seq, 42);
        assert_eq!(s.buckets[0].start, Timestamp(8 * HOUR).to_rfc3339());
        assert_eq!(s.buckets[0].counts.total, 5);
        assert_eq!(s.buckets[0].counts.failed, 1);
        assert_eq!(s.buckets[1].counts, StatusCounts::default());
        assert_eq!(s.buckets[2].counts.rejected, 3);
        assert_eq!(s.totals.total, 10);
        assert_eq!(s.totals.delivered, 4);
        assert_eq!(s.bucket_seconds, 3600);
        assert_eq!(s.dispatch_latency_ms, Latency::default());
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).rev().collect());
        assert_eq!(
            (l.count, l.p50, l.p90, l.p99, l.max),
            (100, Some(50), Some(90), Some(99), Some(100))
        );
        let one = Latency::of(vec![7]);
        assert_eq!((one.p50, one.p99, one.max), (Some(7), Some(7), Some(7)));
    }
}
