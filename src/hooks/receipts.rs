//! Delivery receipts pushed by providers to `POST /v1/webhooks/{provider}/status`. Each request
//! is authenticated the way its provider signs it (the signature schemes are here; which one a
//! provider uses, and how its body reads, is in its adapter) and refused otherwise, with nothing
//! stored. An authenticated receipt is kept and written onto the attempt carrying its reference.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::providers::{ProviderReceipt, ReceiptError, ReceiptRequest};
use crate::service::{Gateway, GatewayError};
use crate::store::receipts::{DeliveryStatus, Receipt, ReceiptOutcome};

/// The parameters of a form body or a query string, in order, decoded.
pub fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// The first value of `key` among `pairs`.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 under the auth token of the full URL Twilio
/// called, followed by every POST parameter's name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Plivo's `X-Plivo-Signature-V3`: base64 HMAC-SHA256 under the auth token of
/// `scheme://host/path?` + the query sorted (`k=v&…`, then `.` when POST parameters follow) + the
/// POST parameters sorted by name as `namevalue…`, then `.` and `X-Plivo-Signature-V3-Nonce`.
pub fn plivo_v3_signature(auth_token: &str, url: &str, params: &[(String, String)], nonce: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut query = form_pairs(query.as_bytes());
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut signed = base.to_string();
    if !query.is_empty() || !params.is_empty() {
        signed.push('?');
        signed.push_str(&query);
    }
    if !query.is_empty() && !params.is_empty() {
        signed.push('.');
    }
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    for (k, v) in sorted {
        signed.push_str(k);
        signed.push_str(v);
    }
    signed.push('.');
    signed.push_str(nonce);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(signed.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Vonage's signed webhooks (`sig`, signature method "SHA-256 HMAC"): every parameter but `sig`
/// sorted by name, joined as `&name=value` (with `&` and `=` in values replaced by `_`), HMAC-SHA256
/// under the account's signature secret, hex. Vonage sends it upper case; compare ignoring case.
pub fn vonage_signature(secret: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<_> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    for (k, v) in sorted {
        mac.update(format!("&{k}={}", v.replace(['&', '='], "_")).as_bytes());
    }
    hex::encode_upper(mac.finalize().into_bytes())
}

/// Compares two signatures in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether the URL's `token` query parameter is `expected` (for providers that cannot sign their
/// receipts: the receipt URL configured with them carries a shared token). No token configured
/// refuses everything.
pub fn url_token_matches(url: &str, expected: Option<&SecretString>) -> bool {
    let Some(expected) = expected else { return false };
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let pairs = form_pairs(query.as_bytes());
    param(&pairs, "token").is_some_and(|t| same(t, expected.expose_secret()))
}

/// What the webhook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Kept: written onto its attempt, waiting for it, or a duplicate.
    Stored(ReceiptOutcome),
    /// An interim status (queued, sent): acknowledged, nothing kept.
    Interim,
}

impl Gateway {
    /// Authenticates and reads a receipt for the provider configured as `name`, keeps it and
    /// writes it onto its attempt; counts it per provider.
    pub async fn take_receipt(&self, name: &str, req: &ReceiptRequest<'_>) -> Result<Taken, TakeError> {
        let registry = self.router.registry();
        let slot = registry.slot(name).ok_or(TakeError::Receipt(ReceiptError::NotSupported))?;
        let parsed: ProviderReceipt = match slot.provider.receipt(req) {
            Ok(p) => p,
            Err(e) => {
                let outcome = match e {
                    ReceiptError::Unauthenticated => "refused",
                    _ => "invalid",
                };
                self.metrics.receipts.with_label_values(&[name, outcome]).inc();
                return Err(TakeError::Receipt(e));
            }
        };
        let Some(status) = parsed.status else {
            self.metrics.receipts.with_label_values(&[name, "interim"]).inc();
            return Ok(Taken::Interim);
        };
        let received_at = self.clock.now();
        let receipt = Receipt {
            provider: name.to_string(),
            reference: parsed.reference,
            delivery: crate::store::receipts::Delivery {
                status,
                error_code: parsed.error_code,
                at: parsed.at.unwrap_or(received_at),
            },
            received_at,
        };
        let outcome = self.store.record_receipt(&receipt).await.map_err(GatewayError::from)?;
        self.count_receipt(name, &receipt, &outcome, received_at);
        if outcome == ReceiptOutcome::Pending {
            self.rematch_soon(receipt);
        }
        Ok(Taken::Stored(outcome))
    }

    /// A provider may push the receipt while the attempt row is still in the group commit:
    /// both statements then run at once and neither sees the other. Looks again shortly after,
    /// when the row has landed (the periodic matcher covers anything later).
    fn rematch_soon(&self, receipt: Receipt) {
        let store = std::sync::Arc::clone(&self.store);
        let metrics = self.metrics.clone();
        let clock = self.clock.clone();
        let health = std::sync::Arc::clone(self.router.health());
        tokio::spawn(async move {
            for wait_ms in [100, 400, 1_500, 5_000] {
                tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                match store.match_receipt(&receipt.provider, &receipt.reference).await {
                    Ok(Some((sent_at, to))) => {
                        let now = clock.now();
                        let latency = (now - sent_at).num_milliseconds().max(0) as f64 / 1000.0;
                        metrics.receipt_latency.with_label_values(&[&receipt.provider]).observe(latency);
                        if let Some(country) = crate::phone::calling_code_of(&to) {
                            let delivered = receipt.delivery.status == DeliveryStatus::Delivered;
                            health.record_receipt(&receipt.provider, country, delivered, now);
                        }
                        return;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = ?e, "matching a delivery receipt to its attempt failed"),
                }
            }
        });
    }

    fn count_receipt(&self, name: &str, receipt: &Receipt, outcome: &ReceiptOutcome, received_at: DateTime<Utc>) {
        let label = match outcome {
            ReceiptOutcome::Duplicate => "duplicate",
            _ => receipt.delivery.status.as_str(),
        };
        self.metrics.receipts.with_label_values(&[name, label]).inc();
        let count = |s: &str| self.metrics.receipts.with_label_values(&[name, s]).get() as f64;
        let delivered = count("delivered");
        let finals = delivered + count("undelivered") + count("failed");
        if finals > 0.0 {
            self.metrics.delivered_ratio.with_label_values(&[name]).set(delivered / finals);
        }
        if let ReceiptOutcome::Matched { sent_at, to } = outcome {
            let latency = (received_at - *sent_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics.receipt_latency.with_label_values(&[name]).observe(latency);
            // Health weighs what carriers say alongside what users do.
            if let Some(country) = crate::phone::calling_code_of(to) {
                let delivered = receipt.delivery.status == DeliveryStatus::Delivered;
                self.router.health().record_receipt(name, country, delivered, received_at);
            }
        }
    }
}

/// Every ten seconds, writes receipts of the last ten minutes onto attempts that do not show
/// them: a receipt and its attempt row committed at the same instant each miss the other.
pub fn spawn_matcher(store: std::sync::Arc<dyn crate::store::Store>, clock: crate::clock::Clock) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            match store.match_pending_receipts(clock.now() - chrono::Duration::minutes(10)).await {
                Ok(n) if n > 0 => tracing::info!(attempts = n, "matched delivery receipts that raced their attempts"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "matching pending delivery receipts failed"),
            }
        }
    });
}

