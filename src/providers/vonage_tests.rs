use std::time::Duration;

use super::*;
use crate::providers::testing::{self, body, pairs, text, CaptureServer};

const OK: &str = r#"{"message-count":"1","messages":[{"to":"919876543210","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14","message-price":"0.03","network":"40410"}]}"#;

fn failed(status: &str) -> Body {
    let json = serde_json::json!({
        "message-count": "1",
        "messages": [{"status": status, "error-text": "described"}],
    });
    body(200, &json.to_string())
}

fn build(config: serde_json::Value) -> Result<Vonage, BuildError> {
    let config = testing::json_config("vonage", "vonage", config);
    let secrets = [("VONAGE_API_KEY", "abcd1234"), ("VONAGE_API_SECRET", "s3cretvalue")];
    testing::build_with(&config, &secrets, Vonage::build)
}

#[test]
fn every_documented_status_has_its_one_class() {
    let cases = [
        ("1", "throttled"),
        ("2", "misconfigured"),
        ("3", "rejected"),
        ("4", "misconfigured"),
        ("5", "unavailable"),
        ("6", "rejected"),
        ("7", "rejected"),
        ("8", "misconfigured"),
        ("9", "misconfigured"),
        ("10", "throttled"),
        ("11", "misconfigured"),
        ("12", "rejected"),
        ("14", "misconfigured"),
        ("15", "misconfigured"),
        ("22", "rejected"),
        ("23", "misconfigured"),
        ("29", "misconfigured"),
        ("32", "misconfigured"),
        ("33", "rejected"),
        ("13", "unavailable"),
        ("99", "unavailable"),
    ];
    for (status, class) in cases {
        let err = classify(&failed(status)).unwrap_err();
        assert_eq!(err.class(), class, "status {status}");
        assert_eq!(err.http_status(), Some(200));
    }
    match classify(&failed("3")).unwrap_err() {
        ProviderError::Rejected { code, details, .. } => {
            assert_eq!((code.as_str(), details.as_str()), ("3", "described"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_multipart_answer_fails_on_its_first_failed_part() {
    let ok_part = r#"{"to":"919876543210","message-id":"part-1","status":"0"}"#;
    let answer = format!(
        r#"{{"message-count":"3","messages":[{ok_part},{{"status":"4","error-text":"Bad Credentials"}},{{"status":"3","error-text":"Invalid"}}]}}"#
    );
    assert_eq!(classify(&body(200, &answer)).unwrap_err().class(), "misconfigured");
    let all_ok = format!(r#"{{"message-count":"2","messages":[{ok_part},{{"message-id":"part-2","status":"0"}}]}}"#);
    assert_eq!(classify(&body(200, &all_ok)), Ok(Some("part-1".to_string())));
}

#[test]
fn http_429_is_throttled_with_retry_after() {
    let mut b = body(429, "");
    b.retry_after = Some(Duration::from_secs(2));
    match classify(&b).unwrap_err() {
        ProviderError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(2)))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_answers_and_5xx_are_unavailable() {
    for (status, text) in [
        (200, "<html><body>Gateway Timeout</body></html>"),
        (200, ""),
        (200, r#"{"message-count":"1","messages":[{"status":"0""#),
        (200, r#"{"message-count":"0","messages":[]}"#),
        (200, r#"{"message-count":"1","messages":[{"message-id":"x"}]}"#),
        (200, r#"{"error":"unexpected"}"#),
        (500, OK),
        (502, "<html/>"),
    ] {
        let err = classify(&body(status, text)).unwrap_err();
        assert_eq!(err.class(), "unavailable", "{status} {text}");
    }
}

#[test]
fn gsm7_covers_latin_text_and_not_other_scripts() {
    assert!(is_gsm7("Your code is 482913. Ça marche, café à 5€ {ok} [x] ~^|\\"));
    assert!(!is_gsm7("आपका कोड 482913 है"));
    assert!(!is_gsm7("code 482913 ✅"));
    assert!(!is_gsm7("ça coûte"), "û is not in GSM 03.38");
}

#[tokio::test]
async fn text_is_a_form_post_with_credentials_in_the_body() {
    let mut server = CaptureServer::start(200, OK).await;
    let p = build(serde_json::json!({"base_url": server.base_url, "from": "SMSGATE"})).unwrap();
    let accepted = p.send(&text("Order shipped")).await.unwrap();
    assert_eq!(
        accepted,
        Accepted {
            reference: Some("0A0000000123ABCD1".into()),
            provider_verifies: false,
            http_status: 200,
        }
    );
    let req = server.single();
    assert_eq!((req.method.as_str(), req.target().as_str()), ("POST", "/sms/json"));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(req.header("authorization"), None);
    let expected = [
        ("api_key", "abcd1234"),
        ("api_secret", "s3cretvalue"),
        ("from", "SMSGATE"),
        ("to", "919876543210"),
        ("text", "Order shipped"),
    ];
    assert_eq!(req.form_pairs(), pairs(&expected));
}

#[tokio::test]
async fn non_gsm_text_is_sent_as_unicode() {
    let mut server = CaptureServer::start(200, OK).await;
    let p = build(serde_json::json!({"base_url": server.base_url, "from": "SMSGATE"})).unwrap();
    p.send(&text("आपका कोड 482913 है")).await.unwrap();
    let form = server.single().form_pairs();
    assert_eq!(form.last(), Some(&("type".to_string(), "unicode".to_string())));
    assert!(form.contains(&("text".to_string(), "आपका कोड 482913 है".to_string())));
}

#[tokio::test]
async fn build_requires_from_and_templates_are_refused() {
    match build(serde_json::json!({})) {
        Err(BuildError::Invalid { key, .. }) => assert_eq!(key, "from"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("built without from"),
    }
    let p = build(serde_json::json!({"from": "X", "base_url": "http://127.0.0.1:9"})).unwrap();
    let template = testing::template("t", &[]);
    assert_eq!(p.send(&template).await.unwrap_err().class(), "misconfigured");
}
