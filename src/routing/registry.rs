//! The ordered provider list: built from settings, ordered by priority or by a per-country
//! order, filtered by what each provider can carry, and swapped whole when configuration changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::breaker::{Breaker, BreakerState};
use super::slot::Slot;
use crate::config::{ProviderConfig, Settings};
use crate::phone::Phone;
use crate::providers::{self, BuildError, MessageBody};

pub struct Registry {
    slots: Vec<Arc<Slot>>,
    countries: BTreeMap<String, Vec<String>>,
    /// Only the development console provider was built: nothing is delivered.
    console_only: bool,
    /// Each provider's priority in force (see [`Registry::priority`]).
    priorities: HashMap<String, i32>,
    /// What each provider was built from, apart from its priority: an unchanged fingerprint
    /// keeps the provider's `Slot` across a rebuild.
    fingerprints: HashMap<String, [u8; 32]>,
}

/// One provider entry to build, with where its secrets come from.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub config: &'a ProviderConfig,
    pub secrets: providers::SecretLookup<'a>,
}

/// SHA-256 over the entry without its priority, and over the secrets it would read: a changed
/// key or a rotated secret builds the provider anew.
fn fingerprint(cfg: &ProviderConfig, secrets: providers::SecretLookup<'_>) -> [u8; 32] {
    let mut json = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(map) = json.as_object_mut() {
        map.remove("priority");
    }
    let mut hash = Sha256::new_with_prefix(json.to_string());
    for var in cfg.secrets() {
        hash.update([0]);
        hash.update(var.var);
        hash.update([0]);
        hash.update(secrets(var.var).unwrap_or_default());
    }
    hash.finalize().into()
}

/// A provider left out of the registry at build time, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub provider: String,
    pub reason: String,
}

/// One line of a routing explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    pub provider: String,
    pub kind: String,
    pub priority: i32,
    /// Whether a send now would try this provider (in this order).
    pub eligible: bool,
    pub breaker: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooling_for_ms: Option<u64>,
    pub reason: String,
    /// Conversion health for the destination's country (`health`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Standing>,
}

impl Registry {
    /// Builds every enabled provider. A provider whose secret is missing is skipped (and
    /// returned with its reason); any other build error refuses the configuration. When no real
    /// provider can be built, the `console` provider stands in, loudly.
    pub fn build(settings: &Settings, secrets: providers::SecretLookup<'_>) -> Result<(Self, Vec<Skipped>), BuildError> {
        let entries: Vec<Entry<'_>> = settings.providers.iter().map(|config| Entry { config, secrets }).collect();
        Self::build_from(settings, &entries, None)
    }

