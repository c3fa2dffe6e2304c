//! Segment counting and message types at the API: texts are measured before they leave, a text
//! past `max_segments` is refused before any provider call, parts are logged and counted, and
//! `type` labels the attempt rows.

use serde_json::{json, Value};

use crate::helpers::{spawn_tuned, Backend, TestApp, ADMIN_TOKEN, PHONE};
use crate::on_both_stores;

async fn spawn(backend: Backend, max_segments: Option<u32>) -> TestApp {
    spawn_tuned(backend, |c| {
        if let Some(max) = max_segments {
            c.messages.max_segments = max;
        }
    })
    .await
}

/// The newest attempt row as the admin API shows it.
async fn newest_attempt(app: &TestApp) -> Value {
    let reply = app.get("/v1/admin/attempts?limit=1", Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["attempts"][0].clone()
}

async fn a_text_past_max_segments_is_refused_before_any_provider_is_called(backend: Backend) {
    let app = spawn(backend, None).await;
    // 7 × 153 GSM-7 septets need seven parts; the default cap is six.
    let text = "a".repeat(153 * 6 + 1);
    let reply = app.post("/v1/sms/send", json!({ "to": PHONE, "text": text })).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["error"], "too_many_segments");
    assert_eq!(
        (reply.body["parts"].clone(), reply.body["max_segments"].clone()),
        (json!(7), json!(6))
    );
    assert_eq!(reply.body["encoding"], "gsm7");
    assert_eq!(app.sent(), 0, "no provider was called");
    // Six parts exactly go out.
    let ok = app.post("/v1/sms/send", json!({ "to": PHONE, "text": "a".repeat(153 * 6) })).await;
    assert_eq!((ok.status, ok.body["parts"].clone()), (202, json!(6)), "{}", ok.body);
}

async fn max_segments_is_configurable_and_counts_ucs2_in_utf16_units(backend: Backend) {
    let app = spawn(backend, Some(1)).await;
    // 35 emoji are 70 UTF-16 units: one UCS-2 part. The 36th makes two.
    let one = app.post("/v1/sms/send", json!({ "to": PHONE, "text": "😀".repeat(35) })).await;
    assert_eq!((one.status, one.body["parts"].clone()), (202, json!(1)), "{}", one.body);
    let two = app.post("/v1/sms/send", json!({ "to": PHONE, "text": "😀".repeat(36) })).await;
    assert_eq!(
        (two.status, two.body["error"].clone()),
        (422, json!("too_many_segments")),
        "{}",
        two.body
    );
    assert_eq!((two.body["parts"].clone(), two.body["encoding"].clone()), (json!(2), json!("ucs2")));
    assert_eq!(app.sent(), 1);
}

async fn parts_are_logged_per_attempt_and_counted_in_a_metric(backend: Backend) {
    let app = spawn(backend, None).await;
    // Devanagari is UCS-2: 72 units take two parts of 67.
    let reply = app.post("/v1/sms/send", json!({ "to": PHONE, "text": "नमस्ते".repeat(12) })).await;
    assert_eq!((reply.status, reply.body["parts"].clone()), (202, json!(2)), "{}", reply.body);
    let provider = reply.body["provider"].as_str().unwrap().to_string();
    let row = newest_attempt(&app).await;
    assert_eq!(
        (row["parts"].clone(), row["kind"].clone()),
        (json!(2), json!("transactional")),
        "{row}"
    );
    let metric = format!("smsgate_sms_parts_total{{kind=\"transactional\",provider=\"{provider}\"}}");
    assert_eq!(app.metric(&metric).await, Some(2.0));
}

async fn the_type_field_labels_attempts_transactional_or_promo(backend: Backend) {
    let app = spawn(backend, None).await;
    let promo = app
        .post("/v1/sms/send", json!({ "to": PHONE, "text": "Sale today", "type": "promotional" }))
        .await;
    assert_eq!(promo.status, 202, "{}", promo.body);
    assert_eq!(newest_attempt(&app).await["kind"], "promo");
    let template = app
        .post(
            "/v1/sms/template",
            json!({ "to": PHONE, "template": "OrderShipped", "vars": ["A1"], "type": "transactional" }),
        )
        .await;
    assert_eq!(template.status, 202, "{}", template.body);
    assert_eq!(newest_attempt(&app).await["kind"], "transactional");
    let bad = app
        .post("/v1/sms/send", json!({ "to": PHONE, "text": "x", "type": "marketing" }))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

on_both_stores!(
    a_text_past_max_segments_is_refused_before_any_provider_is_called,
    max_segments_is_configurable_and_counts_ucs2_in_utf16_units,
    parts_are_logged_per_attempt_and_counted_in_a_metric,
    the_type_field_labels_attempts_transactional_or_promo,
);
