//! Each of the seven providers as the only provider, end to end through the app and its
//! simulator fake: OTP send and verify in every OTP mode the adapter has, a transactional text
//! and a template where the provider carries them (and `no_route` where it does not). The
//! generic `http` adapter's conformance: TOML alone makes it speak Textlocal's and Plivo's wire.

use serde_json::json;
use smsgate::config::{ProviderConfig, Settings};
use smsgate::sim::SimHandle;

use crate::helpers::{base_settings, sim_provider, spawn_with, Backend, TestApp, PHONE};

const VERIFY_SID: &str = "VA00000000000000000000000000000000";

/// The app with `name`'s fake as its only provider, its entry as `adjust` changes it.
async fn alone(name: &'static str, adjust: impl FnOnce(&SimHandle, &mut ProviderConfig)) -> TestApp {
    spawn_with(Backend::Memory, |sim| {
        let mut entry = sim_provider(sim, name, 1);
        adjust(sim, &mut entry);
        only(entry)
    })
    .await
}

/// The base settings with `entry` as the only provider.
fn only(entry: ProviderConfig) -> Settings {
    let mut settings = base_settings();
    settings.providers = vec![entry];
    settings
}

/// The entry as it is, for the adapters without a mode to set.
fn as_is(_: &SimHandle, _: &mut ProviderConfig) {}

/// A transactional text: delivered by `name` when it carries text, else 422 `no_route`.
async fn text(app: &TestApp, name: &str, supported: bool) {
    let calls = app.calls(name);
    let r = app
        .post("/v1/sms/send", json!({"to": PHONE, "text": "Your parcel is out for delivery"}))
        .await;
    if supported {
        assert_eq!(
            (r.status, r.body["provider"].as_str(), r.body["status"].as_str()),
            (202, Some(name), Some("accepted")),
            "{}",
            r.body
        );
        let last = app.sim.state().messages(Some(PHONE)).pop().expect("delivered");
        assert_eq!(
            (last.provider.as_str(), last.text.as_deref()),
            (name, Some("Your parcel is out for delivery"))
        );
    } else {
        assert_eq!((r.status, r.body["error"].as_str()), (422, Some("no_route")), "{}", r.body);
        assert_eq!(app.calls(name), calls, "an unsupported kind is never sent");
    }
}

