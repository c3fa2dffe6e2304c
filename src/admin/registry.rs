//! The live provider registry: where the providers come from (the database once there is one,
//! else the configuration file), how an admin change is decided, validated and committed, and how
//! every instance follows committed changes (LISTEN/NOTIFY, a periodic reload) by swapping its
//! router's registry while sends in flight finish on the old one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::audit;
use super::secrets::{self, MasterKeys, Sealed};
use super::validate::{check_list, parse_entry, TOP_KEYS};
use crate::config::{ProviderConfig, Settings};
use crate::metrics::Metrics;
use crate::providers::BuildError;
use crate::routing::{Entry, Registry, Router, Skipped};
use crate::store::{AuditNote, RegistryCommit, RegistryRow, Store, StoreError, StoredRegistry};

/// Where secrets named by `*_env` keys are read: the process environment (a map in tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Which source the registry in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrySource {
    Database,
    File,
}

/// Why an admin change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the provider registry is read-only without a database: change providers.toml and restart")]
    ReadOnly,
    #[error("secrets cannot be set through the API without SMSGATE_MASTER_KEY (32 bytes, base64); use an *_env key instead")]
    NoMasterKey,
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("{0}")]
    NoEnabledProvider(String),
    #[error("no provider named `{0}`")]
    NotFound(String),
    #[error("a provider named `{0}` exists")]
    Exists(String),
    #[error("the registry kept changing under this change; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        let message = if message.starts_with(&field) {
            message
        } else {
            format!("{field}: {message}")
        };
        Self::InvalidField { field, message }
    }
}

/// One provider entry and the secrets set for it through the API.
#[derive(Clone)]
pub struct ProviderEntry {
    pub config: ProviderConfig,
    /// Secrets by name (`api_key`), opened.
    secrets: BTreeMap<String, SecretString>,
    /// The stored ciphertext of `secrets`; `None` once they changed (sealed again on write).
    sealed: Option<Sealed>,
}

impl ProviderEntry {
    fn from_config(config: ProviderConfig) -> Self {
        Self {
            config,
            secrets: BTreeMap::new(),
            sealed: None,
        }
    }

    fn name(&self) -> &str {
        self.config.name()
    }

    /// The secret a `*_env` variable stands for: one set through the API, else the variable.
    fn secret(&self, var: &str, env: &EnvLookup) -> Option<String> {
        let set = self
            .config
            .secrets()
            .into_iter()
            .filter(|s| s.var == var)
            .find_map(|s| self.secrets.get(secret_name(s.key)));
        match set {
            Some(value) => Some(value.expose_secret().to_string()),
            None => env(var),
        }
    }
}

/// `api_key` for the `api_key_env` key.
fn secret_name(key: &str) -> &str {
    key.strip_suffix("_env").unwrap_or(key)
}

/// The registry as committed (or as the file says), at a version.
#[derive(Clone)]
pub struct Snapshot {
    pub version: i64,
    pub source: RegistrySource,
    pub entries: Vec<ProviderEntry>,
}

/// A provider as the admin API shows it: no secret, only its last four characters.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub name: String,
    pub kind: &'static str,
    pub priority: i32,
    pub enabled: bool,
    pub config: Value,
    pub secrets: BTreeMap<String, Option<String>>,
    pub fixed: Vec<&'static str>,
}

/// A new provider (`POST /v1/admin/providers`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub secrets: Map<String, Value>,
}

/// A change to one provider (`PATCH /v1/admin/providers/{name}`): config keys given replace
/// theirs (`null` resets one); a secret given replaces it (`null` removes it).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub secrets: Map<String, Value>,
}

/// The whole order (`PUT /v1/admin/providers/order`), and switches to set with it.
#[derive(Debug, Clone, Default)]
pub struct OrderChange {
    pub order: Vec<String>,
    pub enabled: BTreeMap<String, bool>,
}

/// What an admin asks of the registry.
#[derive(Debug, Clone)]
pub enum Change {
    Create(NewProvider),
    Update(String, ProviderPatch),
    Delete(String),
    Order(OrderChange),
    /// `providers import`: the file's entries; `replace` deletes the others.
    Import {
        providers: Vec<ProviderConfig>,
        replace: bool,
    },
    /// `secrets rotate`: every sealed secret again under the current master key.
    Rotate,
}

