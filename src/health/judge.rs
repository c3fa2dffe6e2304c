//! The verdict: from conversion counts, receipts and probes, which providers are degraded for
//! which country, and why. Pure, so every rule is tested here with numbers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::HealthSettings;

/// Settled sessions and how many were verified with this provider's code.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub sent: u64,
    pub verified: u64,
    pub delay_secs: f64,
}

impl Counts {
    pub fn add(&mut self, sent: u64, verified: u64, delay_secs: f64) {
        self.sent += sent;
        self.verified += verified;
        self.delay_secs += delay_secs;
    }

    fn ratio(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.verified as f64 / self.sent as f64
        }
    }
}

/// Everything known about one provider in one country.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub window: Counts,
    pub baseline: Counts,
    pub receipts_delivered: u64,
    pub receipts_failed: u64,
    /// Probes failed in a row, newest last.
    pub probe_failures_in_row: u32,
}

/// Why a provider is degraded for a country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Conversion far below the best other provider's for the country.
    BelowPeers,
    /// Conversion far below its own baseline.
    BelowBaseline,
    /// Most delivery receipts say failed.
    ReceiptsFailed,
    /// Synthetic probes keep failing.
    ProbesFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BelowPeers => "below_peers",
            Self::BelowBaseline => "below_baseline",
            Self::ReceiptsFailed => "receipts_failed",
            Self::ProbesFailed => "probes_failed",
        }
    }

    fn is_conversion(self) -> bool {
        matches!(self, Self::BelowPeers | Self::BelowBaseline)
    }
}

/// How one provider stands in one country, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    /// `healthy`, `degraded`, or `unknown` (too few settled sessions to judge).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Settled sessions in the window and those verified with this provider's code.
    pub sessions: u64,
    pub verified: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_conversion: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_peer_conversion: Option<f64>,
    /// Mean seconds from send to verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_delay_seconds: Option<f64>,
    pub receipts_delivered: u64,
    pub receipts_failed: u64,
    pub probe_failures_in_row: u32,
}

impl Standing {
    pub fn degraded(&self) -> bool {
        self.state == "degraded"
    }
}

/// (provider, country) → standing.
pub type Verdict = BTreeMap<(String, String), Standing>;

/// Judges every (provider, country) in `evidence`. `previous` keeps a provider degraded for
/// conversion while it has too few settled sessions to show it recovered (a degraded provider
/// gets only the probe share, so its numbers come back slowly).
pub fn judge(evidence: &BTreeMap<(String, String), Evidence>, previous: &Verdict, s: &HealthSettings) -> Verdict {
    let judged = |c: &Counts| c.sent >= s.min_sessions;
    let mut out = Verdict::new();
    let keys: BTreeSet<&(String, String)> = evidence.keys().chain(previous.keys()).collect();
    let none = Evidence::default();
    for key in keys {
        let (provider, country) = key;
        let e = evidence.get(key).unwrap_or(&none);
        let best_peer = evidence
            .iter()
            .filter(|((p, c), o)| c == country && p != provider && judged(&o.window))
            .map(|(_, o)| o.window)
            .max_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        let mut reason = None;
        if judged(&e.window) {
            let c = e.window.ratio();
            if best_peer.is_some_and(|p| c < p.ratio() * s.peer_ratio && z(&p, &e.window) >= s.min_z) {
                reason = Some(Reason::BelowPeers);
            } else if judged(&e.baseline) && c < e.baseline.ratio() * s.baseline_ratio && z(&e.baseline, &e.window) >= s.min_z {
                reason = Some(Reason::BelowBaseline);
            }
        } else if let Some(prev) = previous.get(key).and_then(|p| p.reason).filter(|r| r.is_conversion()) {
            reason = Some(prev);
        }
        let receipts = e.receipts_delivered + e.receipts_failed;
        if reason.is_none() && receipts >= s.min_receipts && (e.receipts_failed as f64) > receipts as f64 * s.receipt_failed_ratio {
            reason = Some(Reason::ReceiptsFailed);
        }
        if reason.is_none() && s.probe_failures > 0 && e.probe_failures_in_row >= s.probe_failures {
            reason = Some(Reason::ProbesFailed);
        }
        let state = match (reason, judged(&e.window)) {
            (Some(_), _) => "degraded",
            (None, true) => "healthy",
            (None, false) => "unknown",
        };
        out.insert(
            key.clone(),
            Standing {
                state,
                reason,
                sessions: e.window.sent,
                verified: e.window.verified,
                conversion: judged(&e.window).then(|| e.window.ratio()),
                baseline_conversion: judged(&e.baseline).then(|| e.baseline.ratio()),
                best_peer_conversion: best_peer.map(|p| p.ratio()),
                verify_delay_seconds: (e.window.verified > 0).then(|| e.window.delay_secs / e.window.verified as f64),
                receipts_delivered: e.receipts_delivered,
                receipts_failed: e.receipts_failed,
                probe_failures_in_row: e.probe_failures_in_row,
            },
        );
    }
    out
}