    /// Builds the registry of `entries` (each with where its secrets come from). A provider of
    /// `previous` whose entry is the same apart from its priority keeps its whole `Slot`
    /// (breaker, cool-down, throughput bucket, HTTP client): only changed providers start fresh.
    pub fn build_from(settings: &Settings, entries: &[Entry<'_>], previous: Option<&Registry>) -> Result<(Self, Vec<Skipped>), BuildError> {
        let http = providers::Clients::new(providers::ClientSettings {
            connect_timeout: Duration::from_millis(settings.routing.connect_timeout_ms),
            pool_idle_timeout: Duration::from_secs(90),
        })
        .map_err(|e| BuildError::Invalid {
            provider: "*".into(),
            key: "http client".into(),
            reason: e.to_string(),
        })?;
        let mut slots = Vec::new();
        let mut skipped = Vec::new();
        let mut priorities = HashMap::new();
        let mut fingerprints = HashMap::new();
        let mut real_providers = 0;
        for Entry { config: cfg, secrets } in entries {
            let common = cfg.common();
            if !common.enabled {
                skipped.push(Skipped {
                    provider: common.name.to_string(),
                    reason: "disabled".into(),
                });
                continue;
            }
            let print = fingerprint(cfg, *secrets);
            let kept = previous
                .filter(|p| p.fingerprints.get(common.name) == Some(&print))
                .and_then(|p| p.slot(common.name).cloned());
            let slot = match kept {
                Some(slot) => slot,
                None => {
                    let provider = match providers::build(cfg, http.clone(), *secrets) {
                        Ok(p) => p,
                        Err(e @ BuildError::MissingSecret { .. }) => {
                            skipped.push(Skipped {
                                provider: common.name.to_string(),
                                reason: e.to_string(),
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let breaker = Arc::new(Breaker::new(settings.routing.breaker.clone()));
                    let timeout = Duration::from_millis(common.timeout_ms.unwrap_or(settings.routing.attempt_timeout_ms));
                    let cap = cfg.max_per_second();
                    Arc::new(Slot::new(provider, cfg.kind(), common.priority, timeout, breaker, cap))
                }
            };
            real_providers += usize::from(!cfg.is_console());
            priorities.insert(common.name.to_string(), common.priority);
            fingerprints.insert(common.name.to_string(), print);
            slots.push(slot);
        }
        if slots.is_empty() && settings.database_url.is_some() {
            // A deployment with a database is a real one: printing codes to a log instead of
            // sending them would lose every user's OTP while answering 200.
            let why: Vec<String> = skipped.iter().map(|s| format!("{}: {}", s.provider, s.reason)).collect();
            return Err(BuildError::NoneUsable { skipped: why.join("; ") });
        }
        if slots.is_empty() {
            tracing::warn!(
"no SMS provider has credentials: using the console provider, which writes every message (and OTP code) to the log and delivers nothing");
            let console = Arc::new(providers::console::Console::new("console", Vec::new()));
            let breaker = Arc::new(Breaker::new(settings.routing.breaker.clone()));
            slots.push(Arc::new(Slot::new(
                console,
                "console",
                i32::MAX,
                Duration::from_millis(settings.routing.attempt_timeout_ms),
                breaker,
                None,
            )));
            priorities.insert("console".to_string(), i32::MAX);
        }
        let mut registry = Self::new(slots, settings.routing.countries.clone());
        registry.priorities = priorities;
        registry.resort();
        registry.fingerprints = fingerprints;
        registry.console_only = real_providers == 0;
        Ok((registry, skipped))
    }

    pub fn new(mut slots: Vec<Arc<Slot>>, countries: BTreeMap<String, Vec<String>>) -> Self {
        slots.sort_by_key(|s| s.priority);
        let priorities = slots.iter().map(|s| (s.name().to_string(), s.priority)).collect();
        Self {
            slots,
            countries,
            console_only: false,
            priorities,
            fingerprints: HashMap::new(),
        }
    }

    /// Orders the slots by their current priority (then name, so equal priorities are stable).
    fn resort(&mut self) {
        let priorities = &self.priorities;
        self.slots
            .sort_by(|a, b| (priorities.get(a.name()), a.name()).cmp(&(priorities.get(b.name()), b.name())));
    }

    /// The provider's current priority. A `Slot` kept across a reorder still holds the priority
    /// it was built with; this is the one in force.
    pub fn priority(&self, slot: &Slot) -> i32 {
        self.priorities.get(slot.name()).copied().unwrap_or(slot.priority)
    }

    pub fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    pub fn slot(&self, name: &str) -> Option<&Arc<Slot>> {
        self.slots.iter().find(|s| s.name() == name)
    }

    /// Whether only the development console provider is configured.
    pub fn console_only(&self) -> bool {
        self.console_only
    }

    /// The providers that may carry `body` to `to`, in the order to try them: the destination
    /// country's configured order (or `default`'s), else priority; `preferred` moves to the front.
    pub fn candidates(&self, body: &MessageBody, to: &Phone, preferred: Option<&str>) -> Vec<Arc<Slot>> {
        let mut out: Vec<Arc<Slot>> = self
            .ordered(to)
            .into_iter()
            .filter(|s| s.provider.capabilities().can_send(body, to))
            .collect();
        if let Some(pos) = preferred.and_then(|p| out.iter().position(|s| s.name() == p)) {
            let slot = out.remove(pos);
            out.insert(0, slot);
        }
        out
    }

    fn ordered(&self, to: &Phone) -> Vec<Arc<Slot>> {
        let order = self.countries.get(to.country_code()).or_else(|| self.countries.get("default"));
        match order {
            Some(names) => names.iter().filter_map(|n| self.slot(n).cloned()).collect(),
            None => self.slots.clone(),
        }
    }

    /// Every provider with why a send of `body` to `to` would or would not try it now.
    pub fn explain(&self, body: &MessageBody, to: &Phone, now: Instant) -> Vec<Explained> {
        let ordered: Vec<String> = self.ordered(to).iter().map(|s| s.name().to_string()).collect();
        let mut lines: Vec<Explained> = Vec::new();
        let mut in_order: Vec<&Arc<Slot>> = ordered.iter().filter_map(|n| self.slot(n)).collect();
        in_order.extend(self.slots.iter().filter(|s| !ordered.iter().any(|n| n == s.name())));
        for slot in in_order {
            let caps = slot.provider.capabilities();
            let breaker = slot.breaker.state(now);
            let cooling = slot.cooling_until(now).map(|u| (u - now).as_millis() as u64);
            let reason = if !ordered.iter().any(|n| n == slot.name()) {
                format!("not in the route for +{}", to.country_code())
            } else if !caps.serves_country(to.country_code()) {
                format!("does not serve +{}", to.country_code())
            } else if !caps.can_send(body, to) {
                format!("cannot send {} messages", body.kind())
            } else if let BreakerState::Open { .. } = breaker {
                "circuit open".to_string()
            } else if cooling.is_some() {
                "cooling down after 429".to_string()
            } else {
                "eligible".to_string()
            };
            lines.push(Explained {
                provider: slot.name().to_string(),
                kind: slot.kind.clone(),
                priority: self.priority(slot),
                eligible: reason == "eligible",
                breaker: breaker.label(),
                cooling_for_ms: cooling,
                reason,
                health: None,
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "[[providers]]\nname = \"twilio\"\nkind = \"twilio\"\nfrom = \"+15005550006\"\n";

    #[test]
    fn without_credentials_a_dev_gateway_falls_back_to_the_console() {
        let settings = Settings::from_toml(TOML).unwrap();
        let (registry, skipped) = Registry::build(&settings, &|_| None).unwrap();
        assert!(registry.console_only());
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn without_credentials_a_database_backed_gateway_refuses_to_start() {
        let mut settings = Settings::from_toml(TOML).unwrap();
        settings.database_url = Some("postgres://localhost/x".to_string().into());
        let err = Registry::build(&settings, &|_| None).err().expect("refused");
        assert!(err.to_string().contains("TWILIO_ACCOUNT_SID"), "{err}");
    }
}
