//! What `smsgate providers import|export` and `smsgate secrets rotate` do: each changes or reads
//! the registry in the database directly; running instances follow on the notification.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::change::Change;
use super::registry::RegistryAdmin;
use crate::config::{ProviderConfig, Settings};
use crate::metrics::Metrics;
use crate::store::PostgresStore;

/// The actor the audit log records for these commands.
const ACTOR: &str = "cli";

/// A registry keeper on `settings`' database (migrated first), with no router.
async fn keeper(settings: Settings) -> anyhow::Result<RegistryAdmin> {
    let url = settings
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().to_string())
        .filter(|u| !u.is_empty())
        .context("DATABASE_URL is not set: without a database the configuration file is the registry")?;
    PostgresStore::migrate(&url, &settings.database)
        .await
        .context("applying migrations")?;
    let store = PostgresStore::connect_with(&url, &settings.database, Metrics::new())?;
    let env: super::registry::EnvLookup = Arc::new(|var| std::env::var(var).ok());
    RegistryAdmin::offline(Arc::new(store), Arc::new(settings), env, Metrics::new())
}

/// Applies the providers of `settings` (read from a file) to the registry: entries of the same
/// name are replaced (keeping secrets set through the API when the kind is unchanged), others
/// added; with `replace`, providers not in the file are removed. Returns the new version.
pub async fn import(settings: Settings, replace: bool) -> anyhow::Result<i64> {
    let providers = settings.providers.clone();
    if providers.is_empty() {
        anyhow::bail!("the file names no [[providers]]; nothing to import");
    }
    let keeper = keeper(settings).await?;
    let committed = keeper.apply(ACTOR, Change::Import { providers, replace }).await?;
    Ok(committed.version)
}

/// The registry as a `providers.toml` fragment: every `[[providers]]` entry, secrets left out
/// (secrets set through the API stay sealed in the database; `*_env` names are kept).
pub async fn export(settings: Settings) -> anyhow::Result<String> {
    let keeper = keeper(settings).await?;
    let snapshot = keeper.load().await?.context("no registry in the database")?;
    let mut providers: Vec<ProviderConfig> = snapshot.entries.into_iter().map(|e| e.config).collect();
    providers.sort_by_key(|p| (p.common().priority, p.name().to_string()));
    #[derive(Serialize)]
    struct File {
        providers: Vec<ProviderConfig>,
    }
    let text = toml::to_string(&File { providers }).context("writing TOML")?;
    Ok(format!(
        "# smsgate provider registry, version {}; secrets omitted\n\n{text}",
        snapshot.version
    ))
}

/// Re-seals every stored secret under the current master key; returns how many were under an
/// older one.
pub async fn rotate(settings: Settings) -> anyhow::Result<usize> {
    let keeper = keeper(settings).await?;
    Ok(keeper.rotate(ACTOR).await?)
}
