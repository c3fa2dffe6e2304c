//! Twilio's inbound-message webhook: its signature and the replies that opt a number out.
//! Twilio signs `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, full URL + every POST
//! parameter's name and value, sorted by name)).

use crate::hooks::receipts::{same, twilio_signature};

/// Whether `signature` is Twilio's signature of `url` and `params` under `auth_token`.
pub fn signature_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    same(&twilio_signature(auth_token, url, params), signature.trim())
}

/// What an inbound reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
}

/// The opt-out keywords Twilio and carriers honour, matched on the whole trimmed reply.
pub fn keyword(body: &str) -> Option<Keyword> {
    let word = body.trim().trim_end_matches(['.', '!']).to_ascii_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" => Some(Keyword::Stop),
        "START" | "UNSTOP" | "SUBSCRIBE" => Some(Keyword::Start),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_documented_example_signature_matches() {
        // The example in Twilio's webhook-security documentation and its SDKs' tests.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = twilio_signature("12345", url, &params);
        assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(signature_valid("12345", url, &params, &sig));
        assert!(!signature_valid("12346", url, &params, &sig));
        assert!(!signature_valid("12345", "https://mycompany.com/other", &params, &sig));
    }

    #[test]
    fn stop_words_are_recognised_whole_and_in_any_case() {
        assert_eq!(keyword(" stop "), Some(Keyword::Stop));
        assert_eq!(keyword("Unsubscribe"), Some(Keyword::Stop));
        assert_eq!(keyword("START"), Some(Keyword::Start));
        assert_eq!(keyword("please stop texting"), None);
        assert_eq!(keyword("hello"), None);
    }
}
