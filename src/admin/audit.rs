//! What the audit log records of a provider: its keys, never a secret (a changed secret shows as
//! `"secrets": {"api_key": "changed"}`).

use serde_json::{json, Value};

use super::change::{config_map, ProviderEntry};

/// `entry` as an audit row shows it: name, kind, priority, enabled and its non-secret keys.
pub fn entry_json(entry: &ProviderEntry) -> Value {
    let common = entry.config.common();
    json!({
        "name": common.name,
        "kind": entry.config.kind(),
        "priority": common.priority,
        "enabled": common.enabled,
        "config": config_map(&entry.config),
    })
}

/// Adds which secrets changed (never their values) to an audit row's `after`.
pub fn note_secrets(after: &mut Value, changed: &[(String, &'static str)]) {
    if changed.is_empty() {
        return;
    }
    let secrets: serde_json::Map<String, Value> = changed.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
    after["secrets"] = Value::Object(secrets);
}