impl Change {
    /// The audit action and the `action` label of `smsgate_admin_changes_total`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Update(..) => "update",
            Self::Delete(_) => "delete",
            Self::Order(_) => "order",
            Self::Import { .. } => "import",
            Self::Rotate => "rotate",
        }
    }
}

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
    ) -> anyhow::Result<(Arc<Self>, Arc<Router>)> {
        let mut admin = Self::offline(store, Arc::clone(&settings), env, metrics.clone())?;
        let snapshot = admin.initial().await?;
        let (registry, skipped) = admin.build(&snapshot, None).context("provider configuration")?;
        log_skipped(&skipped);
        let router = Arc::new(Router::new(registry, settings.routing.clone(), metrics.clone()).with_health(health));
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

/// The entry's keys other than name, kind, priority and enabled, unset ones left out.
pub fn config_map(config: &ProviderConfig) -> Map<String, Value> {
    let mut map = match serde_json::to_value(config) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.retain(|k, v| !v.is_null() && !TOP_KEYS.contains(&k.as_str()));
    map
}

/// Keys the provider fixes (a sender ID registered with the carrier): shown read-only, and an
/// admin change may not alter them.
fn fixed_keys(config: &ProviderConfig) -> &'static [&'static str] {
    match config {
        ProviderConfig::TwoFactor(_) | ProviderConfig::Textlocal(_) | ProviderConfig::Fast2sms(_) => &["sender_id"],
        _ => &[],
    }
}

/// The entries after `change` and its audit note; pure, so a retried commit decides again.
fn decide(before: &Snapshot, change: &Change, actor: &str, have_key: bool) -> Result<(Vec<ProviderEntry>, AuditNote), AdminError> {
    let mut entries = before.entries.clone();
    let find = |entries: &[ProviderEntry], name: &str| entries.iter().position(|e| e.name() == name);
    let note = |target: &str, before: Option<Value>, after: Option<Value>| AuditNote {
        actor: actor.to_string(),
        action: change.action().to_string(),
        target: target.to_string(),
        before,
        after,
    };
    let order_json = |entries: &[ProviderEntry]| {
        let mut sorted: Vec<&ProviderEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| (e.config.common().priority, e.name().to_string()));
        let enabled: BTreeMap<&str, bool> = sorted.iter().map(|e| (e.name(), e.config.common().enabled)).collect();
        json!({ "order": sorted.iter().map(|e| e.name()).collect::<Vec<_>>(), "enabled": enabled })
    };
    match change {
        Change::Create(new) => {
            if new.name.trim().is_empty() {
                return Err(AdminError::invalid("name", "must not be empty"));
            }
            if find(&entries, &new.name).is_some() {
                return Err(AdminError::Exists(new.name.clone()));
            }
            let priority = new
                .priority
                .unwrap_or_else(|| entries.iter().map(|e| e.config.common().priority).max().unwrap_or(0) + 1);
            let config = parse_entry(&new.name, &new.kind, priority, new.enabled.unwrap_or(true), &new.config)?;
            let mut entry = ProviderEntry::from_config(config);
            let changed = set_secrets(&mut entry, &new.secrets, have_key)?;
            let mut after = audit::entry_json(&entry);
            audit::note_secrets(&mut after, &changed);
            entries.push(entry);
            Ok((entries, note(&new.name, None, Some(after))))
        }
        Change::Update(name, patch) => {
            let i = find(&entries, name).ok_or_else(|| AdminError::NotFound(name.clone()))?;
            let old = entries[i].clone();
            let common = old.config.common();
            let mut config = config_map(&old.config);
            for (key, value) in &patch.config {
                if fixed_keys(&old.config).contains(&key.as_str()) && config.get(key) != Some(value) {
                    return Err(AdminError::invalid(
                        format!("config.{key}"),
                        "is fixed by the provider and cannot be changed here",
                    ));
                }
                match value {
                    Value::Null => config.remove(key),
                    v => config.insert(key.clone(), v.clone()),
                };
            }
            let priority = patch.priority.unwrap_or(common.priority);
            let enabled = patch.enabled.unwrap_or(common.enabled);
            let mut entry = old.clone();
            entry.config = parse_entry(name, old.config.kind(), priority, enabled, &config)?;
            let changed = set_secrets(&mut entry, &patch.secrets, have_key)?;
            let mut after = audit::entry_json(&entry);
            audit::note_secrets(&mut after, &changed);
            entries[i] = entry;
            Ok((entries, note(name, Some(audit::entry_json(&old)), Some(after))))
        }
        Change::Delete(name) => {
            let i = find(&entries, name).ok_or_else(|| AdminError::NotFound(name.clone()))?;
            let old = entries.remove(i);
            Ok((entries, note(name, Some(audit::entry_json(&old)), None)))
        }
        Change::Order(order) => {
            let was = order_json(&entries);
            let mut seen = std::collections::HashSet::new();
            for name in &order.order {
                if find(&entries, name).is_none() {
                    return Err(AdminError::invalid("order", format!("names unknown provider `{name}`")));
                }
                if !seen.insert(name.as_str()) {
                    return Err(AdminError::invalid("order", format!("names `{name}` twice")));
                }
            }
            if let Some(missing) = entries.iter().find(|e| !seen.contains(e.name())) {
                return Err(AdminError::invalid(
                    "order",
                    format!("must list every provider; `{}` is missing", missing.name()),
                ));
            }
            if let Some(unknown) = order.enabled.keys().find(|n| find(&entries, n).is_none()) {
                return Err(AdminError::invalid(
                    format!("enabled.{unknown}"),
                    format!("names unknown provider `{unknown}`"),
                ));
            }
            for (rank, name) in order.order.iter().enumerate() {
                let i = find(&entries, name).expect("checked above");
                let entry = &mut entries[i];
                let common = entry.config.common();
                let enabled = order.enabled.get(name).copied().unwrap_or(common.enabled);
                let config = config_map(&entry.config);
                entry.config = parse_entry(name, entry.config.kind(), rank as i32 + 1, enabled, &config)?;
            }
            let now = order_json(&entries);
            Ok((entries, note("providers", Some(was), Some(now))))
        }
        Change::Import { providers, replace } => {
            let was = order_json(&entries);
            for config in providers {
                match find(&entries, config.name()) {
                    // Secrets set through the API stay with a provider of the same kind.
                    Some(i) if entries[i].config.kind() == config.kind() => entries[i].config = config.clone(),
                    Some(i) => entries[i] = ProviderEntry::from_config(config.clone()),
                    None => entries.push(ProviderEntry::from_config(config.clone())),
                }
            }
            if *replace {
                entries.retain(|e| providers.iter().any(|p| p.name() == e.name()));
            }
            let now = order_json(&entries);
            Ok((entries, note("providers", Some(was), Some(now))))
        }
        Change::Rotate => {
            if !have_key {
                return Err(AdminError::NoMasterKey);
            }
            let mut rotated = Vec::new();
            for entry in entries.iter_mut().filter(|e| e.sealed.is_some()) {
                if entry.secrets.is_empty() {
                    // Sealed under a key no longer configured: re-sealing would lose it.
                    return Err(AdminError::invalid(
                        format!("secrets.{}", entry.name()),
                        "do not open under any configured master key; set SMSGATE_MASTER_KEY_PREVIOUS to the old key",
                    ));
                }
                entry.sealed = None;
                rotated.push(entry.name().to_string());
            }
            Ok((entries, note("secrets", None, Some(json!({ "resealed": rotated })))))
        }
    }
}

