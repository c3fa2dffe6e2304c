//! Providers that cannot carry a message are skipped before any call: no templates, no plain
//! text, or not serving the destination country.

use serde_json::json;

use super::US_PHONE;
use crate::helpers::{spawn_with, with_providers, Backend, SettingsExt, TestApp, ADMIN_TOKEN, PHONE};

/// The providers of every attempt the app logged: a skipped provider has none, not even one its
/// adapter refused without calling out.
async fn attempted(app: &TestApp) -> Vec<String> {
    let r = app.get("/v1/admin/attempts", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body["attempts"].as_array().expect("attempts").iter();
    rows.map(|a| a["provider"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_message_skips_providers_without_templates() {
    let app = spawn_with(Backend::Memory, |sim| with_providers(sim, &["twilio", "vonage", "2factor"])).await;
    let r = app
        .post(
            "/v1/sms/template",
            json!({"to": PHONE, "template": "ORDER_SHIPPED", "vars": ["A-17", "Friday"]}),
        )
        .await;
    assert_eq!((r.status, r.body["provider"].as_str()), (202, Some("2factor")), "{}", r.body);
    assert_eq!(
        (app.calls("twilio"), app.calls("vonage")),
        (0, 0),
        "providers without templates are not called"
    );
    assert_eq!(attempted(&app).await, ["2factor"], "nor attempted");
    let delivered = app.sim.state().messages(Some(PHONE)).pop().expect("a message was delivered");
    assert_eq!(delivered.template.as_deref(), Some("ORDER_SHIPPED"));
    assert_eq!(delivered.vars, vec!["A-17".to_string(), "Friday".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_skips_2factor() {
    let app = spawn_with(Backend::Memory, |sim| with_providers(sim, &["2factor", "twilio"])).await;
    let r = app.post("/v1/sms/send", json!({"to": PHONE, "text": "Your order shipped"})).await;
    assert_eq!((r.status, r.body["provider"].as_str()), (202, Some("twilio")), "{}", r.body);
    assert_eq!(app.calls("2factor"), 0, "2Factor sends no plain text");
    assert_eq!(attempted(&app).await, ["twilio"], "nor is it attempted");
    assert_eq!(app.delivered_by(PHONE).as_deref(), Some("twilio"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_does_not_serve_the_destination_country_is_skipped() {
    let app = spawn_with(Backend::Memory, |sim| {
        let mut settings = with_providers(sim, &["2factor", "plivo", "twilio"]);
        *settings.provider_mut("plivo").countries_mut() = vec!["44".into(), "91".into()];
        settings
    })
    .await;
    app.otp_round_trip(US_PHONE, "twilio").await;
    assert_eq!((app.calls("2factor"), app.calls("plivo")), (0, 0), "neither serves +1");
    app.otp_round_trip(PHONE, "2factor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_no_provider_can_carry_is_422_no_route() {
    let app = spawn_with(Backend::Memory, |sim| with_providers(sim, &["2factor"])).await;
    let r = app.post("/v1/sms/send", json!({"to": PHONE, "text": "hello"})).await;
    assert_eq!((r.status, r.body["error"].as_str()), (422, Some("no_route")), "{}", r.body);
    assert!(r.body["message"].is_string(), "{}", r.body);
    assert_eq!(app.calls("2factor"), 0);
}
