//! Providers that answer at once (`providers::testing::Scripted`), for measuring the router's own
//! work without any network, and the criterion settings every bench shares.
#![allow(dead_code)] // each bench uses a part of it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use smsgate::config::BreakerSettings;
use smsgate::providers::testing::{Reply, Scripted};
use smsgate::providers::ProviderError;
use smsgate::routing::{Breaker, Registry, Slot};

/// Sends OTPs and texts to `countries` (none: every country), answering every send at once with
/// `Accepted`, or with `Unavailable` when `fails`.
pub fn at_once(name: &str, countries: &[&str], fails: bool) -> Scripted {
    let provider = Scripted::new(name).countries(countries);
    if fails {
        provider.otherwise(Reply::Fail(ProviderError::unavailable(Some(503), "fake outage")))
    } else {
        provider
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
pub fn slot(provider: Scripted, priority: i32, breaker: BreakerSettings) -> Arc<Slot> {
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
            slot(at_once(n, countries, false), i as i32, BreakerSettings::default())
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
