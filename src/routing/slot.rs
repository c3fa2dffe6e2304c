//! One provider in the registry with its health: breaker, 429 cool-down and throughput cap.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

use super::breaker::Breaker;
use crate::providers::Provider;

pub struct Slot {
    pub provider: Arc<dyn Provider>,
    pub kind: String,
    pub priority: i32,
    pub timeout: Duration,
    pub breaker: Arc<Breaker>,
    cooldown: Mutex<Cooldown>,
    bucket: Option<Mutex<TokenBucket>>,
}

#[derive(Debug, Default)]
struct Cooldown {
    until: Option<Instant>,
    consecutive: u32,
}

impl Slot {
    pub fn new(
        provider: Arc<dyn Provider>,
        kind: &str,
        priority: i32,
        timeout: Duration,
        breaker: Arc<Breaker>,
        max_per_second: Option<u32>,
    ) -> Self {
        Self {
            provider,
            kind: kind.to_string(),
            priority,
            timeout,
            breaker,
            cooldown: Mutex::new(Cooldown::default()),
            bucket: max_per_second.map(|rate| Mutex::new(TokenBucket::new(rate))),
        }
    }

    pub fn name(&self) -> &str {
        self.provider.name()
    }

    /// When the provider is cooling down after a 429, the instant it may be called again.
    pub fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        c.until.filter(|u| *u > now)
    }

    /// Starts a cool-down: `Retry-After` when the provider gave one, else exponential backoff
    /// with full jitter (`base * 2^n`, capped) so instances do not return in lockstep.
    pub fn cool_down(&self, retry_after: Option<Duration>, base: Duration, max: Duration, now: Instant) -> Duration {
        let mut c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        c.consecutive += 1;
        let wait = match retry_after {
            Some(d) => d.min(max.max(d.min(Duration::from_secs(3600)))),
            None => {
                let ceiling = base.saturating_mul(1 << (c.consecutive - 1).min(16)).min(max);
                let ms = rand::thread_rng().gen_range(0..=ceiling.as_millis() as u64);
                Duration::from_millis(ms.max(base.as_millis() as u64 / 10))
            }
        };
        c.until = Some(now + wait);
        wait
    }

    /// A call got through: the next 429 starts the backoff from the beginning.
    pub fn reset_cooldown(&self) {
        let mut c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        c.consecutive = 0;
        c.until = None;
    }

    /// Takes one token from the throughput cap; false when the provider is at its rate.
    pub fn take_token(&self, now: Instant) -> bool {
        match &self.bucket {
            Some(b) => b.lock().unwrap_or_else(|e| e.into_inner()).take(now),
            None => true,
        }
    }
}

/// Allows `rate` calls per second with bursts of up to `rate`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1) as f64,
            tokens: rate.max(1) as f64,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_caps_the_rate_and_refills() {
        let mut b = TokenBucket::new(2);
        let t = b.last;
        assert!(b.take(t) && b.take(t));
        assert!(!b.take(t));
        assert!(b.take(t + Duration::from_millis(500)));
    }
}
