//! `msg91`: MSG91's OTP API (smsgate's code, or MSG91's own code that MSG91 checks) and Flow
//! templates. The key travels in the `authkey` header; errors are `{"type":"error","message":…}`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::wire::TemplateOf;
use super::{
    exchange, scalar_text, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider,
    ProviderError,
};
use super::{ProviderReceipt, ReceiptError, ReceiptRequest};
use crate::config::Msg91Config;
use crate::hooks::receipts;
use crate::store::receipts::DeliveryStatus;

const DEFAULT_BASE: &str = "https://control.msg91.com";

pub struct Msg91 {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    base: String,
    auth_key: SecretString,
    /// The OTP template (`template_id` in the config).
    template_id: String,
    /// `otp_mode = "autogen"`: MSG91 makes the code and checks it.
    autogen: bool,
}

impl Msg91 {
    pub fn build(config: &Msg91Config, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let autogen = match config.otp_mode.as_deref().unwrap_or("local") {
            "local" => false,
            "autogen" => true,
            _ => return Err(ctx.invalid("otp_mode", "must be `local` or `autogen` for msg91")),
        };
        let template_id = ctx.required("template_id", config.template_id.as_deref())?.to_string();
        let base = ctx.base_url(DEFAULT_BASE)?;
        let auth_key = ctx.secret(config.auth_key())?;
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: if autogen { OtpSupport::ProviderHeld } else { OtpSupport::Local },
                text: false,
                template: true,
                countries: ctx.countries(&["91"]),
            },
            http: ctx.http.clone(),
            base,
            auth_key,
            template_id,
            autogen,
        })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Body, ProviderError> {
        exchange(request.header("authkey", self.auth_key.expose_secret())).await
    }
}

#[async_trait]
impl Provider for Msg91 {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let digits = sms.to.digits();
        let request = match &sms.body {
            MessageBody::Otp { code, .. } => {
                let mut query = vec![("template_id", self.template_id.as_str()), ("mobile", digits)];
                if !self.autogen {
                    query.push(("otp", code.as_str()));
                }
                self.http.post(format!("{}/api/v5/otp", self.base)).query(&query).json(&json!({}))
            }
            MessageBody::Template { name, vars } => {
                let mut recipient = Map::new();
                recipient.insert("mobiles".into(), digits.into());
                for (i, var) in vars.iter().enumerate() {
                    recipient.insert(format!("var{}", i + 1), var.as_str().into());
                }
                let flow = json!({"template_id": name, "short_url": "0", "recipients": [recipient]});
                self.http.post(format!("{}/api/v5/flow/", self.base)).json(&flow)
            }
            MessageBody::Text { .. } => {
                return Err(ProviderError::misconfigured(
                    None,
                    "msg91 sends no plain text (only OTPs and Flow templates)",
                ))
            }
        };
        let body = self.call(request).await?;
        let named_by = match sms.body {
            MessageBody::Template { .. } => TemplateOf::Request,
            _ => TemplateOf::Config,
        };
        let answer = classify_as(&body, named_by)?;
        let otp = matches!(sms.body, MessageBody::Otp { .. });
        let reference = if otp && self.autogen {
            // MSG91 verifies by mobile number, so the number is the verification reference.
            Some(digits.to_string())
        } else {
            let field = if otp { "request_id" } else { "message" };
            answer.get(field).and_then(Value::as_str).map(str::to_string)
        };
        Ok(Accepted {
            reference,
            provider_verifies: otp && self.autogen,
            http_status: body.status,
        })
    }

    async fn verify(&self, reference: &str, code: &str) -> Result<bool, ProviderError> {
        let request = self
            .http
            .get(format!("{}/api/v5/otp/verify", self.base))
            // A reference in E.164 (after a timed-out send) is the same mobile number.
            .query(&[("mobile", reference.trim_start_matches('+')), ("otp", code)]);

        classify_verify(&self.call(request).await?)
    }

    /// A push DLR. MSG91 does not sign them: the URL configured with it carries
    /// `?token=` (`[receipts] url_token`).
    fn receipt(&self, req: &ReceiptRequest<'_>) -> Result<ProviderReceipt, ReceiptError> {
        if !receipts::url_token_matches(req.url, req.secrets.url_token.as_ref()) {
            return Err(ReceiptError::Unauthenticated);
        }
        let raw = if req.content_type == "application/json" {
            req.body.to_vec()
        } else {
            let form = req.form();
            receipts::param(&form, "data").unwrap_or_default().as_bytes().to_vec()
        };
        receipt_from(&raw)
    }
}

