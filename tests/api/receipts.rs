//! Delivery receipts end to end: the simulator's fakes push each provider's receipt, signed its
//! way, to `/v1/webhooks/{provider}/status`; the attempt shows the delivery. Forged and unsigned
//! receipts are refused and change nothing; duplicates change nothing; a receipt that arrives
//! before its attempt row is matched when the row is written.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use smsgate::hooks::receipts::twilio_signature;
use smsgate::metrics::Metrics;
use smsgate::sim::receipts::SIGNATURE_SECRET;
use smsgate::sim::ReceiptFault;
use smsgate::store::receipts::{Delivery, DeliveryStatus, Receipt, ReceiptOutcome, ReceiptStore};
use smsgate::store::{AttemptRow, MemoryStore, PostgresStore, SendLog, Store};
use uuid::Uuid;

use crate::db::TestDb;
use crate::helpers::{eventually, sim_provider, spawn_with, with_providers, Backend, TestApp, ADMIN_TOKEN, PHONE};
use crate::on_both_stores;

const URL_TOKEN: &str = "receipt-token";

/// The app with `provider` as its only provider, taking receipts, and the simulator sending
/// that provider's receipts to it (with `fault`).
async fn spawn(backend: Backend, provider: &str, fault: Option<ReceiptFault>) -> TestApp {
    let app = spawn_with(backend, |sim| {
        let mut c = with_providers(sim, &[]);
        c.providers = vec![sim_provider(sim, provider, 1)];
        c.receipts.url_token = Some(URL_TOKEN.to_string().into());
        c.receipts.vonage_signature_secret = Some(SIGNATURE_SECRET.to_string().into());
        c
    })
    .await;
    let callback = format!("{}/v1/webhooks/{provider}/status?token={URL_TOKEN}", app.base);
    app.sim.state().receipts.set_callback(provider, Some(&callback));
    app.sim.state().receipts.set_fault(provider, fault);
    app
}

/// Sends a text (or, to providers that only send templates, a template) and returns the
/// message id.
async fn send(app: &TestApp) -> String {
    let reply = app.post("/v1/sms/send", json!({ "to": PHONE, "text": "Your order shipped" })).await;
    let reply = if reply.status == 202 {
        reply
    } else {
        app.post(
            "/v1/sms/template",
            json!({ "to": PHONE, "template": "OrderShipped", "vars": ["A1"] }),
        )
        .await
    };
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.body["message_id"].as_str().unwrap().to_string()
}

