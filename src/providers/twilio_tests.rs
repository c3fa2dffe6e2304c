use std::time::Duration;

use base64::Engine as _;

use super::*;
use crate::providers::testing::{self, body, pairs, CaptureServer};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "t0ken-5ecret";
const CREATED: &str = r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","account_sid":"AC0123456789abcdef0123456789abcdef","to":"+919876543210","from":"+15005550006","body":"hi","date_created":"Thu, 01 Jan 2026 00:00:00 +0000"}"#;

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
    let config = testing::json_config("twilio", "twilio", config);
    let secrets = [("TWILIO_ACCOUNT_SID", SID), ("TWILIO_AUTH_TOKEN", TOKEN)];
    testing::build_with(&config, &secrets, Twilio::build)
}

fn otp() -> OutboundSms {
    testing::otp("482913", "Your code is 482913")
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
    let mut server = CaptureServer::start(201, CREATED).await;
    let p = build(serde_json::json!({"base_url": server.base_url, "from": "+15005550006"})).unwrap();
    let accepted = p.send(&testing::text("Order shipped & on its way")).await.unwrap();
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
    assert_eq!(req.target(), format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(req.header("authorization"), Some(basic_auth().as_str()));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    let expected = [
        ("To", "+919876543210"),
        ("From", "+15005550006"),
        ("Body", "Order shipped & on its way"),
    ];
    assert_eq!(req.form_pairs(), pairs(&expected));
}

#[tokio::test]
async fn local_otp_from_a_messaging_service_sends_its_text() {
    let mut server = CaptureServer::start(201, CREATED).await;
    let from = "MG0123456789abcdef0123456789abcdef";
    let p = build(serde_json::json!({"base_url": server.base_url, "from": from})).unwrap();
    assert_eq!(p.capabilities().otp, OtpSupport::Local);
    assert!(!p.send(&otp()).await.unwrap().provider_verifies);
    let expected = [
        ("To", "+919876543210"),
        ("MessagingServiceSid", from),
        ("Body", "Your code is 482913"),
    ];
    assert_eq!(server.single().form_pairs(), pairs(&expected));
}

#[tokio::test]
async fn verify_mode_starts_and_checks_a_twilio_verification() {
    let started = r#"{"sid":"VE0123456789abcdef0123456789abcdef","status":"pending"}"#;
    let mut server = CaptureServer::start(201, started).await;
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
    assert_eq!(req.target(), "/v2/Services/VA0123456789abcdef0123456789abcdef/Verifications");
    assert_eq!(req.header("authorization"), Some(basic_auth().as_str()));
    assert_eq!(req.form_pairs(), pairs(&[("To", "+919876543210"), ("Channel", "sms")]));

    let mut server = CaptureServer::start(200, r#"{"status":"approved","valid":true}"#).await;
    let p = build(serde_json::json!({
        "otp_mode": "verify",
        "verify_service_sid": "VA0123456789abcdef0123456789abcdef",
        "verify_base_url": server.base_url,
    }))
    .unwrap();
    assert_eq!(p.verify("VE42", "123456").await, Ok(true));
    let req = server.single();
    assert_eq!(req.target(), "/v2/Services/VA0123456789abcdef0123456789abcdef/VerificationCheck");
    assert_eq!(req.form_pairs(), pairs(&[("VerificationSid", "VE42"), ("Code", "123456")]));
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
    let template = testing::template("t", &[]);
    assert_eq!(p.send(&template).await.unwrap_err().class(), "misconfigured");
    assert_eq!(p.verify("VE1", "1").await.unwrap_err().class(), "misconfigured");
}
