//! `Gateway`: the one object the HTTP edge calls. It holds the rooms a request passes through
//! (limits, the router, the store) and the keys and clock they share; each use case lives in its
//! room (`otp` for sessions, `messages` for texts and templates) as an `impl Gateway` block.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::keys::HmacKey;
use crate::limits::{Idempotency, LimitError, Limits};
use crate::metrics::Metrics;
use crate::routing::{DispatchError, Router};
use crate::store::{AttemptRow, Store, StoreError};

pub struct Gateway {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) limits: Limits,
    pub(crate) idempotency: Idempotency,
    pub(crate) router: Arc<Router>,
    pub(crate) settings: Arc<Settings>,
    /// Keeps codes as HMACs bound to their session.
    pub(crate) key: HmacKey,
    /// Signs verification tokens (`SMSGATE_TOKEN_SECRET`, shared with the apps that check them).
    pub(crate) token_key: HmacKey,
    pub(crate) metrics: Metrics,
    pub(crate) clock: Clock,
}

/// Why a use case did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Every provider failed, but one timed out after the request left: the SMS may arrive.
    #[error("every provider failed; one may still deliver")]
    MaybeSent(DispatchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has expired")]
    Expired,
    #[error("the session is already verified")]
    AlreadyVerified,
    #[error("no verification attempts left")]
    Exhausted,
    #[error("the provider holding the code could not be reached")]
    VerifyUnavailable,
    /// Another check of the same session is still waiting for its provider.
    #[error("another verification of this session is in progress")]
    VerifyInProgress,
    /// A step-up send for a user with no stored phone.
    #[error("{0}")]
    NoPhone(String),
    #[error("{0}")]
    Invalid(String),
    /// A well-formed provider name that no configured provider has.
    #[error("`{field}` must name a configured provider; `{name}` is not one")]
    UnknownProvider { field: &'static str, name: String },
    /// A text longer than `[messages] max_segments` parts; refused before any provider call.
    #[error("the text needs {parts} SMS parts; at most {max} are allowed")]
    TooManySegments { parts: u32, max: u32, encoding: &'static str },
    /// A promotional message to a number that opted out of them.
    #[error("this number has opted out of promotional messages")]
    OptedOut,
}

/// The calling app a request acts for. Sessions and contacts belong to the app that made them;
/// another app cannot see them, except an admin, who sees every app's sessions.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub client: String,
    pub sees_every_app: bool,
}

impl Tenant {
    /// Whether this caller may see a row owned by `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.sees_every_app || self.client == owner
    }
}

impl Gateway {
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }

    /// Starts a provider-health refresh in the background when one is due on the app's clock;
    /// never waits for it.
    pub fn health_tick(&self) {
        let health = self.router.health();
        let now = self.clock.now();
        if health.claim_refresh(now) {
            let (health, store) = (std::sync::Arc::clone(health), std::sync::Arc::clone(&self.store));
            tokio::spawn(async move {
                if let Err(e) = health.refresh(&*store, now).await {
                    tracing::warn!(error = ?e, "refreshing provider health failed");
                }
            });
        }
    }

    /// Prometheus text of every metric, breaker states read as of now.
    pub fn render_metrics(&self) -> String {
        self.router.publish_breakers();
        self.metrics.render()
    }

    /// The newest provider attempts, newest first.
    pub async fn recent_attempts(&self, limit: usize) -> Result<Vec<AttemptRow>, GatewayError> {
        Ok(self.store.recent_attempts(limit).await?)
    }

    /// Whether this instance can serve sends: the store answers within `STORE_PROBE_TIMEOUT`
    /// and at least one provider would take a send now (breaker not open, not cooling down after
    /// a 429). Otherwise every send would answer 503, and so does the readiness probe.
    pub async fn readiness(&self) -> Readiness {
        let store_reachable = matches!(tokio::time::timeout(STORE_PROBE_TIMEOUT, self.store.ping()).await, Ok(Ok(())));
        let registry = self.router.registry();
        let now = std::time::Instant::now();
        let open = |s: &crate::routing::Slot| matches!(s.breaker.state(now), crate::routing::BreakerState::Open { .. });
        let usable = registry
            .slots()
            .iter()
            .filter(|s| !open(s) && s.cooling_until(now).is_none())
            .count();
        let mut warnings = Vec::new();
        if self.store.kind() == "memory" {
            warnings.push("in-memory store: sessions, limits and logs are neither durable nor shared between instances; set DATABASE_URL");
        }
        if registry.console_only() {
            warnings.push("console provider only: messages are written to the log, not delivered");
        }
        let mut reasons = Vec::new();
        if !store_reachable {
            reasons.push("the store did not answer within 1 s");
        }
        if usable == 0 {
            reasons.push("no provider can take a send now: every one is cooling down after a 429 or has its breaker open");
        }
        Readiness {
            store_kind: self.store.kind(),
            store_reachable,
            configured: registry.slots().len(),
            usable,
            warnings,
            reasons,
        }
    }
}

/// How long the readiness probe waits for the store: it must answer while the database stalls.
const STORE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What `/readyz` reports.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub store_kind: &'static str,
    pub store_reachable: bool,
    /// Providers configured, and those that would take a send now.
    pub configured: usize,
    pub usable: usize,
    /// Why the instance is not ready; empty when it is.
    pub reasons: Vec<&'static str>,
    /// Ready, but worth knowing.
    pub warnings: Vec<&'static str>,
}