/// One-sided two-proportion z score that `better` converts more than `worse`.
fn z(better: &Counts, worse: &Counts) -> f64 {
    let (n1, n2) = (better.sent as f64, worse.sent as f64);
    let pooled = (better.verified + worse.verified) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let gap = better.ratio() - worse.ratio();
    if se == 0.0 {
        return if gap > 0.0 { f64::INFINITY } else { 0.0 };
    }
    gap / se
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sent: u64, verified: u64) -> Counts {
        Counts {
            sent,
            verified,
            delay_secs: verified as f64 * 10.0,
        }
    }

    fn evidence(rows: &[(&str, Counts, Counts)]) -> BTreeMap<(String, String), Evidence> {
        rows.iter()
            .map(|(p, window, baseline)| {
                let e = Evidence {
                    window: *window,
                    baseline: *baseline,
                    ..Evidence::default()
                };
                ((p.to_string(), "91".to_string()), e)
            })
            .collect()
    }

    fn state(v: &Verdict, p: &str) -> (&'static str, Option<Reason>) {
        let s = &v[&(p.to_string(), "91".to_string())];
        (s.state, s.reason)
    }

    #[test]
    fn a_provider_far_below_its_peer_is_degraded_and_equal_ones_are_not() {
        let s = HealthSettings::default();
        let none = Counts::default();
        let cases = [
            ("100% loss next to none", counts(40, 0), counts(40, 40), Some(Reason::BelowPeers)),
            ("40% loss next to none", counts(50, 30), counts(50, 50), Some(Reason::BelowPeers)),
            ("two at 70%", counts(50, 35), counts(50, 35), None),
            ("70% against 78%: within noise", counts(50, 35), counts(50, 39), None),
            ("too few sessions to judge", counts(5, 0), counts(50, 50), None),
        ];
        for (case, a, b, expected) in cases {
            let v = judge(&evidence(&[("a", a, none), ("b", b, none)]), &Verdict::new(), &s);
            assert_eq!(state(&v, "a").1, expected, "{case}");
            assert_eq!(state(&v, "b").1, None, "{case}: the better one is never degraded");
        }
        let v = judge(&evidence(&[("a", counts(5, 0), none)]), &Verdict::new(), &s);
        assert_eq!(state(&v, "a"), ("unknown", None));
    }

    #[test]
    fn a_lone_provider_is_judged_against_its_own_baseline() {
        let s = HealthSettings::default();
        let v = judge(&evidence(&[("a", counts(30, 6), counts(200, 180))]), &Verdict::new(), &s);
        assert_eq!(state(&v, "a"), ("degraded", Some(Reason::BelowBaseline)));
        let v = judge(&evidence(&[("a", counts(30, 24), counts(200, 180))]), &Verdict::new(), &s);
        assert_eq!(state(&v, "a"), ("healthy", None));
    }

    #[test]
    fn a_degraded_provider_stays_degraded_until_its_numbers_show_recovery() {
        let s = HealthSettings::default();
        let none = Counts::default();
        let first = judge(
            &evidence(&[("a", counts(40, 0), none), ("b", counts(40, 40), none)]),
            &Verdict::new(),
            &s,
        );
        let thin = judge(&evidence(&[("a", counts(3, 3), none), ("b", counts(40, 40), none)]), &first, &s);
        assert_eq!(state(&thin, "a"), ("degraded", Some(Reason::BelowPeers)));
        let gone = judge(&BTreeMap::new(), &thin, &s);
        assert_eq!(state(&gone, "a").0, "degraded", "no traffic at all is no proof of recovery");
        let back = judge(&evidence(&[("a", counts(25, 24), none), ("b", counts(40, 40), none)]), &thin, &s);
        assert_eq!(state(&back, "a"), ("healthy", None));
    }

    #[test]
    fn failed_receipts_and_failing_probes_degrade() {
        let s = HealthSettings::default();
        let mut e = evidence(&[("a", counts(0, 0), Counts::default())]);
        let key = ("a".to_string(), "91".to_string());
        e.get_mut(&key).unwrap().receipts_failed = 15;
        e.get_mut(&key).unwrap().receipts_delivered = 10;
        assert_eq!(state(&judge(&e, &Verdict::new(), &s), "a").1, Some(Reason::ReceiptsFailed));
        e.get_mut(&key).unwrap().receipts_failed = 5;
        assert_eq!(
            state(&judge(&e, &Verdict::new(), &s), "a").1,
            None,
            "too few receipts, or mostly delivered"
        );
        e.get_mut(&key).unwrap().probe_failures_in_row = 3;
        assert_eq!(state(&judge(&e, &Verdict::new(), &s), "a").1, Some(Reason::ProbesFailed));
    }
}
