//! A circuit breaker per provider: closed → open on a failure rate over a sliding window (with a
//! minimum of calls) or on consecutive failures; open for a wait that doubles on each re-open;
//! half-open lets a few probes through, and that many successes close it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::BreakerSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open (the gauge's values).
    pub fn gauge(&self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open { .. } => 2,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open { .. } => "open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    window: VecDeque<(Instant, bool)>,
    consecutive_failures: u32,
    /// Opens since the breaker last closed: the open wait doubles with each.
    reopens: u32,
    probes_in_flight: u32,
    probe_successes: u32,
}

pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

/// The right to make one call; dropping it unrecorded (a cancelled request) releases a probe.
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    recorded: bool,
}

/// What a call did, as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Success,
    Failure,
    /// A failure that says the provider is set up wrong: open at once, for longer.
    Misconfigured,
    /// Says nothing of the provider's health (a 429 is handled by the cool-down).
    Neutral,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                window: VecDeque::new(),
                consecutive_failures: 0,
                reopens: 0,
                probes_in_flight: 0,
                probe_successes: 0,
            }),
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            BreakerState::Open { until } if now >= until => BreakerState::HalfOpen,
            s => s,
        }
    }

    /// A permit to call, or the instant until which the breaker stays open.
    pub fn try_acquire(self: &Arc<Self>, now: Instant) -> Result<Permit, Instant> {
        let mut inner = self.lock();
        if let BreakerState::Open { until } = inner.state {
            if now < until {
                return Err(until);
            }
            inner.state = BreakerState::HalfOpen;
            inner.probes_in_flight = 0;
            inner.probe_successes = 0;
        }
        let probe = inner.state == BreakerState::HalfOpen;
        if probe {
            if inner.probes_in_flight >= self.settings.half_open_probes {
                // Probes are out; look again shortly.
                return Err(now + Duration::from_millis(100));
            }
            inner.probes_in_flight += 1;
        }
        Ok(Permit {
            breaker: Arc::clone(self),
            probe,
            recorded: false,
        })
    }

    /// Whether a call that took `elapsed` counts as slow.
    pub fn is_slow(&self, elapsed: Duration) -> bool {
        elapsed >= Duration::from_millis(self.settings.slow_call_ms)
    }

    fn record(&self, probe: bool, result: CallResult, now: Instant) {
        let mut inner = self.lock();
        if probe {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
        match result {
            CallResult::Neutral => {}
            CallResult::Misconfigured => {
                inner.reopens = inner.reopens.max(3);
                self.open(&mut inner, now);
            }
            CallResult::Failure if inner.state == BreakerState::HalfOpen => self.open(&mut inner, now),
            CallResult::Success if inner.state == BreakerState::HalfOpen => {
                inner.probe_successes += 1;
                if inner.probe_successes >= self.settings.half_open_probes {
                    inner.state = BreakerState::Closed;
                    inner.window.clear();
                    inner.consecutive_failures = 0;
                    inner.reopens = 0;
                }
            }
            CallResult::Success | CallResult::Failure => {
                if !matches!(inner.state, BreakerState::Closed) {
                    return; // a late answer from before the breaker opened
                }
                let failed = result == CallResult::Failure;
                let horizon = Duration::from_secs(self.settings.window_seconds);
                while inner.window.front().is_some_and(|(t, _)| now.duration_since(*t) > horizon) {
                    inner.window.pop_front();
                }
                inner.window.push_back((now, failed));
                inner.consecutive_failures = if failed { inner.consecutive_failures + 1 } else { 0 };
                let calls = inner.window.len() as u32;
                let failures = inner.window.iter().filter(|(_, f)| *f).count() as f64;
                let rate_trips = calls >= self.settings.min_calls && failures / calls as f64 >= self.settings.failure_rate;
                if failed && (rate_trips || inner.consecutive_failures >= self.settings.consecutive_failures) {
                    self.open(&mut inner, now);
                }
            }
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        let factor = 1u64 << inner.reopens.min(20);
        let wait = self
            .settings
            .open_ms
            .saturating_mul(factor)
            .min(self.settings.open_max_ms.max(self.settings.open_ms));
        inner.state = BreakerState::Open {
            until: now + Duration::from_millis(wait),
        };
        inner.reopens += 1;
        inner.window.clear();
        inner.consecutive_failures = 0;
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state half-updated in a harmful way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Permit {
    pub fn record(mut self, result: CallResult, now: Instant) {
        self.recorded = true;
        self.breaker.record(self.probe, result, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.record(true, CallResult::Neutral, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Arc<Breaker> {
        Arc::new(Breaker::new(BreakerSettings {
            window_seconds: 30,
            min_calls: 4,
            failure_rate: 0.5,
            consecutive_failures: 3,
            open_ms: 1_000,
            open_max_ms: 8_000,
            half_open_probes: 1,
            slow_call_ms: 500,
        }))
    }

    fn call(b: &Arc<Breaker>, result: CallResult, now: Instant) {
        b.try_acquire(now).expect("permit").record(result, now);
    }

    #[test]
    fn consecutive_failures_open_it() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..2 {
            call(&b, CallResult::Failure, t);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
        call(&b, CallResult::Failure, t);
        assert!(matches!(b.state(t), BreakerState::Open { .. }));
        assert!(b.try_acquire(t).is_err());
    }

    #[test]
    fn failure_rate_opens_it_only_after_the_minimum_of_calls() {
        let b = breaker();
        let t = Instant::now();
        call(&b, CallResult::Failure, t);
        call(&b, CallResult::Success, t);
        call(&b, CallResult::Failure, t);
        assert_eq!(b.state(t), BreakerState::Closed, "3 calls are under min_calls");
        call(&b, CallResult::Success, t);
        call(&b, CallResult::Failure, t);
        assert!(matches!(b.state(t), BreakerState::Open { .. }), "3 of 5 failed");
    }

    #[test]
    fn half_open_probe_closes_or_reopens_with_a_longer_wait() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            call(&b, CallResult::Failure, t);
        }
        let t1 = t + Duration::from_millis(1_000);
        let probe = b.try_acquire(t1).expect("half-open probe");
        assert!(b.try_acquire(t1).is_err(), "only one probe at a time");
        probe.record(CallResult::Failure, t1);
        let BreakerState::Open { until } = b.state(t1) else {
            panic!("reopened")
        };
        assert_eq!(until - t1, Duration::from_millis(2_000), "the wait doubles");
        let t2 = until;
        call(&b, CallResult::Success, t2);
        assert_eq!(b.state(t2), BreakerState::Closed);
    }

    #[test]
    fn a_dropped_probe_frees_its_place() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            call(&b, CallResult::Failure, t);
        }
        let t1 = t + Duration::from_secs(1);
        drop(b.try_acquire(t1).expect("probe"));
        assert!(b.try_acquire(t1).is_ok());
    }

    #[test]
    fn misconfigured_opens_at_once_and_for_long() {
        let b = breaker();
        let t = Instant::now();
        call(&b, CallResult::Misconfigured, t);
        let BreakerState::Open { until } = b.state(t) else { panic!("open") };
        assert_eq!(until - t, Duration::from_millis(8_000));
    }

    #[test]
    fn neutral_results_do_not_count() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..10 {
            call(&b, CallResult::Neutral, t);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
    }
}
