//! OTP sessions end to end: send, verify, expiry, attempt caps.

use serde_json::json;

use smsgate::config::{OtpPolicy, ProviderConfig, Settings};

use crate::helpers::{spawn_app, spawn_tuned, Backend, SettingsExt, PHONE};
use crate::on_both_stores;

/// 2factor sends a code smsgate made instead of its own AUTOGEN code.
fn local_codes_by_2factor(c: &mut Settings) {
    let ProviderConfig::TwoFactor(two_factor) = c.provider_mut("2factor") else {
        unreachable!("2factor is a two_factor entry")
    };
    two_factor.otp_mode = Some("local".into());
}

async fn otp_is_sent_by_2factor_autogen_and_verified(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["status"], "pending");
    for key in ["session_id", "message", "created_at", "expires_at"] {
        assert!(sent.body.get(key).is_some(), "missing {key}: {}", sent.body);
    }
    assert_eq!(app.calls("twilio"), 0, "the primary served");
    let code = app.last_code();
    let sid = sent.body["session_id"].as_str().unwrap();
    let wrong = app.verify(sid, if code == "000000" { "111111" } else { "000000" }).await;
    assert_eq!(wrong.status, 200);
    assert_eq!(wrong.body["verified"], false);
    assert_eq!(wrong.body["attempts_left"], 3 + 1);
    let ok = app.verify(sid, &code).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["verified"], true);
    assert_eq!(ok.body["status"], "verified");
    let again = app.verify(sid, &code).await;
    assert_eq!(again.status, 409, "a code verifies once: {}", again.body);
}

async fn wrong_codes_exhaust_the_session(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.otp.max_attempts = 3).await;
    let sent = app.send_otp().await;
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let code = app.last_code();
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for left in [2, 1, 0] {
        let r = app.verify(&sid, wrong).await;
        assert_eq!(
            (r.status, r.body["verified"].as_bool(), r.body["attempts_left"].as_u64()),
            (200, Some(false), Some(left)),
            "{}",
            r.body
        );
    }
    let after = app.verify(&sid, &code).await;
    assert_eq!(after.status, 429, "{}", after.body);
    assert_eq!(after.body["error"], "attempts_exhausted");
}

async fn an_expired_session_is_gone(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.otp.ttl_seconds = 1;
        c.otp.max_attempts = 1000;
    })
    .await;
    let sent = app.send_otp().await;
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let code = app.last_code();
    let r = app.verify(&sid, "0000").await;
    assert_eq!(r.status, 200, "alive within its ttl: {}", r.body);
    app.advance(1);
    let r = app.verify(&sid, "0000").await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (410, Some("session_expired")),
        "gone once its ttl has passed"
    );
    let r = app.verify(&sid, &code).await;
    assert_eq!((r.status, r.body["error"].as_str()), (410, Some("session_expired")));
}

async fn unknown_sessions_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.verify(&uuid::Uuid::new_v4().to_string(), "123456").await;
    assert_eq!((r.status, r.body["error"].as_str()), (404, Some("session_not_found")));
}

async fn local_codes_are_made_by_smsgate_and_checked_locally(backend: Backend) {
    let app = spawn_tuned(backend, local_codes_by_2factor).await;
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let code = app.last_code();
    assert_eq!(code.len(), 6);
    let calls_before = app.calls("2factor");
    let r = app.verify(sent.body["session_id"].as_str().unwrap(), &code).await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
    assert_eq!(app.calls("2factor"), calls_before, "a local code needs no provider call");
}

async fn seed_routes_answer_with_the_seed_shapes(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/api/sms/sendOtp", "/otp/send"] {
        let r = app.post(path, json!({"phone": PHONE})).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["message", "response_time_ms", "session_id", "status"], "{path}");
        let v = app
            .post(
                path.replace("send", "verify").replace("sendOtp", "verifyOtp").as_str(),
                json!({"session_id": r.body["session_id"], "otp": app.last_code()}),
            )
            .await;
        assert_eq!(v.status, 200, "{}", v.body);
        let keys: Vec<&String> = v.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["message", "response_time_ms", "status", "verified"]);
        assert_eq!(v.body["verified"], true);
    }
    let t = app
        .post("/api/sms/sendTemplate", json!({"to": PHONE, "template": "ORDER", "vars": ["42"]}))
        .await;
    assert_eq!(t.status, 202, "{}", t.body);
    assert_eq!(t.body["provider"], "2factor");
    assert!(t.body["response_time_ms"].is_u64());
    let msgs = app.sim.state().messages(Some(PHONE));
    assert!(msgs
        .iter()
        .any(|m| m.template.as_deref() == Some("ORDER") && m.vars == vec!["42".to_string()]));
    let s = app
        .post(
            "/sms/send-transactional",
            json!({"to": "+14155552671", "text": "Your order shipped"}),
        )
        .await;
    assert_eq!(s.status, 202, "{}", s.body);
    assert_eq!(s.body["provider"], "twilio", "2factor sends no plain text");
}

async fn a_purpose_brings_its_own_code_length_attempts_and_lifetime(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        local_codes_by_2factor(c);
        let step_up = OtpPolicy {
            length: Some(8),
            max_attempts: Some(2),
            ttl_seconds: Some(60),
        };
        c.otp.purposes.insert("step_up".into(), step_up);
    })
    .await;
    let sent = app.post("/v1/otp/send", json!({"phone": PHONE, "purpose": "step_up"})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(app.last_code().len(), 8);
    let created = chrono::DateTime::parse_from_rfc3339(sent.body["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(sent.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 60);
    let r = app.verify(sent.body["session_id"].as_str().unwrap(), "00000000").await;
    assert_eq!(r.body["attempts_left"], 1, "{}", r.body);
    let login = app.send_otp().await;
    assert_eq!(login.status, 200);
    assert_eq!(app.last_code().len(), 6, "other purposes keep the defaults");
}

on_both_stores!(
    a_purpose_brings_its_own_code_length_attempts_and_lifetime,
    otp_is_sent_by_2factor_autogen_and_verified,
    wrong_codes_exhaust_the_session,
    an_expired_session_is_gone,
    unknown_sessions_are_404,
    local_codes_are_made_by_smsgate_and_checked_locally,
    seed_routes_answer_with_the_seed_shapes,
);
