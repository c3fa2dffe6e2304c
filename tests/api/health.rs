//! Provider health: a provider whose SMS stop reaching users is demoted for their country within
//! the window, keeps only the probe share, and recovers when healed; resend through another
//! provider; probes. Users are played by reading what the simulator delivered to their number.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smsgate::config::{ProbeConfig, Settings};
use smsgate::sim::Fault;

use crate::helpers::{config_with, eventually, phone, spawn_pair, spawn_tuned, spawn_with, Backend, TestApp, ADMIN_TOKEN};
use crate::on_both_stores;

/// A window of two minutes judged every ten seconds, so a drill takes seconds on the held clock.
fn tuned(c: &mut Settings) {
    c.health.window_seconds = 120;
    c.health.baseline_seconds = 3_600;
    c.health.settle_seconds = 30;
    c.health.refresh_seconds = 10;
    c.health.min_sessions = 10;
    c.health.probe_share = 0.1;
    c.otp.ttl_seconds = 300;
}

const INDIA: &str = "to=%2B919876500000&kind=otp";

/// Asks `app` for its routing explanation until its health was refreshed at the app's "now".
async fn refreshed(app: &TestApp) -> Value {
    let now = json!(app.clock.now());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.explain(INDIA, ADMIN_TOKEN).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["health_refreshed_at"] == now {
            return r.body;
        }
        assert!(Instant::now() < deadline, "health was not refreshed: {}", r.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn line<'a>(explain: &'a Value, provider: &str) -> &'a Value {
    explain["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["provider"] == provider))
        .unwrap_or_else(|| panic!("{provider} is not in {explain}"))
}

fn state(explain: &Value, provider: &str) -> String {
    line(explain, provider)["health"]["state"].as_str().unwrap_or("none").to_string()
}

/// The code the newest SMS to `to` carried, if one arrived.
fn received(app: &TestApp, to: &str) -> Option<String> {
    app.sim.state().messages(Some(to)).last().and_then(|m| m.code.clone())
}

async fn resend(app: &TestApp, session_id: &str) -> crate::helpers::Reply {
    app.post("/v1/otp/resend", json!({ "session_id": session_id })).await
}

async fn verified(app: &TestApp, session_id: &str, code: &str) -> bool {
    let r = app.verify(session_id, code).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["verified"] == true
}

/// User `i` asks for an OTP (through `provider` first, when given) and enters the code that
/// arrives; when none does and `resends`, asks for a resend and enters that code. Returns
/// whether the first SMS arrived.
async fn user(app: &TestApp, i: u32, provider: Option<&str>, resends: bool) -> bool {
    let to = phone(i);
    let mut body = json!({ "phone": to });
    if let Some(p) = provider {
        body["provider"] = json!(p);
    }
    let sent = app.post("/v1/otp/send", body).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let sid = sent.body["session_id"].as_str().expect("a session id").to_string();
    if let Some(code) = received(app, &to) {
        assert!(verified(app, &sid, &code).await);
        return true;
    }
    if resends {
        let r = resend(app, &sid).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let code = received(app, &to).expect("the resent SMS arrived");
        assert!(verified(app, &sid, &code).await);
    }
    false
}

async fn a_silently_failing_primary_is_demoted_keeps_the_probe_share_and_recovers(backend: Backend) {
    let app = spawn_tuned(backend, tuned).await;
    app.fault("2factor", "blackhole");
    let mut next = 0;
    let mut seconds = 0;
    // Five users every ten seconds; those whose code never comes ask for a resend.
    let explain = loop {
        for _ in 0..5 {
            assert!(!user(&app, next, None, true).await, "2factor delivers nothing");
            next += 1;
        }
        app.advance(10);
        seconds += 10;
        let explain = refreshed(&app).await;
        if state(&explain, "2factor") == "degraded" {
            break explain;
        }
        assert!(seconds < 120, "2factor was not demoted within the window: {explain}");
    };
    let lost = app.sim.state().lost().get("2factor").copied().unwrap_or(0);
    println!("drill: 2factor demoted for +91 after {seconds} s, {lost} OTPs lost to it (each user recovered by a resend)");
    assert!(lost <= 15, "{lost} lost before demotion");
    let standing = &line(&explain, "2factor")["health"];
    assert_eq!(standing["reason"], "below_peers", "{explain}");
    assert_eq!(standing["conversion"], 0.0);
    assert_eq!(explain["candidates"][0]["provider"], "twilio", "healthy providers first: {explain}");
    let metric = r#"smsgate_provider_degraded{country="91",provider="2factor",reason="below_peers"}"#;
    assert_eq!(app.metric(metric).await, Some(1.0));
    assert_eq!(
        app.metric(r#"smsgate_provider_conversion_ratio{country="91",provider="2factor"}"#)
            .await,
        Some(0.0)
    );

    // New OTPs go to twilio first; 2factor keeps the probe share (one in ten here).
    let before = app.calls("2factor");
    let mut first_arrived = 0;
    for _ in 0..100 {
        first_arrived += u32::from(user(&app, next, None, true).await);
        next += 1;
    }
    assert_eq!(app.calls("2factor") - before, 10, "the probe share, and no resend through 2factor");
    assert_eq!(first_arrived, 90);

    // Healed: its share of users verify again, and once the failures leave the window it is
    // restored and first again.
    app.clear_fault("2factor");
    let mut rounds = 0;
    loop {
        for _ in 0..20 {
            assert!(user(&app, next, None, true).await);
            next += 1;
        }
        app.advance(10);
        rounds += 1;
        let explain = refreshed(&app).await;
        if state(&explain, "2factor") == "healthy" {
            assert_eq!(explain["candidates"][0]["provider"], "2factor", "{explain}");
            break;
        }
        assert!(rounds < 20, "2factor did not recover: {explain}");
    }
    let to = phone(next);
    app.send_otp_to(&to).await;
    assert_eq!(app.delivered_by(&to).as_deref(), Some("2factor"));
    assert_eq!(
        app.metric(r#"smsgate_provider_degraded{country="91",provider="2factor",reason="none"}"#)
            .await,
        Some(0.0)
    );
}

/// 50 users, alternately asking for 2factor and twilio first, who enter what they receive.
async fn split_traffic(app: &TestApp) -> Value {
    for i in 0..50 {
        user(app, i, Some(if i % 2 == 0 { "2factor" } else { "twilio" }), false).await;
    }
    app.advance(40);
    refreshed(app).await
}

async fn forty_percent_loss_next_to_none_is_degraded(backend: Backend) {
    let app = spawn_tuned(backend, tuned).await;
    app.fault("2factor", "blackhole:91@40%");
    let explain = split_traffic(&app).await;
    let standing = &line(&explain, "2factor")["health"];
    assert_eq!(
        (standing["state"].as_str(), standing["reason"].as_str()),
        (Some("degraded"), Some("below_peers")),
        "{explain}"
    );
    assert_eq!(standing["conversion"], 0.6);
    assert_eq!(standing["best_peer_conversion"], 1.0);
    assert_eq!(state(&explain, "twilio"), "healthy");
}

async fn two_providers_at_seventy_percent_are_both_healthy(backend: Backend) {
    let app = spawn_tuned(backend, tuned).await;
    app.fault("2factor", "blackhole@30%");
    app.fault("twilio", "blackhole@30%");
    let explain = split_traffic(&app).await;
    for p in ["2factor", "twilio"] {
        assert_eq!(state(&explain, p), "healthy", "{explain}");
        let c = line(&explain, p)["health"]["conversion"].as_f64().unwrap();
        assert!((0.65..0.75).contains(&c), "{c}");
    }
    assert_eq!(explain["candidates"][0]["provider"], "2factor");
}

/// Opens a session to `to` and returns its id and the code that arrived.
async fn open(app: &TestApp, to: &str) -> (String, String) {
    let sent = app.send_otp_to(to).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let code = received(app, to).expect("a code arrived");
    (sent.body["session_id"].as_str().unwrap().to_string(), code)
}

async fn a_resend_goes_through_another_provider_and_every_code_of_the_session_verifies(backend: Backend) {
    let app = spawn_tuned(backend, tuned).await;
    let to = phone(1);
    let (sid, first) = open(&app, &to).await;
    assert_eq!(app.delivered_by(&to).as_deref(), Some("2factor"));
    let r = resend(&app, &sid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["attempt"].as_u64(), r.body["max_sends"].as_u64()),
        (Some(2), Some(3)),
        "{}",
        r.body
    );
    assert_eq!(r.body["resend_after_seconds"], 0);
    assert_eq!(app.delivered_by(&to).as_deref(), Some("twilio"), "the second SMS goes elsewhere");
    let second = received(&app, &to).unwrap();
    assert_ne!(first, second, "each SMS carries its own code");
    assert!(verified(&app, &sid, &first).await, "the first SMS's code still verifies");

    let to = phone(2);
    let (sid, _) = open(&app, &to).await;
    assert_eq!(resend(&app, &sid).await.status, 200);
    let second = received(&app, &to).unwrap();
    assert!(verified(&app, &sid, &second).await, "the resent code verifies");
    let r = resend(&app, &sid).await;
    assert_eq!((r.status, r.body["error"].as_str()), (409, Some("already_verified")), "{}", r.body);

    // The cap: three SMS in all; with every provider used, the third goes through one again.
    let to = phone(3);
    let (sid, _) = open(&app, &to).await;
    assert_eq!(resend(&app, &sid).await.body["attempt"], 2);
    let third = resend(&app, &sid).await;
    assert_eq!((third.status, third.body["attempt"].as_u64()), (200, Some(3)), "{}", third.body);
    assert_eq!(third.body["resend_after_seconds"], Value::Null, "no resend is left");
    assert_eq!(app.delivered_by(&to).as_deref(), Some("2factor"));
    let code = received(&app, &to).unwrap();
    let fourth = resend(&app, &sid).await;
    assert_eq!(
        (fourth.status, fourth.body["reason"].as_str()),
        (429, Some("resend_cap")),
        "{}",
        fourth.body
    );
    assert!(verified(&app, &sid, &code).await, "the third SMS's (provider-held) code verifies");

    // An expired session is refused, and so is a wrong id.
    let (sid, _) = open(&app, &phone(4)).await;
    app.advance(301);
    let r = resend(&app, &sid).await;
    assert_eq!((r.status, r.body["error"].as_str()), (410, Some("session_expired")), "{}", r.body);
    let r = resend(&app, "not-a-uuid").await;
    assert_eq!((r.status, r.body["error"].as_str()), (400, Some("invalid_request")), "{}", r.body);
}

async fn a_resend_waits_for_the_cooldown(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        tuned(c);
        c.limits.resend_cooldown_seconds = 30;
    })
    .await;
    let (sid, _) = open(&app, &phone(7)).await;
    let r = resend(&app, &sid).await;
    assert_eq!((r.status, r.body["reason"].as_str()), (429, Some("resend_cooldown")), "{}", r.body);
    assert_eq!(app.delivered_by(&phone(7)).as_deref(), Some("2factor"), "nothing was sent");
    app.advance(30);
    let r = resend(&app, &sid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["resend_after_seconds"].as_u64().unwrap() >= 30, "{}", r.body);
}

