//! `two_factor`: 2Factor.in. OTPs go out as AUTOGEN (2Factor makes and checks the code) or as
//! smsgate's own code; DLT templates go through TSMS. The API key travels in the URL path, so no
//! URL or transport error text may reach a `ProviderError`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    read_body, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError,
};

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
    http: reqwest::Client,
    base: Url,
    api_key: SecretString,
    mode: OtpMode,
    /// The OTP template; without one 2Factor uses the account's default.
    template: Option<String>,
    /// The DLT sender id, needed for TSMS templates only.
    sender_id: Option<String>,
}

impl TwoFactor {
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let config = ctx.config;
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
            api_key: ctx.secret("api_key_env", config.api_key_env.as_deref(), "TWO_FACTOR_API_KEY")?,
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

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Body, ProviderError> {
        let response = request.send().await.map_err(|e| ProviderError::from_transport(&e))?;
        read_body(response).await
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

    #[tracing::instrument(skip_all, fields(provider = %self.name, kind = sms.body.kind()))]
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
        let body = self.call(request).await?;
        let reference = classify_send(&body)?;
        Ok(Accepted {
            reference: Some(reference),
            provider_verifies,
            http_status: body.status,
        })
    }

    #[tracing::instrument(skip_all, fields(provider = %self.name))]
    async fn verify(&self, reference: &str, code: &str) -> Result<bool, ProviderError> {
        // A reference in E.164 (after a timed-out send) is checked by number with VERIFY3.
        let url = match reference.strip_prefix('+') {
            Some(digits) => self.url(&["SMS", "VERIFY3", digits, code]),
            None => self.url(&["SMS", "VERIFY", reference, code]),
        };

        let body = self.call(self.http.get(url)).await?;
        classify_verify(&body)
    }
}

/// 2Factor's `{"Status": …, "Details": …}`, before it is judged.
enum Answer {
    Success(String),
    Error(String),
}

/// Reads 2Factor's answer; 429, 5xx and anything that is not its JSON shape are errors here.
fn parse(body: &Body) -> Result<Answer, ProviderError> {
    let status = Some(body.status);
    if body.status >= 500 {
        return Err(ProviderError::unavailable(status, format!("HTTP {}", body.status)));
    }
    let details = body.str_field("Details").unwrap_or_default().to_string();
    match body.str_field("Status") {
        Some(s) if s.eq_ignore_ascii_case("success") && body.status < 300 => Ok(Answer::Success(details)),
        Some(s) if s.eq_ignore_ascii_case("error") => Ok(Answer::Error(details)),
        _ if body.status == 429 => Err(classify_error(body, "HTTP 429")),
        _ => {
            body.json_or_unavailable()?;
            Err(ProviderError::unavailable(
                status,
                format!("HTTP {} without a 2Factor status", body.status),
            ))
        }
    }
}

/// The class of a 2Factor `Details` text (any HTTP 429 is throttling whatever it says).
fn classify_error(body: &Body, details: &str) -> ProviderError {
    let status = Some(body.status);
    let d = details.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| d.contains(n));
    if body.status == 429 || any(&["rate limit exceeded", "too many requests"]) {
        ProviderError::throttled(status, body.retry_after, details)
    } else if any(&[
        "invalid api key",
        "api key not found",
        "insufficient balance",
        "template name not found",
        "invalid template",
        "sender id not approved",
    ]) {
        ProviderError::misconfigured(status, details)
    } else if any(&["invalid phone number", "phone number blocked", "dnd number"]) {
        ProviderError::rejected(status, details, details)
    } else {
        ProviderError::unavailable(status, format!("2Factor: {details}"))
    }
}

/// A send answer: the session or message id, or the class of the failure.
pub(crate) fn classify_send(body: &Body) -> Result<String, ProviderError> {
    match parse(body)? {
        Answer::Success(id) if !id.is_empty() => Ok(id),
        Answer::Success(_) => Err(ProviderError::unavailable(Some(body.status), "success without Details")),
        Answer::Error(details) => Err(classify_error(body, &details)),
    }
}

