//! The SMS-pumping guard: blocked countries, countries outside the allowed list (explicit or
//! derived from the providers), prefix velocity over many numbers, and record-only mode, which
//! sends anyway and counts what it would have blocked.

use serde_json::json;

use crate::helpers::phone;
use crate::helpers::{spawn_tuned, Backend, SettingsExt, PHONE};
use crate::limits::assert_refused;
use crate::on_both_stores;

const UK: &str = "+447700900123";
const US: &str = "+14155552671";

async fn a_blocked_country_is_403_on_every_send_route(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.allowed_countries = vec!["91".into(), "44".into()];
        c.limits.blocked_countries = vec!["44".into()];
    })
    .await;
    let r = app.send_otp_to(UK).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("destination_not_allowed")),
        "{}",
        r.body
    );
    assert!(r.body["message"].as_str().is_some_and(|m| m.contains("+44")), "{}", r.body);
    let text = app.post_with("/v1/sms/send", json!({"to": UK, "text": "hi"}), &[]).await;
    assert_eq!((text.status, text.body["error"].as_str()), (403, Some("destination_not_allowed")));
    assert_eq!(app.sent(), 0, "nothing reached a provider");
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="country_blocked"}"#).await, Some(2.0));
    assert_eq!(app.send_otp().await.status, 200, "allowed countries still go");
}

async fn a_country_outside_the_allowed_list_is_403(backend: Backend) {
    let app = spawn_tuned(backend, |c| c.limits.allowed_countries = vec!["91".into()]).await;
    let r = app.send_otp_to(US).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("destination_not_allowed")),
        "{}",
        r.body
    );
    assert_eq!(app.sent(), 0);
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="country_not_allowed"}"#).await, Some(1.0));
    assert_eq!(app.send_otp().await.status, 200);
}

async fn allowed_countries_default_to_those_the_providers_serve(backend: Backend) {
    // 2factor serves 91; twilio is narrowed to 1: 44 is served by no one and refused up front.
    let app = spawn_tuned(backend, |c| *c.provider_mut("twilio").countries_mut() = vec!["1".into()]).await;
    let r = app.send_otp_to(UK).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("destination_not_allowed")),
        "{}",
        r.body
    );
    assert_eq!(app.send_otp_to(US).await.status, 200);
    assert_eq!(app.send_otp().await.status, 200);
    assert_eq!(app.sent(), 2);
}

async fn prefix_velocity_caps_a_burst_over_many_numbers(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.per_prefix_per_minute = 3;
        c.limits.prefix_digits = 4;
    })
    .await;
    for i in 0..3 {
        assert_eq!(app.send_otp_to(&phone(i)).await.status, 200);
    }
    assert_refused(&app, "/v1/otp/send", json!({ "phone": phone(3) }), &[], "prefix_velocity", 60).await;
    let body = json!({"to": phone(4), "text": "hi"});
    assert_refused(&app, "/v1/sms/send", body, &[], "prefix_velocity", 60).await;
    assert_eq!(
        app.send_otp_to("+919123400001").await.status,
        200,
        "another prefix (91-9123) still goes"
    );
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="prefix_velocity"}"#).await, Some(2.0));
}

async fn record_only_sends_what_the_guard_would_block_and_counts_it(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.record_only = true;
        c.limits.blocked_countries = vec!["44".into()];
        c.limits.allowed_countries = vec!["91".into(), "44".into()];
        c.limits.per_prefix_per_minute = 2;
    })
    .await;
    let uk = app.send_otp_to(UK).await;
    assert_eq!(uk.status, 200, "{}", uk.body);
    let us = app.send_otp_to(US).await;
    assert_eq!(us.status, 200, "{}", us.body);
    for i in 0..4 {
        assert_eq!(app.send_otp_to(&phone(i)).await.status, 200);
    }
    assert_eq!(app.sent(), 6, "every send went out");
    assert_eq!(
        app.metric(r#"smsgate_blocks_total{reason="recorded_country_blocked"}"#).await,
        Some(1.0)
    );
    assert_eq!(
        app.metric(r#"smsgate_blocks_total{reason="recorded_country_not_allowed"}"#).await,
        Some(1.0)
    );
    assert_eq!(
        app.metric(r#"smsgate_blocks_total{reason="recorded_prefix_velocity"}"#).await,
        Some(2.0)
    );
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="country_blocked"}"#).await, None);
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="prefix_velocity"}"#).await, None);
}

async fn record_only_does_not_relax_the_rate_limits(backend: Backend) {
    let app = spawn_tuned(backend, |c| {
        c.limits.record_only = true;
        c.limits.per_phone_per_minute = 1;
    })
    .await;
    assert_eq!(app.send_otp().await.status, 200);
    assert_refused(&app, "/v1/otp/send", json!({ "phone": PHONE }), &[], "phone_per_minute", 60).await;
}

on_both_stores!(
    a_blocked_country_is_403_on_every_send_route,
    a_country_outside_the_allowed_list_is_403,
    allowed_countries_default_to_those_the_providers_serve,
    prefix_velocity_caps_a_burst_over_many_numbers,
    record_only_sends_what_the_guard_would_block_and_counts_it,
    record_only_does_not_relax_the_rate_limits,
);
