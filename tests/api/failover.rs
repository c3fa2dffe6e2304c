//! Failover within one request, circuit breakers, and the attempt log (429 cool-downs are
//! drilled in `routing/drills.rs`).

use std::time::Duration;

use serde_json::json;

use smsgate::config::Settings;
use smsgate::sim::SimHandle;

use crate::helpers::{
    config_with, eventually, sim_provider, spawn_app, spawn_tuned, spawn_with, Backend, SettingsExt, TestApp, ADMIN_TOKEN, PHONE,
};
use crate::on_both_stores;

const FAILOVER_2F_TW: &str = r#"smsgate_failovers_total{from="2factor",reason="#;

async fn send_and_verify_via_twilio(app: &TestApp) {
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let msgs = app.sim.state().messages(Some(PHONE));
    let last = msgs.last().expect("a message was delivered");
    assert_eq!(last.provider, "twilio");
    let code = last.code.clone().expect("the OTP text carries the code");
    let r = app.verify(sent.body["session_id"].as_str().unwrap(), &code).await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
}

async fn otp_is_delivered_by_twilio_when_2factor_returns_500(backend: Backend) {
    let app = spawn_app(backend).await;
    app.fault("2factor", "500");
    send_and_verify_via_twilio(&app).await;
    assert_eq!(app.calls("2factor"), 1);
    let failovers = app.metric(&format!("{FAILOVER_2F_TW}\"unavailable\",to=\"twilio\"}}")).await;
    assert_eq!(failovers, Some(1.0));
}

async fn otp_is_delivered_by_twilio_when_2factor_times_out(backend: Backend) {
    let app = spawn_tuned(backend, |c| *c.provider_mut("2factor").timeout_ms_mut() = Some(300)).await;
    app.fault("2factor", "timeout");
    let started = std::time::Instant::now();
    send_and_verify_via_twilio(&app).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the attempt timeout bounds the wait");
    assert_eq!(app.metric(&format!("{FAILOVER_2F_TW}\"timeout\",to=\"twilio\"}}")).await, Some(1.0));
}

async fn otp_is_delivered_by_twilio_when_2factor_refuses_connections(backend: Backend) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_tuned(backend, |c| *c.provider_mut("2factor").base_url_mut() = Some(dead)).await;
    send_and_verify_via_twilio(&app).await;
    assert_eq!(
        app.metric(&format!("{FAILOVER_2F_TW}\"unavailable\",to=\"twilio\"}}")).await,
        Some(1.0)
    );
}

async fn an_invalid_number_rejection_does_not_fail_over(backend: Backend) {
    let app = spawn_app(backend).await;
    app.fault("2factor", "error:Invalid Phone Number");
    let r = app.send_otp().await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"], "message_rejected");
    assert_eq!(app.calls("twilio"), 0, "a rejected message is never sent elsewhere");
}