/// A template with two variables: delivered by `name` when it has templates, else `no_route`.
async fn template(app: &TestApp, name: &str, supported: bool) {
    let calls = app.calls(name);
    let r = app
        .post(
            "/v1/sms/template",
            json!({"to": PHONE, "template": "ORDER_SHIPPED", "vars": ["A-17", "Friday"]}),
        )
        .await;
    if supported {
        assert_eq!((r.status, r.body["provider"].as_str()), (202, Some(name)), "{}", r.body);
        let last = app.sim.state().messages(Some(PHONE)).pop().expect("delivered");
        assert_eq!((last.provider.as_str(), last.template.as_deref()), (name, Some("ORDER_SHIPPED")));
        assert_eq!(last.vars, ["A-17", "Friday"]);
    } else {
        assert_eq!((r.status, r.body["error"].as_str()), (422, Some("no_route")), "{}", r.body);
        assert_eq!(app.calls(name), calls, "an unsupported kind is never sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_alone_sends_autogen_and_local_otps_and_templates_but_no_text() {
    let app = alone("2factor", as_is).await;
    app.otp_round_trip(PHONE, "2factor").await;
    template(&app, "2factor", true).await;
    text(&app, "2factor", false).await;
    let app = alone("2factor", |_, p| {
        let ProviderConfig::TwoFactor(c) = p else { unreachable!() };
        c.otp_mode = Some("local".into());
    })
    .await;
    app.otp_round_trip(PHONE, "2factor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_alone_sends_local_and_verify_otps_and_text_but_no_templates() {
    let app = alone("twilio", as_is).await;
    app.otp_round_trip(PHONE, "twilio").await;
    text(&app, "twilio", true).await;
    template(&app, "twilio", false).await;
    let app = alone("twilio", |sim, p| {
        let ProviderConfig::Twilio(c) = p else { unreachable!() };
        c.otp_mode = Some("verify".into());
        c.verify_base_url = Some(sim.url("twilio"));
        c.verify_service_sid = Some(VERIFY_SID.into());
    })
    .await;
    app.otp_round_trip(PHONE, "twilio").await;
    text(&app, "twilio", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_alone_sends_an_otp_and_text_but_no_templates() {
    let app = alone("vonage", as_is).await;
    app.otp_round_trip(PHONE, "vonage").await;
    text(&app, "vonage", true).await;
    template(&app, "vonage", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg91_alone_sends_local_and_autogen_otps_and_templates_but_no_text() {
    let app = alone("msg91", as_is).await;
    app.otp_round_trip(PHONE, "msg91").await;
    template(&app, "msg91", true).await;
    text(&app, "msg91", false).await;
    let app = alone("msg91", |_, p| {
        let ProviderConfig::Msg91(c) = p else { unreachable!() };
        c.otp_mode = Some("autogen".into());
    })
    .await;
    app.otp_round_trip(PHONE, "msg91").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textlocal_alone_sends_an_otp_and_text_but_no_templates() {
    let app = alone("textlocal", as_is).await;
    app.otp_round_trip(PHONE, "textlocal").await;
    text(&app, "textlocal", true).await;
    template(&app, "textlocal", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_alone_sends_an_otp_and_text_but_no_templates() {
    let app = alone("plivo", as_is).await;
    app.otp_round_trip(PHONE, "plivo").await;
    text(&app, "plivo", true).await;
    template(&app, "plivo", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast2sms_alone_sends_an_otp_text_and_dlt_template() {
    let app = alone("fast2sms", as_is).await;
    app.otp_round_trip(PHONE, "fast2sms").await;
    text(&app, "fast2sms", true).await;
    template(&app, "fast2sms", true).await;
    let app = alone("fast2sms", |_, p| {
        let ProviderConfig::Fast2sms(c) = p else { unreachable!() };
        c.route = Some("q".into());
    })
    .await;
    app.otp_round_trip(PHONE, "fast2sms").await;
}

/// The one `[[providers]]` entry of `toml`, parsed as a config file's would be.
fn entry_from_toml(toml: &str) -> ProviderConfig {
    let mut parsed = Settings::from_toml(toml).expect("the entry is valid");
    assert_eq!(parsed.providers.len(), 1, "one entry");
    parsed.providers.remove(0)
}

/// `kind = "http"` configured to speak Textlocal's `/send/` form.
fn http_as_textlocal(sim: &SimHandle) -> Settings {
    let url = sim.url("textlocal");
    only(entry_from_toml(&format!(
        r#"
[[providers]]
name = "generic"
kind = "http"
api_key_env = "TEXTLOCAL_API_KEY"
[providers.http]
method = "POST"
url = "{url}/send/"
form = {{ apikey = "{{secret}}", numbers = "{{to_digits}}", message = "{{text}}", sender = "TXTLCL" }}
success_status = [200]
success_field = "status"
success_value = "success"
reference_field = "messages.0.id"
"#
    )))
}

/// `kind = "http"` configured to speak Plivo's JSON with basic auth.
fn http_as_plivo(sim: &SimHandle) -> Settings {
    let url = sim.url("plivo");
    let auth_id = smsgate::sim::SimCredentials::default().plivo_auth_id;
    only(entry_from_toml(&format!(
        r#"
[[providers]]
name = "generic"
kind = "http"
api_key_env = "PLIVO_BASIC_AUTH"
[providers.http]
url = "{url}/v1/Account/{auth_id}/Message/"
headers = {{ Authorization = "Basic {{secret}}" }}
json = '{{"src": "+14155550100", "dst": "{{to_digits}}", "text": "{{text}}"}}'
success_status = [202]
reference_field = "message_uuid.0"
rejected_statuses = [400]
"#
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_http_adapter_speaks_textlocal_and_plivo_from_toml_alone() {
    for (config, fake) in [
        (http_as_textlocal as fn(&SimHandle) -> Settings, "textlocal"),
        (http_as_plivo, "plivo"),
    ] {
        let app = spawn_with(Backend::Memory, config).await;
        let sent = app.send_otp_to(PHONE).await;
        assert_eq!(sent.status, 200, "{fake}: {}", sent.body);
        assert_eq!(app.delivered_by(PHONE).as_deref(), Some(fake), "the {fake} fake took the request");
        let code = app.sim.state().last_code(PHONE).unwrap();
        let r = app.verify(sent.body["session_id"].as_str().unwrap(), &code).await;
        assert_eq!(r.body["verified"], true, "{fake}: {}", r.body);
        let r = app
            .post("/v1/sms/send", json!({"to": PHONE, "text": "a \"quoted\" text & more"}))
            .await;
        assert_eq!(
            (r.status, r.body["provider"].as_str()),
            (202, Some("generic")),
            "{fake}: {}",
            r.body
        );
        let last = app.sim.state().messages(Some(PHONE)).pop().unwrap();
        assert_eq!(
            last.text.as_deref(),
            Some("a \"quoted\" text & more"),
            "{fake}: escaped and unescaped intact"
        );
        template(&app, "generic", false).await;
        assert_eq!(app.calls(fake), 2);
    }
}
