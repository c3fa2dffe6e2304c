//! `smsgate providers import|export`: a file applied to the registry on purpose, and the registry
//! written back as TOML without secrets; a running instance follows the import.

use std::time::Duration;

use smsgate::admin::commands;
use smsgate::config::Settings;

use super::{audit, listed};
use crate::helpers::{eventually, spawn_app, with_providers, Backend, TestApp};

/// `names` from the simulator as a file pointing at `app`'s database.
fn file(app: &TestApp, names: &[&str]) -> Settings {
    let mut settings = with_providers(&app.sim, names);
    settings.database_url = app.db_url.clone().map(Into::into);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_applies_a_file_and_an_export_writes_the_registry_without_secrets() {
    let app = spawn_app(Backend::Postgres).await;
    commands::import(file(&app, &["vonage", "twilio"]), false).await.unwrap();
    let merged = eventually(Duration::from_secs(1), || async {
        listed(&app).await == ["2factor", "vonage", "twilio"]
    })
    .await;
    assert!(merged, "kept 2factor, added vonage, replaced twilio: {:?}", listed(&app).await);

    commands::import(file(&app, &["vonage", "twilio"]), true).await.unwrap();
    let replaced = eventually(Duration::from_secs(1), || async { listed(&app).await == ["vonage", "twilio"] }).await;
    assert!(replaced, "--replace removed 2factor: {:?}", listed(&app).await);
    let trail = audit(&app).await;
    assert_eq!(
        (trail[0]["action"].as_str(), trail[0]["actor"].as_str()),
        (Some("import"), Some("cli"))
    );
    assert_eq!(trail[0]["after"]["order"], serde_json::json!(["vonage", "twilio"]));

    let text = commands::export(file(&app, &[])).await.unwrap();
    assert!(!text.contains("sim-"), "no secret in the export:\n{text}");
    let exported = Settings::from_toml(&text).expect("the export reads back as a configuration file");
    let names: Vec<&str> = exported.providers.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["vonage", "twilio"]);
    assert_eq!(exported.providers, file(&app, &["vonage", "twilio"]).providers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_need_a_database() {
    let app = spawn_app(Backend::Memory).await;
    let err = commands::import(with_providers(&app.sim, &["twilio"]), false).await.unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}
