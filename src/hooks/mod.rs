//! Inbound hooks: auth servers that make and check their own codes hand smsgate the SMS to
//! deliver. Supabase Auth's Send SMS hook (signed with Standard Webhooks), Ory Kratos' courier
//! HTTP channel and Keycloak's SMS authenticator (basic auth or a token). This room verifies each
//! request the way its sender signs or authenticates it and reads its payload; it never trusts an
//! unsigned request, and never logs the code or the text that carries it.

mod credentials;
pub mod keycloak;
pub mod kratos;
pub mod receipts;
pub mod standard_webhooks;
pub mod supabase;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use credentials::Credentials;
pub use standard_webhooks::{Signed, Verifier, VerifyError};

use crate::config::{CredentialHook, HooksSettings};
use crate::phone::Phone;

/// One hook: the `hook` label of `smsgate_hook_requests_total`, its idempotency scope and the
/// calling-app name its sends are limited and logged under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Supabase,
    Kratos,
    Keycloak,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Supabase => "supabase",
            Hook::Kratos => "kratos",
            Hook::Keycloak => "keycloak",
        }
    }

    /// The calling app a hook's sends count against (`client:` limits) and its dedupe scope.
    pub fn client(self) -> &'static str {
        match self {
            Hook::Supabase => "hook:supabase",
            Hook::Kratos => "hook:kratos",
            Hook::Keycloak => "hook:keycloak",
        }
    }
}

/// Every hook's credentials, resolved once at start.
pub struct Hooks {
    pub supabase: Verifier,
    /// Time Supabase's sends get from the providers.
    pub supabase_deadline: Duration,
    /// Lifetime of Supabase's codes, for the message text.
    pub supabase_code_ttl_secs: u64,
    pub kratos: Credentials,
    pub keycloak: Credentials,
}

/// A hook secret that cannot be used; names the key.
#[derive(Debug, thiserror::Error)]
#[error("`{key}` {reason}")]
pub struct HookConfigError {
    key: String,
    reason: String,
}

impl Hooks {
    /// Reads inline secrets and the environment variables the settings name through `env`.
    pub fn build(settings: &HooksSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, HookConfigError> {
        let s = &settings.supabase;
        let from_env = match &s.secrets_env {
            Some(var) => Some(env(var).ok_or_else(|| HookConfigError {
                key: "hooks.supabase.secrets_env".into(),
                reason: format!("names `{var}`, which is not set"),
            })?),
            None => None,
        };
        let secrets = s.secrets.iter().map(|x| x.expose_secret()).chain(from_env.as_deref());
        let supabase = Verifier::new(secrets, s.tolerance_seconds).map_err(|e| HookConfigError {
            key: "hooks.supabase.secrets".into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            supabase,
            supabase_deadline: Duration::from_millis(s.deadline_ms),
            supabase_code_ttl_secs: s.code_ttl_seconds,
            kratos: credentials("hooks.kratos", &settings.kratos, env)?,
            keycloak: credentials("hooks.keycloak", &settings.keycloak, env)?,
        })
    }
}

fn credentials(key: &str, c: &CredentialHook, env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, HookConfigError> {
    let read = |inline: &Option<SecretString>, var: &Option<String>, name: &str| -> Result<Option<SecretString>, HookConfigError> {
        match (inline, var) {
            (Some(v), _) => Ok(Some(v.clone())),
            (None, Some(var)) => env(var).map(|v| Some(SecretString::from(v))).ok_or_else(|| HookConfigError {
                key: format!("{key}.{name}_env"),
                reason: format!("names `{var}`, which is not set"),
            }),
            (None, None) => Ok(None),
        }
    };
    let password = read(&c.password, &c.password_env, "password")?;
    let token = read(&c.token, &c.token_env, "token")?;
    let basic = c.username.as_deref().zip(password.as_ref());
    Ok(Credentials::new(basic, token, c.token_header.clone()))
}

/// A JSON error as the sender may read it: where and what, never a value from the body (a
/// mistyped field's value could be the code).
fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.is_syntax() || e.is_eof() || text.starts_with("missing field") {
        text
    } else {
        format!("a field has the wrong type (line {}, column {})", e.line(), e.column())
    }
}

/// An SMS text: trimmed, not empty, at most `max` characters, no control character but line
/// breaks and tabs (a NUL would fail the attempt log's statement).
fn text(value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("the text is empty".into());
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("the text contains a control character".into());
    }
    if v.chars().count() > max {
        return Err(format!("the text is longer than {max} characters"));
    }
    Ok(v.to_string())
}

/// One text to deliver from an auth server that writes the whole SMS (Kratos, Keycloak).
#[derive(Debug, Clone)]
pub struct TextSms {
    pub to: Phone,
    /// Holds a code: never logged, never stored.
    pub text: String,
}

/// Why a text hook's body cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextPayloadError {
    /// Not the JSON this hook sends; `expected` names it.
    #[error("the body is not {expected}: {detail}")]
    Shape { expected: &'static str, detail: String },
    #[error("the message has no recipient (`to` or `recipient`)")]
    NoRecipient,
    #[error("{0}")]
    BadPhone(String),
    #[error("{0}")]
    BadText(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn build(toml: &str, env: &[(&str, &str)]) -> Result<Hooks, HookConfigError> {
        let settings = Settings::from_toml(toml).unwrap();
        Hooks::build(&settings.hooks, &|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn secrets_and_credentials_come_inline_or_from_the_variables_named() {
        let hooks = build(
            "[hooks.supabase]\nsecrets_env = \"SB\"\n[hooks.kratos]\nusername = \"k\"\npassword_env = \"KP\"\n[hooks.keycloak]\ntoken_env = \"KT\"\n",
            &[("SB", "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw|v1,whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"), ("KP", "pw"), ("KT", "tok")],
        )
        .unwrap();
        assert!(hooks.supabase.is_configured());
        assert!(hooks.kratos.is_configured());
        assert!(hooks.keycloak.accept(|h| (h == "authorization").then_some("Bearer tok")));
        let none = build("", &[]).unwrap();
        assert!(!none.supabase.is_configured() && !none.kratos.is_configured() && !none.keycloak.is_configured());
    }

    #[test]
    fn a_missing_variable_or_a_bad_secret_is_an_error_naming_the_key() {
        let e = build("[hooks.supabase]\nsecrets_env = \"SB\"\n", &[]).err().unwrap().to_string();
        assert!(e.contains("hooks.supabase.secrets_env") && e.contains("SB"), "{e}");
        let e = build("[hooks.keycloak]\ntoken_env = \"KT\"\n", &[]).err().unwrap().to_string();
        assert!(e.contains("hooks.keycloak.token_env"), "{e}");
        let e = build("[hooks.supabase]\nsecrets = [\"v1,whsec_%%%\"]\n", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("hooks.supabase.secrets") && e.contains("base64"), "{e}");
    }
}
