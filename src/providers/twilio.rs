//! `twilio`: texts and smsgate's own OTPs through the Messages API, or OTPs made and checked by
//! Twilio Verify (`otp_mode = "verify"`). Both use basic auth AccountSid:AuthToken.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{
    read_body, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError,
};

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
    http: reqwest::Client,
    base: String,
    verify_base: String,
    account_sid: SecretString,
    auth_token: SecretString,
    /// A sender number, or a Messaging Service (`MG…`). Optional in Verify mode only.
    from: Option<String>,
    mode: OtpMode,
}

impl Twilio {
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let config = ctx.config;
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
            verify_base: verify_base_url(ctx)?,
            account_sid: ctx.secret("account_sid_env", config.account_sid_env.as_deref(), "TWILIO_ACCOUNT_SID")?,
            auth_token: ctx.secret("auth_token_env", config.auth_token_env.as_deref(), "TWILIO_AUTH_TOKEN")?,
            from: from.map(|f| f.trim().to_string()),
            mode,
        })
    }

    async fn post(&self, url: String, form: &[(&str, &str)]) -> Result<Body, ProviderError> {
        let response = self
            .http
            .post(url)
            .basic_auth(self.account_sid.expose_secret(), Some(self.auth_token.expose_secret()))
            .form(form)
            .send()
            .await
            .map_err(|e| ProviderError::from_transport(&e))?;
        read_body(response).await
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
        Ok(Accepted {
            reference: Some(classify(&body)?),
            provider_verifies: false,
            http_status: body.status,
        })
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
fn verify_base_url(ctx: &BuildContext<'_>) -> Result<String, BuildError> {
    let raw = ctx.config.verify_base_url.as_deref().unwrap_or(DEFAULT_VERIFY_BASE);
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

    #[tracing::instrument(skip_all, fields(provider = %self.name, kind = sms.body.kind()))]
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        match (&sms.body, &self.mode) {
            (MessageBody::Otp { .. }, OtpMode::Verify { service_sid }) => self.start_verification(sms, service_sid).await,
            (MessageBody::Otp { text, .. } | MessageBody::Text { text }, _) => self.send_message(sms, text).await,
            (MessageBody::Template { .. }, _) => Err(ProviderError::misconfigured(None, "Twilio has no provider templates")),
        }
    }

    #[tracing::instrument(skip_all, fields(provider = %self.name))]
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
    let status = Some(body.status);
    if body.status == 429 {
        return ProviderError::throttled(status, body.retry_after, "HTTP 429");
    }
    if body.status >= 500 {
        return ProviderError::unavailable(status, format!("HTTP {}", body.status));
    }
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

// Shared with the other adapters' tests and tests/adapter_specs.rs; each test module loads it.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "capture_server.rs"]
mod capture_server;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;

    use super::capture_server::CaptureServer;
    use super::*;
    use crate::config::ProviderConfig;
    use crate::phone::Phone;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "t0ken-5ecret";
    const CREATED: &str = r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","account_sid":"AC0123456789abcdef0123456789abcdef","to":"+919876543210","from":"+15005550006","body":"hi","date_created":"Thu, 01 Jan 2026 00:00:00 +0000"}"#;

    fn body(status: u16, text: &str) -> Body {
        Body {
            status,
            retry_after: None,
            text: text.to_string(),
            json: serde_json::from_str(text).ok(),
        }
    }

    fn error(status: u16, code: i64) -> Body {
        let json = serde_json::json!({
            "code": code,
            "message": "described",
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        });
        body(status, &json.to_string())
    }

    fn build(config: serde_json::Value) -> Result<Twilio, BuildError> {
        let mut full = serde_json::json!({"name": "twilio", "kind": "twilio"});
        full.as_object_mut().unwrap().extend(config.as_object().unwrap().clone());
        let config: ProviderConfig = serde_json::from_value(full).unwrap();
        let secrets = |var: &str| match var {
            "TWILIO_ACCOUNT_SID" => Some(SID.to_string()),
            "TWILIO_AUTH_TOKEN" => Some(TOKEN.to_string()),
            _ => None,
        };
        let ctx = BuildContext {
            config: &config,
            http: reqwest::Client::new(),
            secrets: &secrets,
        };
        Twilio::build(&ctx)
    }

    fn sms(body: MessageBody) -> OutboundSms {
        OutboundSms {
            id: uuid::Uuid::new_v4(),
            to: Phone::parse("+919876543210", "91").unwrap(),
            body,
        }
    }

    fn otp() -> OutboundSms {
        sms(MessageBody::Otp {
            code: "482913".into(),
            text: "Your code is 482913".into(),
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn basic_auth() -> String {
        let raw = format!("{SID}:{TOKEN}");
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    #[test]
    fn every_documented_error_code_has_its_one_class() {
        let cases = [
            (401, 20003, "misconfigured"),
            (404, 20404, "misconfigured"),
            (429, 20429, "throttled"),
            (400, 20429, "throttled"),
            (400, 21211, "rejected"),
            (400, 21214, "rejected"),
            (400, 21610, "rejected"),
            (400, 21612, "rejected"),
            (400, 21614, "rejected"),
            (400, 21602, "rejected"),
            (400, 21617, "rejected"),
            (400, 21408, "misconfigured"),
            (400, 21606, "misconfigured"),
            (400, 21212, "misconfigured"),
            (400, 21659, "misconfigured"),
            (400, 21219, "misconfigured"),
            (400, 30001, "unavailable"),
            (400, 99999, "unavailable"),
            (400, 60200, "rejected"),
            (429, 60203, "throttled"),
            (400, 60203, "throttled"),
            (403, 60410, "rejected"),
            (400, 60223, "misconfigured"),
        ];
        for (status, code, class) in cases {
            let err = classify(&error(status, code)).unwrap_err();
            assert_eq!(err.class(), class, "{code} with HTTP {status}");
            assert_eq!(err.http_status(), Some(status));
        }
        match classify(&error(400, 21211)).unwrap_err() {
            ProviderError::Rejected { code, details, .. } => {
                assert_eq!((code.as_str(), details.as_str()), ("21211", "described"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_429_is_throttled_with_retry_after_whatever_the_body() {
        for text in [r#"{"code":20429,"message":"Too Many Requests"}"#, "", "<html/>"] {
            let mut b = body(429, text);
            b.retry_after = Some(Duration::from_secs(4));
            match classify(&b).unwrap_err() {
                ProviderError::Throttled { retry_after, .. } => {
                    assert_eq!(retry_after, Some(Duration::from_secs(4)), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_answers_and_5xx_are_unavailable() {
        for (status, text) in [
            (201, "<html><body>Service Unavailable</body></html>"),
            (201, ""),
            (201, r#"{"sid":"SM01"#),
            (201, r#"{"status":"queued"}"#),
            (400, "<html>Bad Request</html>"),
            (400, ""),
            (401, r#"{"message":"no code"}"#),
            (500, r#"{"code":20003,"message":"Authenticate"}"#),
            (503, ""),
        ] {
            let err = classify(&body(status, text)).unwrap_err();
            assert_eq!(err.class(), "unavailable", "{status} {text}");
            let err = classify_check(&body(status, text)).unwrap_err();
            assert_eq!(err.class(), "unavailable", "{status} {text}");
        }
    }

    #[test]
    fn verification_checks_map_to_approved_or_not() {
        let approved = r#"{"sid":"VE1","status":"approved","valid":true}"#;
        assert_eq!(classify_check(&body(200, approved)), Ok(true));
        let pending = r#"{"sid":"VE1","status":"pending","valid":false}"#;
        assert_eq!(classify_check(&body(200, pending)), Ok(false));
        assert_eq!(classify_check(&error(404, 20404)), Ok(false));
        assert_eq!(classify_check(&error(429, 60202)), Ok(false));
        let err = classify_check(&error(401, 20003)).unwrap_err();
        assert_eq!(err.class(), "misconfigured");
        let err = classify_check(&error(429, 20429)).unwrap_err();
        assert_eq!(err.class(), "throttled");
    }

    #[tokio::test]
    async fn text_is_a_messages_post_with_basic_auth_and_e164() {
        let server = CaptureServer::start(201, CREATED, &[]).await;
        let p = build(serde_json::json!({"base_url": server.base_url, "from": "+15005550006"})).unwrap();
        let accepted = p
            .send(&sms(MessageBody::Text {
                text: "Order shipped & on its way".into(),
            }))
            .await
            .unwrap();
        assert_eq!(
            accepted,
            Accepted {
                reference: Some("SM0123456789abcdef0123456789abcdef".into()),
                provider_verifies: false,
                http_status: 201,
            }
        );
        let req = server.single();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(req.header("authorization"), Some(basic_auth().as_str()));
        assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
        let expected = [
            ("To", "+919876543210"),
            ("From", "+15005550006"),
            ("Body", "Order shipped & on its way"),
        ];
        assert_eq!(req.form(), pairs(&expected));
    }

    #[tokio::test]
    async fn local_otp_from_a_messaging_service_sends_its_text() {
        let server = CaptureServer::start(201, CREATED, &[]).await;
        let from = "MG0123456789abcdef0123456789abcdef";
        let p = build(serde_json::json!({"base_url": server.base_url, "from": from})).unwrap();
        assert_eq!(p.capabilities().otp, OtpSupport::Local);
        assert!(!p.send(&otp()).await.unwrap().provider_verifies);
        let expected = [
            ("To", "+919876543210"),
            ("MessagingServiceSid", from),
            ("Body", "Your code is 482913"),
        ];
        assert_eq!(server.single().form(), pairs(&expected));
    }

    #[tokio::test]
    async fn verify_mode_starts_and_checks_a_twilio_verification() {
        let started = r#"{"sid":"VE0123456789abcdef0123456789abcdef","status":"pending"}"#;
        let server = CaptureServer::start(201, started, &[]).await;
        let p = build(serde_json::json!({
            "otp_mode": "verify",
            "verify_service_sid": "VA0123456789abcdef0123456789abcdef",
            "verify_base_url": server.base_url,
        }))
        .unwrap();
        assert_eq!(p.capabilities().otp, OtpSupport::ProviderHeld);
        assert!(!p.capabilities().text, "no `from`: no plain texts");
        let accepted = p.send(&otp()).await.unwrap();
        assert_eq!(accepted.reference.as_deref(), Some("VE0123456789abcdef0123456789abcdef"));
        assert!(accepted.provider_verifies);
        let req = server.single();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v2/Services/VA0123456789abcdef0123456789abcdef/Verifications");
        assert_eq!(req.header("authorization"), Some(basic_auth().as_str()));
        assert_eq!(req.form(), pairs(&[("To", "+919876543210"), ("Channel", "sms")]));

        let server = CaptureServer::start(200, r#"{"status":"approved","valid":true}"#, &[]).await;
        let p = build(serde_json::json!({
            "otp_mode": "verify",
            "verify_service_sid": "VA0123456789abcdef0123456789abcdef",
            "verify_base_url": server.base_url,
        }))
        .unwrap();
        assert_eq!(p.verify("VE42", "123456").await, Ok(true));
        let req = server.single();
        assert_eq!(req.path, "/v2/Services/VA0123456789abcdef0123456789abcdef/VerificationCheck");
        assert_eq!(req.form(), pairs(&[("VerificationSid", "VE42"), ("Code", "123456")]));
    }

    #[test]
    fn build_requires_from_for_messages_and_a_service_for_verify() {
        let key_of = |r: Result<Twilio, BuildError>| match r {
            Err(BuildError::Invalid { key, .. }) => key,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("built"),
        };
        assert_eq!(key_of(build(serde_json::json!({}))), "from");
        assert_eq!(key_of(build(serde_json::json!({"otp_mode": "verify"}))), "verify_service_sid");
        assert_eq!(key_of(build(serde_json::json!({"otp_mode": "sometimes"}))), "otp_mode");
    }

    #[tokio::test]
    async fn templates_are_refused_and_local_mode_holds_no_codes() {
        let p = build(serde_json::json!({"from": "+15005550006", "base_url": "http://127.0.0.1:9"})).unwrap();
        let template = sms(MessageBody::Template {
            name: "t".into(),
            vars: vec![],
        });
        assert_eq!(p.send(&template).await.unwrap_err().class(), "misconfigured");
        assert_eq!(p.verify("VE1", "1").await.unwrap_err().class(), "misconfigured");
    }
}
