//! Abuse limits at their boundaries: the Nth send in a window goes, the N+1th is a 429 with
//! `retry_after_seconds` and `Retry-After` and costs no SMS. Per phone (minute, day), per end-user
//! IP (body or trusted `X-Forwarded-For`), per user, per calling app, the growing resend cooldown,
//! and the same limits over two instances sharing one PostgreSQL schema.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::ops::RangeInclusive;

use smsgate::config::Settings;

use crate::helpers::{config_with, phone, spawn_pair, spawn_tuned, Backend, Reply, TestApp, PHONE};
use crate::on_both_stores;

const MINUTE: i64 = 60;
const DAY: i64 = 86_400;

/// Sends and asserts a 429 for `reason` whose retry-after is the time until the sends it counts,
/// made at the clock's current time (it holds still), leave the sliding `window_secs` window (as
/// seen before and after the request), and that no SMS went out.
pub async fn assert_refused(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)], reason: &str, window_secs: i64) -> Reply {
    let calls = app.sent();
    let before = app.clock.now();
    let r = app.post_with(path, body, headers).await;
    let after = app.clock.now();
    assert_limited(&r, reason, left_in_window(window_secs, before, after));
    assert_eq!(app.sent(), calls, "a refused send costs no SMS");
    r
}

/// Whole seconds (rounded up) until sends made at `before` leave the window, seen between
/// `before` and `after`.
fn left_in_window(window_secs: i64, before: DateTime<Utc>, after: DateTime<Utc>) -> RangeInclusive<u64> {
    let end = before.timestamp_millis() + window_secs * 1000;
    let left = |t: DateTime<Utc>| ((end - t.timestamp_millis()).max(0) as u64).div_ceil(1000);
    left(after)..=left(before)
}

/// The 429 shape: `{error, message, retry_after_seconds, reason}` and a matching `Retry-After`.
pub fn assert_limited(r: &Reply, reason: &str, retry: RangeInclusive<u64>) {
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"], "rate_limited", "{}", r.body);
    assert_eq!(r.body["reason"], reason, "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.body);
    let secs = r.body["retry_after_seconds"].as_u64().expect("retry_after_seconds is a number");
    assert!(retry.contains(&secs), "retry_after_seconds {secs} not in {retry:?}");
    let header = r.headers.get("retry-after").and_then(|v| v.to_str().ok());
    assert_eq!(header, Some(secs.to_string().as_str()), "Retry-After matches the body");
}

async fn per_phone_per_minute_admits_the_limit_then_refuses(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.per_phone_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(app.send_otp().await.status, 200);
    }
    assert_refused(&app, "/v1/otp/send", json!({ "phone": PHONE }), &[], "phone_per_minute", MINUTE).await;
    assert_eq!(app.send_otp_to(&phone(1)).await.status, 200, "another number is not held back");
    let text = app.post_with("/v1/sms/send", json!({"to": PHONE, "text": "hi"}), &[]).await;
    assert_eq!(text.status, 202, "per-phone windows count OTPs only: {}", text.body);
}

async fn per_phone_per_day_admits_the_limit_then_refuses(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.per_phone_per_day = 2).await;
    for _ in 0..2 {
        assert_eq!(app.send_otp().await.status, 200);
    }
    assert_refused(&app, "/v1/otp/send", json!({ "phone": PHONE }), &[], "phone_per_day", DAY).await;
}

