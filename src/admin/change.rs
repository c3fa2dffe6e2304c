//! An admin change decided on the committed registry: what each kind of change does to the
//! provider entries, with its audit note. Pure, so a commit that lost a race decides again.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::audit;
use super::secrets::Sealed;
use super::validate::{parse_entry, TOP_KEYS};
use crate::config::ProviderConfig;
use crate::store::{AuditNote, StoreError};

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
    pub(super) secrets: BTreeMap<String, SecretString>,
    /// The stored ciphertext of `secrets`; `None` once they changed (sealed again on write).
    pub(super) sealed: Option<Sealed>,
}

impl ProviderEntry {
    pub(super) fn from_config(config: ProviderConfig) -> Self {
        Self {
            config,
            secrets: BTreeMap::new(),
            sealed: None,
        }
    }

    pub(super) fn name(&self) -> &str {
        self.config.name()
    }

    /// The secret a `*_env` variable stands for: one set through the API, else the variable.
    pub(super) fn secret(&self, var: &str, env: &super::registry::EnvLookup) -> Option<String> {
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
pub(super) fn secret_name(key: &str) -> &str {
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
pub(super) fn fixed_keys(config: &ProviderConfig) -> &'static [&'static str] {
    match config {
        ProviderConfig::TwoFactor(_) | ProviderConfig::Textlocal(_) | ProviderConfig::Fast2sms(_) => &["sender_id"],
        _ => &[],
    }
}

/// The entries after `change` and its audit note; pure, so a retried commit decides again.
pub(super) fn decide(
    before: &Snapshot,
    change: &Change,
    actor: &str,
    have_key: bool,
) -> Result<(Vec<ProviderEntry>, AuditNote), AdminError> {
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
