use std::time::Duration;

use super::*;
use crate::providers::testing::{self, body, pairs, CaptureServer};

const KEY: &str = "k3y-5ecret";

fn error(status: u16, details: &str) -> Body {
    body(status, &serde_json::json!({"Status": "Error", "Details": details}).to_string())
}

fn provider(base_url: &str, extra: serde_json::Value) -> TwoFactor {
    let mut settings = serde_json::json!({"base_url": base_url});
    settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let config = testing::json_config("2factor", "two_factor", settings);
    testing::build_with(&config, &[("TWO_FACTOR_API_KEY", KEY)], TwoFactor::build).unwrap()
}

fn otp() -> OutboundSms {
    testing::otp("482913", "Your code is 482913")
}

const OK: &str = r#"{"Status":"Success","Details":"2f-session-1"}"#;

#[test]
fn every_documented_error_has_its_one_class() {
    // (details, class when the template is the config's, class when the request named it)
    let cases = [
        ("Invalid API Key", "misconfigured", "misconfigured"),
        ("API Key Not Found", "misconfigured", "misconfigured"),
        ("Insufficient Balance", "misconfigured", "misconfigured"),
        ("Template Name Not Found", "misconfigured", "rejected"),
        ("Invalid Template", "misconfigured", "rejected"),
        ("Sender ID Not Approved", "misconfigured", "misconfigured"),
        ("Invalid Phone Number", "rejected", "rejected"),
        ("Phone Number Blocked", "rejected", "rejected"),
        ("DND Number", "rejected", "rejected"),
        ("Rate Limit Exceeded", "throttled", "throttled"),
        ("Too Many Requests", "throttled", "throttled"),
        ("invalid api key", "misconfigured", "misconfigured"),
        ("Something new happened", "unavailable", "unavailable"),
    ];
    for status in [200, 400] {
        for (details, config, request) in cases {
            for (template_of, class) in [(TemplateOf::Config, config), (TemplateOf::Request, request)] {
                let err = classify_send(&error(status, details), template_of).unwrap_err();
                assert_eq!(err.class(), class, "{details} with HTTP {status}, {template_of:?}");
                assert_eq!(err.http_status(), Some(status));
            }
        }
    }
}

#[tokio::test]
async fn a_template_2factor_does_not_know_is_the_requests_fault_but_the_otp_templates_is_the_configs() {
    let unknown = r#"{"Status":"Error","Details":"Template Name Not Found"}"#;
    let server = CaptureServer::start(200, unknown).await;
    let p = provider(&server.base_url, serde_json::json!({"sender_id": "SMSGTE", "template": "LoginOTP"}));
    let err = p.send(&testing::template("NoSuchTemplate", &["A-1"])).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Rejected { code, .. } if code == "unknown_template"),
        "{err:?}"
    );
    assert_eq!(p.send(&otp()).await.unwrap_err().class(), "misconfigured");
}

#[test]
fn http_429_is_throttled_with_its_retry_after_whatever_the_body() {
    for text in [r#"{"Status":"Error","Details":"Slow down"}"#, "<html>429</html>", ""] {
        let mut b = body(429, text);
        b.retry_after = Some(Duration::from_secs(9));
        match classify_send(&b, TemplateOf::Config).unwrap_err() {
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
        assert_eq!(
            classify_send(&body(status, text), TemplateOf::Request).unwrap_err().class(),
            "unavailable",
            "{text}"
        );
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
    let mut server = CaptureServer::start(200, OK).await;
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
    assert_eq!(req.target(), format!("/API/V1/{KEY}/SMS/919876543210/AUTOGEN/LoginOTP"));
}

#[tokio::test]
async fn autogen_without_a_template_ends_at_autogen() {
    let mut server = CaptureServer::start(200, OK).await;
    provider(&server.base_url, serde_json::json!({})).send(&otp()).await.unwrap();
    assert_eq!(server.single().target(), format!("/API/V1/{KEY}/SMS/919876543210/AUTOGEN"));
}

#[tokio::test]
async fn local_otp_sends_smsgates_code_and_smsgate_verifies() {
    let mut server = CaptureServer::start(200, OK).await;
    let p = provider(&server.base_url, serde_json::json!({"otp_mode": "local", "template": "T1"}));
    assert_eq!(p.capabilities().otp, OtpSupport::Local);
    let accepted = p.send(&otp()).await.unwrap();
    assert!(!accepted.provider_verifies);
    assert_eq!(server.single().target(), format!("/API/V1/{KEY}/SMS/919876543210/482913/T1"));
}

#[tokio::test]
async fn template_is_a_tsms_form_post_with_numbered_vars() {
    let mut server = CaptureServer::start(200, r#"{"Status":"Success","Details":"tsms-9"}"#).await;
    let p = provider(&server.base_url, serde_json::json!({"sender_id": "SMSGTE"}));
    let msg = testing::template("OrderShipped", &["A-1", "two words"]);
    let accepted = p.send(&msg).await.unwrap();
    assert_eq!(accepted.reference.as_deref(), Some("tsms-9"));
    assert!(!accepted.provider_verifies);
    let req = server.single();
    assert_eq!(req.method, "POST");
    assert_eq!(req.target(), format!("/API/V1/{KEY}/ADDON_SERVICES/SEND/TSMS"));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    let expected = [
        ("From", "SMSGTE"),
        ("To", "919876543210"),
        ("TemplateName", "OrderShipped"),
        ("VAR1", "A-1"),
        ("VAR2", "two words"),
    ];
    assert_eq!(req.form_pairs(), pairs(&expected));
}

#[tokio::test]
async fn template_without_sender_id_is_misconfigured_and_sends_nothing() {
    let mut server = CaptureServer::start(200, OK).await;
    let p = provider(&server.base_url, serde_json::json!({}));
    let msg = testing::template("T", &[]);
    assert_eq!(p.send(&msg).await.unwrap_err().class(), "misconfigured");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn verify_is_a_get_on_the_session() {
    let mut server = CaptureServer::start(200, r#"{"Status":"Success","Details":"OTP Matched"}"#).await;
    let p = provider(&server.base_url, serde_json::json!({}));
    assert_eq!(p.verify("2f-session-1", "123456").await, Ok(true));
    let req = server.single();
    assert_eq!(req.method, "GET");
    assert_eq!(req.target(), format!("/API/V1/{KEY}/SMS/VERIFY/2f-session-1/123456"));
}

#[tokio::test]
async fn verify_by_number_uses_verify3() {
    let mut server = CaptureServer::start(200, r#"{"Status":"Error","Details":"OTP Mismatch"}"#).await;
    let p = provider(&server.base_url, serde_json::json!({}));
    assert_eq!(p.verify("+919876543210", "123456").await, Ok(false));
    assert_eq!(server.single().target(), format!("/API/V1/{KEY}/SMS/VERIFY3/919876543210/123456"));
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
    let config = testing::json_config("2f", "two_factor", serde_json::json!({"otp_mode": "voice"}));
    let built = testing::build_with(&config, &[("TWO_FACTOR_API_KEY", KEY)], TwoFactor::build);
    assert!(matches!(built, Err(BuildError::Invalid { key, .. }) if key == "otp_mode"));
}
