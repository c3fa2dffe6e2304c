//! What a dispatch did: each provider attempt with its outcome, why an attempt failed and what
//! that failure means for the breaker and for failover, and the dispatch's result.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::breaker::CallResult;
use crate::providers::{Accepted, ProviderError};

/// One provider attempt, as logged in `sms_messages_log`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub provider: String,
    pub kind: &'static str,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub reference: Option<String>,
    pub response_time_ms: u32,
    /// The request may have reached the provider although no answer came (a timeout).
    pub ambiguous: bool,
    pub started_at: DateTime<Utc>,
}

/// How one attempt ended: the `outcome` metric label and the `sms_messages_log.outcome` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Throttled,
    Unavailable,
    Misconfigured,
    Rejected,
    /// No answer within the attempt's timeout: the message may still be delivered.
    Timeout,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Throttled => "throttled",
            Outcome::Unavailable => "unavailable",
            Outcome::Misconfigured => "misconfigured",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt did not deliver: the provider's answer, or no answer in time. Each question
/// the router asks of it (the outcome, the breaker's verdict, whether to fail over) is one method,
/// so the failover rules read as a table here rather than as branches of the loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Answered(#[from] ProviderError),
    /// The per-attempt timeout passed after the request was sent.
    #[error("no answer within {} ms", .after.as_millis())]
    TimedOut { after: Duration },
}

impl Failure {
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::Answered(ProviderError::Throttled { .. }) => Outcome::Throttled,
            Failure::Answered(ProviderError::Unavailable { .. }) => Outcome::Unavailable,
            Failure::Answered(ProviderError::Misconfigured { .. }) => Outcome::Misconfigured,
            Failure::Answered(ProviderError::Rejected { .. }) => Outcome::Rejected,
            Failure::TimedOut { .. } => Outcome::Timeout,
        }
    }

    /// What the failure tells the breaker about the provider's health.
    pub fn breaker_verdict(&self) -> CallResult {
        match self {
            // The provider is healthy; the message is the problem.
            Failure::Answered(ProviderError::Rejected { .. }) => CallResult::Success,
            // A 429 says nothing of health; the cool-down handles it.
            Failure::Answered(ProviderError::Throttled { .. }) => CallResult::Neutral,
            Failure::Answered(ProviderError::Misconfigured { .. }) => CallResult::Misconfigured,
            Failure::Answered(ProviderError::Unavailable { .. }) | Failure::TimedOut { .. } => CallResult::Failure,
        }
    }

    /// Whether the dispatch moves on to the next provider. A timeout may have delivered: an OTP
    /// fails over all the same (the session accepts a code from either attempt), other messages
    /// only when `failover_on_ambiguous_timeout` accepts a possible duplicate.
    pub fn fails_over(&self, is_otp: bool, failover_on_ambiguous_timeout: bool) -> bool {
        match self {
            Failure::Answered(err) => err.fails_over(),
            Failure::TimedOut { .. } => is_otp || failover_on_ambiguous_timeout,
        }
    }

    /// The request may have reached the provider although no answer came.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Failure::TimedOut { .. })
    }

    /// The `Retry-After` of a throttle, when the provider gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Answered(err) => err.retry_after(),
            Failure::TimedOut { .. } => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            Failure::Answered(err) => err.http_status(),
            Failure::TimedOut { .. } => None,
        }
    }

    /// The dispatch's error when this failure stops it at `provider`.
    pub fn into_dispatch_error(self, provider: String) -> DispatchError {
        match self {
            Failure::Answered(ProviderError::Rejected { code, details, .. }) => DispatchError::Rejected { provider, code, details },
            Failure::TimedOut { .. } => DispatchError::Ambiguous { provider },
            // Only reached if a class that fails over were made to stop: report it as it is.
            other => DispatchError::AllFailed {
                reasons: vec![(provider, other.to_string())],
            },
        }
    }
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
