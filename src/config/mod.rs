//! Configuration: built-in defaults < `providers.toml` < `SMSGATE_*` environment < command-line
//! flags, extracted once into a typed, validated `Settings`. Nothing else reads configuration.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;

mod campaigns;
mod health;
mod hooks;
mod http_spec;
mod provider;
mod role;
mod sections;
mod service_links;

pub use campaigns::{parse_hhmm, CampaignSettings, QuietHours};
pub use health::{HealthSettings, ProbeConfig};
pub use hooks::{CredentialHook, HooksSettings, SupabaseHook};
pub use http_spec::HttpSpec;
pub use provider::{
    CommonKeys, ConsoleConfig, Fast2smsConfig, HttpConfig, Msg91Config, PlivoConfig, ProviderCommon, ProviderConfig, SecretVar,
    TextlocalConfig, TwilioConfig, TwoFactorConfig, VonageConfig,
};
pub use role::Role;
pub use sections::{
    BreakerSettings, ClientConfig, DatabaseSettings, LimitSettings, OtpPolicy, OtpSettings, RegistrySettings, RoutingSettings,
    ServerSettings,
};
pub use sections::{MessageSettings, ReceiptSettings, RetentionSettings};

/// The whole configuration of one smsgate instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub otp: OtpSettings,
    /// Apps and admins allowed to call the API. None configured: `serve` makes one random token.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// SMS providers, tried in `priority` order (lowest first).
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub routing: RoutingSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    /// Auth servers whose SMS smsgate delivers (Supabase Auth, Ory Kratos, Keycloak).
    #[serde(default)]
    pub hooks: HooksSettings,
    /// Bulk sends: the queue's workers, request limits, opt-out webhooks, quiet hours.
    #[serde(default)]
    pub campaigns: CampaignSettings,
    /// PostgreSQL URL (`DATABASE_URL`). Unset: the in-memory store, nothing durable or shared.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    #[serde(default)]
    pub database: DatabaseSettings,
    /// Server secret for OTP HMACs and verification tokens (`SMSGATE_OTP_SECRET`). Unset: a random
    /// one per process, so codes do not survive a restart and instances cannot share sessions.
    #[serde(default)]
    pub otp_secret: Option<SecretString>,
    /// Key of verification tokens (`SMSGATE_TOKEN_SECRET`), shared with apps that check them
    /// offline. Unset: derived from the OTP secret, and tokens can be checked only by asking
    /// `GET /v1/otp/sessions/{id}`.
    #[serde(default)]
    pub token_secret: Option<SecretString>,
    /// How instances follow the provider registry in the database.
    #[serde(default)]
    pub registry: RegistrySettings,
    /// Master key sealing provider secrets set through the admin API (`SMSGATE_MASTER_KEY`,
    /// 32 bytes in base64). Unset: such secrets cannot be set.
    #[serde(default)]
    pub master_key: Option<SecretString>,
    /// Earlier master keys (`SMSGATE_MASTER_KEY_PREVIOUS`, comma-separated base64), still
    /// accepted to open secrets until `smsgate secrets rotate` re-seals them.
    #[serde(default)]
    pub master_key_previous: Option<SecretString>,
    /// Texts and templates other than OTPs.
    #[serde(default)]
    pub messages: MessageSettings,
    /// Delivery receipts pushed by providers.
    #[serde(default)]
    pub receipts: ReceiptSettings,
    /// Retention of the logs (PostgreSQL).
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Provider health by conversion, receipts and probes (`[health]`).
    #[serde(default)]
    pub health: HealthSettings,
    /// Synthetic probes (`[[probes]]`); none by default.
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
}

/// A configuration that cannot be used; `main` prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("{file}: `{key}` {reason}")]
    Invalid { file: String, key: String, reason: String },
    #[error("{file}: no such file (given with --config or SMSGATE_CONFIG)")]
    Missing { file: String },
}

/// The file read when no `--config` (nor `SMSGATE_CONFIG`) names one.
pub const DEFAULT_FILE: &str = "providers.toml";

/// Where the file layer of the settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// No file was named and the default one is absent: built-in defaults (and the environment).
    Defaults {
        looked_for: PathBuf,
    },
}

