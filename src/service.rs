//! `Gateway`: the one object the HTTP edge calls. It holds the rooms a request passes through
//! (limits, the router, the store) and the keys and clock they share; each use case lives in its
//! room (`otp` for sessions, `messages` for texts and templates) as an `impl Gateway` block.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::limits::{Idempotency, LimitError, Limits};
use crate::metrics::Metrics;
use crate::otp::OtpKey;
use crate::routing::{DispatchError, Router};
use crate::store::{Store, StoreError};

pub struct Gateway {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) limits: Limits,
    pub(crate) idempotency: Idempotency,
    pub(crate) router: Arc<Router>,
    pub(crate) settings: Arc<Settings>,
    /// Keeps codes as HMACs bound to their session.
    pub(crate) key: OtpKey,
    /// Signs verification tokens (`SMSGATE_TOKEN_SECRET`, shared with the apps that check them).
    pub(crate) token_key: OtpKey,
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
}
