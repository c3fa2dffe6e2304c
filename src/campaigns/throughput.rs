//! Campaign throughput across instances: each provider's `max_per_second` and a campaign's own
//! are token buckets in the store, shared by every instance. OTP traffic has priority: every
//! instance reports the OTP calls it made on a provider since its last take, and the bucket
//! pays them first, so campaigns get only what the cap leaves.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::core::Collector;
use uuid::Uuid;

use crate::metrics::Metrics;

/// OTP provider calls this instance made, per provider, not yet reported to a bucket.
pub struct OtpMeter {
    metrics: Metrics,
    reported: Mutex<HashMap<String, u64>>,
}

impl OtpMeter {
    /// Starts from the calls already made: only those made from now on are owed.
    pub fn new(metrics: Metrics) -> Self {
        let meter = Self {
            metrics,
            reported: Mutex::new(HashMap::new()),
        };
        let now = meter.otp_calls();
        *meter.reported.lock().unwrap_or_else(|e| e.into_inner()) = now;
        meter
    }

    /// OTP calls to `provider` since the last call of this (by any worker of this instance).
    pub fn take(&self, provider: &str) -> u64 {
        let total = self.otp_calls().get(provider).copied().unwrap_or(0);
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let before = reported.insert(provider.to_string(), total).unwrap_or(0);
        total.saturating_sub(before)
    }

    /// `smsgate_provider_requests_total{kind="otp"}` summed over outcomes, per provider.
    fn otp_calls(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for family in self.metrics.provider_requests.collect() {
            for m in family.get_metric() {
                let label = |name: &str| m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string());
                if label("kind").as_deref() == Some("otp") {
                    if let Some(provider) = label("provider") {
                        *out.entry(provider).or_default() += m.get_counter().get_value() as u64;
                    }
                }
            }
        }
        out
    }
}

/// The bucket key of a provider's campaign throughput.
pub fn provider_key(provider: &str) -> String {
    format!("provider:{provider}")
}

/// The bucket key of one campaign's own `max_per_second`.
pub fn campaign_key(id: Uuid) -> String {
    format!("campaign:{id}")
}