/// Why a receipt was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn twilio_signature_matches_twilios_documented_example() {
        // twilio.com/docs/usage/security#validating-requests
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(twilio_signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert_ne!(twilio_signature("12346", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        let tampered = pairs(&[("CallSid", "CA1234567890ABCDE"), ("Digits", "1235")]);
        assert_ne!(twilio_signature("12345", url, &tampered), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn plivo_v3_signs_the_sorted_query_the_sorted_body_and_the_nonce() {
        let params = pairs(&[("Status", "delivered"), ("MessageUUID", "m-1")]);
        let url = "https://gw.example/v1/webhooks/plivo/status?b=2&a=1";
        let signed = "https://gw.example/v1/webhooks/plivo/status?a=1&b=2.MessageUUIDm-1Statusdelivered.12345";
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"token").unwrap();
        mac.update(signed.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(plivo_v3_signature("token", url, &params, "12345"), expected);
        assert_ne!(plivo_v3_signature("token", url, &params, "12346"), expected);
    }

    #[test]
    fn vonage_signature_skips_sig_and_replaces_separators_in_values() {
        let a = pairs(&[("messageId", "m1"), ("status", "delivered"), ("sig", "whatever")]);
        let b = pairs(&[("status", "delivered"), ("messageId", "m1")]);
        assert_eq!(vonage_signature("s", &a), vonage_signature("s", &b));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s").unwrap();
        mac.update(b"&messageId=m1&status=a_b_c");
        let expected = hex::encode_upper(mac.finalize().into_bytes());
        assert_eq!(vonage_signature("s", &pairs(&[("status", "a&b=c"), ("messageId", "m1")])), expected);
    }

    #[test]
    fn a_url_token_must_be_configured_and_equal() {
        let token = SecretString::from("t0k");
        assert!(url_token_matches("http://x/v1/webhooks/msg91/status?token=t0k", Some(&token)));
        assert!(!url_token_matches("http://x/v1/webhooks/msg91/status?token=t0K", Some(&token)));
        assert!(!url_token_matches("http://x/v1/webhooks/msg91/status", Some(&token)));
        assert!(!url_token_matches("http://x/v1/webhooks/msg91/status?token=t0k", None));
    }
}
