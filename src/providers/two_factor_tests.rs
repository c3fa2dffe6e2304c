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
