//! The live provider registry: where the providers come from (the database once there is one,
//! else the configuration file), how an admin change (decided in `change`) is validated and
//! committed, and how every instance follows committed changes (LISTEN/NOTIFY, a periodic
//! reload) by swapping its router's registry while sends in flight finish on the old one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::audit;
use super::change::{
    config_map, decide, fixed_keys, secret_name, AdminError, Change, ProviderEntry, ProviderView, RegistrySource, Snapshot,
};
use super::secrets::{self, MasterKeys, Sealed};
use super::validate::{check_list, parse_entry};
use crate::config::{ProviderConfig, Settings};
use crate::metrics::Metrics;
use crate::providers::BuildError;
use crate::routing::{Entry, Registry, Router, Skipped};
use crate::store::{AuditNote, RegistryCommit, RegistryRow, Store, StoreError, StoredRegistry};

/// Where secrets named by `*_env` keys are read: the process environment (a map in tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The registry's keeper on this instance.
pub struct RegistryAdmin {
    store: Arc<dyn Store>,
    router: Option<Arc<Router>>,
    settings: Arc<Settings>,
    env: EnvLookup,
    keys: Option<MasterKeys>,
    metrics: Metrics,
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time, so an older load never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl RegistryAdmin {
    /// Opens the registry for `serve`: with a database, seeds it from the file when empty and
    /// loads it; without one, takes the file's providers. Builds the router over it and, with a
    /// database, starts following changes.
    pub async fn open(
        store: Arc<dyn Store>,
        settings: Arc<Settings>,
        env: EnvLookup,
        metrics: Metrics,
        health: Arc<crate::health::Health>,
        clock: crate::clock::Clock,
    ) -> anyhow::Result<(Arc<Self>, Arc<Router>)> {
        let mut admin = Self::offline(store, Arc::clone(&settings), env, metrics.clone())?;
        let snapshot = admin.initial().await?;
        let (registry, skipped) = admin.build(&snapshot, None).context("provider configuration")?;
        log_skipped(&skipped);
        let router = Router::new(registry, settings.routing.clone(), metrics.clone())
            .with_health(health)
            .with_clock(clock);
        let router = Arc::new(router);
        admin.router = Some(Arc::clone(&router));
        metrics.registry_reloads.with_label_values(&["start"]).inc();
        metrics.registry_version.set(snapshot.version);
        *admin.current.get_mut().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        let admin = Arc::new(admin);
        if let Some(url) = settings.database_url.as_ref().filter(|_| admin.store.kind() == "postgres") {
            Arc::clone(&admin).follow(url.expose_secret().to_string());
        }
        Ok((admin, router))
    }

    /// A keeper without a router (the `providers` and `secrets` commands): it changes the rows
    /// and leaves following them to the running instances.
    pub fn offline(store: Arc<dyn Store>, settings: Arc<Settings>, env: EnvLookup, metrics: Metrics) -> anyhow::Result<Self> {
        let keys = MasterKeys::from_config(settings.master_key.as_ref(), settings.master_key_previous.as_ref())?;
        let file = file_snapshot(&settings);
        Ok(Self {
            store,
            router: None,
            settings,
            env,
            keys,
            metrics,
            current: RwLock::new(Arc::new(file)),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The registry in force on this instance.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether secrets may be set through the API (a master key is configured).
    pub fn can_set_secrets(&self) -> bool {
        self.keys.is_some()
    }

    /// The committed registry, read now (`None` without a database).
    pub async fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.store.load_registry().await?.map(|stored| self.snapshot_from(stored)))
    }

    /// The registry to start on; seeds the database from the file while its table is empty.
    async fn initial(&self) -> anyhow::Result<Snapshot> {
        let Some(stored) = self.store.load_registry().await.context("loading the provider registry")? else {
            return Ok(file_snapshot(&self.settings));
        };
        if !stored.rows.is_empty() || self.settings.providers.is_empty() {
            return Ok(self.snapshot_from(stored));
        }
        let entries: Vec<ProviderEntry> = self.settings.providers.iter().cloned().map(ProviderEntry::from_config).collect();
        let seed = RegistryCommit {
            expected_version: stored.version,
            upserts: entries.iter().map(|e| self.row_of(e)).collect::<Result<_, _>>()?,
            deletes: Vec::new(),
            audit: vec![AuditNote {
                actor: "smsgate".into(),
                action: "seed".into(),
                target: "providers".into(),
                before: None,
                after: Some(json!({ "providers": entries.iter().map(audit::entry_json).collect::<Vec<_>>() })),
            }],
        };
        if self.store.seed_registry(&seed).await.context("seeding the provider registry")? {
            tracing::info!(providers = entries.len(), "provider registry seeded from the configuration file");
            self.metrics.admin_changes.with_label_values(&["seed"]).inc();
        }
        let stored = self.store.load_registry().await?.context("the registry vanished after seeding")?;
        Ok(self.snapshot_from(stored))
    }

    /// Decides `change` on the committed registry, validates the result like the file, and
    /// commits it with its audit row; this instance then follows at once (the others on the
    /// notification). Returns the registry as committed.
    pub async fn apply(&self, actor: &str, change: Change) -> Result<Snapshot, AdminError> {
        for _ in 0..5 {
            let Some(stored) = self.store.load_registry().await? else {
                return Err(AdminError::ReadOnly);
            };
            let before = self.snapshot_from(stored);
            let (entries, note) = decide(&before, &change, actor, self.keys.is_some())?;
            self.check(&entries)?;
            let commit = self.commit_of(&before, &entries, note)?;
            let Some(version) = self.store.commit_registry(&commit).await? else {
                continue;
            };
            self.metrics.admin_changes.with_label_values(&[change.action()]).inc();
            if let Err(e) = self.reload("local").await {
                tracing::error!(error = %e, "following a committed registry change failed; the periodic reload retries");
            }
            return Ok(Snapshot {
                version,
                source: RegistrySource::Database,
                entries,
            });
        }
        Err(AdminError::Busy)
    }

    /// Loads the committed registry and, when it is newer than the one in force, swaps it in.
    /// Providers whose entry did not change keep their slot (breaker, cool-down) across the swap.
    pub async fn reload(&self, cause: &'static str) -> Result<bool, AdminError> {
        let Some(router) = &self.router else { return Ok(false) };
        let _one = self.reloading.lock().await;
        let Some(stored) = self.store.load_registry().await? else {
            return Ok(false);
        };
        self.metrics.registry_reloads.with_label_values(&[cause]).inc();
        if stored.version <= self.snapshot().version {
            return Ok(false);
        }
        let snapshot = self.snapshot_from(stored);
        let (registry, skipped) = self
            .build(&snapshot, Some(&router.registry()))
            .map_err(|e| AdminError::NoEnabledProvider(e.to_string()))?;
        log_skipped(&skipped);
        router.swap(registry);
        self.metrics.registry_version.set(snapshot.version);
        tracing::info!(version = snapshot.version, cause, "provider registry reloaded");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        Ok(true)
    }

    /// Follows committed changes: on each notification, on each (re)connection of the listener
    /// (notifications sent while it was down are lost), and every `registry.reload_seconds`.
    fn follow(self: Arc<Self>, url: String) {
        let (events, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let listener = crate::store::listen::spawn(url, self.settings.database.clone(), events);
        let period = Duration::from_secs(self.settings.registry.reload_seconds);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let cause = tokio::select! {
                    event = heard.recv() => match event {
                        Some(crate::store::listen::ListenEvent::Changed(v)) if v <= self.snapshot().version => continue,
                        Some(_) => "notify",
                        None => break,
                    },
                    _ = tick.tick() => "periodic",
                };
                if let Err(e) = self.reload(cause).await {
                    tracing::warn!(error = %e, cause, "provider registry reload failed; keeping the one in force");
                }
            }
            listener.abort();
        });
    }

