//! `vonage`: Vonage (Nexmo) SMS API, one form POST to `/sms/json` for texts and smsgate's own
//! OTPs. Vonage answers HTTP 200 even for failures; each message part carries its own status.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{
    exchange, scalar_text, Accepted, Body, BuildContext, BuildError, Capabilities, OtpSupport, OutboundSms, Provider, ProviderError,
};
use crate::config::VonageConfig;

const DEFAULT_BASE: &str = "https://rest.nexmo.com";

/// GSM 03.38 basic character set and its extension table (sent as two septets).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

pub struct Vonage {
    name: String,
    capabilities: Capabilities,
    http: reqwest::Client,
    base: String,
    api_key: SecretString,
    api_secret: SecretString,
    from: String,
}

impl Vonage {
    pub fn build(config: &VonageConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: false,
                countries: ctx.countries(&[]),
            },
            http: ctx.http.clone(),
            base: ctx.base_url(DEFAULT_BASE)?,
            api_key: ctx.secret(config.api_key())?,
            api_secret: ctx.secret(config.api_secret())?,
            from: ctx.required("from", config.from.as_deref())?.trim().to_string(),
        })
    }
}

#[async_trait]
impl Provider for Vonage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    #[tracing::instrument(skip_all, fields(provider = %self.name, kind = sms.body.kind()))]
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let text = sms
            .body
            .text()
            .ok_or_else(|| ProviderError::misconfigured(None, "Vonage has no provider templates"))?;
        let mut form = vec![
            ("api_key", self.api_key.expose_secret()),
            ("api_secret", self.api_secret.expose_secret()),
            ("from", self.from.as_str()),
            ("to", sms.to.digits()),
            ("text", text),
        ];
        if !is_gsm7(text) {
            form.push(("type", "unicode"));
        }
        let body = exchange(self.http.post(format!("{}/sms/json", self.base)).form(&form)).await?;
        Ok(Accepted::message(classify(&body)?, body.status))
    }
}

/// Whether every character of `text` has a GSM-7 encoding (otherwise Vonage needs `unicode`).
pub(crate) fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| GSM7_BASIC.contains(c) || GSM7_EXTENSION.contains(c))
}

/// An `/sms/json` answer: the first part's `message-id` when every part has status `0`, else the
/// class of the first failing part.
pub(crate) fn classify(body: &Body) -> Result<Option<String>, ProviderError> {
    if let Some(err) = body.throttled_or_server_error() {
        return Err(err);
    }
    let http_status = Some(body.status);
    let json = body.json_or_unavailable()?;
    let parts = match json.get("messages").and_then(|m| m.as_array()) {
        Some(parts) if !parts.is_empty() => parts,
        _ => {
            return Err(ProviderError::unavailable(
                http_status,
                format!("HTTP {} without messages", body.status),
            ))
        }
    };
    for part in parts {
        // Vonage documents `status` as a string; a number is read the same way.
        let Some(status) = part.get("status").and_then(scalar_text) else {
            return Err(ProviderError::unavailable(http_status, "message part without status"));
        };
        let status = status.trim();
        if status != "0" {
            let text = part.get("error-text").and_then(|t| t.as_str());
            return Err(classify_status(body, status, text.unwrap_or_default()));
        }
    }
    let id = parts[0].get("message-id").and_then(|i| i.as_str());
    Ok(id.map(str::to_string))
}

/// The class of one failed part's `status`.
fn classify_status(body: &Body, status: &str, error_text: &str) -> ProviderError {
    let http_status = Some(body.status);
    let details = format!("Vonage status {status}: {error_text}");
    match status {
        "1" | "10" => ProviderError::throttled(http_status, body.retry_after, details),
        "3" | "6" | "7" | "12" | "22" | "33" => ProviderError::rejected(http_status, status, error_text),
        "2" | "4" | "8" | "9" | "11" | "14" | "15" | "23" | "29" | "32" => ProviderError::misconfigured(http_status, details),
        _ => ProviderError::unavailable(http_status, details),
    }
}

#[cfg(test)]
#[path = "vonage_tests.rs"]
mod tests;
