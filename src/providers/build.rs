//! From a provider's configuration to a running adapter: one exhaustive `match` on the kind.

use std::sync::Arc;

use secrecy::SecretString;

use super::{console, fast2sms, http, msg91, plivo, textlocal, twilio, two_factor, vonage, Provider};
use crate::config::{ProviderCommon, ProviderConfig, SecretVar};

/// Why a configured provider could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A secret's environment variable is unset or empty: the provider is skipped.
    #[error("provider `{provider}`: secret environment variable {var} is not set")]
    MissingSecret { provider: String, var: String },
    /// No provider can be used and the gateway is not a development one (it has a database).
    #[error("no SMS provider is usable ({skipped}); only a gateway without DATABASE_URL falls back to the console provider")]
    NoneUsable { skipped: String },
    /// A key is missing or wrong: the configuration is refused.
    #[error("provider `{provider}`: `{key}` {reason}")]
    Invalid { provider: String, key: String, reason: String },
}

/// Where adapters read secrets from: the process environment in production, a map in tests.
pub type SecretLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What every adapter needs besides its own config: the shared keys, an HTTP client, secrets.
pub struct BuildContext<'a> {
    pub common: ProviderCommon<'a>,
    pub http: super::Clients,
    pub secrets: SecretLookup<'a>,
}

impl BuildContext<'_> {
    /// Reads `secret` from the environment variable its config key names (or the kind's default).
    pub fn secret(&self, secret: SecretVar<'_>) -> Result<SecretString, BuildError> {
        if secret.var.is_empty() {
            return Err(self.invalid(secret.key, "must name an environment variable"));
        }
        match (self.secrets)(secret.var) {
            Some(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            _ => Err(BuildError::MissingSecret {
                provider: self.common.name.to_string(),
                var: secret.var.to_string(),
            }),
        }
    }

    /// A required plain (non-secret) key.
    pub fn required<'v>(&self, key: &str, value: Option<&'v str>) -> Result<&'v str, BuildError> {
        match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(self.invalid(key, "is required for this kind of provider")),
        }
    }

    /// The configured base URL without a trailing slash, or the provider's public one.
    pub fn base_url(&self, default: &str) -> Result<String, BuildError> {
        let raw = self.common.base_url.unwrap_or(default);
        let parsed = url::Url::parse(raw).map_err(|e| self.invalid("base_url", &format!("is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(self.invalid("base_url", "must be an http or https URL"));
        }
        Ok(raw.trim_end_matches('/').to_string())
    }

    pub fn invalid(&self, key: &str, reason: &str) -> BuildError {
        BuildError::Invalid {
            provider: self.common.name.to_string(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The configured countries, or `default` when none are listed.
    pub fn countries(&self, default: &[&str]) -> Vec<String> {
        if self.common.countries.is_empty() {
            default.iter().map(|c| c.to_string()).collect()
        } else {
            self.common.countries.to_vec()
        }
    }
}

/// Builds the adapter of `config`'s kind.
pub fn build(config: &ProviderConfig, http: super::Clients, secrets: SecretLookup<'_>) -> Result<Arc<dyn Provider>, BuildError> {
    let ctx = BuildContext {
        common: config.common(),
        http,
        secrets,
    };
    let provider: Arc<dyn Provider> = match config {
        ProviderConfig::TwoFactor(c) => Arc::new(two_factor::TwoFactor::build(c, &ctx)?),
        ProviderConfig::Twilio(c) => Arc::new(twilio::Twilio::build(c, &ctx)?),
        ProviderConfig::Vonage(c) => Arc::new(vonage::Vonage::build(c, &ctx)?),
        ProviderConfig::Msg91(c) => Arc::new(msg91::Msg91::build(c, &ctx)?),
        ProviderConfig::Textlocal(c) => Arc::new(textlocal::Textlocal::build(c, &ctx)?),
        ProviderConfig::Plivo(c) => Arc::new(plivo::Plivo::build(c, &ctx)?),
        ProviderConfig::Fast2sms(c) => Arc::new(fast2sms::Fast2Sms::build(c, &ctx)?),
        ProviderConfig::Http(c) => Arc::new(http::HttpProvider::build(c, &ctx)?),
        ProviderConfig::Console(c) => Arc::new(console::Console::build(c, &ctx)),
    };
    Ok(provider)
}