    /// Builds a router registry of `snapshot`, keeping `previous`'s unchanged slots.
    fn build(&self, snapshot: &Snapshot, previous: Option<&Registry>) -> Result<(Registry, Vec<Skipped>), BuildError> {
        let env = &self.env;
        type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;
        let lookups: Vec<Lookup<'_>> = snapshot
            .entries
            .iter()
            .map(|entry| Box::new(move |var: &str| entry.secret(var, env)) as Lookup<'_>)
            .collect();
        let entries: Vec<Entry<'_>> = snapshot
            .entries
            .iter()
            .zip(&lookups)
            .map(|(e, lookup)| Entry {
                config: &e.config,
                secrets: lookup.as_ref(),
            })
            .collect();
        Registry::build_from(&self.settings, &entries, previous)
    }

    /// Refuses a registry the file would refuse, one with no enabled provider, and one whose
    /// providers cannot be built.
    fn check(&self, entries: &[ProviderEntry]) -> Result<(), AdminError> {
        let configs: Vec<ProviderConfig> = entries.iter().map(|e| e.config.clone()).collect();
        check_list(&self.settings, &configs)?;
        if !configs.iter().any(|c| c.common().enabled) {
            return Err(AdminError::NoEnabledProvider("the change would leave no enabled provider".into()));
        }
        let candidate = Snapshot {
            version: 0,
            source: RegistrySource::Database,
            entries: entries.to_vec(),
        };
        match self.build(&candidate, None) {
            Ok(_) => Ok(()),
            Err(BuildError::Invalid { key, reason, .. }) => Err(AdminError::invalid(format!("config.{key}"), reason)),
            // The commands run where the serving instances' `*_env` secrets may not be set.
            Err(BuildError::NoneUsable { .. }) if self.router.is_none() => Ok(()),
            Err(e @ BuildError::NoneUsable { .. }) => Err(AdminError::NoEnabledProvider(format!(
                "the change would leave no usable provider: {e}"
            ))),
            Err(e) => Err(AdminError::invalid("config", e.to_string())),
        }
    }

    /// The rows to write and delete to go from `before` to `entries`.
    fn commit_of(&self, before: &Snapshot, entries: &[ProviderEntry], note: AuditNote) -> Result<RegistryCommit, AdminError> {
        let old: BTreeMap<&str, RegistryRow> = before
            .entries
            .iter()
            .map(|e| self.row_of(e).map(|r| (e.name(), r)))
            .collect::<Result<_, _>>()?;
        let mut upserts = Vec::new();
        for entry in entries {
            let row = self.row_of(entry)?;
            if old.get(entry.name()) != Some(&row) {
                upserts.push(row);
            }
        }
        let deletes = old
            .keys()
            .filter(|name| !entries.iter().any(|e| e.name() == **name))
            .map(|n| n.to_string())
            .collect();
        Ok(RegistryCommit {
            expected_version: before.version,
            upserts,
            deletes,
            audit: vec![note],
        })
    }

    /// `entry` as a row, its secrets sealed under the current master key when they changed.
    fn row_of(&self, entry: &ProviderEntry) -> Result<RegistryRow, AdminError> {
        let common = entry.config.common();
        let sealed = match (&entry.sealed, entry.secrets.is_empty()) {
            (Some(sealed), _) => Some(sealed.clone()),
            (None, true) => None,
            (None, false) => {
                let keys = self.keys.as_ref().ok_or(AdminError::NoMasterKey)?;
                let plain: BTreeMap<&str, &str> = entry.secrets.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
                let bytes = serde_json::to_vec(&plain).expect("a map of strings serializes");
                Some(keys.seal(&bytes, entry.name()))
            }
        };
        Ok(RegistryRow {
            name: common.name.to_string(),
            kind: entry.config.kind().to_string(),
            priority: common.priority,
            enabled: common.enabled,
            config: Value::Object(config_map(&entry.config)),
            secret_key_id: sealed.as_ref().map(|s| s.key_id.clone()),
            secret_ciphertext: sealed.map(|s| s.blob),
        })
    }

    /// The entries of committed rows; a row that no longer reads is left out, loudly.
    fn snapshot_from(&self, stored: StoredRegistry) -> Snapshot {
        let mut entries = Vec::new();
        for row in stored.rows {
            let config = row.config.as_object().cloned().unwrap_or_default();
            let config = match parse_entry(&row.name, &row.kind, row.priority, row.enabled, &config) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(provider = %row.name, error = %e, "api_integrations row does not read as a provider entry; left out");
                    continue;
                }
            };
            let mut entry = ProviderEntry::from_config(config);
            if let (Some(key_id), Some(blob)) = (row.secret_key_id, row.secret_ciphertext) {
                let sealed = Sealed { key_id, blob };
                entry.secrets = self.open_secrets(&row.name, &sealed);
                entry.sealed = Some(sealed);
            }
            entries.push(entry);
        }
        Snapshot {
            version: stored.version,
            source: RegistrySource::Database,
            entries,
        }
    }

    fn open_secrets(&self, provider: &str, sealed: &Sealed) -> BTreeMap<String, SecretString> {
        let Some(keys) = &self.keys else {
            tracing::warn!(
                provider,
                "provider secrets are sealed but SMSGATE_MASTER_KEY is not set; using *_env secrets"
            );
            return BTreeMap::new();
        };
        let opened = keys
            .open(&sealed.key_id, &sealed.blob, provider)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<BTreeMap<String, String>>(&bytes).map_err(|_| "not a map of secrets".to_string()));
        match opened {
            Ok(map) => map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect(),
            Err(e) => {
                tracing::error!(provider, error = %e, "provider secrets do not open; using *_env secrets");
                BTreeMap::new()
            }
        }
    }

    /// `entry` for the admin API: its non-secret keys, each secret masked.
    pub fn view(&self, entry: &ProviderEntry) -> ProviderView {
        let common = entry.config.common();
        let secrets = entry
            .config
            .secrets()
            .into_iter()
            .map(|s| {
                (
                    secret_name(s.key).to_string(),
                    entry.secret(s.var, &self.env).filter(|v| !v.is_empty()).map(|v| secrets::mask(&v)),
                )
            })
            .collect();
        ProviderView {
            name: common.name.to_string(),
            kind: entry.config.kind(),
            priority: common.priority,
            enabled: common.enabled,
            config: Value::Object(config_map(&entry.config)),
            secrets,
            fixed: fixed_keys(&entry.config).to_vec(),
        }
    }

    /// Audit rows with an id below `before`, newest first (none without a database).
    pub async fn audit_page(&self, before: Option<i64>, limit: i64) -> Result<Vec<crate::store::AuditEntry>, StoreError> {
        self.store.audit_page(before, limit).await
    }

    /// Every row re-sealed under the current key (`smsgate secrets rotate`); returns how many.
    pub async fn rotate(&self, actor: &str) -> Result<usize, AdminError> {
        let keys = self.keys.as_ref().ok_or(AdminError::NoMasterKey)?;
        let before = self.load().await?.ok_or(AdminError::ReadOnly)?;
        let stale = before
            .entries
            .iter()
            .filter(|e| e.sealed.as_ref().is_some_and(|s| s.key_id != keys.current_id()))
            .count();
        self.apply(actor, Change::Rotate).await?;
        Ok(stale)
    }
}

fn log_skipped(skipped: &[Skipped]) {
    for s in skipped {
        tracing::warn!(provider = %s.provider, reason = %s.reason, "provider skipped");
    }
}

/// The file's providers as the registry (no database).
fn file_snapshot(settings: &Settings) -> Snapshot {
    Snapshot {
        version: 0,
        source: RegistrySource::File,
        entries: settings.providers.iter().cloned().map(ProviderEntry::from_config).collect(),
    }
}
