//! Apps are isolated: sessions, step-up contacts and idempotency keys belong to the app that
//! made them. Another app gets 404 (it learns nothing), an admin sees every app's sessions.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, Backend, ADMIN_TOKEN, OTHER_TOKEN, PHONE, SEND_TOKEN};
use crate::on_both_stores;

async fn another_app_cannot_read_or_overwrite_a_users_contact(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.put_contact(SEND_TOKEN, "u1", json!({ "phone": PHONE, "otp_enabled": true }))
            .await
            .status,
        200
    );

    let seen = app.contact("u1", Some(OTHER_TOKEN)).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(
        seen.body["phone"],
        serde_json::Value::Null,
        "the other app's u1 is another user: {}",
        seen.body
    );

    // The other app's "u1" is its own user: writing it leaves the first app's user alone.
    assert_eq!(
        app.put_contact(OTHER_TOKEN, "u1", json!({ "phone": "+919000000001", "otp_enabled": true }))
            .await
            .status,
        200
    );
    let mine = app.contact("u1", Some(SEND_TOKEN)).await;
    assert_eq!(mine.body["phone"], PHONE, "{}", mine.body);

    // A step-up send by user id reaches the first app's user's phone, not the other's.
    let sent = app.post("/v1/otp/send", json!({ "user_id": "u1" })).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(app.sim.state().last_code(PHONE).is_some(), "the owner's phone got the code");
    assert!(app.sim.state().last_code("+919000000001").is_none(), "not the other app's number");
}

async fn another_apps_session_does_not_exist_for_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = app.send_otp().await;
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let code = app.last_code();

    let status = app.get(&format!("/v1/otp/sessions/{sid}"), Some(OTHER_TOKEN)).await;
    assert_eq!((status.status, status.body["error"].as_str()), (404, Some("session_not_found")));
    for guess in [code.as_str(), "000000"] {
        let r = app
            .post_as(OTHER_TOKEN, "/v1/otp/verify", json!({ "session_id": sid, "otp": guess }))
            .await;
        assert_eq!((r.status, r.body["error"].as_str()), (404, Some("session_not_found")), "{}", r.body);
    }

    // Nothing the other app did spent an attempt or the code.
    let mine = app.get(&format!("/v1/otp/sessions/{sid}"), Some(SEND_TOKEN)).await;
    assert_eq!(
        (mine.body["status"].as_str(), mine.body["attempts_left"].as_u64()),
        (Some("pending"), Some(5))
    );
    let admin = app.get(&format!("/v1/otp/sessions/{sid}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(admin.status, 200, "an admin sees every app's sessions: {}", admin.body);
    let r = app.verify(&sid, &code).await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
}

async fn the_same_idempotency_key_from_two_apps_is_two_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({ "phone": PHONE }).to_string();
    let headers = [("Idempotency-Key", "shared-key")];
    let a = app
        .request(Method::POST, "/v1/otp/send", Some(SEND_TOKEN), Some(body.clone()), &headers)
        .await;
    let b = app
        .request(Method::POST, "/v1/otp/send", Some(OTHER_TOKEN), Some(body), &headers)
        .await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_ne!(a.body["session_id"], b.body["session_id"], "the other app's request ran on its own");
    assert_eq!(app.calls("2factor"), 2);
}

on_both_stores!(
    another_app_cannot_read_or_overwrite_a_users_contact,
    another_apps_session_does_not_exist_for_it,
    the_same_idempotency_key_from_two_apps_is_two_requests,
);
