//! A provider secret set through the admin API never reaches smsgate's log, at any level, through
//! setting it, sending with it, listing providers, reordering and reading the audit trail. Its
//! own binary: the log subscriber is process-wide.

#[path = "support/log_capture.rs"]
mod log_capture;

#[path = "api/db.rs"]
mod db;

use std::sync::Arc;

use base64::Engine;
use log_capture::Captured;
use serde_json::{json, Value};
use smsgate::app::Application;
use smsgate::config::Settings;
use smsgate::sim::{self, SimOptions};

const ADMIN: &str = "registry-logs-admin";
const SENDER: &str = "registry-logs-app";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_set_through_the_api_is_never_logged() {
    let log = Captured::install("info,smsgate=trace");

    let sim = sim::start(SimOptions::default()).await.unwrap();
    let creds = sim::SimCredentials::default();
    let secret = creds.auth_token.clone();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.account_sid, secret));
    let schema = db::TestDb::new().await;
    let toml = format!(
        r#"
[limits]
resend_cooldown_seconds = 0

[[clients]]
name = "ops"
token_sha256 = "{admin}"
roles = ["admin"]

[[clients]]
name = "app"
token_sha256 = "{sender}"
roles = ["send"]

[[providers]]
name = "2factor"
kind = "two_factor"
priority = 1
base_url = "{tf}"
api_key_env = "TF"

[[providers]]
name = "twilio"
kind = "twilio"
priority = 2
base_url = "{tw}"
account_sid_env = "SID"
auth_token_env = "NOBODY_SETS_THIS"
from = "+15005550006"
"#,
        admin = smsgate::api::sha256_hex(ADMIN),
        sender = smsgate::api::sha256_hex(SENDER),
        tf = sim.url("2factor"),
        tw = sim.url("twilio"),
    );
    let mut settings = Settings::from_toml(&toml).unwrap();
    settings.server.listen = "127.0.0.1:0".into();
    settings.database_url = Some(schema.url().into());
    settings.master_key = Some(base64::engine::general_purpose::STANDARD.encode([9u8; 32]).into());
    let key = creds.api_key.clone();
    let sid = creds.account_sid.clone();
    let env = move |k: &str| match k {
        "TF" => Some(key.clone()),
        "SID" => Some(sid.clone()),
        _ => None,
    };
    let app = Application::build_with(settings, Arc::new(env)).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };

    let mut answers = Vec::new();
    let set = call(
        reqwest::Method::PATCH,
        "/v1/admin/providers/twilio",
        ADMIN,
        Some(json!({"secrets": {"auth_token": secret}})),
    )
    .await;
    assert_eq!(set.0, 200, "{}", set.1);
    answers.push(set.1);
    let order = json!({"order": ["twilio", "2factor"], "enabled": {"2factor": false}});
    let reordered = call(reqwest::Method::PUT, "/v1/admin/providers/order", ADMIN, Some(order)).await;
    assert_eq!(reordered.0, 200, "{}", reordered.1);
    answers.push(reordered.1);
    let sent = call(
        reqwest::Method::POST,
        "/v1/otp/send",
        SENDER,
        Some(json!({"phone": "+919876543210"})),
    )
    .await;
    assert_eq!(sent.0, 200, "{}", sent.1);
    assert_eq!(
        sim.state()
            .messages(Some("+919876543210"))
            .last()
            .map(|m| m.provider.clone())
            .as_deref(),
        Some("twilio")
    );
    for path in ["/v1/admin/providers", "/v1/admin/audit", "/v1/admin/attempts"] {
        let (status, body) = call(reqwest::Method::GET, path, ADMIN, None).await;
        assert_eq!(status, 200, "{body}");
        answers.push(body);
    }
    answers.push(call(reqwest::Method::GET, "/metrics", ADMIN, None).await.1);

    let stored: Vec<u8> = schema
        .client()
        .await
        .query_one("SELECT secret_ciphertext FROM api_integrations WHERE name = 'twilio'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the stored column is sealed"
    );
    for answer in &answers {
        assert!(
            !answer.contains(&secret) && !answer.contains(&basic),
            "a secret in an answer: {answer}"
        );
    }
    let log = log.text();
    assert!(log.contains("provider registry reloaded"), "the log was captured:\n{log}");
    assert!(!log.contains(&secret), "the secret is in the log:\n{log}");
    assert!(!log.contains(&basic), "the secret (as Basic auth) is in the log:\n{log}");
}
