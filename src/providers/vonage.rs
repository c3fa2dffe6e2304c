//! `vonage`: Vonage (Nexmo) SMS API, one form POST to `/sms/json` for texts and smsgate's own
//! OTPs. Vonage answers HTTP 200 even for failures; each message part carries its own status.

use async_trait::async_trait;

use super::{ProviderReceipt, ReceiptError, ReceiptRequest};
use crate::hooks::receipts;
use crate::store::receipts::DeliveryStatus;
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
    http: super::Clients,
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

    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name, kind = sms.body.kind()))]
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

    /// A delivery receipt (form, query or JSON parameters) signed with `sig` under the account's
    /// signature secret (`[receipts] vonage_signature_secret`); without one, nothing is accepted.
    fn receipt(&self, req: &ReceiptRequest<'_>) -> Result<ProviderReceipt, ReceiptError> {
        let params = if req.content_type == "application/json" {
            json_pairs(req.body)?
        } else {
            req.form()
        };
        let secret = req.secrets.vonage_signature_secret.as_ref().ok_or(ReceiptError::Unauthenticated)?;
        let sig = receipts::param(&params, "sig").ok_or(ReceiptError::Unauthenticated)?;
        let expected = receipts::vonage_signature(secret.expose_secret(), &params);
        if !receipts::same(&sig.to_ascii_uppercase(), &expected) {
            return Err(ReceiptError::Unauthenticated);
        }
        receipt_from(&params)
    }
}

/// A JSON receipt's top-level scalars as parameters (what Vonage signs).
fn json_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ReceiptError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| ReceiptError::Malformed("the body is not JSON".into()))?;
    let object = value
        .as_object()
        .ok_or_else(|| ReceiptError::Malformed("the body is not a JSON object".into()))?;
    Ok(object
        .iter()
        .filter_map(|(k, v)| super::scalar_text(v).map(|v| (k.clone(), v)))
        .collect())
}

/// Reads a DLR's `messageId`, `status`, `err-code` and `message-timestamp` (UTC).
pub(crate) fn receipt_from(params: &[(String, String)]) -> Result<ProviderReceipt, ReceiptError> {
    let field = |k: &str| receipts::param(params, k).map(str::trim).filter(|v| !v.is_empty());
    let reference = field("messageId").ok_or_else(|| ReceiptError::Malformed("`messageId` is missing".into()))?;
    let at = field("message-timestamp")
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok())
        .map(|t| t.and_utc());
    Ok(ProviderReceipt {
        reference: reference.to_string(),
        status: match field("status").unwrap_or_default() {
            "delivered" => Some(DeliveryStatus::Delivered),
            "expired" => Some(DeliveryStatus::Undelivered),
            "failed" | "rejected" => Some(DeliveryStatus::Failed),
            // accepted, buffered, unknown: not final.
            _ => None,
        },
        error_code: field("err-code").filter(|c| *c != "0").map(str::to_string),
        at,
    })
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
