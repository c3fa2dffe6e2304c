//! Supabase Auth's "Send SMS" hook (`internal/hooks/v0hooks` in supabase/auth): GoTrue makes the
//! code, keeps it, and checks it; smsgate only delivers it. The body is
//! `{"user": {...}, "sms": {"otp", "phone"?, "sms_type"?}, "metadata"?: {"uuid", "time", "name",
//! "ip_address"}}`; older GoTrue has no `sms.phone` (the number is `user.phone`), and numbers come
//! without `+`. GoTrue retries a call with a new `webhook-id` but the same body, so the retry is
//! recognised by `metadata.uuid`, or by the body's hash when there is no metadata.

use std::net::IpAddr;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::otp::is_well_formed;
use crate::phone::Phone;

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    user: Option<User>,
    sms: Sms,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// The parts of GoTrue's user object smsgate reads; the rest is ignored.
#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Sms {
    otp: String,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    ip_address: Option<String>,
}

/// One code to deliver, as GoTrue asked.
#[derive(Debug, Clone)]
pub struct SendSms {
    pub to: Phone,
    /// The code: never logged, never stored.
    pub otp: String,
    /// GoTrue's user id, for the per-user limit and the attempt rows.
    pub user_id: Option<String>,
    /// The end user's address as GoTrue saw it, for the per-IP limit.
    pub client_ip: Option<IpAddr>,
    /// What identifies this call across GoTrue's retries.
    pub dedupe_key: String,
}

/// Why a signed body cannot be delivered; the text is for the person reading Supabase's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not a Send SMS hook payload: {0}")]
    Shape(String),
    #[error("the payload has no phone number (`sms.phone` or `user.phone`)")]
    NoPhone,
    #[error("{0}")]
    BadPhone(String),
    #[error("`sms.otp` must be 4 to 10 digits")]
    BadOtp,
}

/// Reads a verified body. `default_country` is not used: GoTrue always sends international numbers.
pub fn parse(body: &[u8]) -> Result<SendSms, PayloadError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| PayloadError::Shape(super::describe(&e)))?;
    let raw = p
        .sms
        .phone
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| p.user.as_ref().and_then(|u| u.phone.as_deref()).filter(|s| !s.trim().is_empty()))
        .ok_or(PayloadError::NoPhone)?;
    let to = international(raw)?;
    let otp = p.sms.otp.trim().to_string();
    if !is_well_formed(&otp) {
        return Err(PayloadError::BadOtp);
    }
    let meta = p.metadata.as_ref();
    let uuid = meta
        .and_then(|m| m.uuid.as_deref())
        .map(str::trim)
        .filter(|u| !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_graphic()));
    let dedupe_key = match uuid {
        Some(u) => format!("uuid:{u}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    };
    Ok(SendSms {
        to,
        otp,
        user_id: p
            .user
            .and_then(|u| u.id)
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)),
        // An address GoTrue could not read is no reason to refuse the code.
        client_ip: meta.and_then(|m| m.ip_address.as_deref()).and_then(|ip| ip.trim().parse().ok()),
        dedupe_key,
    })
}

/// GoTrue keeps numbers as international digits without `+` (`919876543210`).
fn international(raw: &str) -> Result<Phone, PayloadError> {
    let raw = raw.trim();
    let with_plus = if raw.starts_with('+') { raw.to_string() } else { format!("+{raw}") };
    // The default country is never used for a number that starts with `+`.
    Phone::parse(&with_plus, "1").map_err(|e| PayloadError::BadPhone(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_payload_names_the_phone_in_sms() {
        let body = br#"{"metadata":{"uuid":"8b34dcdd-9df1-4c10-850a-b3277c653040","time":"2024-05-01T10:00:00Z","name":"send-sms","ip_address":"203.0.113.7"},
            "user":{"id":"e1b0c0a4-0000-4000-8000-000000000001","aud":"authenticated","phone":"919876543210","app_metadata":{}},
            "sms":{"otp":"561166","phone":"919812345678"}}"#;
        let s = parse(body).unwrap();
        assert_eq!(s.to.e164(), "+919812345678");
        assert_eq!(s.otp, "561166");
        assert_eq!(s.user_id.as_deref(), Some("e1b0c0a4-0000-4000-8000-000000000001"));
        assert_eq!(s.client_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(s.dedupe_key, "uuid:8b34dcdd-9df1-4c10-850a-b3277c653040");
    }

    #[test]
    fn an_older_payload_without_sms_phone_uses_the_users_phone_and_the_body_hash() {
        let body = br#"{"user":{"id":"u1","phone":"14155550100"},"sms":{"otp":"123456"}}"#;
        let s = parse(body).unwrap();
        assert_eq!(s.to.e164(), "+14155550100");
        assert_eq!(s.client_ip, None);
        assert_eq!(s.dedupe_key, format!("sha256:{}", hex::encode(Sha256::digest(body))));
        let empty_sms_phone = br#"{"user":{"phone":"14155550100"},"sms":{"otp":"123456","phone":""}}"#;
        assert_eq!(parse(empty_sms_phone).unwrap().to.e164(), "+14155550100");
    }

    #[test]
    fn payloads_that_cannot_be_delivered_say_why() {
        assert!(matches!(parse(b"{}"), Err(PayloadError::Shape(_))));
        assert_eq!(parse(br#"{"user":{},"sms":{"otp":"123456"}}"#).unwrap_err(), PayloadError::NoPhone);
        assert_eq!(
            parse(br#"{"sms":{"otp":"12ab56","phone":"919876543210"}}"#).unwrap_err(),
            PayloadError::BadOtp
        );
        assert!(matches!(
            parse(br#"{"sms":{"otp":"123456","phone":"12"}}"#),
            Err(PayloadError::BadPhone(_))
        ));
    }

    #[test]
    fn the_code_never_appears_in_a_payload_error() {
        let e = parse(br#"{"sms":{"otp":"987654","phone":"12"}}"#).unwrap_err();
        assert!(!e.to_string().contains("987654"));
        let e = parse(br#"{"sms":{"otp":987654,"phone":"919876543210"}}"#).unwrap_err();
        assert!(!e.to_string().contains("987654"), "{e}");
    }
}
