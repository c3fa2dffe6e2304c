//! Secrets set through the admin API: sealed in the table, used by the provider, shown only as
//! their last four characters, never in an answer or the audit trail; re-sealed on rotation.

use std::sync::Arc;

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use smsgate::admin::RegistryAdmin;
use smsgate::config::{ProviderConfig, Settings};
use smsgate::metrics::Metrics;
use smsgate::store::PostgresStore;

use super::{audit, call};
use crate::helpers::{config_with, spawn_second, spawn_with, Backend, SettingsExt, TestApp, ADMIN_TOKEN, PHONE};

/// The simulator's Twilio auth token: the secret these tests set.
const SECRET: &str = "sim-token";

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// The default settings with Twilio's auth token read from a variable nobody sets (so only a
/// secret set through the API makes Twilio usable) and `master_key` as the master key.
fn settings(sim: &smsgate::sim::SimHandle, master_key: Option<String>) -> Settings {
    config_with(sim, |c| {
        if let ProviderConfig::Twilio(t) = c.provider_mut("twilio") {
            t.auth_token_env = Some("UNSET_TWILIO_TOKEN".into());
        }
        c.master_key = master_key.map(Into::into);
    })
}

async fn stored(app: &TestApp) -> (Option<String>, Option<Vec<u8>>) {
    let client = app.db.as_ref().unwrap().client().await;
    let row = client
        .query_one(
            "SELECT secret_key_id, secret_ciphertext FROM api_integrations WHERE name = 'twilio'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_set_through_the_api_is_sealed_used_and_never_shown() {
    let app = spawn_with(Backend::Postgres, |sim| settings(sim, Some(key(7)))).await;
    let before = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
    assert_eq!(before.body["providers"][1]["secrets"]["auth_token"], json!(null), "{}", before.body);

    let set = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/twilio",
        ADMIN_TOKEN,
        Some(json!({"secrets": {"auth_token": SECRET}})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["secrets"]["auth_token"], "••••oken");
    let (key_id, ciphertext) = stored(&app).await;
    let ciphertext = ciphertext.expect("the secret is stored");
    assert!(key_id.is_some_and(|k| k.len() == 16));
    assert!(!ciphertext.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "stored sealed");

    // Twilio now works with the stored secret.
    let off = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/2factor",
        ADMIN_TOKEN,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.body);
    app.otp_round_trip(PHONE, "twilio").await;

    let trail = audit(&app).await;
    let secret_change = trail.iter().find(|a| a["target"] == "twilio").expect("the change is audited");
    assert_eq!(secret_change["after"]["secrets"], json!({"auth_token": "changed"}));
    let answers = [
        set.body.to_string(),
        app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await.body.to_string(),
        app.get("/v1/admin/audit", Some(ADMIN_TOKEN)).await.body.to_string(),
        json!(trail).to_string(),
        app.get("/metrics", None).await.body.to_string(),
    ];
    for answer in answers {
        assert!(!answer.contains(SECRET), "a secret leaked: {answer}");
    }
    let audit_rows = app.db.as_ref().unwrap().client().await;
    let text: String = audit_rows
        .query_one(
            "SELECT coalesce(string_agg(before::text || ' ' || after::text, ' '), '') FROM admin_audit_log",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!text.contains(SECRET), "no secret in the audit table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_setting_a_secret_is_a_clear_409() {
    let app = spawn_with(Backend::Postgres, |sim| settings(sim, None)).await;
    let set = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/twilio",
        ADMIN_TOKEN,
        Some(json!({"secrets": {"auth_token": SECRET}})),
    )
    .await;
    assert_eq!(
        (set.status, set.body["error"].as_str()),
        (409, Some("master_key_missing")),
        "{}",
        set.body
    );
    assert!(set.body["message"].as_str().unwrap().contains("SMSGATE_MASTER_KEY"));
    assert!(!set.body.to_string().contains(SECRET));
    assert_eq!(stored(&app).await, (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_reseals_every_secret_under_the_new_key() {
    let app = spawn_with(Backend::Postgres, |sim| settings(sim, Some(key(7)))).await;
    let set = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/twilio",
        ADMIN_TOKEN,
        Some(json!({"secrets": {"auth_token": SECRET}})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let (old_id, _) = stored(&app).await;

    let mut rotated = settings(&app.sim, Some(key(8)));
    rotated.master_key_previous = Some(key(7).into());
    rotated.database_url = app.db_url.clone().map(Into::into);
    let store = PostgresStore::connect(app.db_url.as_deref().unwrap(), 2, Metrics::new()).unwrap();
    let keeper = RegistryAdmin::offline(Arc::new(store), Arc::new(rotated), Arc::new(|_| None), Metrics::new()).unwrap();
    assert_eq!(keeper.rotate("cli").await.unwrap(), 1);
    let (new_id, _) = stored(&app).await;
    assert_ne!(new_id, old_id);

    // An instance holding only the new key opens it and sends through Twilio.
    let only_new = settings(&app.sim, Some(key(8)));
    let second = spawn_second(&app, only_new).await;
    let off = call(
        &second,
        Method::PATCH,
        "/v1/admin/providers/2factor",
        ADMIN_TOKEN,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.body);
    second.otp_round_trip(PHONE, "twilio").await;
    assert_eq!(audit(&app).await.iter().filter(|a| a["action"] == "rotate").count(), 1);
}
