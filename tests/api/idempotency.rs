//! `Idempotency-Key` on the send routes: a replay answers the first response and sends nothing,
//! another body with the same key is 422, fifty concurrent duplicates make one provider call,
//! answers worth retrying (5xx, 429) release the key, and malformed keys are 400.

use serde_json::{json, Value};

use crate::helpers::{config, spawn_app, spawn_pair, spawn_tuned, Backend, Reply, SettingsExt, TestApp, PHONE};
use crate::on_both_stores;

async fn keyed(app: &TestApp, path: &str, key: &str, body: Value) -> Reply {
    app.post_with(path, body, &[("Idempotency-Key", key)]).await
}

fn replayed(r: &Reply) -> bool {
    r.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()) == Some("true")
}

async fn a_replay_returns_the_first_answer_and_sends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!replayed(&first));
    for _ in 0..3 {
        let again = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body, first.body, "the same session, the same answer");
        assert!(replayed(&again), "Idempotent-Replayed: true");
    }
    assert_eq!(app.sent(), 1);
    let other = keyed(&app, "/v1/otp/send", "k-2", json!({ "phone": PHONE })).await;
    assert_ne!(other.body["session_id"], first.body["session_id"], "another key is another send");
    assert_eq!(app.sent(), 2);
}

async fn the_same_key_with_another_body_is_422(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await.status, 200);
    let r = keyed(&app, "/v1/otp/send", "k-1", json!({"phone": "+919876500001"})).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{}",
        r.body
    );
    assert!(r.body["message"].is_string());
    let route = keyed(&app, "/v1/sms/send", "k-1", json!({"to": PHONE, "text": "hi"})).await;
    assert_eq!(route.status, 422, "the key covers the route too: {}", route.body);
    assert_eq!(app.sent(), 1);
}

async fn fifty_concurrent_duplicates_make_one_provider_call(backend: Backend) {
    let app = spawn_app(backend).await;
    let replies = futures::future::join_all((0..50).map(|_| keyed(&app, "/v1/otp/send", "burst", json!({ "phone": PHONE })))).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let first = &replies[0].body["session_id"];
    assert!(first.is_string());
    assert!(
        replies.iter().all(|r| &r.body["session_id"] == first),
        "every answer names one session"
    );
    assert_eq!(
        replies.iter().filter(|r| !replayed(r)).count(),
        1,
        "one request ran, 49 were replays"
    );
    assert_eq!(app.sent(), 1);
}

async fn a_5xx_releases_the_key_for_a_retry(backend: Backend) {
    let app = spawn_app(backend).await;
    app.fault("2factor", "500");
    app.fault("twilio", "500");
    let failed = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    let calls = app.sent();
    app.clear_fault("2factor");
    app.clear_fault("twilio");
    let retry = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert!(!replayed(&retry), "the retry ran");
    assert_eq!(app.sent(), calls + 1);
    let again = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
    assert_eq!(
        (again.body["session_id"].clone(), replayed(&again)),
        (retry.body["session_id"].clone(), true)
    );

    app.fault("twilio", "500");
    let text = json!({"to": "+14155552671", "text": "hello"});
    let failed = keyed(&app, "/v1/sms/send", "t-1", text.clone()).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    app.clear_fault("twilio");
    let retry = keyed(&app, "/v1/sms/send", "t-1", text).await;
    assert_eq!((retry.status, replayed(&retry)), (202, false), "{}", retry.body);
}

async fn a_key_whose_message_may_have_gone_out_is_kept(backend: Backend) {
    // 2Factor takes the request but answers too late, Twilio fails: the code may still arrive,
    // so a retry with the same key must not send another one.
    let app = spawn_tuned(backend, |c| *c.provider_mut("2factor").timeout_ms_mut() = Some(300)).await;
    app.fault("2factor", "timeout");
    app.fault("twilio", "500");
    let first = keyed(&app, "/v1/otp/send", "k-maybe", json!({ "phone": PHONE })).await;
    assert_eq!(
        (first.status, first.body["delivery"].as_str()),
        (503, Some("unknown")),
        "{}",
        first.body
    );
    let calls = app.sent();
    app.clear_fault("2factor");
    app.clear_fault("twilio");
    let retry = keyed(&app, "/v1/otp/send", "k-maybe", json!({ "phone": PHONE })).await;
    assert_eq!((retry.status, replayed(&retry)), (503, true), "{}", retry.body);
    assert_eq!(app.sent(), calls, "nothing sent twice");
}

async fn a_rate_limited_answer_is_not_kept(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.resend_cooldown_seconds = 1).await;
    assert_eq!(app.send_otp().await.status, 200);
    let limited = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    // Retrying the same operation after Retry-After is what a 429 asks for.
    app.advance(1);
    let through = keyed(&app, "/v1/otp/send", "k-1", json!({ "phone": PHONE })).await;
    assert_eq!(
        (through.status, replayed(&through)),
        (200, false),
        "the key goes through once the cooldown is over: {}",
        through.body
    );
    assert_eq!(app.sent(), 2);
}

async fn malformed_keys_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for key in [String::new(), "x".repeat(256), "two words".into()] {
        let r = keyed(&app, "/v1/otp/send", &key, json!({ "phone": PHONE })).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_request")),
            "{key:?}: {}",
            r.body
        );
        assert!(r.body["message"].as_str().is_some_and(|m| m.contains("Idempotency-Key")));
        let r = keyed(&app, "/v1/sms/send", &key, json!({"to": PHONE, "text": "hi"})).await;
        assert_eq!(r.status, 400, "{key:?}: {}", r.body);
    }
    assert_eq!(app.sent(), 0);
    let longest = keyed(&app, "/v1/otp/send", &"x".repeat(255), json!({ "phone": PHONE })).await;
    assert_eq!(longest.status, 200, "255 characters is allowed: {}", longest.body);
}

async fn text_sends_are_idempotent_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"to": PHONE, "text": "your parcel is on its way"});
    let first = keyed(&app, "/v1/sms/send", "t-1", body.clone()).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = keyed(&app, "/v1/sms/send", "t-1", body.clone()).await;
    assert_eq!((again.status, &again.body, replayed(&again)), (202, &first.body, true));
    let other = keyed(&app, "/v1/sms/send", "t-1", json!({"to": PHONE, "text": "something else"})).await;
    assert_eq!((other.status, other.body["error"].as_str()), (422, Some("idempotency_key_reused")));
    let burst = futures::future::join_all((0..20).map(|_| keyed(&app, "/v1/sms/send", "t-2", body.clone()))).await;
    let id = &burst[0].body["message_id"];
    assert!(burst.iter().all(|r| r.status == 202 && &r.body["message_id"] == id));
    assert_eq!(app.sent(), 2);
}

on_both_stores!(
    a_key_whose_message_may_have_gone_out_is_kept,
    a_replay_returns_the_first_answer_and_sends_nothing,
    the_same_key_with_another_body_is_422,
    fifty_concurrent_duplicates_make_one_provider_call,
    a_5xx_releases_the_key_for_a_retry,
    a_rate_limited_answer_is_not_kept,
    malformed_keys_are_400,
    text_sends_are_idempotent_too,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_on_one_instance_replays_on_another() {
    let (a, b) = spawn_pair(config).await;
    let replies = futures::future::join_all((0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        keyed(app, "/v1/otp/send", "shared", json!({ "phone": PHONE }))
    }))
    .await;
    let id = &replies[0].body["session_id"];
    assert!(replies.iter().all(|r| r.status == 200 && &r.body["session_id"] == id));
    assert_eq!(a.sent(), 1);
}