async fn breaker_opens_after_repeated_failures_then_half_opens_and_recovers(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.routing.breaker.consecutive_failures = 3;
        c.routing.breaker.open_ms = 500;
        c.routing.breaker.half_open_probes = 1;
    })
    .await;
    app.fault("2factor", "500");
    for _ in 0..3 {
        send_and_verify_via_twilio(&app).await;
    }
    assert_eq!(app.calls("2factor"), 3);
    send_and_verify_via_twilio(&app).await;
    assert_eq!(app.calls("2factor"), 3, "an open breaker keeps the dead provider out");
    assert_eq!(app.metric(r#"smsgate_breaker_state{provider="2factor"}"#).await, Some(2.0));
    app.clear_fault("2factor");
    let recovered = eventually(Duration::from_secs(5), || async {
        let before = app.calls("2factor");
        app.send_otp().await.status == 200 && app.calls("2factor") > before
    })
    .await;
    assert!(recovered, "a half-open probe reaches the provider after the open wait");
    assert_eq!(app.metric(r#"smsgate_breaker_state{provider="2factor"}"#).await, Some(0.0));
}

async fn a_code_from_a_provider_that_timed_out_verifies_nothing_but_the_failover_code_does(backend: Backend) {
    // 2Factor takes the request and delivers its AUTOGEN code but answers too late: the router
    // fails over to Twilio. 2Factor gave no reference for this session, so its code cannot be
    // bound to it: only Twilio's code verifies (a by-number check would accept any 2Factor
    // code sent to this phone, for any session).
    let app = spawn_tuned(backend, |c| *c.provider_mut("2factor").timeout_ms_mut() = Some(300)).await;
    app.fault("2factor", "latency:1000");
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let sid = sent.body["session_id"].as_str().unwrap();
    let first = eventually(Duration::from_secs(3), || async {
        app.sim.state().messages(Some(PHONE)).iter().any(|m| m.provider == "2factor")
    })
    .await;
    assert!(first, "the slow provider delivered");
    let msgs = app.sim.state().messages(Some(PHONE));
    let two_factor_code = msgs.iter().find(|m| m.provider == "2factor").and_then(|m| m.code.clone()).unwrap();
    let twilio_code = msgs.iter().find(|m| m.provider == "twilio").and_then(|m| m.code.clone()).unwrap();
    assert_ne!(two_factor_code, twilio_code);
    app.clear_fault("2factor");
    let r = app.verify(sid, &two_factor_code).await;
    assert_eq!(
        (r.status, &r.body["verified"]),
        (200, &json!(false)),
        "the unbound code: {}",
        r.body
    );
    let r = app.verify(sid, &twilio_code).await;
    assert_eq!(r.body["verified"], true, "the failover's code verifies: {}", r.body);
}

async fn a_code_sent_for_one_session_never_verifies_another(backend: Backend) {
    // Session A's 2Factor attempt times out (Twilio carries it); session B to the same phone goes
    // through 2Factor. B's code is 2Factor's: it must verify B and only B.
    let app = spawn_tuned(backend, |c| *c.provider_mut("2factor").timeout_ms_mut() = Some(300)).await;
    app.fault("2factor", "latency:1000");
    let a = app.send_otp().await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.clear_fault("2factor");
    let b = app.send_otp().await;
    assert_eq!(b.status, 200, "{}", b.body);
    let b_code = app
        .sim
        .state()
        .messages(Some(PHONE))
        .iter()
        .rev()
        .find(|m| m.provider == "2factor")
        .and_then(|m| m.code.clone())
        .unwrap();
    let r = app.verify(a.body["session_id"].as_str().unwrap(), &b_code).await;
    assert_eq!(r.body["verified"], false, "B's code does not open A: {}", r.body);
    let r = app.verify(b.body["session_id"].as_str().unwrap(), &b_code).await;
    assert_eq!(r.body["verified"], true, "and B's code still verifies B: {}", r.body);
}

async fn all_providers_failing_is_503_with_reasons_for_admins_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.fault("2factor", "500");
    app.fault("twilio", "503");
    let r = app.send_otp().await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"], "all_providers_failed");
    assert!(r.body.get("providers").is_none(), "apps do not see provider internals");
    let admin = app
        .request(
            reqwest::Method::POST,
            "/v1/otp/send",
            Some(ADMIN_TOKEN),
            Some(json!({"phone": PHONE}).to_string()),
            &[],
        )
        .await;
    assert_eq!(admin.status, 503);
    let providers = admin.body["providers"].as_array().expect("admins see per-provider reasons");
    assert_eq!(providers.len(), 2, "{}", admin.body);
}

/// The default providers, twilio with a short timeout, then vonage for texts to +1.
fn twilio_then_vonage(sim: &SimHandle, failover_on_ambiguous_timeout: bool) -> Settings {
    config_with(sim, |c| {
        *c.provider_mut("twilio").timeout_ms_mut() = Some(300);
        c.providers.push(sim_provider(sim, "vonage", 3));
        c.routing.failover_on_ambiguous_timeout = failover_on_ambiguous_timeout;
    })
}

async fn transactional_sms_does_not_fail_over_on_an_ambiguous_timeout_unless_configured(backend: Backend) {
    let app = spawn_with(backend, |sim| twilio_then_vonage(sim, false)).await;
    app.fault("twilio", "timeout");
    let r = app.post("/v1/sms/send", json!({"to": "+14155552671", "text": "hello"})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "unconfirmed");
    assert_eq!(app.calls("vonage"), 0, "no second copy of a message that may be on its way");

    let app = spawn_with(backend, |sim| twilio_then_vonage(sim, true)).await;
    app.fault("twilio", "timeout");
    let r = app.post("/v1/sms/send", json!({"to": "+14155552671", "text": "hello"})).await;
    assert_eq!((r.status, r.body["provider"].as_str()), (202, Some("vonage")), "{}", r.body);
    assert_eq!(r.body["status"], "accepted");
}

on_both_stores!(
    otp_is_delivered_by_twilio_when_2factor_returns_500,
    otp_is_delivered_by_twilio_when_2factor_times_out,
    otp_is_delivered_by_twilio_when_2factor_refuses_connections,
    an_invalid_number_rejection_does_not_fail_over,
    breaker_opens_after_repeated_failures_then_half_opens_and_recovers,
    a_code_from_a_provider_that_timed_out_verifies_nothing_but_the_failover_code_does,
    a_code_sent_for_one_session_never_verifies_another,
    all_providers_failing_is_503_with_reasons_for_admins_only,
    transactional_sms_does_not_fail_over_on_an_ambiguous_timeout_unless_configured,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_a_row_with_its_response_time_in_postgres() {
    let app = spawn_app(Backend::Postgres).await;
    app.fault("2factor", "500");
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200);
    let sid: uuid::Uuid = sent.body["session_id"].as_str().unwrap().parse().unwrap();
    // The answer returned only after the rows committed: no waiting here.
    let db = app.db.as_ref().unwrap().client().await;
    let rows = db
        .query("SELECT provider_name, outcome, status_code, response_time_ms, type FROM sms_messages_log WHERE message_id = $1 ORDER BY created_at", &[&sid])
        .await
        .unwrap();
    let got: Vec<(String, String, Option<i32>, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(4))).collect();
    assert_eq!(
        got,
        vec![
            ("2factor".into(), "unavailable".into(), Some(500), "otp".into()),
            ("twilio".into(), "accepted".into(), Some(201), "otp".into())
        ]
    );
    assert!(rows.iter().all(|r| r.get::<_, i32>(3) >= 0));
    let session = db
        .query_one(
            "SELECT status, provider_name, provider_session_id FROM sms_otp_sessions WHERE id = $1",
            &[&sid],
        )
        .await
        .unwrap();
    assert_eq!(session.get::<_, String>(0), "pending");
    assert_eq!(session.get::<_, Option<String>>(1).as_deref(), Some("twilio"));
    assert!(session.get::<_, Option<String>>(2).is_some_and(|r| r.starts_with("SM")));
    let events: i64 = db
        .query_one("SELECT count(*) FROM otp_logs WHERE session_id = $1", &[&sid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
}
