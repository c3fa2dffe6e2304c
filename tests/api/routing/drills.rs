//! Failover drills through the simulator: a dead primary, a throttled primary, a slow primary.
//! The throttle drill is the suite's only test of `Retry-After`; the breaker's opening, half-open
//! probe and recovery are pinned in `failover.rs`, and the dead-primary drill checks only that
//! the breaker ends open after a burst, as an operator running the drill would.

use std::time::{Duration, Instant};

use crate::helpers::{eventually, spawn_with, with_providers, Backend, PHONE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_primary_failing_every_call_twenty_otps_are_delivered_by_the_secondary_and_verify() {
    let app = spawn_with(Backend::Memory, |sim| with_providers(sim, &["2factor", "msg91"])).await;
    app.fault("2factor", "500");
    let mut sessions = Vec::new();
    for _ in 0..20 {
        let sent = app.send_otp_to(PHONE).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        assert_eq!(app.delivered_by(PHONE).as_deref(), Some("msg91"));
        let code = app.sim.state().last_code(PHONE).unwrap();
        sessions.push((sent.body["session_id"].as_str().unwrap().to_string(), code));
    }
    // Every session holds its own code: verify them all after the burst.
    for (sid, code) in &sessions {
        let r = app.verify(sid, code).await;
        assert_eq!(r.body["verified"], true, "{}", r.body);
    }
    assert_eq!(app.sim.state().messages(Some(PHONE)).len(), 20, "one SMS per OTP");
    assert!(app.calls("2factor") < 20, "the breaker stops calling the dead primary");
    assert_eq!(app.metric(r#"smsgate_breaker_state{provider="2factor"}"#).await, Some(2.0));
    let requests = app
        .metric(r#"smsgate_provider_requests_total{kind="otp",outcome="accepted",provider="msg91"}"#)
        .await;
    assert_eq!(requests, Some(20.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_primary_is_not_called_until_retry_after_has_passed_then_serves_again() {
    let app = spawn_with(Backend::Memory, |sim| with_providers(sim, &["2factor", "twilio"])).await;
    app.fault("2factor", "throttle:1");
    let throttled_at = Instant::now();
    app.otp_round_trip(PHONE, "twilio").await;
    assert_eq!(app.calls("2factor"), 1);
    app.clear_fault("2factor");
    // The primary is healthy again, but it asked for one second: nothing reaches it before then
    // (at least one send falls inside the window, however slow the machine).
    loop {
        app.otp_round_trip(PHONE, "twilio").await;
        assert_eq!(app.calls("2factor"), 1, "Retry-After is honoured");
        if throttled_at.elapsed() >= Duration::from_millis(800) {
            break;
        }
    }
    let back = eventually(Duration::from_secs(4), || async {
        app.send_otp_to(PHONE).await.status == 200 && app.delivered_by(PHONE).as_deref() == Some("2factor")
    })
    .await;
    assert!(back, "traffic returns to the primary after the window");
    assert!(throttled_at.elapsed() >= Duration::from_secs(1));
    app.otp_round_trip(PHONE, "2factor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_slower_than_slow_call_ms_opens_its_breaker() {
    let app = spawn_with(Backend::Memory, |sim| {
        let mut settings = with_providers(sim, &["2factor", "twilio"]);
        settings.routing.attempt_timeout_ms = 3000;
        settings.routing.breaker.slow_call_ms = 150;
        settings.routing.breaker.consecutive_failures = 3;
        settings.routing.breaker.open_ms = 60_000;
        settings
    })
    .await;
    app.fault("2factor", "latency:400");
    // Slow but successful: each of these is delivered by the primary, and counts against it.
    for _ in 0..3 {
        app.otp_round_trip(PHONE, "2factor").await;
    }
    assert_eq!(app.metric(r#"smsgate_breaker_state{provider="2factor"}"#).await, Some(2.0));
    // Three sends and the three checks of its AUTOGEN codes.
    let calls = app.calls("2factor");
    assert_eq!(calls, 6);
    for _ in 0..3 {
        app.otp_round_trip(PHONE, "twilio").await;
    }
    assert_eq!(app.calls("2factor"), calls, "the slow provider is no longer called");
}
