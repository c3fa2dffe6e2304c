//! The SMS-pumping guard: blocked countries, countries outside the allowed list (explicit or
//! derived from the providers), prefix velocity over many numbers, and record-only mode, which
//! sends anyway and counts what it would have blocked.

use serde_json::json;

use crate::helpers::{config, spawn_with, with_limits, Backend, PHONE};
use crate::limits::{app_with, assert_refused, limits_toml, otp_to, phone, post, sent};
use crate::on_both_stores;

const UK: &str = "+447700900123";
const US: &str = "+14155552671";

async fn a_blocked_country_is_403_on_every_send_route(backend: Backend) {
    let app = app_with(backend, "allowed_countries = [\"91\", \"44\"]\nblocked_countries = [\"44\"]", "").await;
    let r = otp_to(&app, UK).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("destination_not_allowed")),
        "{}",
        r.body
    );
    assert!(r.body["message"].as_str().is_some_and(|m| m.contains("+44")), "{}", r.body);
    let text = post(&app, "/v1/sms/send", json!({"to": UK, "text": "hi"}), &[]).await;
    assert_eq!((text.status, text.body["error"].as_str()), (403, Some("destination_not_allowed")));
    assert_eq!(sent(&app), 0, "nothing reached a provider");
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="country_blocked"}"#).await, Some(2.0));
    assert_eq!(app.send_otp().await.status, 200, "allowed countries still go");
}

async fn a_country_outside_the_allowed_list_is_403(backend: Backend) {
    let app = app_with(backend, "allowed_countries = [\"91\"]", "").await;
    let r = otp_to(&app, US).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("destination_not_allowed")),
        "{}",
        r.body
    );
    assert_eq!(sent(&app), 0);
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="country_not_allowed"}"#).await, Some(1.0));
    assert_eq!(app.send_otp().await.status, 200);
}

async fn allowed_countries_default_to_those_the_providers_serve(backend: Backend) {
    // 2factor serves 91; twilio is narrowed to 1: 44 is served by no one and refused up front.
    let app = spawn_with(backend, |sim| {
        let toml = config(sim, "", "").replace("from = \"+15005550006\"", "from = \"+15005550006\"\ncountries = [\"1\"]");
        with_limits(&toml, &limits_toml(""))
    })
    .await;
    let r = otp_to(&app, UK).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("destination_not_allowed")),
        "{}",
        r.body
    );
    assert_eq!(otp_to(&app, US).await.status, 200);
    assert_eq!(app.send_otp().await.status, 200);
    assert_eq!(sent(&app), 2);
}

async fn prefix_velocity_caps_a_burst_over_many_numbers(backend: Backend) {
    let app = app_with(backend, "per_prefix_per_minute = 3\nprefix_digits = 4", "").await;
    for i in 0..3 {
        assert_eq!(otp_to(&app, &phone(i)).await.status, 200);
    }
    assert_refused(&app, "/v1/otp/send", json!({ "phone": phone(3) }), &[], "prefix_velocity", 60).await;
    let body = json!({"to": phone(4), "text": "hi"});
    assert_refused(&app, "/v1/sms/send", body, &[], "prefix_velocity", 60).await;
    assert_eq!(
        otp_to(&app, "+919123400001").await.status,
        200,
        "another prefix (91-9123) still goes"
    );
    assert_eq!(app.metric(r#"smsgate_blocks_total{reason="prefix_velocity"}"#).await, Some(2.0));
}

async fn record_only_sends_what_the_guard_would_block_and_counts_it(backend: Backend) {
    let over = "record_only = true\nblocked_countries = [\"44\"]\nallowed_countries = [\"91\", \"44\"]\nper_prefix_per_minute = 2";
    let app = app_with(backend, over, "").await;
    let uk = otp_to(&app, UK).await;
    assert_eq!(uk.status, 200, "{}", uk.body);
    let us = otp_to(&app, US).await;
    assert_eq!(us.status, 200, "{}", us.body);
    for i in 0..4 {
        assert_eq!(otp_to(&app, &phone(i)).await.status, 200);
    }
    assert_eq!(sent(&app), 6, "every send went out");
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
    let app = app_with(backend, "record_only = true\nper_phone_per_minute = 1", "").await;
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