on_both_stores!(
    a_silently_failing_primary_is_demoted_keeps_the_probe_share_and_recovers,
    forty_percent_loss_next_to_none_is_degraded,
    two_providers_at_seventy_percent_are_both_healthy,
    a_resend_goes_through_another_provider_and_every_code_of_the_session_verifies,
    a_resend_waits_for_the_cooldown,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_agree_on_a_degraded_provider() {
    let (a, b) = spawn_pair(|sim| crate::helpers::config_with(sim, tuned)).await;
    a.fault("2factor", "blackhole");
    for round in 0..2u32 {
        for i in 0..5 {
            let app = if i % 2 == 0 { &a } else { &b };
            user(app, round * 5 + i, None, true).await;
        }
        a.advance(10);
    }
    for app in [&a, &b] {
        let explain = refreshed(app).await;
        assert_eq!(state(&explain, "2factor"), "degraded", "{explain}");
        assert_eq!(explain["candidates"][0]["provider"], "twilio");
    }
    let to = phone(99);
    b.send_otp_to(&to).await;
    assert_eq!(b.delivered_by(&to).as_deref(), Some("twilio"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_probes_degrade_a_provider_and_are_never_counted_as_user_traffic() {
    // 2factor fails from before the first probe, which goes out as the app starts.
    let app = spawn_with(Backend::Memory, |sim| {
        sim.state().set_fault("2factor", Some(Fault::parse("500").expect("valid fault")));
        config_with(sim, |c| {
            tuned(c);
            c.limits.per_phone_per_minute = 1;
            c.probes = vec![ProbeConfig {
                country: "91".into(),
                number: "+919999900001".into(),
                interval_seconds: 1,
            }];
        })
    })
    .await;
    let failed = r#"smsgate_probes_total{provider="2factor",result="failed"}"#;
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.metric(failed).await.is_some_and(|n| n >= 3.0)
        })
        .await,
        "three probes failed"
    );
    app.advance(10);
    let explain = refreshed(&app).await;
    let standing = &line(&explain, "2factor")["health"];
    assert_eq!(
        (standing["state"].as_str(), standing["reason"].as_str()),
        (Some("degraded"), Some("probes_failed")),
        "{explain}"
    );
    let probes_to_twilio = app.sim.state().messages(Some("+919999900001"));
    assert!(probes_to_twilio.len() >= 3 && probes_to_twilio.iter().all(|m| m.provider == "twilio"));
    assert!(probes_to_twilio[0].text.as_deref().is_some_and(|t| t.starts_with("smsgate probe")));
    // Probes took nothing from the number's limit (one OTP a minute here).
    assert_eq!(app.send_otp_to("+919999900001").await.status, 200);
}
