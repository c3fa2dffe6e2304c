//! Multi-factor access to the admin logs. An admin whose client entry has a `phone` proves it
//! holds that phone with an OTP sent through smsgate itself, and gets a token good for 15
//! minutes: HMAC-signed with the gateway's key and bound to the client's name, so it is useless
//! to another client and cannot be extended or forged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::keys::HmacKey;
use crate::otp::{OtpRequest, OtpSent, Recipient};
use crate::phone::Phone;
use crate::service::{Gateway, GatewayError, Tenant};

/// The purpose of MFA sessions; no other purpose's code opens the logs.
pub const MFA_PURPOSE: &str = "admin_mfa";
/// How long a passed check opens the logs.
pub const MFA_TOKEN_TTL: Duration = Duration::minutes(15);
const TOKEN_PREFIX: &str = "mfa1";
/// Keeps MFA signatures apart from every other use of the gateway key.
const DOMAIN: &[u8] = b"smsgate admin mfa v1\0";

/// Why a token does not open the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MfaTokenError {
    #[error("the MFA token is not valid for this client")]
    Invalid,
    #[error("the MFA token has expired; verify again")]
    Expired,
}

fn signed_data(client: &str, expires: i64) -> Vec<u8> {
    let mut data = DOMAIN.to_vec();
    data.extend_from_slice(client.as_bytes());
    data.push(0);
    data.extend_from_slice(expires.to_string().as_bytes());
    data
}

/// A token for `client` valid until `now + MFA_TOKEN_TTL`.
pub fn issue_token(key: &HmacKey, client: &str, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let expires_at = now + MFA_TOKEN_TTL;
    let expires = expires_at.timestamp();
    let signature = key.sign(&signed_data(client, expires));
    let token = format!(
        "{TOKEN_PREFIX}.{}.{expires}.{}",
        URL_SAFE_NO_PAD.encode(client),
        URL_SAFE_NO_PAD.encode(signature)
    );
    (token, expires_at)
}

/// Whether `token` was issued to `client` by this gateway and is still valid at `now`.
pub fn check_token(key: &HmacKey, token: &str, client: &str, now: DateTime<Utc>) -> Result<(), MfaTokenError> {
    let mut parts = token.trim().split('.');
    let (Some(TOKEN_PREFIX), Some(name), Some(expires), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MfaTokenError::Invalid);
    };
    let name = URL_SAFE_NO_PAD.decode(name).map_err(|_| MfaTokenError::Invalid)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| MfaTokenError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| MfaTokenError::Invalid)?;
    if name != client.as_bytes() || !key.verify_signature(&signed_data(client, expires), &signature) {
        return Err(MfaTokenError::Invalid);
    }
    if now.timestamp() >= expires {
        return Err(MfaTokenError::Expired);
    }
    Ok(())
}

/// A passed check: the token and when it stops opening the logs.
#[derive(Debug, Clone)]
pub struct MfaPassed {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// What a code check of an MFA session found.
#[derive(Debug, Clone)]
pub enum MfaCheck {
    Passed(MfaPassed),
    WrongCode { attempts_left: u32 },
}

impl Gateway {
    /// Sends an OTP to the admin's own `phone` through the normal path (failover and limits
    /// included), owned by the admin's client.
    pub async fn send_mfa(&self, client: &str, phone: Phone) -> Result<OtpSent, GatewayError> {
        self.send_otp(OtpRequest {
            to: Recipient::Phone(phone),
            user_id: None,
            purpose: MFA_PURPOSE.into(),
            preferred_provider: None,
            client: client.into(),
            client_ip: None,
            claim: None,
        })
        .await
    }

    /// Checks `code` for an MFA session of `client` sent to `phone`; a session of any other
    /// purpose or number is not found.
    pub async fn verify_mfa(&self, client: &str, phone: &Phone, session_id: Uuid, code: &str) -> Result<MfaCheck, GatewayError> {
        let tenant = Tenant {
            client: client.into(),
            sees_every_app: false,
        };
        let session = self.session(&tenant, session_id).await?;
        if session.purpose != MFA_PURPOSE || session.phone != phone.e164() {
            return Err(GatewayError::SessionNotFound);
        }
        let verified = self.verify_otp(&tenant, session_id, code).await?;
        if !verified.verified {
            return Ok(MfaCheck::WrongCode {
                attempts_left: verified.attempts_left,
            });
        }
        let (token, expires_at) = issue_token(&self.key, client, self.clock.now());
        Ok(MfaCheck::Passed(MfaPassed { token, expires_at }))
    }

    /// Whether `token` opens the logs for `client` now.
    pub fn check_mfa(&self, client: &str, token: &str) -> Result<(), MfaTokenError> {
        check_token(&self.key, token, client, self.clock.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_the_logs_for_its_client_until_it_expires() {
        let key = HmacKey::random();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (token, expires_at) = issue_token(&key, "ops", t0);
        assert_eq!(expires_at, t0 + Duration::minutes(15));
        assert_eq!(check_token(&key, &token, "ops", t0 + Duration::minutes(14)), Ok(()));
        assert_eq!(check_token(&key, &token, "ops", expires_at), Err(MfaTokenError::Expired));
        assert_eq!(
            check_token(&key, &token, "root", t0),
            Err(MfaTokenError::Invalid),
            "bound to its client"
        );
        assert_eq!(
            check_token(&HmacKey::random(), &token, "ops", t0),
            Err(MfaTokenError::Invalid),
            "signed by this gateway"
        );
    }

    #[test]
    fn an_altered_token_is_refused() {
        let key = HmacKey::random();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (token, _) = issue_token(&key, "ops", t0);
        let parts: Vec<&str> = token.split('.').collect();
        let later = (t0 + Duration::days(1)).timestamp().to_string();
        let extended = [parts[0], parts[1], &later, parts[3]].join(".");
        assert_eq!(check_token(&key, &extended, "ops", t0), Err(MfaTokenError::Invalid));
        for junk in ["", "mfa1", "mfa1.a.b.c", &format!("{token}.x"), "mfa1.b3Bz.9999999999.!!"] {
            assert_eq!(check_token(&key, junk, "ops", t0), Err(MfaTokenError::Invalid), "{junk}");
        }
    }
}
