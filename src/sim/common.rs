//! Pieces every fake shares: admitting a request through its fault, reading forms and basic
//! auth, checking numbers, and making ids and codes.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use rand::Rng;

use super::faults::{FaultKind, TIMEOUT_HOLD};
use super::state::SimState;

/// A fault that replaces the fake's normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAnswer {
    /// This HTTP status with the provider's error body for it.
    Status(u16),
    /// The provider's own error code or details.
    Error(String),
    /// 429 with `Retry-After` seconds and the provider's throttle body.
    Throttle(u64),
}

/// How an admitted request proceeds.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    /// Whether to record the message (a `blackhole` then decides per message, see
    /// `SimState::record`).
    pub deliver: bool,
}

/// Counts the call and applies the provider's fault: `Err` carries the answer to give instead.
pub async fn admit(state: &SimState, provider: &str) -> Result<Admitted, FaultAnswer> {
    state.count_call(provider);
    // A blackhole is decided per message, by its number, when the fake records it.
    let Some(fault) = state
        .fault(provider)
        .filter(|f| !matches!(f.kind, FaultKind::Blackhole { .. }) && f.strikes())
    else {
        return Ok(Admitted { deliver: true });
    };
    match fault.kind {
        FaultKind::Status(code) => Err(FaultAnswer::Status(code)),
        FaultKind::Error(code) => Err(FaultAnswer::Error(code)),
        FaultKind::Throttle(secs) => Err(FaultAnswer::Throttle(secs)),
        FaultKind::Blackhole { .. } => Ok(Admitted { deliver: false }),
        FaultKind::Latency(delay) => {
            tokio::time::sleep(delay).await;
            Ok(Admitted { deliver: true })
        }
        FaultKind::Timeout => {
            tokio::time::sleep(TIMEOUT_HOLD).await;
            Err(FaultAnswer::Status(504))
        }
    }
}

/// A JSON answer with `status` (which must be a valid code).
pub fn json(status: u16, body: serde_json::Value) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(body)
}

/// A 429 JSON answer carrying `Retry-After`.
pub fn throttled(secs: u64, body: serde_json::Value) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header(("Retry-After", secs.to_string()))
        .json(body)
}

/// The reason phrase of `status` ("Service Unavailable").
pub fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// A form-encoded body (or query string) as a map; a repeated key keeps its last value.
pub fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// A non-empty, trimmed value of `key`.
pub fn field<'a>(map: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The user and password of a `Basic` Authorization header.
pub fn basic_auth(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// A header's value as text.
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name)?.to_str().ok().map(str::trim)
}

/// `+` and the digits of an international number (country code included), or `None` when it
/// is not 8-15 digits without a leading zero. A leading `+` is allowed.
pub fn e164(number: &str) -> Option<String> {
    let digits = number.trim().strip_prefix('+').unwrap_or(number.trim());
    let ok = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

/// Like [`e164`], but a bare 10-digit Indian mobile number (`9876543210`) gets `+91`, as the
/// Indian providers accept it.
pub fn indian_or_e164(number: &str) -> Option<String> {
    let n = number.trim();
    let national = n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) && matches!(n.as_bytes()[0], b'6'..=b'9');
    if national {
        Some(format!("+91{n}"))
    } else {
        e164(n)
    }
}

/// The first run of 4-10 digits in `text`: what a person would read as the code.
pub fn code_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| (4..=10).contains(&run.len()))
        .map(str::to_string)
}

/// The first template variable that is a 4-10 digit code.
pub fn code_in_vars(vars: &[String]) -> Option<String> {
    vars.iter()
        .find(|v| (4..=10).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
        .cloned()
}

/// Whether `code` is a plausible OTP (4-10 digits).
pub fn is_code(code: &str) -> bool {
    (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// A 6-digit code, as provider-held codes are.
pub fn new_code() -> String {
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000))
}

/// `prefix` and 32 lowercase hex digits (Twilio's `SM…`, `VE…`).
pub fn sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_and_normalised() {
        assert_eq!(e164("919876543210").as_deref(), Some("+919876543210"));
        assert_eq!(e164("+14155550100").as_deref(), Some("+14155550100"));
        for bad in ["", "12345", "0919876543210", "91987654321a", "+", "1234567890123456"] {
            assert_eq!(e164(bad), None, "{bad}");
        }
    }

    #[test]
    fn codes_are_found_in_text_and_vars() {
        assert_eq!(code_in("Your code is 482913. Do not share").as_deref(), Some("482913"));
        assert_eq!(code_in("Hi 12, at 3pm"), None);
        assert_eq!(code_in_vars(&["Asha".into(), "9921".into()]).as_deref(), Some("9921"));
        assert_eq!(sid("SM").len(), 34);
        assert_eq!(new_code().len(), 6);
    }
}
