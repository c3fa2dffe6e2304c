//! The live status panel: each provider's breaker, 429 cool-down, its calls over the last
//! minute and hour on this instance, and its conversion health per destination country.

use std::time::Instant;

use serde_json::{json, Value};

use crate::admin::Snapshot;
use crate::service::Gateway;

impl Gateway {
    /// Whether the store is PostgreSQL (so the registry can be written at run time).
    pub fn has_database(&self) -> bool {
        self.store.kind() == "postgres"
    }

    /// `GET /v1/admin/status`'s providers, in the registry's priority order, as of now: every
    /// entry of `registry` (a disabled one has no live figures), with its conversion health per
    /// destination country.
    pub fn provider_status(&self, registry: &Snapshot) -> Vec<Value> {
        let live = self.router.registry();
        let verdict = self.router.health().verdict();
        // The router's clock (tokio's) for breakers, cool-downs and stats; the wall clock to
        // tell an admin when a cool-down ends.
        let now = tokio::time::Instant::now().into_std();
        let wall = self.clock.now();
        registry
            .entries
            .iter()
            .map(|entry| {
                let common = entry.config.common();
                let health: serde_json::Map<String, Value> = verdict
                    .iter()
                    .filter(|((provider, _), _)| provider == common.name)
                    .map(|((_, country), standing)| (country.clone(), json!(standing)))
                    .collect();
                let mut line = json!({
                    "name": common.name,
                    "enabled": common.enabled,
                    "priority": common.priority,
                    "health": health,
                });
                if let Some(slot) = live.slot(common.name) {
                    let stats = slot.stats.summary(now);
                    let cooling_until = slot.cooling_until(now).map(|until| wall + wall_delta(until, now));
                    let figures = json!({
                        "breaker": slot.breaker.state(now).label(),
                        "cooling_until": cooling_until,
                        "success_rate_1m": stats.success_rate_1m,
                        "success_rate_1h": stats.success_rate_1h,
                        "p50_ms_1m": stats.p50_ms_1m,
                        "p95_ms_1m": stats.p95_ms_1m,
                        "calls_1m": stats.calls_1m,
                        "calls_1h": stats.calls_1h,
                    });
                    line.as_object_mut()
                        .expect("an object")
                        .extend(figures.as_object().expect("an object").clone());
                }
                line
            })
            .collect()
    }
}

fn wall_delta(until: Instant, now: Instant) -> chrono::Duration {
    chrono::Duration::from_std(until.saturating_duration_since(now)).unwrap_or(chrono::Duration::MAX)
}
