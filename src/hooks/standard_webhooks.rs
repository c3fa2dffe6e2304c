//! Standard Webhooks (standardwebhooks.com), symmetric scheme: the signature is
//! `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{raw body}")), the secret
//! `whsec_<base64 key>` (Supabase writes `v1,whsec_…`). A request verifies when its timestamp is
//! within the tolerance of now and any of its signatures matches any configured key.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Base64 with or without its `=` padding, as the reference libraries read secrets (they are
/// copied by hand and lose it).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a configured secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("is empty")]
    Empty,
    #[error("is an asymmetric (v1a) key; only symmetric `v1,whsec_…` secrets are supported")]
    Asymmetric,
    #[error("is not base64 after `whsec_`")]
    NotBase64,
}

/// Why a request was refused. None of them says which key or signature came close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not a Unix time in seconds")]
    BadTimestamp,
    #[error("`webhook-timestamp` is too old")]
    TooOld,
    #[error("`webhook-timestamp` is in the future")]
    TooNew,
    #[error("no signature matches")]
    NoMatch,
}

/// The three headers of a signed request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signed<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The keys one endpoint accepts.
pub struct Verifier {
    keys: Vec<SecretBox<Vec<u8>>>,
    tolerance_secs: i64,
}

impl Verifier {
    /// Keys from secrets as configured: each may hold several joined by `|`, each written
    /// `v1,whsec_<base64>`, `whsec_<base64>` or bare base64.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>, tolerance_secs: u64) -> Result<Self, SecretError> {
        let mut keys = Vec::new();
        for joined in secrets {
            for secret in joined.split('|').map(str::trim).filter(|s| !s.is_empty()) {
                keys.push(SecretBox::new(Box::new(decode_secret(secret)?)));
            }
        }
        Ok(Self {
            keys,
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
        })
    }

    /// Whether any key is configured.
    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `body` against its headers at `now` (Unix seconds).
    pub fn verify(&self, signed: Signed<'_>, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let id = signed.id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
        let timestamp = signed.timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
        let header = signed.signature.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
        let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
        if now.saturating_sub(ts) > self.tolerance_secs {
            return Err(VerifyError::TooOld);
        }
        if ts.saturating_sub(now) > self.tolerance_secs {
            return Err(VerifyError::TooNew);
        }
        let candidates = signatures(header);
        let mut matched = subtle::Choice::from(0);
        // Every key against every signature, so the time taken says nothing about which matched.
        for key in &self.keys {
            let expected = mac(key.expose_secret(), id, ts, body);
            for candidate in &candidates {
                matched |= expected.as_slice().ct_eq(candidate);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

/// The signature header's `v1` signatures, decoded. The specification separates them with
/// spaces; GoTrue joins them with ", ", so a trailing comma on a token is dropped. Other
/// versions (`v1a`) and undecodable values are skipped.
fn signatures(header: &str) -> Vec<Vec<u8>> {
    header
        .split_whitespace()
        .map(|token| token.trim_end_matches(','))
        .filter_map(|token| token.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .collect()
}

fn decode_secret(secret: &str) -> Result<Vec<u8>, SecretError> {
    if secret.starts_with("v1a,") || secret.starts_with("whsk_") || secret.starts_with("whpk_") {
        return Err(SecretError::Asymmetric);
    }
    let secret = secret.strip_prefix("v1,").unwrap_or(secret);
    let secret = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = LENIENT.decode(secret).map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(key)
}

fn mac(key: &[u8], id: &str, ts: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `v1,<base64>` signature of `body` under `secret` (any form `Verifier::new` reads), as a
/// sender writes it. For tests and for checking a set-up by hand.
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> Result<String, SecretError> {
    let key = decode_secret(secret.trim())?;
    Ok(format!("v1,{}", STANDARD.encode(mac(&key, id, ts, body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors published with the specification's reference libraries
    // (libraries/go/webhook_test.go, libraries/python/tests/test_webhooks.py,
    // libraries/rust/src/lib.rs in standard-webhooks/standard-webhooks).
    const GO_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const GO_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const GO_TS: i64 = 1614265330;
    const GO_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const GO_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const RUST_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const RUST_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const RUST_TS: i64 = 1649367553;
    const RUST_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const RUST_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    /// Signatures from the vectors that match nothing.
    const WRONG: [&str; 4] = [
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
        "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
        "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
    ];

    fn verifier(secret: &str) -> Verifier {
        Verifier::new([secret], 300).unwrap()
    }

    fn signed<'a>(id: &'a str, ts: &'a str, signature: &'a str) -> Signed<'a> {
        Signed {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(signature),
        }
    }

    #[test]
    fn signing_reproduces_the_published_vectors() {
        assert_eq!(sign(GO_SECRET, GO_ID, GO_TS, GO_BODY).unwrap(), GO_SIGNATURE);
        assert_eq!(sign(RUST_SECRET, RUST_ID, RUST_TS, RUST_BODY).unwrap(), RUST_SIGNATURE);
    }

    #[test]
    fn the_published_vectors_verify_at_their_own_time() {
        let ts = GO_TS.to_string();
        assert_eq!(verifier(GO_SECRET).verify(signed(GO_ID, &ts, GO_SIGNATURE), GO_BODY, GO_TS), Ok(()));
        let ts = RUST_TS.to_string();
        let v = verifier(RUST_SECRET);
        assert_eq!(v.verify(signed(RUST_ID, &ts, RUST_SIGNATURE), RUST_BODY, RUST_TS), Ok(()));
    }

    #[test]
    fn secrets_are_read_with_or_without_their_prefixes_and_padding() {
        let ts = GO_TS.to_string();
        for secret in [
            "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert_eq!(
                verifier(secret).verify(signed(GO_ID, &ts, GO_SIGNATURE), GO_BODY, GO_TS),
                Ok(()),
                "{secret}"
            );
        }
        // The Python library's unpadded secrets: one and two `=` missing.
        for (unpadded, padded) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr=="),
        ] {
            let sig = sign(padded, GO_ID, GO_TS, GO_BODY).unwrap();
            assert_eq!(verifier(unpadded).verify(signed(GO_ID, &ts, &sig), GO_BODY, GO_TS), Ok(()));
        }
    }

    #[test]
    fn a_wrong_or_partial_signature_is_refused() {
        let ts = GO_TS.to_string();
        let v = verifier(GO_SECRET);
        for bad in WRONG.iter().copied().chain([
            "v1,",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            "v1,g0hM9SsE",
            &GO_SIGNATURE[..8],
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "",
        ]) {
            assert_eq!(
                v.verify(signed(GO_ID, &ts, bad), GO_BODY, GO_TS),
                Err(VerifyError::NoMatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_one_of_several_signatures_may_match_space_or_gotrue_separated() {
        let ts = RUST_TS.to_string();
        let v = verifier(RUST_SECRET);
        let spaced = format!("{} {} {RUST_SIGNATURE} {}", WRONG[1], WRONG[2], WRONG[3]);
        assert_eq!(v.verify(signed(RUST_ID, &ts, &spaced), RUST_BODY, RUST_TS), Ok(()));
        let gotrue = format!("{}, {RUST_SIGNATURE}, {}", WRONG[0], WRONG[3]);
        assert_eq!(v.verify(signed(RUST_ID, &ts, &gotrue), RUST_BODY, RUST_TS), Ok(()));
        let none = format!("{} {} {}", WRONG[1], WRONG[2], WRONG[3]);
        assert_eq!(v.verify(signed(RUST_ID, &ts, &none), RUST_BODY, RUST_TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn any_one_of_several_secrets_may_sign() {
        let ts = GO_TS.to_string();
        let joined = format!("v1,{RUST_SECRET}|v1,{GO_SECRET}");
        let v = Verifier::new([joined.as_str()], 300).unwrap();
        assert_eq!(v.verify(signed(GO_ID, &ts, GO_SIGNATURE), GO_BODY, GO_TS), Ok(()));
        let listed = Verifier::new([RUST_SECRET, GO_SECRET], 300).unwrap();
        assert_eq!(listed.verify(signed(GO_ID, &ts, GO_SIGNATURE), GO_BODY, GO_TS), Ok(()));
    }

    #[test]
    fn timestamps_more_than_the_tolerance_away_are_refused_either_way() {
        let v = verifier(GO_SECRET);
        let at = |now: i64| v.verify(signed(GO_ID, &GO_TS.to_string(), GO_SIGNATURE), GO_BODY, now);
        assert_eq!(at(GO_TS + 300), Ok(()));
        assert_eq!(at(GO_TS - 300), Ok(()));
        assert_eq!(at(GO_TS + 301), Err(VerifyError::TooOld));
        assert_eq!(at(GO_TS - 301), Err(VerifyError::TooNew));
        // The Go library's case: a timestamp from 2000 fails whatever the signature.
        assert_eq!(
            v.verify(signed(GO_ID, "946684800", GO_SIGNATURE), GO_BODY, GO_TS),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            v.verify(signed(GO_ID, "soon", GO_SIGNATURE), GO_BODY, GO_TS),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn the_signature_binds_the_id_the_timestamp_and_the_body() {
        let v = verifier(GO_SECRET);
        let ts = GO_TS.to_string();
        assert_eq!(
            v.verify(signed("msg_other", &ts, GO_SIGNATURE), GO_BODY, GO_TS),
            Err(VerifyError::NoMatch)
        );
        let later = (GO_TS + 1).to_string();
        assert_eq!(
            v.verify(signed(GO_ID, &later, GO_SIGNATURE), GO_BODY, GO_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            v.verify(signed(GO_ID, &ts, GO_SIGNATURE), br#"{"test": 2432232315}"#, GO_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn each_missing_header_is_named() {
        let v = verifier(GO_SECRET);
        let ts = GO_TS.to_string();
        let full = signed(GO_ID, &ts, GO_SIGNATURE);
        let cases = [
            (Signed { id: None, ..full }, "webhook-id"),
            (Signed { timestamp: None, ..full }, "webhook-timestamp"),
            (Signed { signature: None, ..full }, "webhook-signature"),
        ];
        for (headers, name) in cases {
            assert_eq!(v.verify(headers, GO_BODY, GO_TS), Err(VerifyError::MissingHeader(name)));
        }
    }

    #[test]
    fn unusable_secrets_are_refused_at_start() {
        assert_eq!(Verifier::new(["whsec_"], 300).err(), Some(SecretError::Empty));
        assert_eq!(Verifier::new(["v1,whsec_not base64!"], 300).err(), Some(SecretError::NotBase64));
        assert_eq!(Verifier::new(["v1a,whpk_abcd"], 300).err(), Some(SecretError::Asymmetric));
        assert!(!Verifier::new(["", " | "], 300).unwrap().is_configured());
    }
}