/// Reads a push DLR: `[{"requestId", "report": [{"status", "desc", "date"}]}]` (a JSON body or the
/// `data` form field); the newest report of the first request counts. Status `1` is delivered;
/// `2` failed and `16`/`25` rejected are failures; `9` (NDNC), `17` (blocked) and `26` are
/// undelivered; anything else is not final yet.
pub(crate) fn receipt_from(raw: &[u8]) -> Result<ProviderReceipt, ReceiptError> {
    let malformed = |m: &str| ReceiptError::Malformed(m.to_string());
    let value: Value = serde_json::from_slice(raw).map_err(|_| malformed("the DLR is not JSON"))?;
    let first = match &value {
        Value::Array(items) => items.first(),
        Value::Object(_) => Some(&value),
        _ => None,
    }
    .ok_or_else(|| malformed("the DLR holds no request"))?;
    let reference = first
        .get("requestId")
        .and_then(super::scalar_text)
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| malformed("`requestId` is missing"))?;
    let report = first
        .get("report")
        .and_then(Value::as_array)
        .and_then(|r| r.last())
        .ok_or_else(|| malformed("`report` is missing"))?;
    let code = report.get("status").and_then(super::scalar_text).unwrap_or_default();
    let status = match code.as_str() {
        "1" => Some(DeliveryStatus::Delivered),
        "2" | "16" | "25" => Some(DeliveryStatus::Failed),
        "9" | "17" | "26" => Some(DeliveryStatus::Undelivered),
        _ => None,
    };
    let at = report
        .get("date")
        .and_then(Value::as_str)
        .and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M:%S").ok())
        // MSG91 stamps reports in Indian time.
        .map(|t| t.and_utc() - chrono::Duration::minutes(330));
    Ok(ProviderReceipt {
        reference: reference.trim().to_string(),
        error_code: status.filter(|s| *s != DeliveryStatus::Delivered).map(|_| code.clone()),
        status,
        at,
    })
}

/// Maps an answer to its success JSON or to the class of its error, for a call that names no
/// template of the request's (OTP send, retry, verify).
pub(crate) fn classify(body: &Body) -> Result<&Value, ProviderError> {
    classify_as(body, TemplateOf::Config)
}

/// As [`classify`]; a template MSG91 does not know is the fault of whoever named it.
pub(crate) fn classify_as(body: &Body, template_of: TemplateOf) -> Result<&Value, ProviderError> {
    if let Some(err) = body.throttled_or_server_error() {
        return Err(err);
    }
    let status = Some(body.status);
    let json = body.json_or_unavailable()?;
    let kind = json.get("type").and_then(Value::as_str).unwrap_or("");
    if kind.eq_ignore_ascii_case("success") && (200..300).contains(&body.status) {
        return Ok(json);
    }
    let message = json.get("message").and_then(Value::as_str).unwrap_or("");
    let code = json.get("code").and_then(scalar_text).unwrap_or_default();
    let m = message.to_ascii_lowercase();
    let unknown_template = m.contains("template") && (m.contains("not found") || m.contains("invalid"));
    Err(if m.contains("too many requests") {
        ProviderError::throttled(status, body.retry_after, message)
    } else if code == "201" || m.contains("authkey") || m.contains("authenticationfailure") {
        ProviderError::misconfigured(status, format!("msg91 authentication failed: {message}"))
    } else if unknown_template && template_of == TemplateOf::Request {
        ProviderError::rejected(status, "unknown_template", message)
    } else if m.contains("insufficient balance") || unknown_template {
        ProviderError::misconfigured(status, format!("msg91: {message}"))
    } else if m.contains("invalid mobile") || m.contains("mobile no. invalid") {
        let code = if code.is_empty() { "invalid_mobile".into() } else { code };
        ProviderError::rejected(status, code, message)
    } else {
        ProviderError::unavailable(status, format!("msg91 error (HTTP {}): {message}", body.status))
    })
}

/// A verify answer: a wrong, expired or already used code is `Ok(false)`, not an error.
pub(crate) fn classify_verify(body: &Body) -> Result<bool, ProviderError> {
    match classify(body) {
        Ok(_) => Ok(true),
        Err(e @ (ProviderError::Throttled { .. } | ProviderError::Misconfigured { .. })) => Err(e),
        Err(e) => {
            let message = body
                .json
                .as_ref()
                .filter(|_| body.status < 500)
                .and_then(|j| j.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            if message.contains("otp") || message.contains("already verified") {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
#[path = "msg91_tests.rs"]
mod tests;
