//! The router: the failover loop over the registry's candidates, under the request deadline.
//! It reads time from tokio's clock, so tests drive it with `tokio::time::pause()` and `advance`.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;

use super::attempt::{Attempt, Delivered, Dispatch, DispatchError, Failure, Outcome};
use super::breaker::{CallResult, Permit};
use super::budget::RetryBudget;
use super::registry::{Explained, Registry};
use super::slot::Slot;
use crate::config::RoutingSettings;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::providers::{MessageBody, OtpSupport, OutboundSms, ProviderError};

pub struct Router {
    registry: RwLock<Arc<Registry>>,
    budget: RetryBudget,
    settings: RoutingSettings,
    metrics: Metrics,
    /// Conversion health: degraded providers are tried after healthy ones.
    health: Arc<Health>,
    /// The gateway's "now", which stamps each attempt (its row sits beside the session's).
    clock: Clock,
}

impl Router {
    pub fn new(registry: Registry, settings: RoutingSettings, metrics: Metrics) -> Self {
        let budget = RetryBudget::new(settings.retry_budget_ratio, settings.retry_budget_min_per_second);
        let health = Arc::new(Health::new(Default::default(), metrics.clone()));
        let router = Self {
            registry: RwLock::new(Arc::new(registry)),
            budget,
            settings,
            metrics,
            health,
            clock: Clock::system(),
        };
        router.publish_breakers();
        router
    }

    /// The router stamping attempts with `clock` (the gateway's: tests hold it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The router ordering by `health` (shared with the gateway, which refreshes it).
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = health;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The registry in force. A send holds the `Arc` it took for its whole dispatch, so a swap
    /// never changes the providers under a send in flight.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `registry` in force for every send that starts from now on.
    pub fn swap(&self, registry: Registry) {
        let registry = Arc::new(registry);
        let old = std::mem::replace(
            &mut *self.registry.write().unwrap_or_else(|e| e.into_inner()),
            Arc::clone(&registry),
        );
        // A provider that left the registry leaves the breaker gauge too.
        for gone in old.slots().iter().filter(|s| registry.slot(s.name()).is_none()) {
            let _ = self.metrics.breaker_state.remove_label_values(&[gone.name()]);
        }
        self.publish_breakers();
    }

    pub fn request_deadline(&self) -> Instant {
        read_clock() + Duration::from_millis(self.settings.deadline_ms)
    }

    /// A deadline `within` from now, or the request deadline when that comes first.
    pub fn deadline_within(&self, within: Duration) -> Instant {
        read_clock() + within.min(Duration::from_millis(self.settings.deadline_ms))
    }

    /// Sends `sms` through the first provider that takes it, failing over as the error classes say.
    pub async fn dispatch(&self, sms: &OutboundSms, preferred: Option<&str>, deadline: Instant) -> Dispatch {
        let candidates = self.registry().candidates(&sms.body, &sms.to, preferred);
        let share = matches!(sms.body, MessageBody::Otp { .. });
        let candidates = self.health.order(candidates, |s| s.name(), sms.to.country_code(), share);
        self.dispatch_among(sms, candidates, deadline).await
    }

    /// Sends another SMS of a session: healthy providers that have not `carried` it first, then
    /// healthy ones that have (the first SMS may only be late), then degraded ones.
    pub async fn dispatch_avoiding(&self, sms: &OutboundSms, carried: &[String], deadline: Instant) -> Dispatch {
        let mut candidates = self.registry().candidates(&sms.body, &sms.to, None);
        let country = sms.to.country_code();
        // Stable: registry order within each group.
        candidates.sort_by_key(|s| (self.health.is_degraded(s.name(), country), carried.iter().any(|c| c == s.name())));
        self.dispatch_among(sms, candidates, deadline).await
    }

