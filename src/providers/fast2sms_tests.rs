use super::*;
use crate::providers::testing::{self, body, CaptureServer, MALFORMED};

fn class(status: u16, text: &str) -> &'static str {
    match classify(&body(status, text)) {
        Ok(_) => "accepted",
        Err(e) => e.class(),
    }
}

fn failure(code: u32) -> String {
    format!(r#"{{"return":false,"status_code":{code},"message":"m{code}"}}"#)
}

#[test]
fn every_documented_error_has_its_class() {
    for code in [412, 413, 416, 996, 997] {
        assert_eq!(class(200, &failure(code)), "misconfigured", "{code}");
        assert_eq!(class(400, &failure(code)), "misconfigured", "{code}");
    }
    for code in [406, 411, 995, 999] {
        assert_eq!(class(200, &failure(code)), "rejected", "{code}");
        assert_eq!(class(400, &failure(code)), "rejected", "{code}");
    }
    let err = classify(&body(400, &failure(406))).unwrap_err();
    assert_eq!(err, ProviderError::rejected(Some(400), "406", "m406"));
    assert_eq!(
        class(401, r#"{"return":false,"status_code":"412","message":"Invalid Authentication"}"#),
        "misconfigured"
    );
    for code in [400, 401, 402, 990] {
        assert_eq!(class(400, &failure(code)), "unavailable", "{code}");
    }
    assert_eq!(class(429, ""), "throttled");
    assert_eq!(class(500, &failure(412)), "unavailable");
    assert_eq!(class(200, r#"{"return":false}"#), "unavailable");
}

#[test]
fn an_unknown_dlt_template_is_rejected_when_the_request_named_it() {
    for status in [200, 400] {
        let err = classify_as(&body(status, &failure(413)), TemplateOf::Request).unwrap_err();
        assert_eq!(err, ProviderError::rejected(Some(status), "unknown_template", "m413"));
        for code in [412, 416, 996, 997] {
            let err = classify_as(&body(status, &failure(code)), TemplateOf::Request).unwrap_err();
            assert_eq!(err.class(), "misconfigured", "the account's, whoever named the template: {code}");
        }
    }
}

#[test]
fn success_carries_the_request_id() {
    let ok = r#"{"return":true,"request_id":"lwdtp7","message":["SMS sent successfully."]}"#;
    assert_eq!(classify(&body(200, ok)), Ok(Some("lwdtp7".into())));
}

#[test]
fn malformed_answers_are_unavailable() {
    for text in MALFORMED {
        for status in [200, 400, 502] {
            assert_eq!(class(status, text), "unavailable", "{status} {text:?}");
        }
    }
    assert_eq!(class(200, r#"{"return":"true"}"#), "unavailable");
}

const OK: &str = r#"{"return":true,"request_id":"r-1","message":["SMS sent successfully."]}"#;

async fn sent(extra: &str, sms: OutboundSms) -> testing::Captured {
    let mut server = CaptureServer::start(200, OK).await;
    let config = testing::provider_config(&format!(
        "name = \"f2s\"\nkind = \"fast2sms\"\nbase_url = \"{}\"\n{extra}",
        server.base_url
    ));
    let f2s = testing::build_with(&config, &[("FAST2SMS_API_KEY", "f-key")], Fast2Sms::build).unwrap();
    let accepted = f2s.send(&sms).await.unwrap();
    assert_eq!(accepted.reference.as_deref(), Some("r-1"));
    let req = server.request().await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/dev/bulkV2"));
    assert_eq!(req.raw_query, None);
    assert_eq!(req.header("authorization"), Some("f-key"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    req
}

#[tokio::test]
async fn otp_uses_the_otp_route_by_default() {
    let req = sent("", testing::otp("482913", "Your code is 482913")).await;
    assert_eq!(
        req.json(),
        json!({"route": "otp", "variables_values": "482913", "numbers": "9876543210"})
    );
}

#[tokio::test]
async fn otp_can_go_through_a_dlt_template() {
    let extra = "route = \"dlt\"\nsender_id = \"SMSGTE\"\ntemplate_id = \"1707\"";
    let req = sent(extra, testing::otp("482913", "x")).await;
    assert_eq!(
        req.json(),
        json!({"route": "dlt", "sender_id": "SMSGTE", "message": "1707",
               "variables_values": "482913", "numbers": "9876543210"})
    );
}

#[tokio::test]
async fn text_uses_the_quick_route() {
    let req = sent("", testing::text("Order shipped")).await;
    assert_eq!(
        req.json(),
        json!({"route": "q", "message": "Order shipped", "numbers": "9876543210"})
    );
}

#[tokio::test]
async fn template_uses_dlt_with_pipe_joined_values() {
    let req = sent("sender_id = \"SMSGTE\"", testing::template("1707160", &["A1", "today"])).await;
    assert_eq!(
        req.json(),
        json!({"route": "dlt", "sender_id": "SMSGTE", "message": "1707160",
               "variables_values": "A1|today", "numbers": "9876543210"})
    );
}

#[test]
fn build_checks_route_and_its_keys() {
    let config = |extra: &str| testing::provider_config(&format!("name = \"f\"\nkind = \"fast2sms\"\n{extra}"));
    let env = [("FAST2SMS_API_KEY", "k")];
    let key_of = |extra: &str| match testing::build_with(&config(extra), &env, Fast2Sms::build) {
        Err(BuildError::Invalid { key, .. }) => key,
        other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
    };
    assert_eq!(key_of("route = \"bulk\""), "route");
    assert_eq!(key_of("route = \"dlt\"\ntemplate_id = \"1\""), "sender_id");
    assert_eq!(key_of("route = \"dlt\"\nsender_id = \"S\""), "template_id");
    let err = testing::build_with(&config(""), &[], Fast2Sms::build);
    assert!(matches!(err, Err(BuildError::MissingSecret { var, .. }) if var == "FAST2SMS_API_KEY"));
    let plain = testing::build_with(&config(""), &env, Fast2Sms::build).unwrap();
    assert!(!plain.capabilities().template);
    assert_eq!(plain.capabilities().countries, vec!["91"]);
    let dlt = testing::build_with(&config("sender_id = \"S\""), &env, Fast2Sms::build).unwrap();
    assert!(dlt.capabilities().template && dlt.capabilities().text);
}