/// A VERIFY answer: matched, a wrong / expired / unknown session's code, or a failure.
pub(crate) fn classify_verify(body: &Body) -> Result<bool, ProviderError> {
    const NOT_VALID: &[&str] = &["otp mismatch", "otp expired", "invalid session", "session expired"];
    match parse(body)? {
        Answer::Success(d) if d.eq_ignore_ascii_case("otp matched") => Ok(true),
        Answer::Success(d) => Err(ProviderError::unavailable(
            Some(body.status),
            format!("2Factor VERIFY success with unexpected Details: {d}"),
        )),
        Answer::Error(d) if NOT_VALID.contains(&d.trim().to_ascii_lowercase().as_str()) => Ok(false),
        Answer::Error(d) => Err(classify_error(body, &d)),
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

    use super::capture_server::CaptureServer;
    use super::*;
    use crate::config::ProviderConfig;
    use crate::phone::Phone;

    const KEY: &str = "k3y-5ecret";

    fn body(status: u16, text: &str) -> Body {
        Body {
            status,
            retry_after: None,
            text: text.to_string(),
            json: serde_json::from_str(text).ok(),
        }
    }

    fn error(status: u16, details: &str) -> Body {
        body(status, &serde_json::json!({"Status": "Error", "Details": details}).to_string())
    }

    fn provider(base_url: &str, extra: serde_json::Value) -> TwoFactor {
        let mut config = serde_json::json!({"name": "2factor", "kind": "two_factor", "base_url": base_url});
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let config: ProviderConfig = serde_json::from_value(config).unwrap();
        let secrets = |var: &str| (var == "TWO_FACTOR_API_KEY").then(|| KEY.to_string());
        let ctx = BuildContext {
            config: &config,
            http: reqwest::Client::new(),
            secrets: &secrets,
        };
        TwoFactor::build(&ctx).unwrap()
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

    const OK: &str = r#"{"Status":"Success","Details":"2f-session-1"}"#;

    #[test]
    fn every_documented_error_has_its_one_class() {
        let cases = [
            ("Invalid API Key", "misconfigured"),
            ("API Key Not Found", "misconfigured"),
            ("Insufficient Balance", "misconfigured"),
            ("Template Name Not Found", "misconfigured"),
            ("Invalid Template", "misconfigured"),
            ("Sender ID Not Approved", "misconfigured"),
            ("Invalid Phone Number", "rejected"),
            ("Phone Number Blocked", "rejected"),
            ("DND Number", "rejected"),
            ("Rate Limit Exceeded", "throttled"),
            ("Too Many Requests", "throttled"),
            ("invalid api key", "misconfigured"),
            ("Something new happened", "unavailable"),
        ];
        for status in [200, 400] {
            for (details, class) in cases {
                let err = classify_send(&error(status, details)).unwrap_err();
                assert_eq!(err.class(), class, "{details} with HTTP {status}");
                assert_eq!(err.http_status(), Some(status));
            }
        }
    }

    #[test]
    fn http_429_is_throttled_with_its_retry_after_whatever_the_body() {
        for text in [r#"{"Status":"Error","Details":"Slow down"}"#, "<html>429</html>", ""] {
            let mut b = body(429, text);
            b.retry_after = Some(Duration::from_secs(9));
            match classify_send(&b).unwrap_err() {
                ProviderError::Throttled { retry_after, .. } => {
                    assert_eq!(retry_after, Some(Duration::from_secs(9)), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_answers_and_5xx_are_unavailable() {
        for (status, text) in [
            (200, "<html><body>Bad Gateway</body></html>"),
            (200, ""),
            (200, r#"{"Status":"Success","Deta"#),
            (200, r#"{"Status":"Success"}"#),
            (200, r#"{"unexpected":true}"#),
            (400, "Bad Request"),
            (500, r#"{"Status":"Error","Details":"Invalid API Key"}"#),
            (503, ""),
        ] {
            assert_eq!(classify_send(&body(status, text)).unwrap_err().class(), "unavailable", "{text}");
            assert_eq!(classify_verify(&body(status, text)).unwrap_err().class(), "unavailable", "{text}");
        }
    }

    #[test]
    fn verify_answers_map_to_matched_or_not() {
        let matched = r#"{"Status":"Success","Details":"OTP Matched"}"#;
        assert_eq!(classify_verify(&body(200, matched)), Ok(true));
        for details in ["OTP Mismatch", "OTP Expired", "Invalid Session", "Session Expired"] {
            assert_eq!(classify_verify(&error(200, details)), Ok(false), "{details}");
            assert_eq!(classify_verify(&error(400, details)), Ok(false), "{details}");
        }
        assert_eq!(
            classify_verify(&error(200, "Invalid API Key")).unwrap_err().class(),
            "misconfigured"
        );
        assert_eq!(
            classify_verify(&error(200, "Rate Limit Exceeded")).unwrap_err().class(),
            "throttled"
        );
    }

    #[tokio::test]
    async fn autogen_otp_is_a_get_with_the_key_in_the_path_and_provider_verifies() {
        let server = CaptureServer::start(200, OK, &[]).await;
        let p = provider(&server.base_url, serde_json::json!({"template": "LoginOTP"}));
        assert_eq!(p.capabilities().otp, OtpSupport::ProviderHeld);
        let accepted = p.send(&otp()).await.unwrap();
        assert_eq!(
            accepted,
            Accepted {
                reference: Some("2f-session-1".into()),
                provider_verifies: true,
                http_status: 200
            }
        );
        let req = server.single();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, format!("/API/V1/{KEY}/SMS/919876543210/AUTOGEN/LoginOTP"));
    }

    #[tokio::test]
    async fn autogen_without_a_template_ends_at_autogen() {
        let server = CaptureServer::start(200, OK, &[]).await;
        provider(&server.base_url, serde_json::json!({})).send(&otp()).await.unwrap();
        assert_eq!(server.single().path, format!("/API/V1/{KEY}/SMS/919876543210/AUTOGEN"));
    }

    #[tokio::test]
    async fn local_otp_sends_smsgates_code_and_smsgate_verifies() {
        let server = CaptureServer::start(200, OK, &[]).await;
        let p = provider(&server.base_url, serde_json::json!({"otp_mode": "local", "template": "T1"}));
        assert_eq!(p.capabilities().otp, OtpSupport::Local);
        let accepted = p.send(&otp()).await.unwrap();
        assert!(!accepted.provider_verifies);
        assert_eq!(server.single().path, format!("/API/V1/{KEY}/SMS/919876543210/482913/T1"));
    }

    #[tokio::test]
    async fn template_is_a_tsms_form_post_with_numbered_vars() {
        let server = CaptureServer::start(200, r#"{"Status":"Success","Details":"tsms-9"}"#, &[]).await;
        let p = provider(&server.base_url, serde_json::json!({"sender_id": "SMSGTE"}));
        let msg = sms(MessageBody::Template {
            name: "OrderShipped".into(),
            vars: vec!["A-1".into(), "two words".into()],
        });
        let accepted = p.send(&msg).await.unwrap();
        assert_eq!(accepted.reference.as_deref(), Some("tsms-9"));
        assert!(!accepted.provider_verifies);
        let req = server.single();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, format!("/API/V1/{KEY}/ADDON_SERVICES/SEND/TSMS"));
        assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
        let expected: Vec<(String, String)> = [
            ("From", "SMSGTE"),
            ("To", "919876543210"),
            ("TemplateName", "OrderShipped"),
            ("VAR1", "A-1"),
            ("VAR2", "two words"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(req.form(), expected);
    }

    #[tokio::test]
    async fn template_without_sender_id_is_misconfigured_and_sends_nothing() {
        let server = CaptureServer::start(200, OK, &[]).await;
        let p = provider(&server.base_url, serde_json::json!({}));
        let msg = sms(MessageBody::Template {
            name: "T".into(),
            vars: vec![],
        });
        assert_eq!(p.send(&msg).await.unwrap_err().class(), "misconfigured");
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn verify_is_a_get_on_the_session() {
        let server = CaptureServer::start(200, r#"{"Status":"Success","Details":"OTP Matched"}"#, &[]).await;
        let p = provider(&server.base_url, serde_json::json!({}));
        assert_eq!(p.verify("2f-session-1", "123456").await, Ok(true));
        let req = server.single();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, format!("/API/V1/{KEY}/SMS/VERIFY/2f-session-1/123456"));
    }

    #[tokio::test]
    async fn verify_by_number_uses_verify3() {
        let server = CaptureServer::start(200, r#"{"Status":"Error","Details":"OTP Mismatch"}"#, &[]).await;
        let p = provider(&server.base_url, serde_json::json!({}));
        assert_eq!(p.verify("+919876543210", "123456").await, Ok(false));
        assert_eq!(server.single().path, format!("/API/V1/{KEY}/SMS/VERIFY3/919876543210/123456"));
    }

    #[tokio::test]
    async fn transport_errors_never_carry_the_key() {
        // Port 9 on localhost refuses: reqwest's error would name the URL with the key in it.
        let p = provider("http://127.0.0.1:9", serde_json::json!({}));
        let err = p.send(&otp()).await.unwrap_err();
        assert_eq!(err.class(), "unavailable");
        assert!(!err.to_string().contains(KEY), "{err}");
    }

    #[test]
    fn unknown_otp_mode_is_refused_at_build() {
        let config: ProviderConfig =
            serde_json::from_value(serde_json::json!({"name": "2f", "kind": "two_factor", "otp_mode": "voice"})).unwrap();
        let secrets = |_: &str| Some(KEY.to_string());
        let ctx = BuildContext {
            config: &config,
            http: reqwest::Client::new(),
            secrets: &secrets,
        };
        assert!(matches!(TwoFactor::build(&ctx), Err(BuildError::Invalid { key, .. }) if key == "otp_mode"));
    }
}