    /// A synthetic probe through `provider` only: `Some(true)` accepted, `Some(false)` failed,
    /// `None` not tried (unknown provider, breaker open, cooling down, at its cap).
    pub async fn probe(&self, provider: &str, sms: &OutboundSms) -> Option<(bool, Attempt)> {
        let registry = self.registry();
        let slot = registry.slot(provider)?;
        let now = read_clock();
        if slot.cooling_until(now).is_some() {
            return None;
        }
        let permit = slot.breaker.try_acquire(now).ok()?;
        if !slot.take_token(now) {
            return None;
        }
        let (attempt, step) = self.call(slot, Some(permit), sms, self.request_deadline()).await;
        Some((matches!(step, Step::Stop(Ok(_))), attempt))
    }

    /// Sends an OTP whose code was made elsewhere (an auth server checks it): only providers
    /// that carry the code they are given are candidates. One that makes its own code (2Factor
    /// AUTOGEN, Twilio Verify) would deliver a code the auth server never issued.
    pub async fn dispatch_given_code(&self, sms: &OutboundSms, deadline: Instant) -> Dispatch {
        let mut candidates = self.registry().candidates(&sms.body, &sms.to, None);
        candidates.retain(|s| s.provider.capabilities().otp == OtpSupport::Local);
        let candidates = self.health.order(candidates, |s| s.name(), sms.to.country_code(), true);
        self.dispatch_among(sms, candidates, deadline).await
    }