impl Settings {
    /// Loads defaults < the file < `SMSGATE_*` env (`__` nests: `SMSGATE_SERVER__LISTEN`) <
    /// `DATABASE_URL`, then the seed variables `SMS_SENDER_ID`, `SMS_TEMPLATE`, `SMS_MODE` for the
    /// `two_factor` entry. The file is `explicit` when given, and must then exist; otherwise it is
    /// [`DEFAULT_FILE`], skipped when absent so a bare `smsgate serve` runs on the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<(Self, Source), ConfigError> {
        let path = explicit.unwrap_or(Path::new(DEFAULT_FILE));
        let file = path.display().to_string();
        let mut figment = Figment::new().merge(Serialized::defaults(ServerSettings::default()).key("server"));
        let source = if path.exists() {
            figment = figment.merge(Toml::file_exact(path));
            Source::File(path.to_path_buf())
        } else if explicit.is_some() {
            return Err(ConfigError::Missing { file });
        } else {
            Source::Defaults {
                looked_for: path.to_path_buf(),
            }
        };
        let links = service_links(std::env::vars_os());
        for name in &links {
            tracing::debug!(variable = %format!("SMSGATE_{name}"), "ignored: a Kubernetes service link, not configuration");
        }
        let env = Env::prefixed("SMSGATE_")
            .filter(move |key| !links.iter().any(|link| key == link.as_str()))
            .split("__")
            .ignore(&["config", "log"]);
        let figment = figment.merge(env).merge(Env::raw().only(&["DATABASE_URL"]));
        let mut settings = Self::from_figment(figment)?;
        settings.apply_seed_env(&|k| std::env::var(k).ok());
        settings.validate(&file)?;
        Ok((settings, source))
    }

    /// Extracts settings from a TOML string (tests and `check-config`).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings = Self::from_figment(Figment::from(Toml::string(text)))?;
        settings.validate("<inline>")?;
        Ok(settings)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        figment.extract().map_err(|e| ConfigError::Parse(Box::new(e)))
    }

    /// The seed deployment configured 2Factor through these variables; they still work.
    pub fn apply_seed_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        for p in self.providers.iter_mut() {
            let ProviderConfig::TwoFactor(p) = p else { continue };
            if let Some(v) = env("SMS_SENDER_ID").filter(|v| !v.is_empty()) {
                p.sender_id = Some(v);
            }
            if let Some(v) = env("SMS_TEMPLATE").filter(|v| !v.is_empty()) {
                p.template = Some(v);
            }
            if let Some(v) = env("SMS_MODE").filter(|v| !v.is_empty()) {
                // The seed's `template` mode sent a code made by the app through a template.
                p.otp_mode = Some(if v == "template" { "local".into() } else { v });
            }
        }
    }

    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        if !(4..=10).contains(&self.otp.length) {
            return Err(bad("otp.length", "must be between 4 and 10"));
        }
        for (purpose, policy) in &self.otp.purposes {
            if policy.length.is_some_and(|l| !(4..=10).contains(&l)) {
                return Err(bad(&format!("otp.purposes.{purpose}.length"), "must be between 4 and 10"));
            }
            if policy.ttl_seconds == Some(0) {
                return Err(bad(&format!("otp.purposes.{purpose}.ttl_seconds"), "must be at least 1"));
            }
            if policy.max_attempts == Some(0) {
                return Err(bad(&format!("otp.purposes.{purpose}.max_attempts"), "must be at least 1"));
            }
        }
        if self.messages.max_segments == 0 {
            return Err(bad("messages.max_segments", "must be at least 1"));
        }
        for (prefix, q) in &self.campaigns.quiet_hours {
            if prefix.is_empty() || prefix.len() > 7 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    &format!("campaigns.quiet_hours.{prefix}"),
                    "the key must be a number prefix of 1 to 7 digits, e.g. 91 or 1808",
                ));
            }
            if let Some((key, reason)) = q.invalid() {
                return Err(bad(&format!("campaigns.quiet_hours.{prefix}.{key}"), &reason));
            }
        }
        if self.campaigns.otp_reserve_percent >= 100 {
            return Err(bad("campaigns.otp_reserve_percent", "must be below 100"));
        }
        if self.campaigns.batch_size == 0 || self.campaigns.lease_seconds == 0 || self.campaigns.poll_ms == 0 {
            return Err(bad("campaigns", "batch_size, lease_seconds and poll_ms must be at least 1"));
        }
        if let Some((key, reason)) = self.health.invalid() {
            return Err(bad(key, reason));
        }
        for (i, probe) in self.probes.iter().enumerate() {
            if probe.interval_seconds == 0 {
                return Err(bad(&format!("probes[{i}].interval_seconds"), "must be at least 1"));
            }
            if !probe.number.starts_with('+') || !probe.number[1..].starts_with(probe.country.as_str()) {
                return Err(bad(&format!("probes[{i}].number"), "must be E.164 (+ and digits) in its `country`"));
            }
        }
        if self.otp.ttl_seconds == 0 {
            return Err(bad("otp.ttl_seconds", "must be at least 1"));
        }
        if self.otp.max_attempts == 0 {
            return Err(bad("otp.max_attempts", "must be at least 1"));
        }
        let cc = &self.otp.default_country;
        if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0') {
            return Err(bad("otp.default_country", "must be a calling code such as \"91\""));
        }
        if !self.otp.message.contains("{code}") {
            return Err(bad("otp.message", "must contain {code}"));
        }
        for (i, c) in self.clients.iter().enumerate() {
            let hashes = c.token_sha256.iter().chain(&c.token_sha256s);
            let mut any = false;
            for h in hashes {
                any = true;
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(
                        &format!("clients[{i}].token_sha256"),
                        "must be 64 hex characters (SHA-256 of the token)",
                    ));
                }
            }
            if !any {
                return Err(bad(&format!("clients[{i}].token_sha256"), "is required"));
            }
            if c.roles.is_empty() {
                return Err(bad(&format!("clients[{i}].roles"), "must list send, admin and/or super_admin"));
            }
            if let Some(phone) = &c.phone {
                let digits = phone.strip_prefix('+').unwrap_or("");
                if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(
                        &format!("clients[{i}].phone"),
                        "must be a number in E.164 form such as \"+919876543210\"",
                    ));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let name = p.name();
            if name.trim().is_empty() {
                return Err(bad(&format!("providers[{i}].name"), "must not be empty"));
            }
            if !names.insert(name) {
                return Err(bad(&format!("providers[{i}].name"), &format!("`{name}` is used twice")));
            }
            if p.is_console() && self.database_url.is_some() {
                return Err(bad(
                    &format!("providers[{i}].kind"),
                    "is `console`, which writes every message and OTP code to the log and delivers nothing; \
                     it is refused when database_url is set (a real deployment)",
                ));
            }
            if p.common().timeout_ms == Some(0) {
                return Err(bad(&format!("providers[{i}].timeout_ms"), "must be at least 1"));
            }
            if let Some(base) = p.common().base_url.filter(|u| !is_http_url(u)) {
                return Err(bad(&format!("providers[{i}].base_url"), &format!("`{base}` is not an http(s) URL")));
            }
        }
        for (country, order) in &self.routing.countries {
            for name in order {
                if !names.contains(name.as_str()) {
                    return Err(bad(
                        &format!("routing.countries.{country}"),
                        &format!("names unknown provider `{name}`"),
                    ));
                }
            }
        }
        let r = &self.routing;
        if self.registry.reload_seconds == 0 {
            return Err(bad("registry.reload_seconds", "must be at least 1"));
        }
        if r.deadline_ms == 0 || r.attempt_timeout_ms == 0 || r.connect_timeout_ms == 0 {
            return Err(bad(
                "routing",
                "deadline_ms, attempt_timeout_ms and connect_timeout_ms must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&r.breaker.failure_rate) {
            return Err(bad("routing.breaker.failure_rate", "must be between 0 and 1"));
        }
        if r.breaker.half_open_probes == 0 || r.breaker.consecutive_failures == 0 {
            return Err(bad(
                "routing.breaker",
                "half_open_probes and consecutive_failures must be at least 1",
            ));
        }
        let h = &self.hooks.supabase;
        if h.deadline_ms == 0 || h.deadline_ms > 4_000 {
            return Err(bad(
                "hooks.supabase.deadline_ms",
                "must be between 1 and 4000 (Supabase waits 5 s for the hook)",
            ));
        }
        for (key, hook) in [("hooks.kratos", &self.hooks.kratos), ("hooks.keycloak", &self.hooks.keycloak)] {
            if hook.username.is_some() != (hook.password.is_some() || hook.password_env.is_some()) {
                return Err(bad(key, "basic auth needs both `username` and `password` (or `password_env`)"));
            }
            if hook.token_header.is_some() && hook.token.is_none() && hook.token_env.is_none() {
                return Err(bad(&format!("{key}.token_header"), "needs `token` or `token_env`"));
            }
        }
        let d = &self.database;
        if d.pool_size == 0 || d.pool_wait_ms == 0 || d.connect_timeout_ms == 0 || d.statement_timeout_ms == 0 {
            return Err(bad(
                "database",
                "pool_size, pool_wait_ms, connect_timeout_ms and statement_timeout_ms must be at least 1",
            ));
        }
        let s = &self.server;
        if s.header_timeout_ms < 1_000 {
            return Err(bad(
                "server.header_timeout_ms",
                "must be at least 1000 (actix's clock ticks every 500 ms)",
            ));
        }
        if s.body_timeout_ms == 0 || s.max_connections == 0 {
            return Err(bad("server", "body_timeout_ms and max_connections must be at least 1"));
        }
        for (key, list) in [
            ("server.trusted_proxies", &self.server.trusted_proxies),
            ("server.allowed_callers", &self.server.allowed_callers),
        ] {
            for cidr in list {
                if !is_ip_or_cidr(cidr) {
                    return Err(bad(key, &format!("`{cidr}` is not an IP address or CIDR")));
                }
            }
        }
        Ok(())
    }
}

/// The names, without `SMSGATE_`, of the variables among `vars` that Kubernetes made for a
/// Service (see [`service_links`](self::service_links)); loading skips them.
fn service_links(vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> Vec<String> {
    vars.filter_map(|(name, value)| {
        let name = name.to_str()?.strip_prefix("SMSGATE_")?;
        service_links::is_service_link(name, value.to_str()?).then(|| name.to_string())
    })
    .collect()
}

/// An absolute `http://` or `https://` URL with a host.
fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// `192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`: the syntax `net::Cidr` reads, checked here so
/// configuration stays a leaf.
fn is_ip_or_cidr(text: &str) -> bool {
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text.trim(), None),
    };
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

#[cfg(test)]
mod tests;
