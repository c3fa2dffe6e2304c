//! `fast2sms`: Fast2SMS `dev/bulkV2` with the key in the `authorization` header. Routes: `otp`
//! (the code alone), `dlt` (a registered DLT template and sender) and `q` (plain text).
//! Errors are `{"return":false,"status_code":N,"message":…}` with HTTP 200 or 4xx.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::wire::TemplateOf;
use super::{
    exchange, scalar_text, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider,
    ProviderError,
};
use crate::config::Fast2smsConfig;

const DEFAULT_BASE: &str = "https://www.fast2sms.com";

/// How an OTP is sent (`route` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
enum OtpRoute {
    /// Fast2SMS's own OTP message carrying the code.
    Otp,
    /// A DLT template (`template_id`) whose one variable is the code.
    Dlt { template_id: String },
    /// smsgate's rendered text as a plain message.
    Quick,
}

pub struct Fast2Sms {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    base: String,
    api_key: SecretString,
    sender_id: Option<String>,
    otp_route: OtpRoute,
}

impl Fast2Sms {
    pub fn build(config: &Fast2smsConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let sender_id = config.sender_id.clone().filter(|s| !s.trim().is_empty());
        let otp_route = match config.route.as_deref().unwrap_or("otp") {
            "otp" => OtpRoute::Otp,
            "q" => OtpRoute::Quick,
            "dlt" => {
                ctx.required("sender_id", sender_id.as_deref())?;
                let template_id = ctx.required("template_id", config.template_id.as_deref())?;
                OtpRoute::Dlt {
                    template_id: template_id.to_string(),
                }
            }
            _ => return Err(ctx.invalid("route", "must be `otp`, `dlt` or `q`")),
        };
        let base = ctx.base_url(DEFAULT_BASE)?;
        let api_key = ctx.secret(config.api_key())?;
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                // DLT templates need an approved sender.
                template: sender_id.is_some(),
                countries: ctx.countries(&["91"]),
            },
            http: ctx.http.clone(),
            base,
            api_key,
            sender_id,
            otp_route,
        })
    }

    fn request_json(&self, sms: &OutboundSms) -> Result<Value, ProviderError> {
        let numbers = sms.to.national();
        let sender = self.sender_id.as_deref().unwrap_or_default();
        let dlt = |message: &str, values: &str| {
            json!({"route": "dlt", "sender_id": sender, "message": message,
                   "variables_values": values, "numbers": numbers})
        };
        let quick = |text: &str| json!({"route": "q", "message": text, "numbers": numbers});
        Ok(match (&sms.body, &self.otp_route) {
            (MessageBody::Otp { code, .. }, OtpRoute::Otp) => {
                json!({"route": "otp", "variables_values": code, "numbers": numbers})
            }
            (MessageBody::Otp { code, .. }, OtpRoute::Dlt { template_id }) => dlt(template_id, code),
            (MessageBody::Otp { text, .. }, OtpRoute::Quick) | (MessageBody::Text { text }, _) => quick(text),
            (MessageBody::Template { name, vars }, _) => {
                if self.sender_id.is_none() {
                    return Err(ProviderError::misconfigured(None, "fast2sms templates need `sender_id`"));
                }
                dlt(name, &vars.join("|"))
            }
        })
    }
}

#[async_trait]
impl Provider for Fast2Sms {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let payload = self.request_json(sms)?;
        let request = self
            .http
            .post(format!("{}/dev/bulkV2", self.base))
            .header("authorization", self.api_key.expose_secret())
            .json(&payload);
        let body = exchange(request).await?;
        let named_by = match sms.body {
            MessageBody::Template { .. } => TemplateOf::Request,
            _ => TemplateOf::Config,
        };
        Ok(Accepted::message(classify_as(&body, named_by)?, body.status))
    }
}

/// Maps an answer to its `request_id` or to the class of its error, for a send whose DLT
/// template (if any) is the config's.
#[cfg(test)]
pub(crate) fn classify(body: &Body) -> Result<Option<String>, ProviderError> {
    classify_as(body, TemplateOf::Config)
}

/// As [`classify`]; 413 (the DLT template id is unknown) is the fault of whoever named it.
pub(crate) fn classify_as(body: &Body, template_of: TemplateOf) -> Result<Option<String>, ProviderError> {
    if let Some(err) = body.throttled_or_server_error() {
        return Err(err);
    }
    let status = Some(body.status);
    let json = body.json_or_unavailable()?;
    if json.get("return") == Some(&Value::Bool(true)) && (200..300).contains(&body.status) {
        return Ok(json.get("request_id").and_then(Value::as_str).map(str::to_string));
    }
    let code = json.get("status_code").and_then(scalar_text).unwrap_or_default();
    // `message` is a string on errors but a list on success; take either.
    let message = match json.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.first().and_then(Value::as_str).unwrap_or("").into(),
        _ => String::new(),
    };
    Err(match code.as_str() {
        "413" if template_of == TemplateOf::Request => ProviderError::rejected(status, "unknown_template", message),
        "412" | "413" | "416" | "996" | "997" => ProviderError::misconfigured(status, format!("fast2sms {code}: {message}")),
        "406" | "411" | "995" | "999" => ProviderError::rejected(status, code, message),
        _ => ProviderError::unavailable(status, format!("fast2sms {code} (HTTP {}): {message}", body.status)),
    })
}

#[cfg(test)]
#[path = "fast2sms_tests.rs"]
mod tests;
