//! Routing: the failover loop. For each candidate in registry order (capability, country,
//! breaker, 429 cool-down, throughput cap) the router calls the provider under a per-attempt
//! timeout inside the request deadline, records the attempt, and acts on the error class.

mod breaker;
mod budget;
mod registry;
mod slot;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub use breaker::{Breaker, BreakerState, CallResult};
pub use budget::RetryBudget;
pub use registry::{Explained, Registry, Skipped};
pub use slot::Slot;

use crate::config::RoutingSettings;
use crate::metrics::Metrics;
use crate::providers::{Accepted, MessageBody, OutboundSms, ProviderError};

/// One provider attempt, as logged in `sms_messages_log`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub provider: String,
    pub kind: &'static str,
    /// `accepted`, `throttled`, `unavailable`, `misconfigured`, `rejected` or `timeout`.
    pub outcome: &'static str,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub reference: Option<String>,
    pub response_time_ms: u32,
    /// The request may have reached the provider although no answer came (a timeout).
    pub ambiguous: bool,
    pub started_at: DateTime<Utc>,
}

/// The provider that took the message.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub provider: String,
    pub accepted: Accepted,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DispatchError {
    /// The provider refused this recipient or message; no other provider was tried.
    #[error("{provider} rejected the message ({code}): {details}")]
    Rejected { provider: String, code: String, details: String },
    /// A timeout after the request was sent, and this kind of message does not fail over on it.
    #[error("{provider} did not answer in time; the message may still be delivered")]
    Ambiguous { provider: String },
    /// No configured provider can carry this kind of message to this country.
    #[error("no provider can send {kind} messages to +{country}")]
    NoRoute { kind: &'static str, country: String },
    /// Every candidate failed or was unavailable; the reasons are per provider.
    #[error("every provider failed")]
    AllFailed { reasons: Vec<(String, String)> },
}

/// What a dispatch did: its result and every attempt made.
#[derive(Debug)]
pub struct Dispatch {
    pub result: Result<Delivered, DispatchError>,
    pub attempts: Vec<Attempt>,
}

pub struct Router {
    registry: RwLock<Arc<Registry>>,
    budget: RetryBudget,
    settings: RoutingSettings,
    metrics: Metrics,
}

impl Router {
    pub fn new(registry: Registry, settings: RoutingSettings, metrics: Metrics) -> Self {
        let budget = RetryBudget::new(settings.retry_budget_ratio, settings.retry_budget_min_per_second);
        let router = Self {
            registry: RwLock::new(Arc::new(registry)),
            budget,
            settings,
            metrics,
        };
        router.publish_breakers();
        router
    }

    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the provider list at once; requests in flight finish on the old one.
    pub fn swap(&self, registry: Registry) {
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
        self.publish_breakers();
    }

    pub fn request_deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.settings.deadline_ms)
    }

    /// Sends `sms` through the first provider that takes it, failing over as the error classes say.
    #[tracing::instrument(skip_all, fields(id = %sms.id, kind = sms.body.kind(), to = %sms.to.masked()))]
    pub async fn dispatch(&self, sms: &OutboundSms, preferred: Option<&str>, deadline: Instant) -> Dispatch {
        let registry = self.registry();
        let kind = sms.body.kind();
        let mut attempts = Vec::new();
        let mut reasons: Vec<(String, String)> = Vec::new();
        let mut tried: HashSet<String> = HashSet::new();
        let mut last_failure: Option<(String, &'static str)> = None;
        let candidates = registry.candidates(&sms.body, &sms.to, preferred);
        if candidates.is_empty() {
            let result = Err(DispatchError::NoRoute {
                kind,
                country: sms.to.country_code().to_string(),
            });
            return Dispatch { result, attempts };
        }
        self.budget.record_request(Instant::now());
        loop {
            let mut wait_until: Option<Instant> = None;
            for slot in &candidates {
                if tried.contains(slot.name()) {
                    continue;
                }
                let now = Instant::now();
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
                    self.metrics.failovers.with_label_values(&[&from, slot.name(), why]).inc();
                    tracing::info!(from = %from, to = %slot.name(), reason = why, "failing over");
                }
                tried.insert(slot.name().to_string());
                let (attempt, step) = self.call(slot, permit, sms, deadline).await;
                attempts.push(attempt);
                let stop = match step {
                    Step::Stop(result) => Some(result),
                    Step::Next { class, reason } => {
                        note(&mut reasons, slot.name(), &reason);
                        last_failure = Some((slot.name().to_string(), class));
                        None
                    }
                };
                if let Some(result) = stop {
                    return Dispatch { result, attempts };
                }
            }
            // Every untried candidate is cooling down or open: wait for the first to come back
            // when the deadline leaves room for an attempt after it.
            match wait_until {
                Some(until) if until + Duration::from_millis(100) < deadline => {
                    tokio::time::sleep_until(until.into()).await;
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

    /// One attempt on `slot`: the call under its timeout, what the breaker and cool-down learn,
    /// and whether the dispatch stops here or moves on.
    async fn call(&self, slot: &Slot, permit: breaker::Permit, sms: &OutboundSms, deadline: Instant) -> (Attempt, Step) {
        let started = Instant::now();
        let timeout = slot.timeout.min(deadline.saturating_duration_since(started));
        let started_at = Utc::now();
        let answer = tokio::time::timeout(timeout, slot.provider.send(sms)).await;
        let elapsed = started.elapsed();
        let done = Instant::now();
        let name = slot.name().to_string();
        let mut attempt = Attempt {
            provider: name.clone(),
            kind: sms.body.kind(),
            outcome: "accepted",
            http_status: None,
            error: None,
            reference: None,
            response_time_ms: elapsed.as_millis().min(u32::MAX as u128) as u32,
            ambiguous: false,
            started_at,
        };
        let step = match answer {
            Ok(Ok(accepted)) => {
                let slow = slot.breaker.is_slow(elapsed);
                permit.record(if slow { CallResult::Failure } else { CallResult::Success }, done);
                slot.reset_cooldown();
                attempt.http_status = Some(accepted.http_status).filter(|s| *s != 0);
                attempt.reference = accepted.reference.clone();
                Step::Stop(Ok(Delivered { provider: name, accepted }))
            }
            Ok(Err(err)) => {
                attempt.outcome = err.class();
                attempt.http_status = err.http_status();
                attempt.error = Some(err.to_string());
                let reason = err.to_string();
                match err {
                    ProviderError::Rejected { code, details, .. } => {
                        // The provider is healthy; the message is the problem.
                        permit.record(CallResult::Success, done);
                        Step::Stop(Err(DispatchError::Rejected {
                            provider: name,
                            code,
                            details,
                        }))
                    }
                    ProviderError::Throttled { retry_after, .. } => {
                        permit.record(CallResult::Neutral, done);
                        let base = Duration::from_millis(self.settings.throttle_backoff_ms);
                        let max = Duration::from_millis(self.settings.throttle_backoff_max_ms);
                        let wait = slot.cool_down(retry_after, base, max, done);
                        tracing::warn!(provider = %name, wait_ms = wait.as_millis() as u64, "provider throttled; cooling down");
                        Step::Next {
                            class: "throttled",
                            reason,
                        }
                    }
                    ProviderError::Misconfigured { .. } => {
                        permit.record(CallResult::Misconfigured, done);
                        tracing::error!(provider = %name, error = %reason, "provider misconfigured");
                        Step::Next {
                            class: "misconfigured",
                            reason,
                        }
                    }
                    ProviderError::Unavailable { .. } => {
                        permit.record(CallResult::Failure, done);
                        Step::Next {
                            class: "unavailable",
                            reason,
                        }
                    }
                }
            }
            Err(_elapsed) => {
                permit.record(CallResult::Failure, done);
                attempt.outcome = "timeout";
                attempt.ambiguous = true;
                attempt.error = Some(format!("no answer within {} ms", timeout.as_millis()));
                // The request may have been delivered: an OTP fails over (the session accepts
                // either code); other messages only when configured to.
                let is_otp = matches!(sms.body, MessageBody::Otp { .. });
                if is_otp || self.settings.failover_on_ambiguous_timeout {
                    Step::Next {
                        class: "timeout",
                        reason: "timed out".into(),
                    }
                } else {
                    Step::Stop(Err(DispatchError::Ambiguous { provider: name }))
                }
            }
        };
        self.observe(&attempt, elapsed);
        (attempt, step)
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
    pub fn explain(&self, body: &MessageBody, to: &crate::phone::Phone) -> Vec<Explained> {
        self.registry().explain(body, to, Instant::now())
    }

    fn observe(&self, attempt: &Attempt, elapsed: Duration) {
        self.metrics
            .provider_requests
            .with_label_values(&[&attempt.provider, attempt.kind, attempt.outcome])
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
        let now = Instant::now();
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
    /// Fail over; `class` labels the failover metric, `reason` is told to admins.
    Next {
        class: &'static str,
        reason: String,
    },
}

fn note(reasons: &mut Vec<(String, String)>, provider: &str, why: &str) {
    match reasons.iter_mut().find(|(p, _)| p == provider) {
        Some(entry) => entry.1 = why.to_string(),
        None => reasons.push((provider.to_string(), why.to_string())),
    }
}
