//! `[routing.countries]`: a destination country's own provider order, `default` for the rest.

use smsgate::sim::SimHandle;

use smsgate::config::Settings;

use super::US_PHONE;
use crate::helpers::{spawn_with, with_providers, Backend, PHONE};

/// Priorities that contradict the per-country order, so only the country lists can explain
/// where a message goes: vonage first by priority, 2factor last but one.
fn per_country(sim: &SimHandle) -> Settings {
    let mut settings = with_providers(sim, &["vonage", "twilio", "2factor", "msg91"]);
    settings.routing.countries = super::countries(&[("91", &["2factor", "msg91", "twilio"]), ("default", &["twilio", "vonage"])]);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otp_to_india_goes_to_the_first_provider_of_the_india_list() {
    let app = spawn_with(Backend::Memory, per_country).await;
    app.otp_round_trip(PHONE, "2factor").await;
    for other in ["vonage", "twilio", "msg91"] {
        assert_eq!(app.calls(other), 0, "{other} was not needed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otp_to_the_us_goes_to_the_first_provider_of_the_default_list() {
    let app = spawn_with(Backend::Memory, per_country).await;
    app.otp_round_trip(US_PHONE, "twilio").await;
    assert_eq!(app.calls("vonage"), 0, "vonage has the best priority but is second in `default`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_us_otp_fails_over_to_vonage_when_twilio_returns_500_and_verifies() {
    let app = spawn_with(Backend::Memory, per_country).await;
    app.fault("twilio", "500");
    app.otp_round_trip(US_PHONE, "vonage").await;
    assert_eq!(app.calls("twilio"), 1);
    assert_eq!(
        (app.calls("2factor"), app.calls("msg91")),
        (0, 0),
        "India-only providers are not in the US route"
    );
    let failover = app
        .metric(r#"smsgate_failovers_total{from="twilio",reason="unavailable",to="vonage"}"#)
        .await;
    assert_eq!(failover, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_india_otp_fails_over_along_the_india_list_only() {
    let app = spawn_with(Backend::Memory, per_country).await;
    app.fault("2factor", "500");
    app.otp_round_trip(PHONE, "msg91").await;
    app.fault("msg91", "500");
    app.otp_round_trip(PHONE, "twilio").await;
    app.fault("twilio", "500");
    let r = app.send_otp_to(PHONE).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"], "all_providers_failed");
    assert_eq!(app.calls("vonage"), 0, "vonage serves India but is not in its list: never called");
}
