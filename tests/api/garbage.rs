//! Bad input on every route: always a clear JSON error with the right status, never a panic.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, Backend, ADMIN_TOKEN, SEND_TOKEN};

const POST_ROUTES: &[&str] = &[
    "/v1/otp/send",
    "/v1/otp/verify",
    "/v1/sms/send",
    "/v1/sms/template",
    "/api/sms/sendOtp",
    "/api/sms/verifyOtp",
    "/api/sms/sendTemplate",
    "/otp/send",
    "/otp/verify",
    "/sms/send-transactional",
];

fn assert_error_shape(route: &str, input: &str, status: u16, body: &serde_json::Value) {
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{route} with {input}: {status} {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies_get_a_clear_400_on_every_route() {
    let app = spawn_app(Backend::Memory).await;
    let bodies: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("not json", "hello".into()),
        ("truncated", "{\"phone\": \"+9198".into()),
        ("array", "[1,2,3]".into()),
        ("null", "null".into()),
        ("number", "42".into()),
        ("unknown field", json!({"phone": "+919876543210", "to": "+919876543210", "session_id": "x", "otp": "1234", "text": "t", "template": "t", "bogus": 1}).to_string()),
        ("wrong types", json!({"phone": 9876543210u64, "to": [], "session_id": 5, "otp": 1234, "text": {}, "template": false}).to_string()),
        ("bad phone", json!({"phone": "call me maybe"}).to_string()),
        ("nul bytes", "{\"phone\": \"\u{0000}\"}".into()),
        ("deep nesting", format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
    ];
    for route in POST_ROUTES {
        for (name, body) in &bodies {
            let r = app.request(Method::POST, route, Some(SEND_TOKEN), Some(body.clone()), &[]).await;
            assert_eq!(r.status, 400, "{route} with {name}: {}", r.body);
            assert_error_shape(route, name, r.status, &r.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_are_413_and_wrong_content_types_415() {
    let app = spawn_app(Backend::Memory).await;
    let huge = json!({"phone": "+919876543210", "name": "x".repeat(64 * 1024)}).to_string();
    for route in POST_ROUTES {
        let r = app.request(Method::POST, route, Some(SEND_TOKEN), Some(huge.clone()), &[]).await;
        assert_eq!(r.status, 413, "{route}: {}", r.body);
        assert_error_shape(route, "huge", r.status, &r.body);
        let res = app
            .http
            .post(format!("{}{route}", app.base))
            .bearer_auth(SEND_TOKEN)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 415, "{route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_values_are_checked_with_a_message_naming_the_field() {
    let app = spawn_app(Backend::Memory).await;
    let cases = [
        ("/v1/otp/send", json!({"phone": "12345"}), "invalid_phone"),
        ("/v1/otp/send", json!({"phone": "+919876543210", "user_id": ""}), "invalid_request"),
        (
            "/v1/otp/verify",
            json!({"session_id": "not-a-uuid", "otp": "123456"}),
            "invalid_request",
        ),
        (
            "/v1/otp/verify",
            json!({"session_id": uuid::Uuid::new_v4(), "otp": "12ab"}),
            "invalid_otp",
        ),
        ("/v1/sms/send", json!({"to": "+14155552671", "text": ""}), "invalid_request"),
        (
            "/v1/sms/send",
            json!({"to": "+14155552671", "text": "x".repeat(1601)}),
            "invalid_request",
        ),
        (
            "/v1/sms/template",
            json!({"to": "+919876543210", "template": "T", "vars": vec!["v"; 21]}),
            "invalid_request",
        ),
    ];
    for (route, body, code) in cases {
        let r = app.post(route, body.clone()).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some(code)),
            "{route} {body}: {}",
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_roles_enforced() {
    let app = spawn_app(Backend::Memory).await;
    let body = Some(json!({"phone": "+919876543210"}).to_string());
    for route in POST_ROUTES {
        let none = app.request(Method::POST, route, None, body.clone(), &[]).await;
        assert_eq!((none.status, none.body["error"].as_str()), (401, Some("unauthorized")), "{route}");
        assert_eq!(
            none.headers.get("www-authenticate").map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{route}"
        );
        let bad = app.request(Method::POST, route, Some("not-a-token"), body.clone(), &[]).await;
        assert_eq!(bad.status, 401, "{route}");
    }
    for route in ["/v1/routing/explain?to=%2B919876543210", "/v1/admin/attempts"] {
        let r = app.get(route, Some(SEND_TOKEN)).await;
        assert_eq!((r.status, r.body["error"].as_str()), (403, Some("forbidden")), "{route}");
        let ok = app.get(route, Some(ADMIN_TOKEN)).await;
        assert_eq!(ok.status, 200, "{route}: {}", ok.body);
    }
    let unknown = app.get("/v1/nope", Some(SEND_TOKEN)).await;
    assert_eq!((unknown.status, unknown.body["error"].as_str()), (404, Some("not_found")));
    let wrong_method = app.get("/v1/otp/send", Some(SEND_TOKEN)).await;
    assert_eq!(wrong_method.status, 405);
    let delete = app
        .request(Method::DELETE, "/v1/users/u1/contact", Some(SEND_TOKEN), None, &[])
        .await;
    assert_eq!((delete.status, delete.body["error"].as_str()), (405, Some("method_not_allowed")));
    let below = app.get("/v1/users/u1/contact/extra", Some(SEND_TOKEN)).await;
    assert_eq!((below.status, below.body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer() {
    let app = spawn_app(Backend::Memory).await;
    assert_eq!(app.get("/healthz", None).await.status, 200);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["store"]["kind"], "memory");
    assert!(ready.body["warnings"][0].as_str().unwrap().contains("durable"));
    let _ = app.send_otp().await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "smsgate_provider_requests_total",
        "smsgate_provider_request_duration_seconds",
        "smsgate_breaker_state",
        "smsgate_otp_sends_total",
        "smsgate_http_requests_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    assert!(!metrics.contains("9876543210"), "no phone number in metrics");
    assert!(!metrics.contains("sim-key"), "no secret in metrics");
}

#[test]
fn alert_rules_use_only_metrics_smsgate_defines() {
    let rules = include_str!("../../deploy/prometheus-alerts.yaml");
    let defined = include_str!("../../src/metrics.rs");
    let mut checked = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let Some(name) = word.strip_prefix("smsgate_") else { continue };
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            defined.contains(&format!("\"smsgate_{base}\"")),
            "alert uses undefined metric smsgate_{name}"
        );
        checked += 1;
    }
    assert!(checked >= 6, "the rules were read");
}

/// Values no field may hold: NUL (PostgreSQL refuses it in `text`), CR/LF (header and URL
/// injection), other C0 and C1 controls.
const POISON_EVERYWHERE: &[&str] = &["u\u{0}1", "u\r\nX-Injected: 1", "\u{0}", "u\u{1b}[2J", "u\u{7f}", "u\u{85}"];
/// What message texts and template vars may still not hold (line breaks and tabs are fine).
const POISON_IN_TEXT: &[&str] = &["a\u{0}b", "a\rb", "line\r\nbreak", "a\u{7}b", "a\u{9b}b"];
/// Identifiers also refuse what texts allow.
const POISON_IN_IDENTIFIERS: &[&str] = &["u\n1", "u\t1"];

/// A route, a valid body for it, and the text fields it carries: (field, is free text).
type Poisonable = (&'static str, serde_json::Value, Vec<(&'static str, bool)>);

fn poisonable() -> Vec<Poisonable> {
    let otp = json!({"phone": "+919876543210", "user_id": "u1", "name": "Asha", "purpose": "login", "provider": "2factor", "client_ip": "203.0.113.5"});
    let otp_fields = vec![
        ("user_id", false),
        ("name", false),
        ("purpose", false),
        ("provider", false),
        ("client_ip", false),
    ];
    let text = json!({"to": "+14155552671", "text": "Your order shipped", "user_id": "u1", "client_ip": "203.0.113.5"});
    let text_fields = vec![("text", true), ("user_id", false), ("client_ip", false)];
    let template =
        json!({"to": "+919876543210", "template": "OrderShipped", "vars": ["A-1", "today"], "user_id": "u1", "client_ip": "203.0.113.5"});
    let template_fields = vec![("template", false), ("vars", true), ("user_id", false), ("client_ip", false)];
    vec![
        ("/v1/otp/send", otp.clone(), otp_fields.clone()),
        ("/api/sms/sendOtp", otp.clone(), otp_fields.clone()),
        ("/otp/send", otp, otp_fields),
        ("/v1/sms/send", text.clone(), text_fields.clone()),
        ("/sms/send-transactional", text, text_fields),
        ("/v1/sms/template", template.clone(), template_fields.clone()),
        ("/api/sms/sendTemplate", template, template_fields),
    ]
}

fn poison(body: &serde_json::Value, field: &str, value: &str) -> serde_json::Value {
    let mut body = body.clone();
    if field == "vars" {
        body["vars"][1] = json!(value);
    } else {
        body[field] = json!(value);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_text_fields_are_400_naming_the_field_and_reach_no_provider() {
    let app = spawn_app(Backend::Memory).await;
    for (route, body, fields) in poisonable() {
        for (field, free_text) in fields {
            let extra = if free_text { POISON_IN_TEXT } else { POISON_IN_IDENTIFIERS };
            for value in POISON_EVERYWHERE.iter().chain(extra) {
                let r = app.post(route, poison(&body, field, value)).await;
                let named = if field == "vars" {
                    "`vars[1]`".to_string()
                } else {
                    format!("`{field}`")
                };
                assert_eq!(
                    (r.status, r.body["error"].as_str()),
                    (400, Some("invalid_request")),
                    "{route} {field}={value:?}: {}",
                    r.body
                );
                let message = r.body["message"].as_str().unwrap_or_default();
                assert!(message.contains(&named), "{route} {field}={value:?}: {message}");
            }
        }
        let r = app
            .request(
                Method::POST,
                route,
                Some(SEND_TOKEN),
                Some(body.to_string()),
                &[("Idempotency-Key", "key\twith-tab")],
            )
            .await;
        assert_eq!(r.status, 400, "{route} Idempotency-Key with a tab: {}", r.body);
        assert!(r.body["message"].as_str().unwrap_or_default().contains("Idempotency-Key"));
    }
    for (route, body) in [
        ("/v1/otp/verify", json!({"session_id": "\u{0}", "otp": "123456"})),
        ("/v1/otp/verify", json!({"session_id": uuid::Uuid::new_v4(), "otp": "12\u{0}34"})),
    ] {
        assert_eq!(app.post(route, body.clone()).await.status, 400, "{route} {body}");
    }
    for path in ["u%001", "u%0D%0AX-Injected:%201", "u%1B1", "u%C2%851"] {
        let get = app.get(&format!("/v1/users/{path}/contact"), Some(SEND_TOKEN)).await;
        assert_eq!(
            (get.status, get.body["error"].as_str()),
            (400, Some("invalid_request")),
            "GET {path}: {}",
            get.body
        );
        let put = app
            .request(
                Method::PUT,
                &format!("/v1/users/{path}/contact"),
                Some(SEND_TOKEN),
                Some(json!({"phone": "+919876543210", "otp_enabled": true}).to_string()),
                &[],
            )
            .await;
        assert_eq!(
            (put.status, put.body["error"].as_str()),
            (400, Some("invalid_request")),
            "PUT {path}: {}",
            put.body
        );
    }
    for value in POISON_EVERYWHERE {
        let put = app
            .request(
                Method::PUT,
                "/v1/users/u1/contact",
                Some(SEND_TOKEN),
                Some(json!({"phone": "+919876543210", "preferred_provider": value}).to_string()),
                &[],
            )
            .await;
        assert_eq!(put.status, 400, "preferred_provider={value:?}: {}", put.body);
        assert!(put.body["message"].as_str().unwrap_or_default().contains("`preferred_provider`"));
    }
    assert_eq!(
        (app.calls("2factor"), app.calls("twilio")),
        (0, 0),
        "no poisoned request reached a provider"
    );

    // The same bodies unpoisoned go out, and message texts keep their line breaks and tabs.
    for (route, body, _) in poisonable() {
        let r = app.post(route, body.clone()).await;
        assert!(r.status == 200 || r.status == 202, "{route} {body}: {} {}", r.status, r.body);
    }
    let multiline = json!({"to": "+14155552671", "text": "Line 1\nLine 2\tend"});
    assert_eq!(app.post("/v1/sms/send", multiline).await.status, 202);
    let vars = json!({"to": "+919876543210", "template": "OrderShipped", "vars": ["A-1\nB-2", ""]});
    assert_eq!(app.post("/v1/sms/template", vars).await.status, 202);
}
