//! Basic auth and token credentials for hooks that do not sign their requests (Ory Kratos'
//! courier, Keycloak's SMS authenticator). Every comparison takes the same time whatever matched.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// What one hook accepts. With nothing configured, nothing is accepted.
#[derive(Default)]
pub struct Credentials {
    /// `Authorization: Basic base64(user:password)`, as the whole header value.
    basic: Option<SecretString>,
    token: Option<SecretString>,
    /// A header carrying the token as it is; `None`: `Authorization`.
    token_header: Option<String>,
}

impl Credentials {
    pub fn new(basic: Option<(&str, &SecretString)>, token: Option<SecretString>, token_header: Option<String>) -> Self {
        let basic = basic.map(|(user, password)| {
            let pair = format!("{user}:{}", password.expose_secret());
            SecretString::from(format!("Basic {}", STANDARD.encode(pair)))
        });
        Self {
            basic,
            token: token.filter(|t| !t.expose_secret().trim().is_empty()),
            token_header: token_header.map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.basic.is_some() || self.token.is_some()
    }

    /// Whether the request's headers (looked up by lower-case name) carry a configured credential.
    pub fn accept<'a>(&self, header: impl Fn(&str) -> Option<&'a str>) -> bool {
        let authorization = header("authorization").map(str::trim);
        let mut ok = subtle::Choice::from(0);
        if let (Some(expected), Some(given)) = (&self.basic, authorization) {
            ok |= eq(expected.expose_secret(), &normalise_scheme(given, "Basic"));
        }
        if let Some(token) = &self.token {
            let token = token.expose_secret().trim();
            match &self.token_header {
                Some(name) => {
                    if let Some(given) = header(name) {
                        ok |= eq(token, given.trim());
                    }
                }
                None => {
                    if let Some(given) = authorization {
                        ok |= eq(token, &bearer(given));
                    }
                }
            }
        }
        bool::from(ok)
    }
}

/// `value` with its scheme spelled `scheme` (schemes are case-insensitive).
fn normalise_scheme(value: &str, scheme: &str) -> String {
    match value.split_once(' ') {
        Some((s, rest)) if s.eq_ignore_ascii_case(scheme) => format!("{scheme} {}", rest.trim()),
        _ => value.to_string(),
    }
}

/// The token of `Bearer <token>`, or the value itself (Keycloak's "API secret in header" sends
/// the secret bare).
fn bearer(value: &str) -> String {
    match value.split_once(' ') {
        Some((s, rest)) if s.eq_ignore_ascii_case("bearer") => rest.trim().to_string(),
        _ => value.to_string(),
    }
}

fn eq(expected: &str, given: &str) -> subtle::Choice {
    expected.as_bytes().ct_eq(given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn with<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn basic_auth_matches_user_and_password() {
        let c = Credentials::new(Some(("kratos", &secret("s3cret"))), None, None);
        let good = format!("Basic {}", STANDARD.encode("kratos:s3cret"));
        assert!(c.accept(with(&[("authorization", &good)])));
        let lower = format!("basic {}", STANDARD.encode("kratos:s3cret"));
        assert!(c.accept(with(&[("authorization", &lower)])));
        let wrong = format!("Basic {}", STANDARD.encode("kratos:other"));
        assert!(!c.accept(with(&[("authorization", &wrong)])));
        assert!(!c.accept(with(&[])));
        assert!(!c.accept(with(&[("authorization", "Bearer s3cret")])));
    }

    #[test]
    fn a_token_is_taken_as_bearer_bare_or_in_its_own_header() {
        let c = Credentials::new(None, Some(secret("tok")), None);
        assert!(c.accept(with(&[("authorization", "Bearer tok")])));
        assert!(c.accept(with(&[("authorization", "tok")])));
        assert!(!c.accept(with(&[("authorization", "Bearer tok2")])));
        assert!(!c.accept(with(&[("x-api-key", "tok")])));
        let header = Credentials::new(None, Some(secret("tok")), Some("X-Api-Key".into()));
        assert!(header.accept(with(&[("x-api-key", "tok")])));
        assert!(!header.accept(with(&[("authorization", "Bearer tok")])));
    }

    #[test]
    fn nothing_configured_accepts_nothing() {
        let c = Credentials::new(None, Some(secret("  ")), None);
        assert!(!c.is_configured());
        assert!(!c.accept(with(&[("authorization", "Bearer ")])));
        assert!(!c.accept(with(&[("authorization", "")])));
    }
}
