use super::*;
use crate::providers::testing::{self, body, CaptureServer, MALFORMED};

fn class(status: u16, text: &str) -> &'static str {
    match classify(&body(status, text)) {
        Ok(_) => "accepted",
        Err(e) => e.class(),
    }
}

fn error(message: &str) -> String {
    json!({"type": "error", "message": message}).to_string()
}

#[test]
fn every_documented_error_has_its_class() {
    assert_eq!(class(200, r#"{"type":"success","request_id":"3461"}"#), "accepted");
    assert_eq!(class(200, &error("authkey invalid")), "misconfigured");
    assert_eq!(class(401, &error("AuthenticationFailure")), "misconfigured");
    assert_eq!(
        class(200, r#"{"type":"error","message":"Unauthorized","code":"201"}"#),
        "misconfigured"
    );
    assert_eq!(class(200, r#"{"type":"error","message":"x","code":201}"#), "misconfigured");
    assert_eq!(class(400, &error("Invalid mobile number")), "rejected");
    assert_eq!(class(200, &error("Mobile no. invalid")), "rejected");
    assert_eq!(class(200, &error("Insufficient balance")), "misconfigured");
    assert_eq!(class(200, &error("Template not found")), "misconfigured");
    assert_eq!(class(400, &error("Invalid template id")), "misconfigured");
    assert_eq!(class(200, &error("Too Many Requests")), "throttled");
    assert_eq!(class(429, "slow down"), "throttled");
    assert_eq!(class(200, &error("Something new went wrong")), "unavailable");
    assert_eq!(class(500, &error("Insufficient balance")), "unavailable");
    assert_eq!(class(503, r#"{"type":"success"}"#), "unavailable");
}

#[test]
fn a_template_the_request_named_and_msg91_does_not_know_is_rejected() {
    let flow_class = |status, text: &str| match classify_as(&body(status, text), TemplateOf::Request) {
        Ok(_) => "accepted",
        Err(e) => e.class(),
    };
    for m in ["Template not found", "Invalid template id", "template_id invalid"] {
        assert_eq!(flow_class(200, &error(m)), "rejected", "{m}");
        assert_eq!(flow_class(400, &error(m)), "rejected", "{m}");
        assert_eq!(class(200, &error(m)), "misconfigured", "the configured OTP template: {m}");
    }
    // The account stays the account's, whoever named the template.
    assert_eq!(flow_class(200, &error("authkey invalid")), "misconfigured");
    assert_eq!(flow_class(401, &error("AuthenticationFailure")), "misconfigured");
    assert_eq!(flow_class(200, &error("Insufficient balance")), "misconfigured");
    assert_eq!(flow_class(400, &error("Invalid mobile number")), "rejected");
    assert_eq!(flow_class(200, &error("Too Many Requests")), "throttled");
    assert_eq!(flow_class(200, &error("Something new went wrong")), "unavailable");
}

#[test]
fn throttle_keeps_retry_after() {
    let mut answer = body(429, "");
    answer.retry_after = Some(std::time::Duration::from_secs(9));
    let err = classify(&answer).unwrap_err();
    assert!(matches!(err, ProviderError::Throttled { retry_after: Some(d), .. } if d.as_secs() == 9));
}

#[test]
fn malformed_answers_are_unavailable() {
    for text in MALFORMED {
        for status in [200, 400, 502] {
            assert_eq!(class(status, text), "unavailable", "{status} {text:?}");
        }
    }
    assert_eq!(class(200, "{}"), "unavailable");
    assert_eq!(class(200, "[1,2]"), "unavailable");
}

#[test]
fn verify_reads_wrong_and_expired_codes_as_false() {
    let verdict = |status, text: &str| classify_verify(&body(status, text));
    let ok = r#"{"type":"success","message":"OTP verified success"}"#;
    assert_eq!(verdict(200, ok), Ok(true));
    for m in ["OTP not match", "OTP expired", "Mobile no. already verified"] {
        assert_eq!(verdict(200, &error(m)), Ok(false), "{m}");
        assert_eq!(verdict(400, &error(m)), Ok(false), "{m}");
    }
    assert_eq!(verdict(200, &error("authkey invalid")).unwrap_err().class(), "misconfigured");
    assert_eq!(verdict(429, "").unwrap_err().class(), "throttled");
    assert_eq!(verdict(500, &error("OTP expired")).unwrap_err().class(), "unavailable");
    assert_eq!(verdict(200, "<html>").unwrap_err().class(), "unavailable");
}

fn build(base: &str, extra: &str) -> Msg91 {
    let config = testing::provider_config(&format!(
        "name = \"msg91\"\nkind = \"msg91\"\nbase_url = \"{base}\"\ntemplate_id = \"tpl-1\"\n{extra}"
    ));
    testing::build_with(&config, &[("MSG91_AUTH_KEY", "k-secret")], Msg91::build).unwrap()
}

#[tokio::test]
async fn local_otp_sends_smsgates_code() {
    let mut server = CaptureServer::start(200, r#"{"type":"success","request_id":"r-1"}"#).await;
    let msg91 = build(&server.base_url, "");
    let accepted = msg91.send(&testing::otp("123456", "code 123456")).await.unwrap();
    assert_eq!(accepted.reference.as_deref(), Some("r-1"));
    assert!(!accepted.provider_verifies);
    let req = server.request().await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v5/otp"));
    assert_eq!(req.raw_query.as_deref(), Some("template_id=tpl-1&mobile=919876543210&otp=123456"));
    assert_eq!(req.header("authkey"), Some("k-secret"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.json(), json!({}));
}

#[tokio::test]
async fn autogen_otp_lets_msg91_make_and_check_the_code() {
    let mut server = CaptureServer::start(200, r#"{"type":"success","request_id":"r-2"}"#).await;
    let msg91 = build(&server.base_url, "otp_mode = \"autogen\"");
    assert_eq!(msg91.capabilities().otp, OtpSupport::ProviderHeld);
    let accepted = msg91.send(&testing::otp("123456", "x")).await.unwrap();
    assert_eq!(accepted.reference.as_deref(), Some("919876543210"));
    assert!(accepted.provider_verifies);
    let req = server.request().await;
    assert_eq!(req.raw_query.as_deref(), Some("template_id=tpl-1&mobile=919876543210"));

    assert_eq!(msg91.verify("919876543210", "4321").await, Ok(true));
    let req = server.request().await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/api/v5/otp/verify"));
    assert_eq!(req.raw_query.as_deref(), Some("mobile=919876543210&otp=4321"));
    assert_eq!(req.header("authkey"), Some("k-secret"));
}

#[tokio::test]
async fn template_goes_through_flow() {
    let mut server = CaptureServer::start(200, r#"{"type":"success","message":"f-9"}"#).await;
    let msg91 = build(&server.base_url, "");
    let accepted = msg91.send(&testing::template("order_shipped", &["A1", "today"])).await.unwrap();
    assert_eq!(accepted.reference.as_deref(), Some("f-9"));
    let req = server.request().await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v5/flow/"));
    assert_eq!(req.header("authkey"), Some("k-secret"));
    assert_eq!(
        req.json(),
        json!({"template_id": "order_shipped", "short_url": "0",
               "recipients": [{"mobiles": "919876543210", "var1": "A1", "var2": "today"}]})
    );
}

#[tokio::test]
async fn an_unknown_flow_template_is_rejected_but_an_unknown_otp_template_is_misconfigured() {
    let server = CaptureServer::start(200, &error("Template not found")).await;
    let msg91 = build(&server.base_url, "");
    let err = msg91.send(&testing::template("no_such_flow", &["A1"])).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Rejected { code, .. } if code == "unknown_template"),
        "{err:?}"
    );
    assert_eq!(msg91.send(&testing::otp("123456", "x")).await.unwrap_err().class(), "misconfigured");
}

#[tokio::test]
async fn provider_errors_never_carry_the_key() {
    let server = CaptureServer::start(401, &error("Invalid authkey k-secret?")).await;
    let msg91 = build(&server.base_url, "");
    let err = msg91.send(&testing::otp("1", "1")).await.unwrap_err();
    assert_eq!(err.class(), "misconfigured");
    let msg91 = build("http://127.0.0.1:1", "");
    let err = msg91.send(&testing::otp("1", "1")).await.unwrap_err();
    assert_eq!(err.class(), "unavailable");
    assert!(!err.to_string().contains("k-secret"));
}

#[test]
fn build_checks_mode_template_and_secret() {
    let config = |extra: &str| testing::provider_config(&format!("name = \"m\"\nkind = \"msg91\"\n{extra}"));
    let env = [("MSG91_AUTH_KEY", "k")];
    let err = testing::build_with(&config("template_id = \"t\"\notp_mode = \"verify\""), &env, Msg91::build);
    assert!(matches!(err, Err(BuildError::Invalid { key, .. }) if key == "otp_mode"));
    let err = testing::build_with(&config(""), &env, Msg91::build);
    assert!(matches!(err, Err(BuildError::Invalid { key, .. }) if key == "template_id"));
    let err = testing::build_with(&config("template_id = \"t\""), &[], Msg91::build);
    assert!(matches!(err, Err(BuildError::MissingSecret { var, .. }) if var == "MSG91_AUTH_KEY"));
    let msg91 = testing::build_with(&config("template_id = \"t\""), &env, Msg91::build).unwrap();
    assert_eq!(msg91.capabilities().countries, vec!["91".to_string()]);
    assert!(!msg91.capabilities().text && msg91.capabilities().template);
}
