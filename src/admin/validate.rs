//! Reads a provider entry the way `providers.toml` is read (the same strict structs, the same
//! `Settings` validation), and names the field an error is about.

use serde_json::{Map, Value};

use super::AdminError;
use crate::config::{ConfigError, ProviderConfig, Settings};

/// The keys of an entry kept outside `config` in the API and the table.
pub const TOP_KEYS: [&str; 4] = ["name", "kind", "priority", "enabled"];

/// Builds the entry of `name`/`kind`/`priority`/`enabled` and `config`'s keys, refusing what the
/// file would refuse, with the field named (`config.base_url`, `kind`).
pub fn parse_entry(
    name: &str,
    kind: &str,
    priority: i32,
    enabled: bool,
    config: &Map<String, Value>,
) -> Result<ProviderConfig, AdminError> {
    if let Some(key) = TOP_KEYS.iter().find(|k| config.contains_key(**k)) {
        return Err(AdminError::invalid(
            format!("config.{key}"),
            format!("`{key}` is set beside `config`, not in it"),
        ));
    }
    let whole = |config: &Map<String, Value>| {
        let mut entry = config.clone();
        entry.insert("name".into(), Value::from(name));
        entry.insert("kind".into(), Value::from(kind));
        entry.insert("priority".into(), Value::from(priority));
        entry.insert("enabled".into(), Value::from(enabled));
        serde_json::from_value::<ProviderConfig>(Value::Object(entry))
    };
    let err = match whole(config) {
        Ok(entry) => return Ok(entry),
        Err(e) => e.to_string(),
    };
    if let Some(kind) = quoted_after(&err, "unknown variant ") {
        return Err(AdminError::invalid("kind", format!("`{kind}` is not a provider kind")));
    }
    if let Some(key) = quoted_after(&err, "unknown field ") {
        return Err(AdminError::invalid(
            format!("config.{key}"),
            format!("`{key}` is not a key of kind `{kind}`"),
        ));
    }
    if let Some(key) = quoted_after(&err, "missing field ") {
        return Err(AdminError::invalid(
            format!("config.{key}"),
            format!("`{key}` is required for kind `{kind}`"),
        ));
    }
    // A value of the wrong type: the key whose removal changes the answer is the one at fault.
    let culprit = config.keys().find(|key| {
        let mut without = config.clone();
        without.remove(*key);
        whole(&without).map_err(|e| e.to_string()).err().as_deref() != Some(err.as_str())
    });
    let field = culprit.map_or_else(|| "config".to_string(), |k| format!("config.{k}"));
    Err(AdminError::invalid(field, err))
}

/// `x` in "… unknown field `x`, expected …".
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('`')?;
    Some(&rest[..rest.find('`')?])
}

/// Checks `providers` as the whole provider list of `settings`, as a file holding them would be
/// checked.
pub fn check_list(settings: &Settings, providers: &[ProviderConfig]) -> Result<(), AdminError> {
    let mut candidate = settings.clone();
    candidate.providers = providers.to_vec();
    match candidate.validate("admin change") {
        Ok(()) => Ok(()),
        Err(ConfigError::Invalid { key, reason, .. }) => Err(AdminError::invalid(field_of(&key), reason)),
        Err(other) => Err(AdminError::invalid("config", other.to_string())),
    }
}

/// The form field of a key the list check names: `providers[2].base_url` → `config.base_url`;
/// `providers[0].name` → `name`. The list index means nothing on the page, which shows one
/// provider at a time.
fn field_of(key: &str) -> String {
    let Some((_, field)) = key.strip_prefix("providers[").and_then(|rest| rest.split_once("].")) else {
        return key.to_string();
    };
    if TOP_KEYS.contains(&field) {
        field.to_string()
    } else {
        format!("config.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn field(r: Result<ProviderConfig, AdminError>) -> String {
        match r {
            Err(AdminError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn an_entry_is_read_as_strictly_as_the_file_and_the_field_is_named() {
        let ok = parse_entry("t", "twilio", 1, true, &obj(json!({"from": "+15005550006"}))).unwrap();
        assert_eq!(ok.kind(), "twilio");
        assert_eq!(
            field(parse_entry("t", "twilio", 1, true, &obj(json!({"sender": "x"})))),
            "config.sender"
        );
        assert_eq!(field(parse_entry("t", "carrier-pigeon", 1, true, &obj(json!({})))), "kind");
        assert_eq!(
            field(parse_entry("t", "twilio", 1, true, &obj(json!({"timeout_ms": "soon"})))),
            "config.timeout_ms"
        );
        assert_eq!(
            field(parse_entry("t", "twilio", 1, true, &obj(json!({"name": "x"})))),
            "config.name"
        );
    }

    #[test]
    fn a_list_is_validated_like_the_file() {
        let settings = Settings::from_toml("").unwrap();
        let good = parse_entry("a", "twilio", 1, true, &obj(json!({}))).unwrap();
        let bad_url = parse_entry("t", "twilio", 2, true, &obj(json!({"base_url": "not a url"}))).unwrap();
        let err = check_list(&settings, &[good.clone(), bad_url]).unwrap_err();
        assert!(
            matches!(&err, AdminError::InvalidField { field, message } if field == "config.base_url"
                && message == "config.base_url: `not a url` is not an http(s) URL"),
            "the field and a message without the list index: {err:?}"
        );
        let err = check_list(&settings, &[good.clone(), good]).unwrap_err();
        assert!(
            matches!(&err, AdminError::InvalidField { field, message } if field == "name" && message == "name: `a` is used twice"),
            "{err:?}"
        );
    }
}
