//! `twilio`: texts and smsgate's own OTPs through the Messages API, or OTPs made and checked by
//! Twilio Verify (`otp_mode = "verify"`). Both use basic auth AccountSid:AuthToken.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{
    exchange, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError,
};
use super::{ProviderReceipt, ReceiptError, ReceiptRequest};
use crate::config::TwilioConfig;
use crate::hooks::receipts;
use crate::store::receipts::DeliveryStatus;

const DEFAULT_BASE: &str = "https://api.twilio.com";
const DEFAULT_VERIFY_BASE: &str = "https://verify.twilio.com";

/// Who makes the code of an OTP sent through Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OtpMode {
    /// smsgate's code in a Messages API text.
    Local,
    /// Twilio Verify makes the code and checks it.
    Verify { service_sid: String },
}

pub struct Twilio {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    base: String,
    verify_base: String,
    account_sid: SecretString,
    auth_token: SecretString,
    /// A sender number, or a Messaging Service (`MG…`). Optional in Verify mode only.
    from: Option<String>,
    mode: OtpMode,
}

impl Twilio {
    pub fn build(config: &TwilioConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let mode = match config.otp_mode.as_deref() {
            None | Some("local") => OtpMode::Local,
            Some("verify") => OtpMode::Verify {
                service_sid: ctx
                    .required("verify_service_sid", config.verify_service_sid.as_deref())?
                    .trim()
                    .to_string(),
            },
            Some(_) => return Err(ctx.invalid("otp_mode", "must be `local` or `verify`")),
        };
        let from = match mode {
            OtpMode::Local => Some(ctx.required("from", config.from.as_deref())?),
            OtpMode::Verify { .. } => config.from.as_deref().filter(|f| !f.trim().is_empty()),
        };
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: match mode {
                    OtpMode::Local => OtpSupport::Local,
                    OtpMode::Verify { .. } => OtpSupport::ProviderHeld,
                },
                text: from.is_some(),
                template: false,
                countries: ctx.countries(&[]),
            },
            http: ctx.http.clone(),
            base: ctx.base_url(DEFAULT_BASE)?,
            verify_base: verify_base_url(config, ctx)?,
            account_sid: ctx.secret(config.account_sid())?,
            auth_token: ctx.secret(config.auth_token())?,
            from: from.map(|f| f.trim().to_string()),
            mode,
        })
    }

    async fn post(&self, url: String, form: &[(&str, &str)]) -> Result<Body, ProviderError> {
        let request = self
            .http
            .post(url)
            .basic_auth(self.account_sid.expose_secret(), Some(self.auth_token.expose_secret()))
            .form(form);
        exchange(request).await
    }

    async fn send_message(&self, sms: &OutboundSms, text: &str) -> Result<Accepted, ProviderError> {
        let from = self
            .from
            .as_deref()
            .ok_or_else(|| ProviderError::misconfigured(None, "Twilio Messages needs `from`"))?;
        let sender_key = if from.starts_with("MG") { "MessagingServiceSid" } else { "From" };
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base,
            self.account_sid.expose_secret()
        );
        let form = [("To", sms.to.e164()), (sender_key, from), ("Body", text)];
        let body = self.post(url, &form).await?;
        Ok(Accepted::message(Some(classify(&body)?), body.status))
    }

    async fn start_verification(&self, sms: &OutboundSms, service_sid: &str) -> Result<Accepted, ProviderError> {
        let url = format!("{}/v2/Services/{service_sid}/Verifications", self.verify_base);
        let form = [("To", sms.to.e164()), ("Channel", "sms")];
        let body = self.post(url, &form).await?;
        Ok(Accepted {
            reference: Some(classify(&body)?),
            provider_verifies: true,
            http_status: body.status,
        })
    }
}

/// `verify_base_url`, checked as `base_url` is, without a trailing slash.
fn verify_base_url(config: &TwilioConfig, ctx: &BuildContext<'_>) -> Result<String, BuildError> {
    let raw = config.verify_base_url.as_deref().unwrap_or(DEFAULT_VERIFY_BASE);
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(raw.trim_end_matches('/').into()),
        _ => Err(ctx.invalid("verify_base_url", "must be an http or https URL")),
    }
}

