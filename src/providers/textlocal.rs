//! `textlocal`: Textlocal's `send/` form API (India `api.textlocal.in`, UK `api.txtlocal.com`).
//! Errors come with HTTP 200 as `{"status":"failure","errors":[{"code":N,"message":…}]}`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{
    exchange, scalar_text, Accepted, Body, BuildContext, BuildError, Capabilities, OtpSupport, OutboundSms, Provider, ProviderError,
};
use crate::config::TextlocalConfig;

const DEFAULT_BASE: &str = "https://api.textlocal.in";

pub struct Textlocal {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    base: String,
    api_key: SecretString,
    sender: String,
}

impl Textlocal {
    pub fn build(config: &TextlocalConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let sender = ctx.required("sender_id", config.sender_id.as_deref())?.to_string();
        let base = ctx.base_url(DEFAULT_BASE)?;
        let api_key = ctx.secret(config.api_key())?;
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: false,
                countries: ctx.countries(&["91", "44"]),
            },
            http: ctx.http.clone(),
            base,
            api_key,
            sender,
        })
    }
}

#[async_trait]
impl Provider for Textlocal {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let text = sms
            .body
            .text()
            .ok_or_else(|| ProviderError::misconfigured(None, "textlocal sends no provider templates"))?;
        let form = [
            ("apikey", self.api_key.expose_secret()),
            ("numbers", sms.to.digits()),
            ("message", text),
            ("sender", self.sender.as_str()),
        ];
        let body = exchange(self.http.post(format!("{}/send/", self.base)).form(&form)).await?;
        Ok(Accepted::message(classify(&body)?, body.status))
    }
}

/// Maps an answer to the message reference (`messages[0].id`, else `batch_id`) or an error class.
pub(crate) fn classify(body: &Body) -> Result<Option<String>, ProviderError> {
    if let Some(err) = body.throttled_or_server_error() {
        return Err(err);
    }
    let status = Some(body.status);
    let json = body.json_or_unavailable()?;
    if json.get("status").and_then(Value::as_str) == Some("success") && (200..300).contains(&body.status) {
        let id = json.pointer("/messages/0/id").or_else(|| json.get("batch_id"));
        return Ok(id.and_then(scalar_text));
    }
    let first = json.pointer("/errors/0");
    let code = first.and_then(|e| e.get("code")).and_then(scalar_text).unwrap_or_default();
    let message = first
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("no error given");
    Err(match code.as_str() {
        "3" | "7" | "43" | "44" | "80" => ProviderError::misconfigured(status, format!("textlocal error {code}: {message}")),
        "4" | "5" | "6" | "32" | "51" => ProviderError::rejected(status, code, message),
        _ => ProviderError::unavailable(status, format!("textlocal error {code} (HTTP {}): {message}", body.status)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{self, body, CaptureServer, MALFORMED};

    fn class(status: u16, text: &str) -> &'static str {
        match classify(&body(status, text)) {
            Ok(_) => "accepted",
            Err(e) => e.class(),
        }
    }

    fn failure(code: u32) -> String {
        format!(r#"{{"status":"failure","errors":[{{"code":{code},"message":"m{code}"}}]}}"#)
    }

    #[test]
    fn every_documented_error_has_its_class() {
        for code in [3, 7, 43, 44, 80] {
            assert_eq!(class(200, &failure(code)), "misconfigured", "{code}");
        }
        for code in [4, 5, 6, 32, 51] {
            assert_eq!(class(200, &failure(code)), "rejected", "{code}");
        }
        for code in [192, 1, 999] {
            assert_eq!(class(200, &failure(code)), "unavailable", "{code}");
        }
        let err = classify(&body(200, &failure(32))).unwrap_err();
        assert_eq!(err, ProviderError::rejected(Some(200), "32", "m32"));
        assert_eq!(class(429, ""), "throttled");
        assert_eq!(class(500, &failure(3)), "unavailable");
        assert_eq!(class(200, r#"{"status":"failure"}"#), "unavailable");
    }

    #[test]
    fn success_references_the_first_message_or_the_batch() {
        let ok = r#"{"status":"success","batch_id":123,"cost":1,"num_messages":1,"balance":99,
            "messages":[{"id":"1151346216","recipient":919876543210}]}"#;
        assert_eq!(classify(&body(200, ok)), Ok(Some("1151346216".into())));
        let batch_only = r#"{"status":"success","batch_id":123}"#;
        assert_eq!(classify(&body(200, batch_only)), Ok(Some("123".into())));
    }

    #[test]
    fn malformed_answers_are_unavailable() {
        for text in MALFORMED {
            for status in [200, 400, 502] {
                assert_eq!(class(status, text), "unavailable", "{status} {text:?}");
            }
        }
    }

    fn build(base: &str) -> Textlocal {
        let config = testing::provider_config(&format!(
            "name = \"tl\"\nkind = \"textlocal\"\nbase_url = \"{base}\"\nsender_id = \"SMSGTE\""
        ));
        testing::build_with(&config, &[("TEXTLOCAL_API_KEY", "tl-key")], Textlocal::build).unwrap()
    }

    #[tokio::test]
    async fn send_posts_the_form() {
        let ok = r#"{"status":"success","batch_id":7,"messages":[{"id":"m-1","recipient":919876543210}]}"#;
        let mut server = CaptureServer::start(200, ok).await;
        let textlocal = build(&server.base_url);
        let accepted = textlocal.send(&testing::otp("4321", "Your code is 4321 & more")).await.unwrap();
        assert_eq!(accepted.reference.as_deref(), Some("m-1"));
        let req = server.request().await;
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/send/"));
        assert_eq!(req.raw_query, None);
        assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
        let form = req.form();
        let expected = [
            ("apikey", "tl-key"),
            ("numbers", "919876543210"),
            ("message", "Your code is 4321 & more"),
            ("sender", "SMSGTE"),
        ];
        assert_eq!(form.len(), expected.len());
        for (k, v) in expected {
            assert_eq!(form.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn build_requires_sender_and_key() {
        let config = |extra: &str| testing::provider_config(&format!("name = \"tl\"\nkind = \"textlocal\"\n{extra}"));
        let env = [("TEXTLOCAL_API_KEY", "k")];
        let err = testing::build_with(&config(""), &env, Textlocal::build);
        assert!(matches!(err, Err(BuildError::Invalid { key, .. }) if key == "sender_id"));
        let err = testing::build_with(&config("sender_id = \"S\""), &[], Textlocal::build);
        assert!(matches!(err, Err(BuildError::MissingSecret { .. })));
        let tl = testing::build_with(&config("sender_id = \"S\""), &env, Textlocal::build).unwrap();
        assert_eq!(tl.capabilities().countries, vec!["91", "44"]);
        assert!(tl.capabilities().text && !tl.capabilities().template);
    }
}
