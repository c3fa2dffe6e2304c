//! A provider that answers at once, for measuring the router's own work without any network.
#![allow(dead_code)] // each bench uses a part of it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use smsgate::config::BreakerSettings;
use smsgate::providers::{Accepted, Capabilities, OtpSupport, OutboundSms, Provider, ProviderError};
use smsgate::routing::{Breaker, Registry, Slot};

/// Answers every send with `Accepted`, or with `Unavailable` when `fails`.
pub struct AtOnce {
    name: String,
    caps: Capabilities,
    fails: bool,
}

impl AtOnce {
    pub fn new(name: &str, countries: &[&str], fails: bool) -> Self {
        Self {
            name: name.to_string(),
            caps: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: false,
                countries: countries.iter().map(|c| c.to_string()).collect(),
            },
            fails,
        }
    }
}

#[async_trait]
impl Provider for AtOnce {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn send(&self, _sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        if self.fails {
            return Err(ProviderError::unavailable(Some(503), "fake outage"));
        }
        Ok(Accepted {
            reference: Some("ref-1".into()),
            provider_verifies: false,
            http_status: 200,
        })
    }
}

/// Breaker settings that never open, so a failing provider is tried (and failed over) every time.
pub fn never_open() -> BreakerSettings {
    BreakerSettings {
        min_calls: u32::MAX,
        consecutive_failures: u32::MAX,
        failure_rate: 2.0,
        ..BreakerSettings::default()
    }
}

/// A slot for `provider` at `priority` with its own breaker.
pub fn slot(provider: AtOnce, priority: i32, breaker: BreakerSettings) -> Arc<Slot> {
    Arc::new(Slot::new(
        Arc::new(provider),
        "fake",
        priority,
        Duration::from_secs(4),
        Arc::new(Breaker::new(breaker)),
        None,
    ))
}

/// Eight providers (some limited to +91, one to +1), with an order for +91 naming five of them.
pub fn eight_with_country_order() -> Registry {
    let names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
    let slots = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let countries: &[&str] = match i % 3 {
                0 => &[],
                1 => &["91"],
                _ => &["1"],
            };
            slot(AtOnce::new(n, countries, false), i as i32, BreakerSettings::default())
        })
        .collect();
    let countries = BTreeMap::from([(
        "91".to_string(),
        ["p6", "p1", "p3", "p2", "p0"].iter().map(|s| s.to_string()).collect(),
    )]);
    Registry::new(slots, countries)
}

/// Criterion settings that keep the whole `cargo bench` under a minute on two cores.
pub fn quick() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
}
