//! Verification tokens: a signed, short-lived proof that a session's code was verified, which an
//! app holding the token key checks offline (README, "Verification tokens").

use uuid::Uuid;

use crate::keys::HmacKey;

/// What a verification token vouches for: this session's code was verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenClaims {
    /// Session id.
    pub sid: Uuid,
    /// The app's user id, when the session had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uid: Option<String>,
    pub purpose: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// A verification token: `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`.
/// An app holding the token key checks it offline (see README, "Verification tokens").
pub fn issue_token(key: &HmacKey, claims: &TokenClaims) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signature = b64.encode(key.sign(payload.as_bytes()));
    format!("{payload}.{signature}")
}

/// Checks a token's signature and expiry.
pub fn check_token(key: &HmacKey, token: &str, now_unix: i64) -> Option<TokenClaims> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, signature) = token.split_once('.')?;
    if !key.verify_signature(payload.as_bytes(), &b64.decode(signature).ok()?) {
        return None;
    }
    let claims: TokenClaims = serde_json::from_slice(&b64.decode(payload).ok()?).ok()?;
    (claims.exp > now_unix).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_not_after_tampering() {
        let key = HmacKey::random();
        let claims = TokenClaims {
            sid: Uuid::new_v4(),
            uid: Some("u1".into()),
            purpose: "login".into(),
            exp: 1_000,
        };
        let token = issue_token(&key, &claims);
        assert_eq!(check_token(&key, &token, 999), Some(claims.clone()));
        assert_eq!(check_token(&key, &token, 1_000), None, "expired");
        assert_eq!(check_token(&HmacKey::random(), &token, 999), None, "other key");
        let forged = issue_token(
            &key,
            &TokenClaims {
                uid: Some("u2".into()),
                ..claims
            },
        );
        let spliced = format!("{}.{}", forged.split('.').next().unwrap(), token.split('.').nth(1).unwrap());
        assert_eq!(check_token(&key, &spliced, 999), None, "payload swapped");
    }
}
