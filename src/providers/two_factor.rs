//! `two_factor`: 2Factor.in. OTPs go out as AUTOGEN (2Factor makes and checks the code) or as
//! smsgate's own code; DLT templates go through TSMS. The API key travels in the URL path, so no
//! URL or transport error text may reach a `ProviderError`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub(crate) use super::wire::TemplateOf;

use super::{
    exchange, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError,
};
use super::{ProviderReceipt, ReceiptError, ReceiptRequest};
use crate::config::TwoFactorConfig;
use crate::hooks::receipts;
use crate::store::receipts::DeliveryStatus;

const DEFAULT_BASE: &str = "https://2factor.in";

/// Who makes the code of an OTP sent through 2Factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtpMode {
    /// `AUTOGEN`: 2Factor makes the code and checks it with `VERIFY`.
    Autogen,
    /// smsgate's code is sent as a custom OTP and smsgate checks it.
    Local,
}

pub struct TwoFactor {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    base: Url,
    api_key: SecretString,
    mode: OtpMode,
    /// The OTP template; without one 2Factor uses the account's default.
    template: Option<String>,
    /// The DLT sender id, needed for TSMS templates only.
    sender_id: Option<String>,
}

impl TwoFactor {
    pub fn build(config: &TwoFactorConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let mode = match config.otp_mode.as_deref() {
            None | Some("autogen") => OtpMode::Autogen,
            Some("local") => OtpMode::Local,
            Some(_) => return Err(ctx.invalid("otp_mode", "must be `autogen` or `local`")),
        };
        let base = Url::parse(&ctx.base_url(DEFAULT_BASE)?).map_err(|e| ctx.invalid("base_url", &format!("is not a URL: {e}")))?;
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: match mode {
                    OtpMode::Autogen => OtpSupport::ProviderHeld,
                    OtpMode::Local => OtpSupport::Local,
                },
                text: false,
                template: true,
                countries: ctx.countries(&["91"]),
            },
            http: ctx.http.clone(),
            base,
            api_key: ctx.secret(config.api_key())?,
            mode,
            template: non_empty(&config.template),
            sender_id: non_empty(&config.sender_id),
        })
    }

    /// `{base}/API/V1/{api_key}/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["API", "V1", self.api_key.expose_secret()])
                .extend(segments);
        }
        url
    }

    fn otp_url(&self, sms: &OutboundSms, code: &str) -> Url {
        let code_segment = match self.mode {
            OtpMode::Autogen => "AUTOGEN",
            OtpMode::Local => code,
        };
        let mut segments = vec!["SMS", sms.to.digits(), code_segment];
        segments.extend(self.template.as_deref());
        self.url(&segments)
    }
}

#[async_trait]
impl Provider for TwoFactor {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name, kind = sms.body.kind()))]
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let (request, provider_verifies) = match &sms.body {
            MessageBody::Otp { code, .. } => (self.http.get(self.otp_url(sms, code)), self.mode == OtpMode::Autogen),
            MessageBody::Template { name, vars } => {
                let sender_id = self
                    .sender_id
                    .as_deref()
                    .ok_or_else(|| ProviderError::misconfigured(None, "TSMS templates need `sender_id`"))?;
                let mut form = vec![
                    ("From".to_string(), sender_id.to_string()),
                    ("To".to_string(), sms.to.digits().to_string()),
                    ("TemplateName".to_string(), name.clone()),
                ];
                form.extend(vars.iter().enumerate().map(|(i, v)| (format!("VAR{}", i + 1), v.clone())));
                let url = self.url(&["ADDON_SERVICES", "SEND", "TSMS"]);
                (self.http.post(url).form(&form), false)
            }
            MessageBody::Text { .. } => return Err(ProviderError::misconfigured(None, "2Factor does not send plain text")),
        };
        let body = exchange(request).await?;
        let named_by = match sms.body {
            MessageBody::Template { .. } => TemplateOf::Request,
            _ => TemplateOf::Config,
        };
        let reference = classify_send(&body, named_by)?;
        Ok(Accepted {
            reference: Some(reference),
            provider_verifies,
            http_status: body.status,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name))]
    async fn verify(&self, reference: &str, code: &str) -> Result<bool, ProviderError> {
        // A reference in E.164 (after a timed-out send) is checked by number with VERIFY3.
        let url = match reference.strip_prefix('+') {
            Some(digits) => self.url(&["SMS", "VERIFY3", digits, code]),
            None => self.url(&["SMS", "VERIFY", reference, code]),
        };

        let body = exchange(self.http.get(url)).await?;
        classify_verify(&body)
    }

    /// A delivery callback (form POST). 2Factor does not sign them: the callback URL set in its
    /// control panel carries `?token=` (`[receipts] url_token`).
    fn receipt(&self, req: &ReceiptRequest<'_>) -> Result<ProviderReceipt, ReceiptError> {
        if !receipts::url_token_matches(req.url, req.secrets.url_token.as_ref()) {
            return Err(ReceiptError::Unauthenticated);
        }
        receipt_from(&req.form())
    }
}

