//! The settings tests start the app with, built as typed values: a test changes the field it
//! needs (`cfg.limits.per_phone_per_minute = 3`) instead of editing configuration text.

use std::collections::HashMap;

use serde_json::{json, Value};
use smsgate::config::{ClientConfig, LimitSettings, ProviderConfig, Role, Settings};
use smsgate::sim::{self, SimHandle};

use super::{ADMIN_TOKEN, OTHER_TOKEN, SEND_TOKEN};

/// The limits every test runs with unless it sets its own: failover and OTP tests send many
/// codes to one number, and the limits have tests of their own.
fn relaxed_limits() -> LimitSettings {
    LimitSettings {
        per_phone_per_minute: 1000,
        per_phone_per_day: 1000,
        per_prefix_per_minute: 10_000,
        resend_cooldown_seconds: 0,
        verify_failures_per_phone_per_day: 1000,
        verify_failures_per_user_per_day: 1000,
        ..LimitSettings::default()
    }
}

/// A client holding `token` (stored as its SHA-256) with `roles`.
pub fn client(name: &str, token: &str, roles: &[Role]) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        token_sha256: Some(smsgate::api::sha256_hex(token)),
        token_sha256s: Vec::new(),
        roles: roles.to_vec(),
        phone: None,
    }
}

/// The built-in defaults with relaxed limits and three clients (the send app, the admin and a
/// second send app), and no provider.
pub fn base_settings() -> Settings {
    let mut settings = Settings::from_toml("").expect("the built-in defaults are valid");
    settings.limits = relaxed_limits();
    settings.clients = vec![
        client("app", SEND_TOKEN, &[Role::Send]),
        client("ops", ADMIN_TOKEN, &[Role::Admin]),
        client("other-app", OTHER_TOKEN, &[Role::Send]),
    ];
    // The test clock follows the wall clock, which may be in India's night: tests that hold
    // promotional messages to quiet hours set them.
    settings.campaigns.quiet_hours.clear();
    settings
}

/// A provider entry named after its simulator fake and pointing at it, with the keys its kind
/// requires; credentials come from the adapters' default secret variables (see `sim_secrets`).
pub fn sim_provider(sim: &SimHandle, name: &str, priority: i32) -> ProviderConfig {
    let (kind, keys) = match name {
        "2factor" => ("two_factor", json!({"sender_id": "TFCTOR", "template": "SMSTemplate1"})),
        "twilio" => ("twilio", json!({"from": "+15005550006"})),
        "vonage" => ("vonage", json!({"from": "SMSGATE"})),
        "msg91" => ("msg91", json!({"template_id": "sim-otp-template"})),
        "textlocal" => ("textlocal", json!({"sender_id": "TXTLCL"})),
        "plivo" => ("plivo", json!({"from": "+14155550100"})),
        "fast2sms" => ("fast2sms", json!({"sender_id": "FSTSMS"})),
        other => panic!("no simulator fake named {other}"),
    };
    let mut entry = json!({"kind": kind, "name": name, "priority": priority, "base_url": sim.url(name)});
    entry.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
    serde_json::from_value(entry).expect("a valid provider entry")
}

/// The base settings with the simulator's fakes `names` as providers, in that priority order.
pub fn with_providers(sim: &SimHandle, names: &[&str]) -> Settings {
    let mut settings = base_settings();
    settings.providers = (1..).zip(names).map(|(priority, name)| sim_provider(sim, name, priority)).collect();
    settings
}

/// The default test settings: 2factor (AUTOGEN, India only) first, then twilio, both on the
/// simulator.
pub fn config(sim: &SimHandle) -> Settings {
    let mut settings = base_settings();
    let mut two_factor = sim_provider(sim, "2factor", 1);
    *two_factor.countries_mut() = vec!["91".into()];
    settings.providers = vec![two_factor, sim_provider(sim, "twilio", 2)];
    settings
}

/// The default test settings as `adjust` changes them.
pub fn config_with(sim: &SimHandle, adjust: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = config(sim);
    adjust(&mut settings);
    settings
}

/// Settings lookups by name, so that a test changes a typed field instead of editing text.
pub trait SettingsExt {
    /// The provider entry named `name`; panics when there is none.
    fn provider_mut(&mut self, name: &str) -> &mut ProviderConfig;
}

impl SettingsExt for Settings {
    fn provider_mut(&mut self, name: &str) -> &mut ProviderConfig {
        self.providers
            .iter_mut()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no provider named {name}"))
    }
}

/// `settings` as a TOML file for the real binary (its secrets stay out: they come from the
/// environment). Every section is written as one inline table.
pub fn to_toml(settings: &Settings) -> String {
    fn inline(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let keys = map.iter().filter(|(_, v)| !v.is_null());
                let pairs: Vec<String> = keys.map(|(k, v)| format!("{} = {}", Value::from(k.as_str()), inline(v))).collect();
                format!("{{ {} }}", pairs.join(", "))
            }
            Value::Array(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
            // JSON's strings, numbers and booleans are also TOML's.
            other => other.to_string(),
        }
    }
    let json = |v: serde_json::Result<Value>| v.expect("settings serialize");
    let sections = [
        ("server", json(serde_json::to_value(&settings.server))),
        ("otp", json(serde_json::to_value(&settings.otp))),
        ("clients", json(serde_json::to_value(&settings.clients))),
        ("providers", json(serde_json::to_value(&settings.providers))),
        ("routing", json(serde_json::to_value(&settings.routing))),
        ("limits", json(serde_json::to_value(&settings.limits))),
        ("database", json(serde_json::to_value(&settings.database))),
    ];
    let text: String = sections.iter().map(|(key, v)| format!("{key} = {}\n", inline(v))).collect();
    Settings::from_toml(&text).expect("the written TOML reads back");
    text
}

/// The simulator's credentials under the environment names the configs use.
pub fn sim_secrets() -> HashMap<String, String> {
    let c = sim::SimCredentials::default();
    let plivo_basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", c.plivo_auth_id, c.auth_token),
    );
    HashMap::from([
        ("TWO_FACTOR_API_KEY".to_string(), c.api_key.clone()),
        ("TWILIO_ACCOUNT_SID".to_string(), c.account_sid.clone()),
        ("TWILIO_AUTH_TOKEN".to_string(), c.auth_token.clone()),
        ("VONAGE_API_KEY".to_string(), c.api_key.clone()),
        ("VONAGE_API_SECRET".to_string(), c.api_secret.clone()),
        ("MSG91_AUTH_KEY".to_string(), c.api_key.clone()),
        ("TEXTLOCAL_API_KEY".to_string(), c.api_key.clone()),
        ("FAST2SMS_API_KEY".to_string(), c.api_key.clone()),
        ("PLIVO_AUTH_ID".to_string(), c.plivo_auth_id.clone()),
        ("PLIVO_AUTH_TOKEN".to_string(), c.auth_token.clone()),
        // The generic `http` adapter speaking Plivo's API sends this as `Authorization: Basic …`.
        ("PLIVO_BASIC_AUTH".to_string(), plivo_basic),
        // The names examples/sim.toml and `smsgate sim` use.
        ("SIM_API_KEY".to_string(), c.api_key.clone()),
        ("SIM_API_SECRET".to_string(), c.api_secret.clone()),
        ("SIM_TWILIO_SID".to_string(), c.account_sid.clone()),
        ("SIM_AUTH_TOKEN".to_string(), c.auth_token.clone()),
        ("SIM_PLIVO_AUTH_ID".to_string(), c.plivo_auth_id.clone()),
    ])
}
