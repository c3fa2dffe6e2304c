//! Step-up: a user's stored contact drives the send (phone and preferred provider), the session
//! can be polled, and a verify returns a token the app checks offline with `token_secret`.

use reqwest::Method;
use serde_json::{json, Value};
use smsgate::keys::HmacKey;
use smsgate::otp::check_token;

use crate::helpers::{spawn_app, spawn_tuned, Backend, TestApp, PHONE, SEND_TOKEN};
use crate::on_both_stores;

const TOKEN_SECRET: &str = "test-token-secret";

async fn session(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/v1/otp/sessions/{id}"), Some(SEND_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn stored_phone_and_preferred_provider_drive_the_send(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.token_secret = Some(TOKEN_SECRET.to_string().into())).await;
    let contact = json!({"phone": "98765 43210", "otp_enabled": true, "preferred_provider": "twilio"});
    let put = app.put_contact(SEND_TOKEN, "u1", contact).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["phone"], PHONE, "stored in E.164");
    let got = app.contact("u1", Some(SEND_TOKEN)).await;
    assert_eq!(
        (&got.body["phone"], &got.body["otp_enabled"], &got.body["preferred_provider"]),
        (&json!(PHONE), &json!(true), &json!("twilio"))
    );

    let sent = app.post("/v1/otp/send", json!({"user_id": "u1", "purpose": "step_up"})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(
        (app.calls("twilio"), app.calls("2factor")),
        (1, 0),
        "the preferred provider is tried first though 2factor has priority 1"
    );
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let pending = session(&app, &sid).await;
    assert_eq!(
        (&pending["status"], &pending["user_id"], &pending["purpose"]),
        (&json!("pending"), &json!("u1"), &json!("step_up"))
    );
    assert!(pending["verified_at"].is_null());

    let ok = app.verify(&sid, &app.last_code()).await;
    assert_eq!((ok.status, &ok.body["verified"]), (200, &json!(true)), "{}", ok.body);
    let verified = session(&app, &sid).await;
    assert_eq!(verified["status"], "verified");
    assert!(verified["verified_at"].is_string());

    let token = ok.body["verification_token"].as_str().expect("a verification token");
    let now = chrono::Utc::now().timestamp();
    let key = HmacKey::new(TOKEN_SECRET.to_string().into());
    let claims = check_token(&key, token, now).expect("the token checks with token_secret");
    assert_eq!(claims.sid.to_string(), sid);
    assert_eq!(claims.uid.as_deref(), Some("u1"));
    assert_eq!(claims.purpose, "step_up");
    assert!(
        claims.exp > now && claims.exp <= now + 301,
        "expires after token_ttl_seconds: {}",
        claims.exp - now
    );
    assert!(check_token(&key, token, claims.exp).is_none(), "not after its expiry");
    assert!(
        check_token(&HmacKey::new("other".to_string().into()), token, now).is_none(),
        "only under token_secret"
    );
}

async fn a_user_without_a_phone_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let put = app
        .put_contact(SEND_TOKEN, "nophone", json!({"preferred_provider": "twilio"}))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    for user in ["nophone", "never-stored"] {
        let r = app.post("/v1/otp/send", json!({"user_id": user})).await;
        assert_eq!((r.status, r.body["error"].as_str()), (422, Some("no_phone")), "{user}: {}", r.body);
        assert!(r.body["message"].is_string());
    }
    assert_eq!(app.calls("2factor") + app.calls("twilio"), 0);
    // A phone in the body still works for such a user.
    let r = app.post("/v1/otp/send", json!({"user_id": "nophone", "phone": PHONE})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn bad_contact_bodies_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("u1", json!({"otp_enabled": true}).to_string(), "invalid_request"),
        ("u1", json!({"phone": "call me"}).to_string(), "invalid_phone"),
        ("u1", json!({"phone": "12345"}).to_string(), "invalid_phone"),
        (
            "u1",
            json!({"phone": PHONE, "preferred_provider": ""}).to_string(),
            "invalid_request",
        ),
        (
            "u1",
            json!({"phone": PHONE, "preferred_provider": "x".repeat(65)}).to_string(),
            "invalid_request",
        ),
        // A well-formed but unconfigured provider is 422 `unknown_provider` (tests/api/openapi.rs).
        ("u1", json!({"phone": PHONE, "bogus": 1}).to_string(), "invalid_request"),
        ("u1", json!({"phone": 9876543210u64}).to_string(), "invalid_request"),
        ("u1", json!({"otp_enabled": "yes"}).to_string(), "invalid_request"),
        ("u1", "[1]".into(), "invalid_request"),
        ("u1", "{\"phone\":".into(), "invalid_json"),
        ("%20", json!({"phone": PHONE}).to_string(), "invalid_request"),
    ];
    let long_user = "u".repeat(129);
    let mut cases = cases;
    cases.push((&long_user, json!({"phone": PHONE}).to_string(), "invalid_request"));
    for (user, body, code) in &cases {
        let r = app
            .request(
                Method::PUT,
                &format!("/v1/users/{user}/contact"),
                Some(SEND_TOKEN),
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some(*code)),
            "{user} {body}: {}",
            r.body
        );
        assert!(r.body["message"].is_string(), "{body}: {}", r.body);
    }
    let after = app.contact("u1", Some(SEND_TOKEN)).await;
    assert!(after.body["phone"].is_null(), "nothing was stored: {}", after.body);
}

on_both_stores!(
    stored_phone_and_preferred_provider_drive_the_send,
    a_user_without_a_phone_is_refused,
    bad_contact_bodies_are_400
);