async fn per_ip_per_minute_counts_the_body_client_ip(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.per_ip_per_minute = 2).await;
    for i in 0..2 {
        let r = app
            .post_with("/v1/otp/send", json!({"phone": phone(i), "client_ip": "198.51.100.7"}), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let body = json!({"phone": phone(2), "client_ip": "198.51.100.7"});
    assert_refused(&app, "/v1/otp/send", body, &[], "ip_per_minute", MINUTE).await;
    let other = app
        .post_with("/v1/otp/send", json!({"phone": phone(3), "client_ip": "198.51.100.8"}), &[])
        .await;
    assert_eq!(other.status, 200, "another address is not held back");
    let bad = app
        .post_with("/v1/otp/send", json!({"phone": phone(4), "client_ip": "not-an-ip"}), &[])
        .await;
    assert_eq!((bad.status, bad.body["error"].as_str()), (400, Some("invalid_request")));
}

async fn per_ip_per_minute_counts_forwarded_for_from_a_trusted_proxy(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.per_ip_per_minute = 2;
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let xff = [("X-Forwarded-For", "198.51.100.7")];
    for i in 0..2 {
        assert_eq!(app.post_with("/v1/otp/send", json!({ "phone": phone(i) }), &xff).await.status, 200);
    }
    // The proxy's own hop on the right is skipped: the user is still 198.51.100.7.
    let chain = [("X-Forwarded-For", "198.51.100.7, 127.0.0.1")];
    assert_refused(&app, "/v1/otp/send", json!({ "phone": phone(2) }), &chain, "ip_per_minute", MINUTE).await;
    let other = [("X-Forwarded-For", "198.51.100.8")];
    assert_eq!(
        app.post_with("/v1/otp/send", json!({ "phone": phone(3) }), &other).await.status,
        200
    );
    // A proxy that adds its own header line after the client's: the client's line is a spoof.
    let split = [("X-Forwarded-For", "203.0.113.99"), ("X-Forwarded-For", "198.51.100.7")];
    assert_refused(&app, "/v1/otp/send", json!({ "phone": phone(4) }), &split, "ip_per_minute", MINUTE).await;
}

async fn forwarded_for_from_an_untrusted_peer_is_ignored(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.per_ip_per_minute = 2;
        c.server.trusted_proxies = vec!["10.0.0.0/8".into()];
    })
    .await;
    let xff = [("X-Forwarded-For", "198.51.100.7")];
    for i in 0..4 {
        let r = app.post_with("/v1/otp/send", json!({ "phone": phone(i) }), &xff).await;
        assert_eq!(r.status, 200, "a spoofable header does not count against anyone: {}", r.body);
    }
    // The limit itself is live: the body's address is counted.
    for i in 4..6 {
        assert_eq!(
            app.post_with("/v1/otp/send", json!({"phone": phone(i), "client_ip": "198.51.100.7"}), &xff)
                .await
                .status,
            200
        );
    }
    let body = json!({"phone": phone(6), "client_ip": "198.51.100.7"});
    assert_refused(&app, "/v1/otp/send", body, &xff, "ip_per_minute", MINUTE).await;
}

async fn per_user_per_day_admits_the_limit_then_refuses(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.per_user_per_day = 2).await;
    for i in 0..2 {
        assert_eq!(
            app.post_with("/v1/otp/send", json!({"phone": phone(i), "user_id": "u-1"}), &[])
                .await
                .status,
            200
        );
    }
    let body = json!({"phone": phone(2), "user_id": "u-1"});
    assert_refused(&app, "/v1/otp/send", body, &[], "user_per_day", DAY).await;
    assert_eq!(
        app.post_with("/v1/otp/send", json!({"phone": phone(3), "user_id": "u-2"}), &[])
            .await
            .status,
        200
    );
}

async fn per_client_per_minute_covers_every_send_route(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.per_client_per_minute = 3).await;
    assert_eq!(app.send_otp_to(&phone(0)).await.status, 200);
    assert_eq!(app.send_otp_to(&phone(1)).await.status, 200);
    let text = app.post_with("/v1/sms/send", json!({"to": phone(2), "text": "hi"}), &[]).await;
    assert_eq!(text.status, 202, "{}", text.body);
    let body = json!({"to": phone(3), "text": "hi"});
    assert_refused(&app, "/v1/sms/send", body, &[], "client_rate", MINUTE).await;
    assert_refused(&app, "/v1/otp/send", json!({ "phone": phone(4) }), &[], "client_rate", MINUTE).await;
}

