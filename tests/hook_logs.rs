//! A code handed over by Supabase Auth never reaches smsgate's log, at any level, whether the
//! send succeeds or fails over. Its own binary: the log subscriber is process-wide.

#[path = "support/log_capture.rs"]
mod log_capture;

use std::sync::Arc;

use log_capture::Captured;
use smsgate::app::Application;
use smsgate::config::Settings;
use smsgate::hooks::standard_webhooks::sign;
use smsgate::sim::{self, Fault, SimOptions};

const SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CODE: &str = "873105";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supabase_code_is_never_logged() {
    let log = Captured::install("smsgate=trace");

    let sim = sim::start(SimOptions::default()).await.unwrap();
    let toml = format!(
        r#"
[limits]
resend_cooldown_seconds = 0

[[providers]]
name = "2factor"
kind = "two_factor"
priority = 1
base_url = "{tf}"
api_key_env = "TF"
otp_mode = "local"

[[providers]]
name = "twilio"
kind = "twilio"
priority = 2
base_url = "{tw}"
account_sid_env = "SID"
auth_token_env = "TOKEN"
from = "+15005550006"

[hooks.supabase]
secrets = ["{SECRET}"]
"#,
        tf = sim.url("2factor"),
        tw = sim.url("twilio"),
    );
    let mut settings = Settings::from_toml(&toml).unwrap();
    settings.server.listen = "127.0.0.1:0".into();
    let c = sim::SimCredentials::default();
    let env = move |k: &str| match k {
        "TF" => Some(c.api_key.clone()),
        "SID" => Some(c.account_sid.clone()),
        "TOKEN" => Some(c.auth_token.clone()),
        _ => None,
    };
    let app = Application::build_with(settings, Arc::new(env)).await.unwrap();
    let url = format!("http://127.0.0.1:{}/v1/hooks/supabase/send-sms", app.port());
    tokio::spawn(app.run_until_stopped());
    // The primary fails, so the code passes through a failover too.
    sim.state().set_fault("2factor", Some(Fault::parse("500").unwrap()));

    let body = serde_json::json!({
        "metadata": {"uuid": "3f1e2d4c-0000-4000-8000-00000000c0de", "ip_address": "203.0.113.9"},
        "user": {"id": "u-1", "phone": "919876543210"},
        "sms": {"otp": CODE, "phone": "919876543210"}
    })
    .to_string();
    let ts = chrono::Utc::now().timestamp();
    let signature = sign(SECRET, "msg_log", ts, body.as_bytes()).unwrap();
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("webhook-id", "msg_log")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");
    let delivered = sim.state().messages(Some("+919876543210"));
    assert!(delivered.iter().any(|m| m.text.as_deref().is_some_and(|t| t.contains(CODE))));

    let log = log.text();
    assert!(log.contains("delivered an auth server's message"), "the log was captured:\n{log}");
    assert!(log.contains("failing over"), "the failover was logged:\n{log}");
    assert!(!log.contains(CODE), "the code is in the log:\n{log}");
}