/// Reads a delivery callback: `SessionId` and `Status` (OTP callbacks) or `SmsStatus` with
/// `ErrorId`/`ErrorName` (transactional SMS callbacks).
pub(crate) fn receipt_from(params: &[(String, String)]) -> Result<ProviderReceipt, ReceiptError> {
    let field = |k: &str| receipts::param(params, k).map(str::trim).filter(|v| !v.is_empty());
    let reference = field("SessionId").ok_or_else(|| ReceiptError::Malformed("`SessionId` is missing".into()))?;
    let status = field("SmsStatus")
        .or_else(|| field("Status"))
        .unwrap_or_default()
        .to_ascii_uppercase();
    let status = match status.as_str() {
        "DELIVERED" => Some(DeliveryStatus::Delivered),
        "UNDELIVERED" | "EXPIRED" => Some(DeliveryStatus::Undelivered),
        "FAILED" | "REJECTED" => Some(DeliveryStatus::Failed),
        _ => None,
    };
    let error_code = match field("ErrorId") {
        Some("0") => None,
        Some(id) => Some(field("ErrorName").map_or_else(|| id.to_string(), |n| format!("{id} {n}"))),
        None => status
            .filter(|s| *s != DeliveryStatus::Delivered)
            .map(|_| field("Status").unwrap_or_default().to_string()),
    };
    Ok(ProviderReceipt {
        reference: reference.to_string(),
        status,
        error_code,
        at: None,
    })
}

/// 2Factor's `{"Status": …, "Details": …}`, before it is judged.
enum Answer {
    Success(String),
    Error(String),
}

/// Reads 2Factor's answer; 429, 5xx and anything that is not its JSON shape are errors here.
fn parse(body: &Body, template_of: TemplateOf) -> Result<Answer, ProviderError> {
    let status = Some(body.status);
    if body.status >= 500 {
        return Err(ProviderError::unavailable(status, format!("HTTP {}", body.status)));
    }
    let details = body.str_field("Details").unwrap_or_default().to_string();
    match body.str_field("Status") {
        Some(s) if s.eq_ignore_ascii_case("success") && body.status < 300 => Ok(Answer::Success(details)),
        Some(s) if s.eq_ignore_ascii_case("error") => Ok(Answer::Error(details)),
        _ if body.status == 429 => Err(classify_error(body, "HTTP 429", template_of)),
        _ => {
            body.json_or_unavailable()?;
            Err(ProviderError::unavailable(
                status,
                format!("HTTP {} without a 2Factor status", body.status),
            ))
        }
    }
}

/// 2Factor's words for a template it does not know (TSMS or OTP).
const UNKNOWN_TEMPLATE: &[&str] = &["template name not found", "invalid template"];

/// The class of a 2Factor `Details` text (any HTTP 429 is throttling whatever it says).
fn classify_error(body: &Body, details: &str, template_of: TemplateOf) -> ProviderError {
    let status = Some(body.status);
    let d = details.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| d.contains(n));
    if body.status == 429 || any(&["rate limit exceeded", "too many requests"]) {
        ProviderError::throttled(status, body.retry_after, details)
    } else if any(UNKNOWN_TEMPLATE) && template_of == TemplateOf::Request {
        ProviderError::rejected(status, "unknown_template", details)
    } else if any(&[
        "invalid api key",
        "api key not found",
        "insufficient balance",
        "sender id not approved",
    ]) || any(UNKNOWN_TEMPLATE)
    {
        ProviderError::misconfigured(status, details)
    } else if any(&["invalid phone number", "phone number blocked", "dnd number"]) {
        ProviderError::rejected(status, details, details)
    } else {
        ProviderError::unavailable(status, format!("2Factor: {details}"))
    }
}

/// A send answer: the session or message id, or the class of the failure.
pub(crate) fn classify_send(body: &Body, template_of: TemplateOf) -> Result<String, ProviderError> {
    match parse(body, template_of)? {
        Answer::Success(id) if !id.is_empty() => Ok(id),
        Answer::Success(_) => Err(ProviderError::unavailable(Some(body.status), "success without Details")),
        Answer::Error(details) => Err(classify_error(body, &details, template_of)),
    }
}

/// A VERIFY answer: matched, a wrong / expired / unknown session's code, or a failure.
pub(crate) fn classify_verify(body: &Body) -> Result<bool, ProviderError> {
    const NOT_VALID: &[&str] = &["otp mismatch", "otp expired", "invalid session", "session expired"];
    match parse(body, TemplateOf::Config)? {
        Answer::Success(d) if d.eq_ignore_ascii_case("otp matched") => Ok(true),
        Answer::Success(d) => Err(ProviderError::unavailable(
            Some(body.status),
            format!("2Factor VERIFY success with unexpected Details: {d}"),
        )),
        Answer::Error(d) if NOT_VALID.contains(&d.trim().to_ascii_lowercase().as_str()) => Ok(false),
        Answer::Error(d) => Err(classify_error(body, &d, TemplateOf::Config)),
    }
}

#[cfg(test)]
#[path = "two_factor_tests.rs"]
mod tests;
