//! Keycloak's SMS authenticator, "api" service (`ApiSmsService.java` in
//! netzbegruenung/keycloak-mfa-plugins): with `messageattribute = text`, `receiverattribute = to`
//! and `senderattribute = from` it POSTs `{"text", "to", "from"}` as JSON, authenticated by its
//! API secret in `Authorization` or by basic auth, and ignores the answer. The text holds the code
//! Keycloak made and checks; `from` is the plugin's sender id, which the providers' own
//! configuration decides here, so it is accepted and ignored. Fields the plugin may add (a
//! message UUID) are ignored too.

use serde::Deserialize;

use super::{TextPayloadError, TextSms};
use crate::phone::Phone;

pub const MAX_TEXT: usize = 1600;

#[derive(Debug, Deserialize)]
struct Payload {
    to: String,
    text: String,
    /// The plugin's sender id; ignored.
    #[serde(default, rename = "from")]
    _from: Option<serde_json::Value>,
}

/// Keycloak sends numbers as its users typed them (`+49…`, or national ones when the plugin's
/// `countrycode` is unset): `default_country` completes a national number as for the API.
pub fn parse(body: &[u8], default_country: &str) -> Result<TextSms, TextPayloadError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| TextPayloadError::Shape {
        expected: "the SMS authenticator's JSON",
        detail: super::describe(&e),
    })?;
    let to = Phone::parse(&p.to, default_country).map_err(|e| TextPayloadError::BadPhone(e.to_string()))?;
    let text = super::text(&p.text, MAX_TEXT).map_err(TextPayloadError::BadText)?;
    Ok(TextSms { to, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_json_is_read_and_from_ignored() {
        let body = br#"{"text":"Your SMS code is 482913 and is valid for 5 minutes.","to":"+4917612345678","from":"null"}"#;
        let s = parse(body, "91").unwrap();
        assert_eq!(s.to.e164(), "+4917612345678");
        assert!(s.text.contains("482913"));
        let with_uuid = br#"{"id":"5f0c","text":"code 482913","to":"9876543210","from":"SMSGATE"}"#;
        assert_eq!(parse(with_uuid, "91").unwrap().to.e164(), "+919876543210");
    }

    #[test]
    fn a_body_without_text_or_number_is_refused() {
        assert!(matches!(
            parse(br#"{"to":"+4917612345678"}"#, "91"),
            Err(TextPayloadError::Shape { .. })
        ));
        assert!(matches!(
            parse(br#"{"to":"abc","text":"x"}"#, "91"),
            Err(TextPayloadError::BadPhone(_))
        ));
    }
}
