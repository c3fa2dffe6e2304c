//! One bad request never hurts another: a value PostgreSQL would refuse is stopped at the edge
//! (and, past it, fails only its own write), and a template the provider does not know is the
//! request's fault, never the provider's.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::phone;
use crate::helpers::{spawn_app, Backend, PHONE};

const SENDS: u32 = 50;
const POISONED: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_requests_never_fail_the_sends_committed_beside_them() {
    let app = spawn_app(Backend::Postgres).await;
    let good = (0..SENDS).map(|i| app.post("/v1/otp/send", json!({ "phone": phone(i), "user_id": format!("u{i}") })));
    // A text send reached Twilio before its attempt row, with the NUL, joined the shared batch.
    let texts = (0..POISONED).map(|i| {
        app.post(
            "/v1/sms/send",
            json!({"to": "+14155552671", "text": "hi", "user_id": format!("u\u{0}{i}")}),
        )
    });
    let otps = (0..POISONED).map(|_| app.post("/v1/otp/send", json!({"phone": PHONE, "purpose": "login\u{0}"})));
    let (good, texts, otps) = futures::join!(join_all(good), join_all(texts), join_all(otps));

    for (i, r) in good.iter().enumerate() {
        assert_eq!(r.status, 200, "legitimate send {i}: {}", r.body);
    }
    for r in texts.iter().chain(&otps) {
        assert_eq!((r.status, r.body["error"].as_str()), (400, Some("invalid_request")), "{}", r.body);
    }
    assert_eq!(app.calls("twilio"), 0, "no poisoned request reached a provider");
    let db = app.db.as_ref().expect("a PostgreSQL schema").client().await;
    let rows = db
        .query_one(
            "SELECT count(*) FROM sms_messages_log WHERE provider_name = '2factor' AND outcome = 'accepted'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), SENDS as i64, "every legitimate send's attempt row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_the_provider_does_not_know_is_422_and_its_breaker_stays_closed() {
    let app = spawn_app(Backend::Memory).await;
    app.sim.state().set_templates("2factor", Some(&["OrderShipped"]));
    for _ in 0..10 {
        let r = app
            .post(
                "/v1/sms/template",
                json!({"to": PHONE, "template": "NoSuchTemplate", "vars": ["A-1"]}),
            )
            .await;
        assert_eq!((r.status, r.body["error"].as_str()), (422, Some("message_rejected")), "{}", r.body);
    }
    assert_eq!(app.calls("2factor"), 10, "every refusal came from 2Factor itself");
    assert_eq!(app.metric(r#"smsgate_breaker_state{provider="2factor"}"#).await, Some(0.0));

    let known = app
        .post(
            "/v1/sms/template",
            json!({"to": PHONE, "template": "OrderShipped", "vars": ["A-1"]}),
        )
        .await;
    assert_eq!(
        (known.status, known.body["provider"].as_str()),
        (202, Some("2factor")),
        "{}",
        known.body
    );
    let otp = app.send_otp().await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    assert_eq!((app.calls("2factor"), app.calls("twilio")), (12, 0), "the OTP went through 2factor");
}
