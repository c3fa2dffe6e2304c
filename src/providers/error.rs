//! The four classes of provider failure, the only thing the router reads of an answer that
//! was not accepted: adapters map every vendor code to one of them.

use std::time::Duration;

/// The four classes of failure. The router reads only the class, never a vendor code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 429 or the provider's own throttle code: cool this provider down, the next one serves.
    #[error("throttled: {details}")]
    Throttled {
        retry_after: Option<Duration>,
        details: String,
        http_status: Option<u16>,
    },
    /// 5xx, timeout, connection error, unreadable body: fail over.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String, http_status: Option<u16> },
    /// Bad credentials, no balance, an unknown sender or an unknown template named by the
    /// configuration: fail over, open the breaker long. (A template the request named is
    /// `Rejected`: the request's fault, not the provider's.)
    #[error("misconfigured: {reason}")]
    Misconfigured { reason: String, http_status: Option<u16> },
    /// This recipient or this message is bad: never fail over, tell the caller.
    #[error("rejected ({code}): {details}")]
    Rejected {
        code: String,
        details: String,
        http_status: Option<u16>,
    },
}

impl ProviderError {
    pub fn throttled(http_status: Option<u16>, retry_after: Option<Duration>, details: impl Into<String>) -> Self {
        Self::Throttled {
            retry_after,
            details: details.into(),
            http_status,
        }
    }

    pub fn unavailable(http_status: Option<u16>, reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            http_status,
        }
    }

    pub fn misconfigured(http_status: Option<u16>, reason: impl Into<String>) -> Self {
        Self::Misconfigured {
            reason: reason.into(),
            http_status,
        }
    }

    pub fn rejected(http_status: Option<u16>, code: impl Into<String>, details: impl Into<String>) -> Self {
        Self::Rejected {
            code: code.into(),
            details: details.into(),
            http_status,
        }
    }

    /// A transport failure from reqwest: connection refused, reset, TLS, or its own timeout.
    pub fn from_transport(err: &reqwest::Error) -> Self {
        let what = if err.is_connect() {
            "connection failed"
        } else if err.is_timeout() {
            "timed out"
        } else {
            "transport error"
        };
        // reqwest's Display names the URL, which may carry a key in its path: keep only the kind.
        Self::unavailable(None, what)
    }

    /// `throttled`, `unavailable`, `misconfigured` or `rejected`: the `outcome` label.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::Misconfigured { .. } => "misconfigured",
            Self::Rejected { .. } => "rejected",
        }
    }

    /// Whether another provider may take the message after this answer. A `Rejected` message
    /// or recipient is bad everywhere: failing over would send junk to every provider. Every other
    /// class is about this provider (its load, health or setup), so the next one may serve.
    pub fn fails_over(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }

    /// The `Retry-After` of a throttle, when the provider gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Throttled { http_status, .. }
            | Self::Unavailable { http_status, .. }
            | Self::Misconfigured { http_status, .. }
            | Self::Rejected { http_status, .. } => *http_status,
        }
    }
}
