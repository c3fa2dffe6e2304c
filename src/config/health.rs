//! `[health]` and `[[probes]]`: how providers are judged by what reaches the user. The reasoning
//! behind each default is in the README ("Provider health").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Whether conversion and receipts reorder providers at all.
    pub enabled: bool,
    /// Sessions created this long ago or less are the current window.
    pub window_seconds: u64,
    /// Sessions older than the window but within this are the provider's own baseline.
    pub baseline_seconds: u64,
    /// A session counts once verified or once this old (time enough for a user to type a code).
    pub settle_seconds: u64,
    /// How often the counts are taken again from the store.
    pub refresh_seconds: u64,
    /// Settled sessions a provider needs in a country (in the window, and in the baseline) before
    /// its conversion is judged.
    pub min_sessions: u64,
    /// Degraded when its conversion is below this fraction of the best other provider's...
    pub peer_ratio: f64,
    /// ...or below this fraction of its own baseline...
    pub baseline_ratio: f64,
    /// ...and the gap is significant: a one-sided two-proportion z score of at least this.
    pub min_z: f64,
    /// Degraded when at least `min_receipts` receipts came back and more than this fraction failed.
    pub receipt_failed_ratio: f64,
    pub min_receipts: u64,
    /// Degraded after this many probes in a row failed.
    pub probe_failures: u32,
    /// The share of a country's OTPs that still go first to a degraded provider, so its
    /// recovery is seen (0 sends it none).
    pub probe_share: f64,
    /// SMS one session may get, the first included, through `POST /v1/otp/resend`.
    pub max_sends_per_session: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            window_seconds: 600,
            baseline_seconds: 6 * 3600,
            settle_seconds: 120,
            refresh_seconds: 10,
            min_sessions: 20,
            peer_ratio: 0.75,
            baseline_ratio: 0.5,
            min_z: 2.5,
            receipt_failed_ratio: 0.5,
            min_receipts: 20,
            probe_failures: 3,
            probe_share: 0.05,
            max_sends_per_session: 3,
        }
    }
}

impl HealthSettings {
    /// The first key that is out of range, and why.
    pub fn invalid(&self) -> Option<(&'static str, &'static str)> {
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        if self.window_seconds == 0 {
            return Some(("health.window_seconds", "must be at least 1"));
        }
        if self.baseline_seconds < self.window_seconds {
            return Some(("health.baseline_seconds", "must be at least window_seconds"));
        }
        if self.refresh_seconds == 0 {
            return Some(("health.refresh_seconds", "must be at least 1"));
        }
        if self.min_sessions == 0 {
            return Some(("health.min_sessions", "must be at least 1"));
        }
        for (key, v) in [
            ("health.peer_ratio", self.peer_ratio),
            ("health.baseline_ratio", self.baseline_ratio),
            ("health.receipt_failed_ratio", self.receipt_failed_ratio),
            ("health.probe_share", self.probe_share),
        ] {
            if !fraction(v) {
                return Some((key, "must be between 0 and 1"));
            }
        }
        if self.min_z < 0.0 || !self.min_z.is_finite() {
            return Some(("health.min_z", "must be 0 or more"));
        }
        if self.max_sends_per_session == 0 {
            return Some(("health.max_sends_per_session", "must be at least 1"));
        }
        None
    }
}

/// A synthetic probe: an owned test number in one country, sent a message through each provider
/// that serves it every `interval_seconds`. Probes take no user limit and are logged as probes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Calling code, e.g. "91".
    pub country: String,
    /// The owned number, E.164.
    pub number: String,
    #[serde(default = "default_probe_interval")]
    pub interval_seconds: u64,
}

fn default_probe_interval() -> u64 {
    300
}
