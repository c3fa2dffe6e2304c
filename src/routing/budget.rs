//! The retry budget: failover attempts are allowed up to a fraction of first attempts over the
//! last ten seconds (plus a small floor), so an outage cannot multiply the load on the others.

use std::sync::Mutex;
use std::time::Instant;

const BUCKETS: usize = 10;

pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    inner: Mutex<Window>,
}

struct Window {
    start: Instant,
    /// One bucket per second, indexed by second modulo BUCKETS.
    buckets: [Bucket; BUCKETS],
}

/// What one second of traffic spent.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Seconds since `Window::start`; `None` until the bucket is first used.
    second: Option<u64>,
    first_attempts: u64,
    retries: u64,
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        Self {
            ratio,
            min_per_second,
            inner: Mutex::new(Window {
                start: Instant::now(),
                buckets: [Bucket::default(); BUCKETS],
            }),
        }
    }

    /// Counts a request's first attempt.
    pub fn record_request(&self, now: Instant) {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        w.bucket(now).first_attempts += 1;
    }

    /// Takes one retry from the budget; false when the budget is spent.
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let second = w.second(now);
        // Callers read the clock before taking the lock, so a caller with an older `now` can find
        // a bucket already written for a later second: that bucket is recent, and counts.
        let (requests, retries) = w
            .buckets
            .iter()
            .filter(|b| b.second.is_some_and(|s| second.saturating_sub(s) < BUCKETS as u64))
            .fold((0u64, 0u64), |acc, b| (acc.0 + b.first_attempts, acc.1 + b.retries));
        let allowed = (requests as f64 * self.ratio) as u64 + self.min_per_second as u64 * BUCKETS as u64;
        if retries < allowed {
            w.bucket(now).retries += 1;
            true
        } else {
            false
        }
    }
}

impl Window {
    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    /// The bucket for `now`, emptied first when it still holds a second that has left the
    /// window. A bucket for a later second (written by a caller with a newer `now`) is kept.
    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let second = self.second(now);
        let b = &mut self.buckets[(second % BUCKETS as u64) as usize];
        if b.second.is_none_or(|s| s < second) {
            *b = Bucket {
                second: Some(second),
                ..Bucket::default()
            };
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_are_capped_by_ratio_plus_floor() {
        let budget = RetryBudget::new(0.5, 1);
        let t = Instant::now();
        for _ in 0..20 {
            budget.record_request(t);
        }
        // 20 * 0.5 + 1 * 10 = 20 retries.
        let granted = (0..100).filter(|_| budget.try_retry(t)).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn a_caller_with_an_older_now_counts_the_bucket_of_the_next_second() {
        let budget = RetryBudget::new(0.0, 1);
        let start = budget.inner.lock().unwrap().start;
        // A caller that read the clock later took the lock first.
        budget.record_request(start + Duration::from_millis(1_500));
        let granted = (0..20).filter(|_| budget.try_retry(start + Duration::from_millis(900))).count();
        assert_eq!(granted, 10, "the floor of 1/s over 10 s, the future bucket counted");
    }
}
