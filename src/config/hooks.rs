//! `[hooks]`: the auth servers that hand smsgate a code (Supabase Auth) or a whole text (Ory
//! Kratos, Keycloak) to deliver, each with credentials of its own, never the API's client tokens.
//! A hook with no credentials is off: its route refuses every request.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksSettings {
    /// Supabase Auth's "Send SMS" hook (`POST /v1/hooks/supabase/send-sms`).
    pub supabase: SupabaseHook,
    /// Ory Kratos' courier HTTP channel (`POST /v1/hooks/kratos/sms`).
    pub kratos: CredentialHook,
    /// Keycloak's SMS authenticator "api" service (`POST /v1/hooks/keycloak/sms`).
    pub keycloak: CredentialHook,
}

/// Supabase signs every call with Standard Webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupabaseHook {
    /// Signing secrets as Supabase shows them, `v1,whsec_<base64>`; list several while rotating.
    pub secrets: Vec<SecretString>,
    /// An environment variable holding the secrets, joined by `|` as in Supabase's own
    /// `GOTRUE_HOOK_SEND_SMS_SECRETS`; added to `secrets`.
    pub secrets_env: Option<String>,
    /// How far `webhook-timestamp` may be from now, either way, in seconds.
    pub tolerance_seconds: u64,
    /// Time given to the providers: Supabase waits 5 s for the hook, retries included, so the
    /// answer (limits and the attempt log too) must come well inside it.
    pub deadline_ms: u64,
    /// Lifetime of Supabase's codes (its `GOTRUE_SMS_OTP_EXP`), for `{minutes}` in `otp.message`.
    pub code_ttl_seconds: u64,
}

impl Default for SupabaseHook {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            secrets_env: None,
            tolerance_seconds: 300,
            deadline_ms: 3_000,
            code_ttl_seconds: 60,
        }
    }
}

/// A hook authenticated by basic auth or a token. Either or both may be set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialHook {
    /// Basic auth user; the password comes from `password` or `password_env`.
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// An environment variable holding the basic auth password.
    pub password_env: Option<String>,
    /// A token, accepted as `Authorization: Bearer <token>` (or the bare token there), or as the
    /// value of `token_header` when that is set.
    pub token: Option<SecretString>,
    /// An environment variable holding the token.
    pub token_env: Option<String>,
    /// A header that carries the token as it is (`X-Api-Key`), instead of `Authorization`.
    pub token_header: Option<String>,
}
