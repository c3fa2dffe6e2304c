//! The gateway's TOML for a load run: 2factor (first) and twilio (second) against the simulator,
//! one sending client, and either relaxed limits (throughput) or the defaults (the abuse drill).

use smsgate::sim::SimHandle;

/// The bearer token the harness sends with; only its SHA-256 is in the config.
pub const TOKEN: &str = "load-harness-token";

/// Limits that never refuse a throughput run over distinct phones.
const RELAXED: &str = r#"
[limits]
per_phone_per_minute = 1000000
per_phone_per_day = 1000000
per_ip_per_minute = 1000000
per_user_per_day = 1000000
per_prefix_per_minute = 1000000
per_client_per_minute = 1000000000
resend_cooldown_seconds = 0
"#;

/// The defaults of `LimitSettings`, with only +91 allowed.
const DEFAULTS: &str = r#"
[limits]
allowed_countries = ["91"]
"#;

pub fn toml(sim: &SimHandle, default_limits: bool) -> String {
    format!(
        r#"
[otp]
default_country = "91"
{limits}
[[clients]]
name = "load"
token_sha256 = "{token}"
roles = ["send"]

[[providers]]
name = "2factor"
kind = "two_factor"
priority = 1
base_url = "{tf}"
api_key_env = "TWO_FACTOR_API_KEY"
sender_id = "TFCTOR"
template = "SMSTemplate1"
countries = ["91"]

[[providers]]
name = "twilio"
kind = "twilio"
priority = 2
base_url = "{tw}"
account_sid_env = "TWILIO_ACCOUNT_SID"
auth_token_env = "TWILIO_AUTH_TOKEN"
from = "+15005550006"
"#,
        limits = if default_limits { DEFAULTS } else { RELAXED },
        token = smsgate::api::sha256_hex(TOKEN),
        tf = sim.url("2factor"),
        tw = sim.url("twilio"),
    )
}

/// The simulator's credentials under the environment names the config uses.
pub fn secrets(var: &str) -> Option<String> {
    let c = smsgate::sim::SimCredentials::default();
    match var {
        "TWO_FACTOR_API_KEY" => Some(c.api_key),
        "TWILIO_ACCOUNT_SID" => Some(c.account_sid),
        "TWILIO_AUTH_TOKEN" => Some(c.auth_token),
        _ => None,
    }
}