#[async_trait]
impl Provider for Twilio {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name, kind = sms.body.kind()))]
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        match (&sms.body, &self.mode) {
            (MessageBody::Otp { .. }, OtpMode::Verify { service_sid }) => self.start_verification(sms, service_sid).await,
            (MessageBody::Otp { text, .. } | MessageBody::Text { text }, _) => self.send_message(sms, text).await,
            (MessageBody::Template { .. }, _) => Err(ProviderError::misconfigured(None, "Twilio has no provider templates")),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name))]
    async fn verify(&self, reference: &str, code: &str) -> Result<bool, ProviderError> {
        let OtpMode::Verify { service_sid } = &self.mode else {
            return Err(ProviderError::misconfigured(
                None,
                format!("{} does not hold codes (otp_mode is not `verify`)", self.name),
            ));
        };
        let url = format!("{}/v2/Services/{service_sid}/VerificationCheck", self.verify_base);
        // A reference in E.164 (after a timed-out send) checks the newest verification for that number.
        let by = if reference.starts_with('+') { "To" } else { "VerificationSid" };
        let body = self.post(url, &[(by, reference), ("Code", code)]).await?;

        classify_check(&body)
    }

    /// A `StatusCallback`: form parameters signed with `X-Twilio-Signature` under the auth token.
    fn receipt(&self, req: &ReceiptRequest<'_>) -> Result<ProviderReceipt, ReceiptError> {
        let params = req.form();
        let signature = req.header("x-twilio-signature").ok_or(ReceiptError::Unauthenticated)?;
        let expected = receipts::twilio_signature(self.auth_token.expose_secret(), req.url, &params);
        if !receipts::same(signature, &expected) {
            return Err(ReceiptError::Unauthenticated);
        }
        receipt_from(&params)
    }
}

/// Reads a `StatusCallback`'s `MessageSid`, `MessageStatus` and `ErrorCode`.
pub(crate) fn receipt_from(params: &[(String, String)]) -> Result<ProviderReceipt, ReceiptError> {
    let field = |k: &str| receipts::param(params, k).map(str::trim).filter(|v| !v.is_empty());
    let reference = field("MessageSid")
        .or_else(|| field("SmsSid"))
        .ok_or_else(|| ReceiptError::Malformed("`MessageSid` is missing".into()))?;
    let status = field("MessageStatus").or_else(|| field("SmsStatus")).unwrap_or_default();
    Ok(ProviderReceipt {
        reference: reference.to_string(),
        status: match status {
            "delivered" => Some(DeliveryStatus::Delivered),
            "undelivered" => Some(DeliveryStatus::Undelivered),
            "failed" => Some(DeliveryStatus::Failed),
            // queued, sending, sent, accepted, scheduled, read: not final.
            _ => None,
        },
        error_code: field("ErrorCode").filter(|c| *c != "0").map(str::to_string),
        at: None,
    })
}

/// A Messages or Verifications answer: the created resource's `sid`, or the failure's class.
pub(crate) fn classify(body: &Body) -> Result<String, ProviderError> {
    if (200..300).contains(&body.status) {
        return match body.str_field("sid") {
            Some(sid) if !sid.is_empty() => Ok(sid.to_string()),
            _ => {
                body.json_or_unavailable()?;
                Err(ProviderError::unavailable(
                    Some(body.status),
                    format!("HTTP {} without a sid", body.status),
                ))
            }
        };
    }
    Err(classify_error(body))
}

/// A VerificationCheck answer: approved, a wrong / expired / spent code, or a failure.
pub(crate) fn classify_check(body: &Body) -> Result<bool, ProviderError> {
    if (200..300).contains(&body.status) {
        let json = body.json_or_unavailable()?;
        return match json.get("valid").and_then(|v| v.as_bool()) {
            Some(valid) => Ok(valid && body.str_field("status") == Some("approved")),
            None => Err(ProviderError::unavailable(
                Some(body.status),
                "VerificationCheck answer without `valid`",
            )),
        };
    }
    match error_code(body) {
        // 20404: the verification expired, was already approved or never existed.
        // 60202: too many checks; the code can no longer be right.
        Some(20404 | 60202) if body.status < 500 => Ok(false),
        _ => Err(classify_error(body)),
    }
}

/// Twilio's numeric `code`, as a number or a numeric string.
fn error_code(body: &Body) -> Option<i64> {
    let code = body.json.as_ref()?.get("code")?;
    code.as_i64().or_else(|| code.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The class of a non-2xx answer from the Messages or Verify APIs.
fn classify_error(body: &Body) -> ProviderError {
    if let Some(err) = body.throttled_or_server_error() {
        return err;
    }
    let status = Some(body.status);
    let Some(code) = error_code(body) else {
        return match body.json_or_unavailable() {
            Err(e) => e,
            Ok(_) => ProviderError::unavailable(status, format!("HTTP {} without a code", body.status)),
        };
    };
    let message = body.str_field("message").unwrap_or_default();
    let details = format!("Twilio {code}: {message}");
    match code {
        20429 | 60203 => ProviderError::throttled(status, body.retry_after, details),
        // Bad credentials or unknown account/service; sender or region not set up; trial limits.
        20003 | 20404 | 21408 | 21606 | 21212 | 21659 | 21219 | 60223 => ProviderError::misconfigured(status, details),
        // This recipient or this message is bad.
        21211 | 21214 | 21610 | 21612 | 21614 | 21602 | 21617 | 60200 | 60410 => ProviderError::rejected(status, code.to_string(), message),
        _ => ProviderError::unavailable(status, details),
    }
}

#[cfg(test)]
#[path = "twilio_tests.rs"]
mod tests;