/// The attempt row of `message_id` as the admin API shows it.
async fn attempt(app: &TestApp, message_id: &str) -> Value {
    let reply = app.get("/v1/admin/attempts?limit=50", Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["message_id"] == message_id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the attempt of `message_id` shows a delivery; returns it.
async fn delivery(app: &TestApp, message_id: &str) -> Value {
    eventually(Duration::from_secs(5), || async {
        !attempt(app, message_id).await["delivery"].is_null()
    })
    .await;
    attempt(app, message_id).await["delivery"].clone()
}

async fn delivered_through(backend: Backend, provider: &str) {
    let app = spawn(backend, provider, None).await;
    let id = send(&app).await;
    let got = delivery(&app, &id).await;
    assert_eq!(got["status"], "delivered", "{provider}: {got}");
    assert_eq!(got["error_code"], Value::Null, "{provider}: {got}");
    let ratio = format!("smsgate_delivered_ratio{{provider=\"{provider}\"}}");
    assert_eq!(app.metric(&ratio).await, Some(1.0), "{provider}");
}

async fn a_signed_twilio_receipt_marks_the_attempt_delivered(backend: Backend) {
    delivered_through(backend, "twilio").await;
}

async fn a_signed_plivo_receipt_marks_the_attempt_delivered(backend: Backend) {
    delivered_through(backend, "plivo").await;
}

async fn a_signed_vonage_receipt_marks_the_attempt_delivered(backend: Backend) {
    delivered_through(backend, "vonage").await;
}

async fn an_msg91_receipt_with_the_url_token_marks_the_attempt_delivered(backend: Backend) {
    delivered_through(backend, "msg91").await;
}

async fn a_2factor_receipt_with_the_url_token_marks_the_attempt_delivered(backend: Backend) {
    delivered_through(backend, "2factor").await;
}

async fn a_failed_receipt_marks_the_attempt_failed_with_the_providers_code(backend: Backend) {
    let app = spawn(backend, "twilio", Some(ReceiptFault::Failed)).await;
    let id = send(&app).await;
    let got = delivery(&app, &id).await;
    assert_eq!(
        (got["status"].clone(), got["error_code"].clone()),
        (json!("failed"), json!("30008")),
        "{got}"
    );
    assert_eq!(app.metric("smsgate_delivered_ratio{provider=\"twilio\"}").await, Some(0.0));
}

async fn failed_receipts_reach_provider_health(backend: Backend) {
    let app = spawn(backend, "twilio", Some(ReceiptFault::Failed)).await;
    for _ in 0..3 {
        let id = send(&app).await;
        assert_eq!(delivery(&app, &id).await["status"], "failed");
    }
    // Each matched receipt is timed and handed to health together; once all three are, health
    // takes them at its next refresh (an explain asks for one when due).
    let matched = eventually(Duration::from_secs(10), || async {
        app.metric("smsgate_receipt_latency_seconds_count{provider=\"twilio\"}").await == Some(3.0)
    })
    .await;
    assert!(matched, "three receipts matched to their attempts");
    app.advance(60);
    let seen = eventually(Duration::from_secs(10), || async {
        let explain = app.get("/v1/routing/explain?to=%2B919876543210&kind=text", Some(ADMIN_TOKEN)).await;
        explain.body["candidates"][0]["health"]["receipts_failed"] == 3
    })
    .await;
    let explain = app.get("/v1/routing/explain?to=%2B919876543210&kind=text", Some(ADMIN_TOKEN)).await;
    assert!(seen, "{}", explain.body);
}

async fn a_late_receipt_still_marks_the_attempt(backend: Backend) {
    let app = spawn(backend, "plivo", Some(ReceiptFault::Late(Duration::from_millis(300)))).await;
    let id = send(&app).await;
    assert_eq!(attempt(&app, &id).await["delivery"], Value::Null, "not yet");
    assert_eq!(delivery(&app, &id).await["status"], "delivered");
}

async fn a_duplicate_receipt_changes_nothing(backend: Backend) {
    let app = spawn(backend, "twilio", Some(ReceiptFault::Duplicate)).await;
    let id = send(&app).await;
    let first = delivery(&app, &id).await;
    assert_eq!(first["status"], "delivered");
    let both = eventually(Duration::from_secs(5), || async {
        app.metric("smsgate_receipts_total{provider=\"twilio\",status=\"duplicate\"}").await == Some(1.0)
    })
    .await;
    assert!(both, "the second copy was counted as a duplicate");
    assert_eq!(
        app.metric("smsgate_receipts_total{provider=\"twilio\",status=\"delivered\"}").await,
        Some(1.0)
    );
    assert_eq!(attempt(&app, &id).await["delivery"], first, "the duplicate changed nothing");
}

/// Posts a Twilio status callback for `sid` signed with `token` (`None`: unsigned).
async fn post_twilio(app: &TestApp, sid: &str, status: &str, token: Option<&str>) -> (u16, Value) {
    let url = format!("{}/v1/webhooks/twilio/status", app.base);
    let params: Vec<(String, String)> = vec![("MessageSid".into(), sid.into()), ("MessageStatus".into(), status.into())];
    let mut req = app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish());
    if let Some(token) = token {
        req = req.header("x-twilio-signature", twilio_signature(token, &url, &params));
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn forged_and_unsigned_receipts_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn(backend, "twilio", Some(ReceiptFault::Missing)).await;
    let id = send(&app).await;
    let sid = app.sim.state().messages(Some(PHONE)).last().unwrap().id.clone();
    let (status, body) = post_twilio(&app, &sid, "failed", Some("not-the-auth-token")).await;
    assert_eq!((status, body["error"].clone()), (401, json!("unauthorized")), "{body}");
    assert_eq!(post_twilio(&app, &sid, "failed", None).await.0, 401);
    // Another provider's scheme does not pass either: a token in the URL is not a signature.
    let tokened = format!("{}/v1/webhooks/twilio/status?token={URL_TOKEN}", app.base);
    let res = app
        .http
        .post(tokened)
        .body(format!("MessageSid={sid}&MessageStatus=failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(attempt(&app, &id).await["delivery"], Value::Null, "nothing was stored");
    assert_eq!(
        app.metric("smsgate_receipts_total{provider=\"twilio\",status=\"refused\"}").await,
        Some(3.0)
    );
    // The sim's auth token signs: accepted, and later a different final word replaces it.
    let (status, body) = post_twilio(&app, &sid, "delivered", Some("sim-token")).await;
    assert_eq!((status, body["status"].clone()), (200, json!("matched")), "{body}");
    assert_eq!(attempt(&app, &id).await["delivery"]["status"], "delivered");
    let (status, body) = post_twilio(&app, &sid, "sent", Some("sim-token")).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("interim")),
        "an interim status is acknowledged"
    );
    assert_eq!(attempt(&app, &id).await["delivery"]["status"], "delivered");
}

async fn receipts_for_unknown_or_unreceiving_providers_are_not_found(backend: Backend) {
    let app = spawn(backend, "twilio", None).await;
    let res = app
        .http
        .post(format!("{}/v1/webhooks/nosuch/status", app.base))
        .body("MessageSid=SM1&MessageStatus=delivered")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

async fn the_simulators_control_api_points_receipts_at_the_gateway(backend: Backend) {
    let app = spawn(backend, "twilio", None).await;
    app.sim.state().receipts.set_callback("twilio", None);
    let control = format!("{}/_sim/receipts", app.sim.control_url());
    let bad = app
        .http
        .post(&control)
        .json(&json!({ "provider": "twilio", "callback_url": "http://x", "fault": "sometimes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let callback = format!("{}/v1/webhooks/twilio/status", app.base);
    let set = app
        .http
        .post(&control)
        .json(&json!({ "provider": "twilio", "callback_url": callback, "fault": "failed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let id = send(&app).await;
    assert_eq!(delivery(&app, &id).await["status"], "failed");
}

on_both_stores!(
    the_simulators_control_api_points_receipts_at_the_gateway,
    a_signed_twilio_receipt_marks_the_attempt_delivered,
    a_signed_plivo_receipt_marks_the_attempt_delivered,
    a_signed_vonage_receipt_marks_the_attempt_delivered,
    an_msg91_receipt_with_the_url_token_marks_the_attempt_delivered,
    a_2factor_receipt_with_the_url_token_marks_the_attempt_delivered,
    a_failed_receipt_marks_the_attempt_failed_with_the_providers_code,
    failed_receipts_reach_provider_health,
    a_late_receipt_still_marks_the_attempt,
    a_duplicate_receipt_changes_nothing,
    forged_and_unsigned_receipts_are_refused_and_change_nothing,
    receipts_for_unknown_or_unreceiving_providers_are_not_found,
);

/// The store's side: a receipt that arrives before its attempt row is kept and matched when
/// the row is written (the group commit makes this race real).
mod store_side {
    use super::*;

    fn attempt_row(reference: &str) -> AttemptRow {
        AttemptRow {
            id: Uuid::new_v4(),
            message_id: Uuid::new_v4(),
            session_id: None,
            user_id: None,
            to: PHONE.into(),
            kind: "transactional".into(),
            provider: "twilio".into(),
            outcome: "accepted".into(),
            http_status: Some(201),
            error: None,
            provider_ref: Some(reference.into()),
            response_time_ms: 5,
            ambiguous: false,
            created_at: Utc::now(),
            parts: Some(1),
            delivery: None,
        }
    }

    fn receipt(reference: &str, status: DeliveryStatus, secs_later: i64) -> Receipt {
        let at = chrono::DateTime::from_timestamp(Utc::now().timestamp() + secs_later, 0).unwrap();
        Receipt {
            provider: "twilio".into(),
            reference: reference.into(),
            delivery: Delivery {
                status,
                error_code: None,
                at,
            },
            received_at: at,
        }
    }

    async fn receipt_before_attempt(store: Arc<dyn Store>) {
        let early = receipt("SM-early", DeliveryStatus::Delivered, 0);
        assert_eq!(store.record_receipt(&early).await.unwrap(), ReceiptOutcome::Pending);
        assert_eq!(store.record_receipt(&early).await.unwrap(), ReceiptOutcome::Duplicate);
        let row = attempt_row("SM-early");
        let log = SendLog {
            attempts: vec![row.clone(), attempt_row("SM-other")],
            ..SendLog::default()
        };
        store.write_log(log).await.unwrap();
        let rows = store.recent_attempts(10).await.unwrap();
        let stored = rows.iter().find(|r| r.id == row.id).unwrap();
        assert_eq!(stored.delivery.as_ref().map(|d| d.status), Some(DeliveryStatus::Delivered));
        assert_eq!(stored.parts, Some(1));
        let other = rows.iter().find(|r| r.provider_ref.as_deref() == Some("SM-other")).unwrap();
        assert_eq!(other.delivery, None);
        // A later, different final word replaces it; an older one does not.
        let later = receipt("SM-early", DeliveryStatus::Undelivered, 60);
        assert!(matches!(
            store.record_receipt(&later).await.unwrap(),
            ReceiptOutcome::Matched { .. }
        ));
        let older = receipt("SM-early", DeliveryStatus::Failed, -60);
        assert_eq!(store.record_receipt(&older).await.unwrap(), ReceiptOutcome::Duplicate);
        let rows = store.recent_attempts(10).await.unwrap();
        let stored = rows.iter().find(|r| r.id == row.id).unwrap();
        assert_eq!(stored.delivery.as_ref().map(|d| d.status), Some(DeliveryStatus::Undelivered));
    }

    #[tokio::test]
    async fn memory_a_receipt_before_its_attempt_row_is_matched_when_the_row_is_written() {
        receipt_before_attempt(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn postgres_a_receipt_before_its_attempt_row_is_matched_when_the_row_is_written() {
        let db = TestDb::new().await;
        // Migrations wait for other tests' under the same lock: no statement timeout for them.
        PostgresStore::migrate(&db.url(), &Default::default()).await.unwrap();
        let store = PostgresStore::connect(&db.url(), 4, Metrics::new()).unwrap();
        receipt_before_attempt(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn postgres_the_matcher_writes_receipts_that_raced_their_rows() {
        let db = TestDb::new().await;
        // Migrations wait for other tests' under the same lock: no statement timeout for them.
        PostgresStore::migrate(&db.url(), &Default::default()).await.unwrap();
        let store = PostgresStore::connect(&db.url(), 4, Metrics::new()).unwrap();
        let row = attempt_row("SM-race");
        store
            .write_log(SendLog {
                attempts: vec![row.clone()],
                ..SendLog::default()
            })
            .await
            .unwrap();
        // As if the receipt committed while the row's statement ran: kept, row untouched.
        let client = store.pool().get().await.unwrap();
        client
            .execute(
                "INSERT INTO sms_receipts (provider, reference, status, event_at, received_at) VALUES ('twilio', 'SM-race', 'delivered', now(), now())",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(store.recent_attempts(1).await.unwrap()[0].delivery, None);
        assert_eq!(
            store
                .match_pending_receipts(Utc::now() - chrono::Duration::minutes(10))
                .await
                .unwrap(),
            1
        );
        let got = store.recent_attempts(1).await.unwrap()[0].delivery.clone();
        assert_eq!(got.map(|d| d.status), Some(DeliveryStatus::Delivered));
        assert_eq!(
            store
                .match_pending_receipts(Utc::now() - chrono::Duration::minutes(10))
                .await
                .unwrap(),
            0
        );
    }
}
