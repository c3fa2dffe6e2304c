//! `[[providers]]`: one strict struct per provider kind, chosen by the entry's `kind` key.
//!
//! Each struct takes the keys every entry shares plus only its own, so a key that its kind does
//! not read (`verify_service_sid` under Vonage) is an error instead of being ignored. Adding a
//! provider adds a variant here; the compiler then lists every `match` that must follow.

use serde::{Deserialize, Serialize};

use super::http_spec::HttpSpec;

/// One provider entry, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    TwoFactor(TwoFactorConfig),
    Twilio(TwilioConfig),
    Vonage(VonageConfig),
    Msg91(Msg91Config),
    Textlocal(TextlocalConfig),
    Plivo(PlivoConfig),
    Fast2sms(Fast2smsConfig),
    Http(HttpConfig),
    Console(ConsoleConfig),
}

/// The keys every provider entry takes, whatever its kind.
#[derive(Debug, Clone, Copy)]
pub struct ProviderCommon<'a> {
    pub name: &'a str,
    pub priority: i32,
    pub enabled: bool,
    pub base_url: Option<&'a str>,
    pub countries: &'a [String],
    pub timeout_ms: Option<u64>,
    pub max_per_second: Option<u32>,
}

/// The shared keys of a kind's config struct.
pub trait CommonKeys {
    fn common(&self) -> ProviderCommon<'_>;
}

/// A secret an adapter reads: the config key naming its environment variable (`api_key_env`)
/// and that variable, configured or the kind's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVar<'a> {
    pub key: &'static str,
    pub var: &'a str,
}

impl<'a> SecretVar<'a> {
    fn new(key: &'static str, configured: &'a Option<String>, default_var: &'static str) -> Self {
        Self {
            key,
            var: configured.as_deref().unwrap_or(default_var),
        }
    }
}

/// Defines a provider config struct: the shared keys (serde cannot `flatten` them into a struct
/// that denies unknown fields) followed by the kind's own keys.
macro_rules! provider_config {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub name: String,
            /// Lower is tried first.
            #[serde(default = "default_priority")]
            pub priority: i32,
            #[serde(default = "default_true")]
            pub enabled: bool,
            /// The provider's API root; point it at a sandbox or at `smsgate sim`.
            #[serde(default)]
            pub base_url: Option<String>,
            /// Country calling codes this provider may serve; empty: its kind's default.
            #[serde(default)]
            pub countries: Vec<String>,
            /// Per-attempt timeout for this provider, overriding `routing.attempt_timeout_ms`.
            #[serde(default)]
            pub timeout_ms: Option<u64>,
            /// Throughput cap (messages per second) for this provider.
            #[serde(default)]
            pub max_per_second: Option<u32>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl CommonKeys for $name {
            fn common(&self) -> ProviderCommon<'_> {
                ProviderCommon {
                    name: &self.name,
                    priority: self.priority,
                    enabled: self.enabled,
                    base_url: self.base_url.as_deref(),
                    countries: &self.countries,
                    timeout_ms: self.timeout_ms,
                    max_per_second: self.max_per_second,
                }
            }
        }
    };
}

/// `$body` with `$c` bound to the kind's config struct, whatever the kind: the shared keys are
/// fields of every struct.
macro_rules! each_kind {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            Self::TwoFactor($c) => $body,
            Self::Twilio($c) => $body,
            Self::Vonage($c) => $body,
            Self::Msg91($c) => $body,
            Self::Textlocal($c) => $body,
            Self::Plivo($c) => $body,
            Self::Fast2sms($c) => $body,
            Self::Http($c) => $body,
            Self::Console($c) => $body,
        }
    };
}

fn default_priority() -> i32 {
    100
}

fn default_true() -> bool {
    true
}

provider_config! {
    /// `two_factor`: 2Factor.in.
    pub struct TwoFactorConfig {
        #[serde(default)]
        pub api_key_env: Option<String>,
        #[serde(default)]
        pub sender_id: Option<String>,
        #[serde(default)]
        pub template: Option<String>,
        /// `autogen` (2Factor makes and checks the code) or `local`.
        #[serde(default)]
        pub otp_mode: Option<String>,
    }
}

