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
    window: Window,
    consecutive_failures: u32,
    /// Opens since the breaker last closed: the open wait doubles with each.
    reopens: u32,
    probes_in_flight: u32,
    probe_successes: u32,
}

/// Calls and failures over the last `window_seconds`, in one-second buckets with running
/// totals: recording is O(1) whatever the traffic, and memory is bounded by the window.
#[derive(Debug, Default)]
struct Window {
    /// (second, calls, failures), oldest first.
    buckets: VecDeque<(u64, u64, u64)>,
    calls: u64,
    failures: u64,
}

impl Window {
    fn record(&mut self, second: u64, window_seconds: u64, failed: bool) {
        while let Some(&(s, c, f)) = self.buckets.front() {
            if s + window_seconds.max(1) > second {
                break;
            }
            self.buckets.pop_front();
            self.calls -= c;
            self.failures -= f;
        }
        match self.buckets.back_mut() {
            Some(b) if b.0 == second => {
                b.1 += 1;
                b.2 += failed as u64;
            }
            _ => self.buckets.push_back((second, 1, failed as u64)),
        }
        self.calls += 1;
        self.failures += failed as u64;
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

pub struct Breaker {
    settings: BreakerSettings,
    /// Window buckets are whole seconds since this instant.
    epoch: Instant,
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
            // Window seconds count from an hour before the breaker was made, so a `now` read
            // shortly before it (callers read their clock first; tokio's paused test clock lags
            // the wall clock) gets its own ordered second instead of saturating to 0. Where an
            // Instant cannot go back that far (Windows in its first hour after boot) the epoch
            // is now, and such a `now` merely shares second 0: never a panic.
            epoch: Instant::now().checked_sub(Duration::from_secs(3600)).unwrap_or_else(Instant::now),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                window: Window::default(),
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
                let second = now.saturating_duration_since(self.epoch).as_secs();
                inner.window.record(second, self.settings.window_seconds, failed);
                inner.consecutive_failures = if failed { inner.consecutive_failures + 1 } else { 0 };
                let (calls, failures) = (inner.window.calls, inner.window.failures);
                let rate_trips = calls >= self.settings.min_calls as u64 && failures as f64 / calls as f64 >= self.settings.failure_rate;
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
    fn failures_older_than_the_window_are_forgotten() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..2 {
            call(&b, CallResult::Failure, t);
            call(&b, CallResult::Success, t);
        }
        // Counted, the old calls would make one more failure 3 of 5 and open the breaker; 31 s
        // later they are out of the 30 s window, and 1 call is under min_calls.
        let later = t + Duration::from_secs(31);
        call(&b, CallResult::Failure, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        call(&b, CallResult::Success, later);
        call(&b, CallResult::Success, later);
        call(&b, CallResult::Failure, later);
        assert!(matches!(b.state(later), BreakerState::Open { .. }), "2 of 4 in the window");
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
