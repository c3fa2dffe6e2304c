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
    /// (first attempts, retries) per one-second bucket, indexed by second modulo BUCKETS.
    buckets: [(u64, u64, u64); BUCKETS],
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        Self {
            ratio,
            min_per_second,
            inner: Mutex::new(Window {
                start: Instant::now(),
                buckets: [(u64::MAX, 0, 0); BUCKETS],
            }),
        }
    }

    /// Counts a request's first attempt.
    pub fn record_request(&self, now: Instant) {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        w.bucket(now).1 += 1;
    }

    /// Takes one retry from the budget; false when the budget is spent.
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let second = w.second(now);
        let (requests, retries) = w
            .buckets
            .iter()
            .filter(|(s, _, _)| *s != u64::MAX && second - *s < BUCKETS as u64)
            .fold((0u64, 0u64), |acc, (_, req, ret)| (acc.0 + req, acc.1 + ret));
        let allowed = (requests as f64 * self.ratio) as u64 + self.min_per_second as u64 * BUCKETS as u64;
        if retries < allowed {
            w.bucket(now).2 += 1;
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

    fn bucket(&mut self, now: Instant) -> &mut (u64, u64, u64) {
        let second = self.second(now);
        let b = &mut self.buckets[(second % BUCKETS as u64) as usize];
        if b.0 != second {
            *b = (second, 0, 0);
        }
        b
    }
}

#[cfg(test)]
mod tests {
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
}
