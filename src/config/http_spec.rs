//! `[providers.http]`: the configuration of the generic `http` adapter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Request and answer rules of a generic HTTP provider (`[providers.http]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// `GET` or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The request URL; placeholders in it are URL-encoded.
    pub url: String,
    /// Request headers; placeholders are filled in as is.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A form body (`application/x-www-form-urlencoded`); values are filled in, then encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<BTreeMap<String, String>>,
    /// A JSON body template; placeholders are JSON-escaped (put them inside quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// Statuses that may mean success.
    #[serde(default = "default_success_status")]
    pub success_status: Vec<u16>,
    /// Dotted path (`result.status`, `messages.0.id`) of a JSON field that must equal
    /// `success_value` (or, without one, be present and not false, null or empty) for success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_value: Option<String>,
    /// Dotted path of the provider's message id in a successful answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_field: Option<String>,
    /// Statuses read as throttling (with `Retry-After`).
    #[serde(default = "default_retry_after_statuses")]
    pub retry_after_statuses: Vec<u16>,
    /// Statuses meaning this recipient or message is bad (no failover). Other failures:
    /// 401/403 are misconfiguration, everything else unavailability.
    #[serde(default)]
    pub rejected_statuses: Vec<u16>,
    /// Whether the provider takes template messages (`{template}`, `{var1}`..).
    #[serde(default)]
    pub templates: bool,
}

fn default_method() -> String {
    "POST".into()
}

fn default_success_status() -> Vec<u16> {
    vec![200, 201, 202]
}

fn default_retry_after_statuses() -> Vec<u16> {
    vec![429]
}
