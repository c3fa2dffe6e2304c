//! A provider's recent calls on this instance, for the admin status panel: calls, successes
//! and latency over the last minute (per-second buckets) and the last hour (per-minute
//! buckets). Memory is fixed whatever the traffic; recording takes one short lock and never
//! allocates. Time is an `Instant` the caller passes (the router's tokio clock), so tests
//! drive it with explicit instants.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (ms) of the latency bins; a last, open bin holds everything slower.
const BOUNDS_MS: [u32; 27] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000,
    30_000,
];
const BINS: usize = BOUNDS_MS.len() + 1;
const SECONDS: usize = 60;
const MINUTES: usize = 60;

/// What one window says: `None` where there were no calls to measure.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowSummary {
    pub calls_1m: u64,
    pub calls_1h: u64,
    pub success_rate_1m: Option<f64>,
    pub success_rate_1h: Option<f64>,
    pub p50_ms_1m: Option<u32>,
    pub p95_ms_1m: Option<u32>,
}

/// Calls of one provider over the last minute and hour.
#[derive(Debug)]
pub struct CallStats {
    origin: Instant,
    inner: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    seconds: [SecondBucket; SECONDS],
    minutes: [MinuteBucket; MINUTES],
}

#[derive(Debug, Clone, Copy)]
struct SecondBucket {
    /// Seconds since `origin` this bucket holds; a bucket of another second is stale.
    tick: u64,
    calls: u32,
    ok: u32,
    min_ms: u32,
    max_ms: u32,
    bins: [u32; BINS],
}

#[derive(Debug, Clone, Copy, Default)]
struct MinuteBucket {
    tick: u64,
    calls: u32,
    ok: u32,
}

impl SecondBucket {
    const EMPTY: Self = Self {
        tick: u64::MAX,
        calls: 0,
        ok: 0,
        min_ms: u32::MAX,
        max_ms: 0,
        bins: [0; BINS],
    };
}

impl Default for CallStats {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl CallStats {
    /// Windows counted from `origin` (any instant not after the first call recorded).
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            inner: Mutex::new(Buckets {
                seconds: [SecondBucket::EMPTY; SECONDS],
                minutes: [MinuteBucket {
                    tick: u64::MAX,
                    ..MinuteBucket::default()
                }; MINUTES],
            }),
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Counts one call that ended at `at` after `latency`; `ok`: the provider took the message.
    pub fn record(&self, at: Instant, latency: Duration, ok: bool) {
        let sec = self.second(at);
        let min = sec / 60;
        let ms = latency.as_millis().min(u32::MAX as u128) as u32;
        let bin = BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(BINS - 1);
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut b.seconds[(sec % SECONDS as u64) as usize];
        if s.tick != sec {
            *s = SecondBucket {
                tick: sec,
                ..SecondBucket::EMPTY
            };
        }
        s.calls += 1;
        s.ok += u32::from(ok);
        s.min_ms = s.min_ms.min(ms);
        s.max_ms = s.max_ms.max(ms);
        s.bins[bin] += 1;
        let m = &mut b.minutes[(min % MINUTES as u64) as usize];
        if m.tick != min {
            *m = MinuteBucket {
                tick: min,
                calls: 0,
                ok: 0,
            };
        }
        m.calls += 1;
        m.ok += u32::from(ok);
    }

