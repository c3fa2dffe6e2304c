//! The live status panel: each provider's breaker, 429 cool-down and its calls over the last
//! minute and hour on this instance.

use std::time::Instant;

use serde_json::{json, Value};

use crate::service::Gateway;

impl Gateway {
    /// Whether the store is PostgreSQL (so the registry can be written at run time).
    pub fn has_database(&self) -> bool {
        self.store.kind() == "postgres"
    }

    /// Whether secrets set through the API could be encrypted: `SMSGATE_MASTER_KEY` is set.
    pub fn master_key_configured(&self) -> bool {
        std::env::var_os("SMSGATE_MASTER_KEY").is_some_and(|v| !v.is_empty())
    }

    /// The registry's version. Providers from the file have one version, 0; the live registry
    /// (`api_integrations`) numbers its changes.
    pub fn registry_version(&self) -> u64 {
        0
    }

    /// `GET /v1/admin/status`'s providers, in priority order, as of now.
    pub fn provider_status(&self) -> Vec<Value> {
        let registry = self.router.registry();
        // The router's clock (tokio's) for breakers, cool-downs and stats; the wall clock to
        // tell an admin when a cool-down ends.
        let now = tokio::time::Instant::now().into_std();
        let wall = self.clock.now();
        registry
            .slots()
            .iter()
            .map(|slot| {
                let stats = slot.stats.summary(now);
                let cooling_until = slot.cooling_until(now).map(|until| wall + wall_delta(until, now));
                json!({
                    "name": slot.name(),
                    "enabled": true,
                    "priority": slot.priority,
                    "breaker": slot.breaker.state(now).label(),
                    "cooling_until": cooling_until,
                    "success_rate_1m": stats.success_rate_1m,
                    "success_rate_1h": stats.success_rate_1h,
                    "p50_ms_1m": stats.p50_ms_1m,
                    "p95_ms_1m": stats.p95_ms_1m,
                    "calls_1m": stats.calls_1m,
                    "calls_1h": stats.calls_1h,
                })
            })
            .collect()
    }
}

fn wall_delta(until: Instant, now: Instant) -> chrono::Duration {
    chrono::Duration::from_std(until.saturating_duration_since(now)).unwrap_or(chrono::Duration::MAX)
}