impl TwoFactorConfig {
    pub fn api_key(&self) -> SecretVar<'_> {
        SecretVar::new("api_key_env", &self.api_key_env, "TWO_FACTOR_API_KEY")
    }
}

provider_config! {
    /// `twilio`: Twilio Messaging, or Twilio Verify for OTPs.
    pub struct TwilioConfig {
        #[serde(default)]
        pub account_sid_env: Option<String>,
        #[serde(default)]
        pub auth_token_env: Option<String>,
        #[serde(default)]
        pub from: Option<String>,
        /// `local` or `verify` (Twilio Verify holds the code).
        #[serde(default)]
        pub otp_mode: Option<String>,
        /// Twilio Verify service SID (`VA…`), for `otp_mode = "verify"`.
        #[serde(default)]
        pub verify_service_sid: Option<String>,
        /// Twilio Verify API root (default `https://verify.twilio.com`).
        #[serde(default)]
        pub verify_base_url: Option<String>,
    }
}

impl TwilioConfig {
    pub fn account_sid(&self) -> SecretVar<'_> {
        SecretVar::new("account_sid_env", &self.account_sid_env, "TWILIO_ACCOUNT_SID")
    }

    pub fn auth_token(&self) -> SecretVar<'_> {
        SecretVar::new("auth_token_env", &self.auth_token_env, "TWILIO_AUTH_TOKEN")
    }
}

provider_config! {
    /// `vonage`: Vonage (Nexmo) SMS API.
    pub struct VonageConfig {
        #[serde(default)]
        pub api_key_env: Option<String>,
        #[serde(default)]
        pub api_secret_env: Option<String>,
        #[serde(default)]
        pub from: Option<String>,
    }
}

impl VonageConfig {
    pub fn api_key(&self) -> SecretVar<'_> {
        SecretVar::new("api_key_env", &self.api_key_env, "VONAGE_API_KEY")
    }

    pub fn api_secret(&self) -> SecretVar<'_> {
        SecretVar::new("api_secret_env", &self.api_secret_env, "VONAGE_API_SECRET")
    }
}

provider_config! {
    /// `msg91`: MSG91's OTP API.
    pub struct Msg91Config {
        #[serde(default)]
        pub api_key_env: Option<String>,
        /// The OTP template id.
        #[serde(default)]
        pub template_id: Option<String>,
        /// `local` or `autogen` (MSG91 makes and checks the code).
        #[serde(default)]
        pub otp_mode: Option<String>,
    }
}

impl Msg91Config {
    pub fn auth_key(&self) -> SecretVar<'_> {
        SecretVar::new("api_key_env", &self.api_key_env, "MSG91_AUTH_KEY")
    }
}

provider_config! {
    /// `textlocal`: Textlocal.
    pub struct TextlocalConfig {
        #[serde(default)]
        pub api_key_env: Option<String>,
        #[serde(default)]
        pub sender_id: Option<String>,
    }
}

impl TextlocalConfig {
    pub fn api_key(&self) -> SecretVar<'_> {
        SecretVar::new("api_key_env", &self.api_key_env, "TEXTLOCAL_API_KEY")
    }
}

provider_config! {
    /// `plivo`: Plivo.
    pub struct PlivoConfig {
        #[serde(default)]
        pub auth_id_env: Option<String>,
        #[serde(default)]
        pub auth_token_env: Option<String>,
        #[serde(default)]
        pub from: Option<String>,
    }
}

impl PlivoConfig {
    pub fn auth_id(&self) -> SecretVar<'_> {
        SecretVar::new("auth_id_env", &self.auth_id_env, "PLIVO_AUTH_ID")
    }

    pub fn auth_token(&self) -> SecretVar<'_> {
        SecretVar::new("auth_token_env", &self.auth_token_env, "PLIVO_AUTH_TOKEN")
    }
}

provider_config! {
    /// `fast2sms`: Fast2SMS.
    pub struct Fast2smsConfig {
        #[serde(default)]
        pub api_key_env: Option<String>,
        #[serde(default)]
        pub sender_id: Option<String>,
        /// DLT message id (`route = "dlt"`).
        #[serde(default)]
        pub template_id: Option<String>,
        /// `otp`, `dlt` or `q`.
        #[serde(default)]
        pub route: Option<String>,
    }
}

