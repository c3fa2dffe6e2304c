//! One provider in the registry with its health: breaker, 429 cool-down and throughput cap.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

use super::breaker::Breaker;
use super::stats::CallStats;
use crate::providers::Provider;

pub struct Slot {
    pub provider: Arc<dyn Provider>,
    pub kind: String,
    pub priority: i32,
    pub timeout: Duration,
    pub breaker: Arc<Breaker>,
    /// Calls over the last minute and hour on this instance (the admin status panel).
    pub stats: CallStats,
    cooldown: Mutex<Cooldown>,
    bucket: Option<Mutex<TokenBucket>>,
}

/// A cool-down as started: how long the provider is benched, and the provider's `Retry-After`
/// when it was longer than the cap and cut to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoolDown {
    pub wait: Duration,
    pub capped_from: Option<Duration>,
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
            // The router's clock (tokio's), which records into it.
            stats: CallStats::new(tokio::time::Instant::now().into_std()),
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
    /// with full jitter (`base * 2^n`) so instances do not return in lockstep; either is capped
    /// at `max`.
    pub fn cool_down(&self, retry_after: Option<Duration>, base: Duration, max: Duration, now: Instant) -> CoolDown {
        let mut c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        c.consecutive += 1;
        let cool = match retry_after {
            // `max` is the operator's bound on how long one 429 may bench a provider: a
            // `Retry-After` of a day (or a misread header) must not silently take it out of
            // rotation for that long. The caller reports the cut.
            Some(asked) if asked > max => CoolDown {
                wait: max,
                capped_from: Some(asked),
            },
            Some(asked) => CoolDown {
                wait: asked,
                capped_from: None,
            },
            None => {
                let ceiling = base.saturating_mul(1 << (c.consecutive - 1).min(16)).min(max);
                let ms = rand::thread_rng().gen_range(0..=ceiling.as_millis() as u64);
                CoolDown {
                    wait: Duration::from_millis(ms.max(base.as_millis() as u64 / 10)),
                    capped_from: None,
                }
            }
        };
        c.until = Some(now + cool.wait);
        cool
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

    fn slot() -> Slot {
        let provider = Arc::new(crate::providers::testing::Scripted::new("p"));
        let breaker = Arc::new(Breaker::new(crate::config::BreakerSettings::default()));
        Slot::new(provider, "fake", 1, Duration::from_secs(4), breaker, None)
    }

    #[test]
    fn a_retry_after_longer_than_the_cap_is_cut_to_the_cap_and_reported() {
        let slot = slot();
        let (base, max, now) = (Duration::from_secs(1), Duration::from_secs(60), Instant::now());
        let cool = slot.cool_down(Some(Duration::from_secs(86_400)), base, max, now);
        assert_eq!(cool.wait, max);
        assert_eq!(cool.capped_from, Some(Duration::from_secs(86_400)));
        assert_eq!(slot.cooling_until(now), Some(now + max));
        let within = slot.cool_down(Some(Duration::from_secs(30)), base, max, now);
        assert_eq!((within.wait, within.capped_from), (Duration::from_secs(30), None));
    }

    #[test]
    fn token_bucket_caps_the_rate_and_refills() {
        let mut b = TokenBucket::new(2);
        let t = b.last;
        assert!(b.take(t) && b.take(t));
        assert!(!b.take(t));
        assert!(b.take(t + Duration::from_millis(500)));
    }
}
