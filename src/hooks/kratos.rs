//! Ory Kratos' courier HTTP channel (`courier/http_channel.go` in ory/kratos): Kratos renders the
//! whole SMS (its template holds the code), builds the request body with a Jsonnet template from
//! `{recipient, body, template_type, template_data, message_type, …}`, and counts any 2xx as sent;
//! on anything else it requeues the message and sends the same body again later. The shipped
//! template (`contrib/kratos/sms.jsonnet`) writes `{"to", "body", "template_type"}`; Kratos'
//! default template (which writes `recipient` and `body`, and `to: null`) works too.

use serde::Deserialize;

use super::{TextPayloadError, TextSms};
use crate::phone::Phone;

/// Longest text accepted (about ten SMS parts).
pub const MAX_TEXT: usize = 1600;

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
    body: String,
}

/// The recipient (`to`, else Kratos' own `recipient`) and the text Kratos rendered.
pub fn parse(body: &[u8], default_country: &str) -> Result<TextSms, TextPayloadError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| TextPayloadError::Shape {
        expected: "a courier message",
        detail: super::describe(&e),
    })?;
    let raw =
        p.to.as_deref()
            .filter(|s| !s.trim().is_empty())
            .or(p.recipient.as_deref().filter(|s| !s.trim().is_empty()))
            .ok_or(TextPayloadError::NoRecipient)?;
    let to = Phone::parse(raw, default_country).map_err(|e| TextPayloadError::BadPhone(e.to_string()))?;
    let text = super::text(&p.body, MAX_TEXT).map_err(TextPayloadError::BadText)?;
    Ok(TextSms { to, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_template_and_kratos_default_template_are_read() {
        let shipped = br#"{"to":"+919876543210","body":"Your login code is: 123456\n\nIt expires in 15 minutes.\n","template_type":"login_code_valid"}"#;
        let s = parse(shipped, "91").unwrap();
        assert_eq!(s.to.e164(), "+919876543210");
        assert_eq!(s.text, "Your login code is: 123456\n\nIt expires in 15 minutes.");
        let default = br#"{"recipient":"+14155550100","template_type":"verification_code_valid","to":null,"recovery_code":null,"recovery_url":null,"verification_url":null,"verification_code":"123456","subject":"","body":"Your verification code is: 123456"}"#;
        assert_eq!(parse(default, "91").unwrap().to.e164(), "+14155550100");
    }

    #[test]
    fn a_message_without_a_recipient_or_text_is_refused() {
        assert_eq!(parse(br#"{"body":"hi"}"#, "91").unwrap_err(), TextPayloadError::NoRecipient);
        assert!(matches!(
            parse(br#"{"to":"+919876543210","body":"  "}"#, "91"),
            Err(TextPayloadError::BadText(_))
        ));
        assert!(matches!(
            parse(br#"{"to":"+919876543210"}"#, "91"),
            Err(TextPayloadError::Shape { .. })
        ));
    }
}
