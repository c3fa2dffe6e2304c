//! A bounded flood against one gateway with the default limits (only the allowed countries
//! set): many numbers in one prefix, many numbers from one end-user IP, replays of one request,
//! repeated sends to one number, and a country outside the allowed list, all at once. The
//! provider calls stay within what the limits allow, and every refusal is counted by reason.

use futures::future::join_all;
use serde_json::json;
use smsgate::config::LimitSettings;

use crate::helpers::phone;
use crate::helpers::{config_with, spawn_with, Backend, Reply};
use crate::on_both_stores;

const PREFIX_FLOOD: u32 = 100;
const IP_FLOOD: u32 = 50;
const REPLAYS: usize = 50;
const REPEATS: usize = 20;
const FOREIGN: usize = 10;

async fn a_flood_costs_no_more_sms_than_the_limits_allow(backend: Backend) {
    let l = LimitSettings {
        allowed_countries: vec!["91".into()],
        ..LimitSettings::default()
    };
    assert!(
        l.per_prefix_per_minute < PREFIX_FLOOD && l.per_ip_per_minute < IP_FLOOD,
        "the flood exceeds each limit"
    );
    assert!(l.resend_cooldown_seconds > 0 && l.per_phone_per_minute > 1);
    let app = spawn_with(backend, |sim| config_with(sim, |c| c.limits = l.clone())).await;

    // The app's clock stands still: every repeat falls inside one resend cooldown.
    let otp = |body: serde_json::Value, headers: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move { app.post_with("/v1/otp/send", body, &headers).await }
    };
    // Many numbers in one prefix (91-9876), with no end-user IP.
    let prefix = (0..PREFIX_FLOOD).map(|i| otp(json!({ "phone": phone(1000 + i) }), vec![]));
    // Many numbers, each in its own prefix (91-7iii), from one end-user IP.
    let ip = (0..IP_FLOOD).map(|i| otp(json!({"phone": format!("+917{i:03}{i:06}"), "client_ip": "203.0.113.5"}), vec![]));
    // One request replayed with its Idempotency-Key.
    let replays = (0..REPLAYS).map(|_| otp(json!({"phone": "+919123400001"}), vec![("Idempotency-Key", "flood-1")]));
    // One number again and again.
    let repeats = (0..REPEATS).map(|_| otp(json!({"phone": "+918123400001"}), vec![]));
    // A country outside the allowed list.
    let foreign = (0..FOREIGN).map(|_| otp(json!({"phone": "+447700900123"}), vec![]));
    let (prefix, ip, replays, repeats, foreign) = futures::join!(
        join_all(prefix),
        join_all(ip),
        join_all(replays),
        join_all(repeats),
        join_all(foreign)
    );

    let ok = |rs: &[Reply]| rs.iter().filter(|r| r.status == 200).count() as u32;
    let refused = |rs: &[Reply], reason: &str| rs.iter().filter(|r| r.status == 429 && r.body["reason"] == reason).count() as u32;
    assert_eq!(
        (ok(&prefix), refused(&prefix, "prefix_velocity")),
        (l.per_prefix_per_minute, PREFIX_FLOOD - l.per_prefix_per_minute)
    );
    assert_eq!(
        (ok(&ip), refused(&ip, "ip_per_minute")),
        (l.per_ip_per_minute, IP_FLOOD - l.per_ip_per_minute)
    );
    assert_eq!(ok(&replays), REPLAYS as u32, "replays are answered, not refused");
    let session = &replays[0].body["session_id"];
    assert!(
        replays.iter().all(|r| &r.body["session_id"] == session),
        "one session for every replay"
    );
    assert_eq!((ok(&repeats), refused(&repeats, "resend_cooldown")), (1, REPEATS as u32 - 1));
    assert!(foreign
        .iter()
        .all(|r| r.status == 403 && r.body["error"] == "destination_not_allowed"));

    // One SMS per admitted send: the prefix window, the IP window, one replayed send, one repeat.
    let bound = (l.per_prefix_per_minute + l.per_ip_per_minute + 1 + 1) as u64;
    assert_eq!(app.sent(), bound, "provider calls stay within the limits");

    let blocks = |reason: &'static str| {
        let app = &app;
        async move { app.metric(&format!("smsgate_blocks_total{{reason=\"{reason}\"}}")).await }
    };
    assert_eq!(
        blocks("prefix_velocity").await,
        Some((PREFIX_FLOOD - l.per_prefix_per_minute) as f64)
    );
    assert_eq!(blocks("ip_per_minute").await, Some((IP_FLOOD - l.per_ip_per_minute) as f64));
    assert_eq!(blocks("resend_cooldown").await, Some((REPEATS - 1) as f64));
    assert_eq!(blocks("country_not_allowed").await, Some(FOREIGN as f64));
}

on_both_stores!(a_flood_costs_no_more_sms_than_the_limits_allow);