async fn resend_cooldown_doubles_up_to_its_cap_and_is_announced(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.resend_cooldown_seconds = 1;
        c.limits.resend_cooldown_max_seconds = 2;
    })
    .await;
    let mut waits = Vec::new();
    let first = app.send_otp().await;
    assert_eq!(first.status, 200, "{}", first.body);
    let mut last = first;
    for _ in 0..2 {
        let wait = last.body["resend_after_seconds"].as_u64().expect("the send says when to resend");
        waits.push(wait);
        let calls = app.sent();
        let r = app.send_otp().await;
        assert_limited(&r, "resend_cooldown", wait..=wait);
        app.advance(wait as i64 - 1);
        let r = app.send_otp().await;
        assert_limited(&r, "resend_cooldown", 1..=1);
        assert_eq!(app.sent(), calls, "a refused resend costs no SMS");
        app.advance(1);
        last = app.send_otp().await;
        assert_eq!(last.status, 200, "the cooldown ends after {wait} s: {}", last.body);
    }
    waits.push(last.body["resend_after_seconds"].as_u64().unwrap());
    assert_eq!(waits, [1, 2, 2], "1 s, doubled, then capped at 2 s");
    assert_eq!(app.sent(), 3);
    assert!(app.metric(r#"smsgate_blocks_total{reason="resend_cooldown"}"#).await >= Some(2.0));
}

async fn concurrent_sends_never_exceed_the_per_phone_limit(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.per_phone_per_minute = 5).await;
    let replies = futures::future::join_all((0..30).map(|_| app.send_otp())).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited = replies
        .iter()
        .filter(|r| r.status == 429 && r.body["reason"] == "phone_per_minute")
        .count();
    assert_eq!((ok, limited), (5, 25));
    assert_eq!(app.sent(), 5);
}

on_both_stores!(
    per_phone_per_minute_admits_the_limit_then_refuses,
    per_phone_per_day_admits_the_limit_then_refuses,
    per_ip_per_minute_counts_the_body_client_ip,
    per_ip_per_minute_counts_forwarded_for_from_a_trusted_proxy,
    forwarded_for_from_an_untrusted_peer_is_ignored,
    per_user_per_day_admits_the_limit_then_refuses,
    per_client_per_minute_covers_every_send_route,
    resend_cooldown_doubles_up_to_its_cap_and_is_announced,
    concurrent_sends_never_exceed_the_per_phone_limit,
);

/// Two instances on one PostgreSQL schema, with the same limits as `adjust` sets them.
async fn two_instances(adjust: impl FnOnce(&mut Settings)) -> (TestApp, TestApp) {
    spawn_pair(|sim| config_with(sim, adjust)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_phone_limit_holds_across_two_instances() {
    let (a, b) = two_instances(|c| c.limits.per_phone_per_minute = 3).await;
    for app in [&a, &b, &a] {
        assert_eq!(app.send_otp().await.status, 200);
    }
    assert_refused(&b, "/v1/otp/send", json!({ "phone": PHONE }), &[], "phone_per_minute", MINUTE).await;
    assert_refused(&a, "/v1/otp/send", json!({ "phone": PHONE }), &[], "phone_per_minute", MINUTE).await;

    // Concurrent sends split over both instances: still exactly the limit.
    let p = phone(1);
    let replies = futures::future::join_all((0..24).map(|i| (if i % 2 == 0 { &a } else { &b }).send_otp_to(&p))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 3);
    assert!(replies.iter().all(|r| r.status == 200 || r.body["reason"] == "phone_per_minute"));
    assert_eq!(a.sent(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resend_cooldown_holds_across_two_instances() {
    let (a, b) = two_instances(|c| c.limits.resend_cooldown_seconds = 30).await;
    assert_eq!(a.send_otp().await.status, 200);
    let r = b.send_otp().await;
    assert_limited(&r, "resend_cooldown", 30..=30);
    assert_eq!(a.sent(), 1);
}