    /// The last 60 seconds and the last 60 minutes as of `now` (the current second and minute
    /// included).
    pub fn summary(&self, now: Instant) -> WindowSummary {
        let sec = self.second(now);
        let min = sec / 60;
        let b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (mut calls, mut ok, mut lo, mut hi, mut bins) = (0u64, 0u64, u32::MAX, 0u32, [0u64; BINS]);
        for s in b.seconds.iter().filter(|s| s.tick <= sec && sec - s.tick < SECONDS as u64) {
            calls += u64::from(s.calls);
            ok += u64::from(s.ok);
            lo = lo.min(s.min_ms);
            hi = hi.max(s.max_ms);
            for (total, n) in bins.iter_mut().zip(s.bins) {
                *total += u64::from(n);
            }
        }
        let (mut calls_h, mut ok_h) = (0u64, 0u64);
        for m in b.minutes.iter().filter(|m| m.tick <= min && min - m.tick < MINUTES as u64) {
            calls_h += u64::from(m.calls);
            ok_h += u64::from(m.ok);
        }
        drop(b);
        let rate = |ok: u64, calls: u64| (calls > 0).then(|| ok as f64 / calls as f64);
        let pct = |p: f64| percentile(&bins, calls, p).map(|v| v.clamp(lo, hi));
        WindowSummary {
            calls_1m: calls,
            calls_1h: calls_h,
            success_rate_1m: rate(ok, calls),
            success_rate_1h: rate(ok_h, calls_h),
            p50_ms_1m: pct(0.50),
            p95_ms_1m: pct(0.95),
        }
    }
}

/// The upper bound of the bin holding the `p` quantile (nearest rank), `None` with no calls.
/// Clamped by the caller to the window's observed min and max, so a bin's bound never reports
/// a latency no call had.
fn percentile(bins: &[u64; BINS], calls: u64, p: f64) -> Option<u32> {
    if calls == 0 {
        return None;
    }
    // The epsilon keeps 0.95 * 20 at rank 19 whatever the float rounding.
    let rank = ((p * calls as f64 - 1e-9).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in bins.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(BOUNDS_MS.get(i).copied().unwrap_or(u32::MAX));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_empty_window_has_no_rates_or_percentiles() {
        let t0 = Instant::now();
        let s = CallStats::new(t0).summary(t0 + Duration::from_secs(5));
        assert_eq!(s, WindowSummary::default());
    }

    #[test]
    fn the_minute_counts_calls_successes_and_latency_percentiles() {
        let t0 = Instant::now();
        let stats = CallStats::new(t0);
        // 19 fast successes (40 ms) and one slow failure (900 ms) spread over 20 seconds.
        for i in 0..19 {
            stats.record(t0 + Duration::from_secs(i), ms(40), true);
        }
        stats.record(t0 + Duration::from_secs(19), ms(900), false);
        let s = stats.summary(t0 + Duration::from_secs(20));
        assert_eq!((s.calls_1m, s.calls_1h), (20, 20));
        assert_eq!(s.success_rate_1m, Some(0.95));
        assert_eq!(s.success_rate_1h, Some(0.95));
        assert_eq!(s.p50_ms_1m, Some(50), "the 40 ms calls sit in the (30, 50] bin");
        assert_eq!(s.p95_ms_1m, Some(50), "19 of 20 calls are at most 50 ms");
        stats.record(t0 + Duration::from_secs(20), ms(900), false);
        let s = stats.summary(t0 + Duration::from_secs(20));
        assert_eq!(s.p95_ms_1m, Some(900), "clamped to the slowest call, not the bin's 1000");
    }

    #[test]
    fn calls_leave_the_minute_after_60_seconds_and_the_hour_after_60_minutes() {
        let t0 = Instant::now();
        let stats = CallStats::new(t0);
        let at = |s: u64| stats.summary(t0 + Duration::from_secs(s));
        stats.record(t0 + Duration::from_secs(10), ms(5), true);
        assert_eq!((at(69).calls_1m, at(69).calls_1h), (1, 1));
        assert_eq!(at(70).calls_1m, 0, "a minute later the call has left the minute");
        stats.record(t0 + Duration::from_secs(70), ms(5), false);
        assert_eq!((at(70).calls_1m, at(70).calls_1h), (1, 2), "the call at 10 s is over a minute old");
        assert_eq!(at(70).success_rate_1m, Some(0.0));
        assert_eq!(at(70).success_rate_1h, Some(0.5));
        assert_eq!((at(130).calls_1m, at(130).calls_1h), (0, 2));
        assert_eq!(at(130).p50_ms_1m, None);
        // Minute 0 leaves the hour at minute 60, minute 1 at minute 61.
        assert_eq!(at(3600).calls_1h, 1);
        assert_eq!(at(3660).calls_1h, 0);
    }

    #[test]
    fn a_reused_bucket_forgets_the_second_it_held_before() {
        let t0 = Instant::now();
        let stats = CallStats::new(t0);
        stats.record(t0 + Duration::from_secs(3), ms(2_000), false);
        // Second 63 lands in the same slot as second 3.
        stats.record(t0 + Duration::from_secs(63), ms(3), true);
        let s = stats.summary(t0 + Duration::from_secs(63));
        assert_eq!((s.calls_1m, s.success_rate_1m, s.p95_ms_1m), (1, Some(1.0), Some(3)));
        assert_eq!(s.calls_1h, 2);
    }
}
