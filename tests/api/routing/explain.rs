//! `GET /v1/routing/explain`: the ordered candidates for a destination and kind, and why each
//! is in or out right now (route, capability, breaker, 429 cool-down).

use serde_json::Value;
use smsgate::sim::SimHandle;

use smsgate::config::Settings;

use crate::helpers::{spawn_with, with_providers, Backend, ADMIN_TOKEN, PHONE, SEND_TOKEN};

const INDIA_OTP: &str = "to=%2B919876543210&kind=otp";

fn routed(sim: &SimHandle) -> Settings {
    let mut settings = with_providers(sim, &["vonage", "twilio", "2factor", "msg91"]);
    settings.routing.breaker.consecutive_failures = 2;
    settings.routing.breaker.open_ms = 60_000;
    settings.routing.countries = super::countries(&[("91", &["2factor", "msg91", "twilio"]), ("default", &["twilio", "vonage"])]);
    settings
}

fn line<'a>(body: &'a Value, provider: &str) -> &'a Value {
    body["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["provider"] == provider))
        .unwrap_or_else(|| panic!("no line for {provider}: {body}"))
}

fn order(body: &Value) -> Vec<&str> {
    body["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["provider"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_lists_the_country_order_with_eligibility_and_reasons() {
    let app = spawn_with(Backend::Memory, routed).await;
    let r = app.explain(INDIA_OTP, ADMIN_TOKEN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["kind"], "otp");
    assert_ne!(r.body["to"], PHONE, "the number is masked");
    assert_eq!(order(&r.body), ["2factor", "msg91", "twilio", "vonage"]);
    for name in ["2factor", "msg91", "twilio"] {
        let l = line(&r.body, name);
        assert_eq!(
            (&l["eligible"], l["reason"].as_str(), l["breaker"].as_str()),
            (&Value::Bool(true), Some("eligible"), Some("closed"))
        );
    }
    let vonage = line(&r.body, "vonage");
    assert_eq!(vonage["eligible"], false);
    assert_eq!(vonage["reason"], "not in the route for +91");

    let text = app.explain("to=%2B919876543210&kind=text", ADMIN_TOKEN).await;
    assert_eq!(line(&text.body, "2factor")["reason"], "cannot send text messages");
    let us = app.explain("to=%2B14155552671&kind=otp", ADMIN_TOKEN).await;
    assert_eq!(&order(&us.body)[..2], ["twilio", "vonage"]);
    assert_eq!(line(&us.body, "2factor")["eligible"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_circuit_open_once_the_primary_breaker_opens() {
    let app = spawn_with(Backend::Memory, routed).await;
    app.fault("2factor", "500");
    for _ in 0..2 {
        app.otp_round_trip(PHONE, "msg91").await;
    }
    let r = app.explain(INDIA_OTP, ADMIN_TOKEN).await;
    let primary = line(&r.body, "2factor");
    assert_eq!(
        (&primary["eligible"], primary["reason"].as_str(), primary["breaker"].as_str()),
        (&Value::Bool(false), Some("circuit open"), Some("open")),
        "{}",
        r.body
    );
    assert_eq!(line(&r.body, "msg91")["eligible"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_cooling_down_after_a_429_with_the_time_left() {
    let app = spawn_with(Backend::Memory, routed).await;
    app.fault("2factor", "throttle:30");
    app.otp_round_trip(PHONE, "msg91").await;
    let r = app.explain(INDIA_OTP, ADMIN_TOKEN).await;
    let primary = line(&r.body, "2factor");
    assert_eq!(
        (primary["eligible"].as_bool(), primary["reason"].as_str()),
        (Some(false), Some("cooling down after 429")),
        "{}",
        r.body
    );
    let left = primary["cooling_for_ms"].as_u64().expect("cooling_for_ms");
    assert!(
        (20_000..=30_000).contains(&left),
        "Retry-After: 30 leaves about 30 s, got {left} ms"
    );
    assert_eq!(primary["breaker"], "closed", "a 429 is not a failure");
    assert!(line(&r.body, "msg91").get("cooling_for_ms").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_is_for_admins_and_answers_bad_queries_with_400_json() {
    let app = spawn_with(Backend::Memory, routed).await;
    let r = app.explain(INDIA_OTP, SEND_TOKEN).await;
    assert_eq!((r.status, r.body["error"].as_str()), (403, Some("forbidden")), "{}", r.body);
    for (query, error) in [
        ("to=%2B919876543210&kind=fax", "invalid_request"),
        ("to=not-a-number&kind=otp", "invalid_phone"),
        ("kind=otp", "invalid_request"),
    ] {
        let r = app.explain(query, ADMIN_TOKEN).await;
        assert_eq!((r.status, r.body["error"].as_str()), (400, Some(error)), "{query}: {}", r.body);
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{query}: {}", r.body);
    }
}
