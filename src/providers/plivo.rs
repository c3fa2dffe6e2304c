//! `plivo`: Plivo's Message API with basic auth (AuthId:AuthToken). Errors are classified by
//! HTTP status, and a 400 by what its `error` text names (destination or source).

use async_trait::async_trait;

use super::{ProviderReceipt, ReceiptError, ReceiptRequest};
use crate::hooks::receipts;
use crate::store::receipts::DeliveryStatus;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{exchange, Accepted, Body, BuildContext, BuildError, Capabilities, OtpSupport, OutboundSms, Provider, ProviderError};
use crate::config::PlivoConfig;

const DEFAULT_BASE: &str = "https://api.plivo.com";

pub struct Plivo {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    base: String,
    auth_id: SecretString,
    auth_token: SecretString,
    from: String,
}

impl Plivo {
    pub fn build(config: &PlivoConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let from = ctx.required("from", config.from.as_deref())?.to_string();
        let base = ctx.base_url(DEFAULT_BASE)?;
        let auth_id = ctx.secret(config.auth_id())?;
        let auth_token = ctx.secret(config.auth_token())?;
        Ok(Self {
            name: config.name.clone(),
            capabilities: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: false,
                countries: ctx.countries(&[]),
            },
            http: ctx.http.clone(),
            base,
            auth_id,
            auth_token,
            from,
        })
    }
}

#[async_trait]
impl Provider for Plivo {
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
            .ok_or_else(|| ProviderError::misconfigured(None, "plivo sends no provider templates"))?;
        let auth_id = self.auth_id.expose_secret();
        let request = self
            .http
            .post(format!("{}/v1/Account/{auth_id}/Message/", self.base))
            .basic_auth(auth_id, Some(self.auth_token.expose_secret()))
            .json(&json!({"src": self.from, "dst": sms.to.digits(), "text": text}));
        let body = exchange(request).await?;
        Ok(Accepted::message(Some(classify(&body)?), body.status))
    }

    /// A message status callback: form parameters signed with `X-Plivo-Signature-V3` (and its
    /// nonce) under the auth token. The header may list several signatures; one must match.
    fn receipt(&self, req: &ReceiptRequest<'_>) -> Result<ProviderReceipt, ReceiptError> {
        let params = req.form();
        let (Some(signatures), Some(nonce)) = (req.header("x-plivo-signature-v3"), req.header("x-plivo-signature-v3-nonce")) else {
            return Err(ReceiptError::Unauthenticated);
        };
        let expected = receipts::plivo_v3_signature(self.auth_token.expose_secret(), req.url, &params, nonce);
        if !signatures.split(',').any(|s| receipts::same(s.trim(), &expected)) {
            return Err(ReceiptError::Unauthenticated);
        }
        receipt_from(&params)
    }
}

/// Reads a status callback's `MessageUUID`, `Status` and `ErrorCode`.
pub(crate) fn receipt_from(params: &[(String, String)]) -> Result<ProviderReceipt, ReceiptError> {
    let field = |k: &str| receipts::param(params, k).map(str::trim).filter(|v| !v.is_empty());
    let reference = field("MessageUUID").ok_or_else(|| ReceiptError::Malformed("`MessageUUID` is missing".into()))?;
    Ok(ProviderReceipt {
        reference: reference.to_string(),
        status: match field("Status").unwrap_or_default() {
            "delivered" => Some(DeliveryStatus::Delivered),
            "undelivered" => Some(DeliveryStatus::Undelivered),
            "failed" | "rejected" => Some(DeliveryStatus::Failed),
            // queued, sent: not final.
            _ => None,
        },
        error_code: field("ErrorCode").filter(|c| *c != "000").map(str::to_string),
        at: None,
    })
}