/// Applies the secrets of a create or patch to `entry`: a string sets one, `null` removes it.
/// Returns each changed name with `changed` or `removed`.
fn set_secrets(entry: &mut ProviderEntry, given: &Map<String, Value>, have_key: bool) -> Result<Vec<(String, &'static str)>, AdminError> {
    let names: Vec<&str> = entry.config.secrets().iter().map(|s| secret_name(s.key)).collect();
    let mut changed = Vec::new();
    for (name, value) in given {
        if !names.contains(&name.as_str()) {
            let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            return Err(AdminError::invalid(
                format!("secrets.{name}"),
                format!("is not a secret of kind `{}` (its secrets: {known})", entry.config.kind()),
            ));
        }
        match value {
            Value::String(s) if !s.trim().is_empty() => {
                if !have_key {
                    return Err(AdminError::NoMasterKey);
                }
                entry.secrets.insert(name.clone(), SecretString::from(s.trim().to_string()));
                changed.push((name.clone(), "changed"));
            }
            Value::Null => {
                if entry.secrets.remove(name).is_some() {
                    changed.push((name.clone(), "removed"));
                }
            }
            _ => {
                return Err(AdminError::invalid(
                    format!("secrets.{name}"),
                    "must be a non-empty string, or null to remove it",
                ))
            }
        }
    }
    if !changed.is_empty() {
        entry.sealed = None;
    }
    Ok(changed)
}
