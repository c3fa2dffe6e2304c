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
use crate::config::Msg91Config;

const DEFAULT_BASE: &str = "https://control.msg91.com";

pub struct Msg91 {
    name: String,
    capabilities: Capabilities,
    http: reqwest::Client,
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