impl Fast2smsConfig {
    pub fn api_key(&self) -> SecretVar<'_> {
        SecretVar::new("api_key_env", &self.api_key_env, "FAST2SMS_API_KEY")
    }
}

provider_config! {
    /// `http`: a provider described entirely by its `[providers.http]` table.
    pub struct HttpConfig {
        /// The variable holding the `{secret}` placeholder's value; there is no default.
        #[serde(default)]
        pub api_key_env: Option<String>,
        /// Request and answer rules.
        #[serde(default)]
        pub http: Option<HttpSpec>,
    }
}

impl HttpConfig {
    pub fn api_key(&self) -> Option<SecretVar<'_>> {
        self.api_key_env.as_deref().map(|var| SecretVar { key: "api_key_env", var })
    }
}

provider_config! {
    /// `console`: development only; writes each message, OTP codes included, to the log.
    pub struct ConsoleConfig {}
}

impl ProviderConfig {
    /// The `kind` key of this entry (`two_factor`), as in `providers.toml` and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TwoFactor(_) => "two_factor",
            Self::Twilio(_) => "twilio",
            Self::Vonage(_) => "vonage",
            Self::Msg91(_) => "msg91",
            Self::Textlocal(_) => "textlocal",
            Self::Plivo(_) => "plivo",
            Self::Fast2sms(_) => "fast2sms",
            Self::Http(_) => "http",
            Self::Console(_) => "console",
        }
    }

    pub fn common(&self) -> ProviderCommon<'_> {
        match self {
            Self::TwoFactor(c) => c.common(),
            Self::Twilio(c) => c.common(),
            Self::Vonage(c) => c.common(),
            Self::Msg91(c) => c.common(),
            Self::Textlocal(c) => c.common(),
            Self::Plivo(c) => c.common(),
            Self::Fast2sms(c) => c.common(),
            Self::Http(c) => c.common(),
            Self::Console(c) => c.common(),
        }
    }

    pub fn name(&self) -> &str {
        self.common().name
    }

    /// The throughput cap: the configured `max_per_second`, else the kind's documented limit
    /// (2Factor allows 200 requests/s per account); other kinds are uncapped unless configured.
    pub fn max_per_second(&self) -> Option<u32> {
        let documented = match self {
            Self::TwoFactor(_) => Some(200),
            _ => None,
        };
        self.common().max_per_second.or(documented)
    }

    /// Every secret this entry's adapter reads, with the variable it reads it from.
    pub fn secrets(&self) -> Vec<SecretVar<'_>> {
        match self {
            Self::TwoFactor(c) => vec![c.api_key()],
            Self::Twilio(c) => vec![c.account_sid(), c.auth_token()],
            Self::Vonage(c) => vec![c.api_key(), c.api_secret()],
            Self::Msg91(c) => vec![c.auth_key()],
            Self::Textlocal(c) => vec![c.api_key()],
            Self::Plivo(c) => vec![c.auth_id(), c.auth_token()],
            Self::Fast2sms(c) => vec![c.api_key()],
            Self::Http(c) => c.api_key().into_iter().collect(),
            Self::Console(_) => Vec::new(),
        }
    }

    /// The shared `timeout_ms` key, to change in place (tests adjust a parsed or built entry).
    pub fn timeout_ms_mut(&mut self) -> &mut Option<u64> {
        each_kind!(self, c => &mut c.timeout_ms)
    }

    /// The shared `enabled` key, to change in place.
    pub fn enabled_mut(&mut self) -> &mut bool {
        each_kind!(self, c => &mut c.enabled)
    }

    /// The shared `base_url` key, to change in place.
    pub fn base_url_mut(&mut self) -> &mut Option<String> {
        each_kind!(self, c => &mut c.base_url)
    }

    /// The shared `countries` key, to change in place.
    pub fn countries_mut(&mut self) -> &mut Vec<String> {
        each_kind!(self, c => &mut c.countries)
    }

    /// Whether this is the development `console` provider, which delivers nothing.
    pub fn is_console(&self) -> bool {
        matches!(self, Self::Console(_))
    }
}