    // A span per send costs the memory store a tenth of its throughput at `info`; the events
    // that matter (failover, throttling, misconfiguration) name the provider and the send.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %sms.id, kind = sms.body.kind(), to = %sms.to.masked()))]
    async fn dispatch_among(&self, sms: &OutboundSms, candidates: Vec<Arc<Slot>>, deadline: Instant) -> Dispatch {
        let kind = sms.body.kind();
        let mut attempts = Vec::new();
        let mut reasons: Vec<(String, String)> = Vec::new();
        let mut tried: HashSet<String> = HashSet::new();
        let mut last_failure: Option<(String, Outcome)> = None;
        if candidates.is_empty() {
            let result = Err(DispatchError::NoRoute {
                kind,
                country: sms.to.country_code().to_string(),
            });
            return Dispatch { result, attempts };
        }
        self.budget.record_request(read_clock());
        loop {
            let mut wait_until: Option<Instant> = None;
            for slot in &candidates {
                if tried.contains(slot.name()) {
                    continue;
                }
                let now = read_clock();
                if now >= deadline {
                    break;
                }
                if let Some(until) = slot.cooling_until(now) {
                    wait_until = Some(wait_until.map_or(until, |w| w.min(until)));
                    note(&mut reasons, slot.name(), "cooling down after 429");
                    continue;
                }
                let permit = match slot.breaker.try_acquire(now) {
                    Ok(p) => p,
                    Err(until) => {
                        wait_until = Some(wait_until.map_or(until, |w| w.min(until)));
                        note(&mut reasons, slot.name(), "circuit open");
                        continue;
                    }
                };
                if !slot.take_token(now) {
                    note(&mut reasons, slot.name(), "at its throughput cap");
                    continue;
                }
                if !tried.is_empty() && !self.budget.try_retry(now) {
                    note(&mut reasons, slot.name(), "retry budget exhausted");
                    return Dispatch {
                        result: Err(DispatchError::AllFailed { reasons }),
                        attempts,
                    };
                }
                if let Some((from, why)) = last_failure.take() {
                    self.metrics.failovers.with_label_values(&[&from, slot.name(), why.as_str()]).inc();
                    tracing::info!(id = %sms.id, from = %from, to = %slot.name(), reason = %why, "failing over");
                }
                tried.insert(slot.name().to_string());
                let (attempt, step) = self.call(slot, Some(permit), sms, deadline).await;
                attempts.push(attempt);
                match step {
                    Step::Stop(result) => return Dispatch { result, attempts },
                    Step::Next { outcome, reason } => {
                        note(&mut reasons, slot.name(), &reason);
                        last_failure = Some((slot.name().to_string(), outcome));
                    }
                }
            }
            // Every untried candidate is cooling down or open: wait for the first to come back
            // when the deadline leaves room for an attempt after it.
            match wait_until {
                Some(until) if until + Duration::from_millis(100) < deadline => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                }
                _ => {
                    return Dispatch {
                        result: Err(DispatchError::AllFailed { reasons }),
                        attempts,
                    }
                }
            }
        }
    }

    /// Sends `sms` through `provider` alone (an admin's test send): no failover, and the call
    /// goes out even while the breaker is open (testing a benched provider is the point), in
    /// which case the breaker does not learn from it. `None`: no such provider.
    pub async fn test_through(&self, provider: &str, sms: &OutboundSms) -> Option<Dispatch> {
        let slot = self.registry().slot(provider).cloned()?;
        let permit = slot.breaker.try_acquire(read_clock()).ok();
        let (attempt, step) = self.call(&slot, permit, sms, self.request_deadline()).await;
        let result = match step {
            Step::Stop(result) => result,
            Step::Next { reason, .. } => Err(DispatchError::AllFailed {
                reasons: vec![(slot.name().to_string(), reason)],
            }),
        };
        Some(Dispatch {
            result,
            attempts: vec![attempt],
        })
    }

    /// One attempt on `slot`: the call under its timeout, what the breaker (when the call holds
    /// a permit), cool-down and stats learn, and whether the dispatch stops here or moves on.
    async fn call(&self, slot: &Slot, permit: Option<Permit>, sms: &OutboundSms, deadline: Instant) -> (Attempt, Step) {
        let started = read_clock();
        let timeout = slot.timeout.min(deadline.saturating_duration_since(started));
        let started_at = self.clock.now();
        let answer = match tokio::time::timeout(timeout, slot.provider.send(sms)).await {
            Ok(answer) => answer.map_err(Failure::from),
            Err(_elapsed) => Err(Failure::TimedOut { after: timeout }),
        };
        let done = read_clock();
        let elapsed = done - started;
        let name = slot.name().to_string();
        let mut attempt = Attempt {
            provider: name.clone(),
            kind: sms.body.kind(),
            outcome: Outcome::Accepted,
            http_status: None,
            error: None,
            reference: None,
            response_time_ms: elapsed.as_millis().min(u32::MAX as u128) as u32,
            ambiguous: false,
            started_at,
        };
        let step = match answer {
            Ok(accepted) => {
                let slow = slot.breaker.is_slow(elapsed);
                if let Some(permit) = permit {
                    permit.record(if slow { CallResult::Failure } else { CallResult::Success }, done);
                }
                slot.reset_cooldown();
                attempt.http_status = Some(accepted.http_status).filter(|s| *s != 0);
                attempt.reference = accepted.reference.clone();
                Step::Stop(Ok(Delivered { provider: name, accepted }))
            }
            Err(failure) => {
                if let Some(permit) = permit {
                    permit.record(failure.breaker_verdict(), done);
                }
                let reason = failure.to_string();
                attempt.outcome = failure.outcome();
                attempt.http_status = failure.http_status();
                attempt.error = Some(reason.clone());
                attempt.ambiguous = failure.is_ambiguous();
                match attempt.outcome {
                    Outcome::Throttled => self.cool_down(slot, failure.retry_after(), done),
                    Outcome::Misconfigured => tracing::error!(id = %sms.id, provider = %name, error = %reason, "provider misconfigured"),
                    _ => {}
                }
                let is_otp = matches!(sms.body, MessageBody::Otp { .. });
                if failure.fails_over(is_otp, self.settings.failover_on_ambiguous_timeout) {
                    Step::Next {
                        outcome: attempt.outcome,
                        reason,
                    }
                } else {
                    Step::Stop(Err(failure.into_dispatch_error(name)))
                }
            }
        };
        self.observe(&attempt, elapsed);
        slot.stats.record(done, elapsed, attempt.outcome == Outcome::Accepted);
        (attempt, step)
    }

    /// Benches a throttled provider: for its `Retry-After`, else for a jittered backoff.
    fn cool_down(&self, slot: &Slot, retry_after: Option<Duration>, now: Instant) {
        let base = Duration::from_millis(self.settings.throttle_backoff_ms);
        let max = Duration::from_millis(self.settings.throttle_backoff_max_ms);
        let cool = slot.cool_down(retry_after, base, max, now);
        tracing::warn!(provider = %slot.name(), wait_ms = cool.wait.as_millis() as u64, "provider throttled; cooling down");
        if let Some(asked) = cool.capped_from {
            tracing::warn!(
                provider = %slot.name(),
                retry_after_ms = asked.as_millis() as u64,
                throttle_backoff_max_ms = self.settings.throttle_backoff_max_ms,
                "Retry-After is longer than throttle_backoff_max_ms; cooling down for the cap instead"
            );
            self.metrics.retry_after_capped.with_label_values(&[slot.name()]).inc();
        }
    }

    /// Checks a code held by `provider` (2Factor AUTOGEN, Twilio Verify) for `reference`.
    pub async fn verify_with(&self, provider: &str, reference: &str, code: &str) -> Result<bool, ProviderError> {
        let registry = self.registry();
        let slot = registry
            .slot(provider)
            .ok_or_else(|| ProviderError::misconfigured(None, format!("provider `{provider}` is no longer configured")))?;
        let timeout = slot.timeout;
        match tokio::time::timeout(timeout, slot.provider.verify(reference, code)).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::unavailable(None, "verification timed out")),
        }
    }

    /// Routing explanation for `GET /v1/routing/explain`.
    /// Providers degraded for the destination's country are listed (and tried) after the
    /// healthy ones, each with its health standing.
    pub fn explain(&self, body: &MessageBody, to: &crate::phone::Phone) -> Vec<Explained> {
        let mut lines = self.registry().explain(body, to, read_clock());
        for line in &mut lines {
            line.health = self.health.standing(&line.provider, to.country_code());
            if line.health.as_ref().is_some_and(|h| h.degraded()) && line.eligible {
                line.reason = "eligible, after healthy providers (degraded: few users verify its codes)".into();
            }
        }
        self.health.order(lines, |l| l.provider.as_str(), to.country_code(), false)
    }

    fn observe(&self, attempt: &Attempt, elapsed: Duration) {
        self.metrics
            .provider_requests
            .with_label_values(&[&attempt.provider, attempt.kind, attempt.outcome.as_str()])
            .inc();
        self.metrics
            .provider_latency
            .with_label_values(&[&attempt.provider, attempt.kind])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets `smsgate_breaker_state` from each breaker as it stands now. Called when metrics are
    /// scraped: breakers change state with time (open → half-open) as well as with calls, so the
    /// gauge is derived at read time rather than rewritten on every send.
    pub fn publish_breakers(&self) {
        let now = read_clock();
        for slot in self.registry().slots() {
            self.metrics
                .breaker_state
                .with_label_values(&[slot.name()])
                .set(slot.breaker.state(now).gauge());
        }
    }
}

/// Where a dispatch goes after one attempt.
enum Step {
    Stop(Result<Delivered, DispatchError>),
    /// Fail over; `outcome` labels the failover metric, `reason` is told to admins.
    Next {
        outcome: Outcome,
        reason: String,
    },
}

/// The router's clock: tokio's (paused and advanced in tests), as the `std::time::Instant` that
/// `Breaker`, `Slot` and `RetryBudget` take as a parameter.
fn read_clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn note(reasons: &mut Vec<(String, String)>, provider: &str, why: &str) {
    match reasons.iter_mut().find(|(p, _)| p == provider) {
        Some(entry) => entry.1 = why.to_string(),
        None => reasons.push((provider.to_string(), why.to_string())),
    }
}