/// Maps an answer to `message_uuid[0]` or to the class of its error.
pub(crate) fn classify(body: &Body) -> Result<String, ProviderError> {
    let status = Some(body.status);
    let error_text = || {
        body.json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match body.status {
        200..=299 => {
            let json = body.json_or_unavailable()?;
            json.pointer("/message_uuid/0")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ProviderError::unavailable(status, "plivo answer without message_uuid"))
        }
        400 => {
            let error = error_text();
            let e = error.to_ascii_lowercase();
            if body.json.is_none() {
                Err(body.json_or_unavailable().unwrap_err())
            } else if e.contains("dst") || e.contains("destination") || e.contains("invalid number") {
                Err(ProviderError::rejected(status, "400", error))
            } else {
                // A bad `src` or any other bad parameter is ours to fix, not the recipient's.
                Err(ProviderError::misconfigured(status, format!("plivo: {error}")))
            }
        }
        401 | 402 | 404 => Err(ProviderError::misconfigured(
            status,
            format!("plivo HTTP {}: {}", body.status, error_text()),
        )),
        429 => Err(ProviderError::throttled(status, body.retry_after, "HTTP 429")),
        other => Err(ProviderError::unavailable(status, format!("plivo HTTP {other}"))),
    }
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

    fn error(text: &str) -> String {
        json!({"api_id": "a-1", "error": text}).to_string()
    }

    #[test]
    fn every_documented_error_has_its_class() {
        let ok = r#"{"api_id":"a-1","message":"message(s) queued","message_uuid":["u-1"]}"#;
        assert_eq!(classify(&body(202, ok)), Ok("u-1".to_string()));
        assert_eq!(class(401, &error("authentication failed")), "misconfigured");
        assert_eq!(class(401, ""), "misconfigured");
        assert_eq!(class(400, &error("invalid dst parameter")), "rejected");
        assert_eq!(class(400, &error("Destination number blocked")), "rejected");
        assert_eq!(class(400, &error("invalid number format")), "rejected");
        assert_eq!(class(400, &error("src parameter not valid")), "misconfigured");
        assert_eq!(class(400, &error("invalid Source number")), "misconfigured");
        assert_eq!(class(400, &error("text parameter missing")), "misconfigured");
        assert_eq!(class(402, &error("insufficient credit")), "misconfigured");
        assert_eq!(class(404, &error("not found")), "misconfigured");
        assert_eq!(class(429, ""), "throttled");
        for status in [500, 502, 503] {
            assert_eq!(class(status, &error("oops")), "unavailable");
        }
        assert_eq!(class(418, &error("teapot")), "unavailable");
    }

    #[test]
    fn malformed_answers_are_unavailable() {
        for text in MALFORMED {
            for status in [200, 202, 400, 502] {
                assert_eq!(class(status, text), "unavailable", "{status} {text:?}");
            }
        }
        assert_eq!(class(202, r#"{"api_id":"a","message_uuid":[]}"#), "unavailable");
    }

    #[tokio::test]
    async fn send_posts_json_with_basic_auth() {
        let ok = r#"{"api_id":"a-1","message":"message(s) queued","message_uuid":["u-9"]}"#;
        let mut server = CaptureServer::start(202, ok).await;
        let config = testing::provider_config(&format!(
            "name = \"plivo\"\nkind = \"plivo\"\nbase_url = \"{}/\"\nfrom = \"SMSGTE\"",
            server.base_url
        ));
        let env = [("PLIVO_AUTH_ID", "MA123"), ("PLIVO_AUTH_TOKEN", "tok")];
        let plivo = testing::build_with(&config, &env, Plivo::build).unwrap();
        let accepted = plivo.send(&testing::text("hello")).await.unwrap();
        assert_eq!(accepted.reference.as_deref(), Some("u-9"));
        assert_eq!(accepted.http_status, 202);
        let req = server.request().await;
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/Account/MA123/Message/");
        assert_eq!(req.basic_auth().as_deref(), Some("MA123:tok"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.json(), json!({"src": "SMSGTE", "dst": "919876543210", "text": "hello"}));
    }

    #[test]
    fn build_requires_from_and_both_secrets() {
        let config = |extra: &str| testing::provider_config(&format!("name = \"p\"\nkind = \"plivo\"\n{extra}"));
        let both = [("PLIVO_AUTH_ID", "a"), ("PLIVO_AUTH_TOKEN", "t")];
        let err = testing::build_with(&config(""), &both, Plivo::build);
        assert!(matches!(err, Err(BuildError::Invalid { key, .. }) if key == "from"));
        let err = testing::build_with(&config("from = \"x\""), &both[..1], Plivo::build);
        assert!(matches!(err, Err(BuildError::MissingSecret { var, .. }) if var == "PLIVO_AUTH_TOKEN"));
        let plivo = testing::build_with(&config("from = \"x\""), &both, Plivo::build).unwrap();
        assert!(plivo.capabilities().countries.is_empty());
    }
}
