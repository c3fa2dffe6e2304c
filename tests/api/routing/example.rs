//! `examples/sim.toml`, the failover drill's configuration, and `smsgate sim --print-env`, which
//! prints the credentials it needs.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use smsgate::config::Settings;
use smsgate::sim::{SimCredentials, PROVIDERS};

use super::US_PHONE;
use crate::helpers::{spawn_with, Backend, Reply, SettingsExt, TestApp, PHONE};
use crate::on_both_stores;

const EXAMPLE: &str = include_str!("../../../examples/sim.toml");
const DEMO_TOKEN: &str = "demo-token";

/// Runs the real binary's `sim --print-env`; it must print and exit, not start the fakes.
async fn print_env() -> HashMap<String, String> {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["sim", "--print-env"])
        .env("SMSGATE_LOG", "error")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("`sim --print-env` exits instead of serving")
        .expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .map(|l| {
            let (var, value) = l
                .strip_prefix("export ")
                .and_then(|kv| kv.split_once('='))
                .expect("export VAR=value");
            (var.to_string(), value.to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_sim_example_config_loads_and_every_provider_builds_with_the_credentials_print_env_prints() {
    let settings = Settings::from_toml(EXAMPLE).expect("examples/sim.toml is valid");
    let env = print_env().await;
    let c = SimCredentials::default();
    assert_eq!(env["SIM_API_KEY"], c.api_key);
    assert_eq!(env["SIM_TWILIO_SID"], c.account_sid);
    let lookup = |k: &str| env.get(k).cloned();
    let (registry, skipped) = smsgate::routing::Registry::build(&settings, &lookup).expect("every provider builds");
    assert!(skipped.is_empty(), "every secret is printed: {skipped:?}");
    let names: Vec<&str> = registry.slots().iter().map(|s| s.name()).collect();
    assert_eq!(names, PROVIDERS, "all seven providers, in priority order");
    for (port, name) in (9100..).zip(PROVIDERS) {
        let p = settings.providers.iter().find(|p| p.name() == name).unwrap();
        assert_eq!(
            p.common().base_url,
            Some(format!("http://127.0.0.1:{port}").as_str()),
            "{name} at the sim's default port"
        );
    }
    let countries = &settings.routing.countries;
    assert_eq!(countries["91"], ["2factor", "msg91", "fast2sms", "textlocal", "twilio"]);
    assert_eq!(countries["default"], ["twilio", "vonage", "plivo"]);
    let demo = &settings.clients[0];
    assert_eq!(demo.token_sha256.as_deref(), Some(smsgate::api::sha256_hex(DEMO_TOKEN).as_str()));
    assert!(EXAMPLE.contains("DEMO ONLY"), "the token is marked as a demo token");
}

/// The example with each provider's fixed port swapped for the running simulator's.
async fn spawn_example(backend: Backend) -> TestApp {
    spawn_with(backend, |sim| {
        let mut settings = Settings::from_toml(EXAMPLE).expect("examples/sim.toml is valid");
        for (port, name) in (9100..).zip(PROVIDERS) {
            let url = settings.provider_mut(name).base_url_mut();
            assert_eq!(url.as_deref(), Some(format!("http://127.0.0.1:{port}").as_str()), "{name}");
            *url = Some(sim.url(name));
        }
        settings
    })
    .await
}

async fn demo(app: &TestApp, path: &str, body: serde_json::Value) -> Reply {
    app.request(reqwest::Method::POST, path, Some(DEMO_TOKEN), Some(body.to_string()), &[])
        .await
}

async fn demo_otp(app: &TestApp, phone: &str, provider: &str) {
    let sent = demo(app, "/v1/otp/send", json!({"phone": phone})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(app.delivered_by(phone).as_deref(), Some(provider));
    let code = app.sim.state().last_code(phone).unwrap();
    let sid = sent.body["session_id"].as_str().unwrap();
    let r = demo(app, "/v1/otp/verify", json!({"session_id": sid, "otp": code})).await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
}

async fn the_sim_example_drill_fails_over_from_2factor_to_msg91_with_the_demo_token(backend: Backend) {
    let app = spawn_example(backend).await;
    demo_otp(&app, PHONE, "2factor").await;
    demo_otp(&app, US_PHONE, "twilio").await;
    app.fault("2factor", "500");
    demo_otp(&app, PHONE, "msg91").await;
    let failovers = app
        .metric(r#"smsgate_failovers_total{from="2factor",reason="unavailable",to="msg91"}"#)
        .await;
    assert_eq!(failovers, Some(1.0));
    let explain = app.get("/v1/routing/explain?to=%2B919876543210&kind=otp", Some(DEMO_TOKEN)).await;
    assert_eq!(explain.status, 200, "the demo token is also an admin: {}", explain.body);
}

on_both_stores!(the_sim_example_drill_fails_over_from_2factor_to_msg91_with_the_demo_token);
