//! What an adapter is handed to read a delivery receipt, and what it answers. Each adapter that
//! receives receipts checks the request the way its provider authenticates it (with its own
//! credentials, or the secrets of `[receipts]`) and maps the provider's status words.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::store::receipts::DeliveryStatus;

/// Secrets for receipts that a provider's API credentials do not cover (`[receipts]`).
#[derive(Debug, Clone, Default)]
pub struct ReceiptSecrets {
    /// The `token` query parameter of receipt URLs of providers that cannot sign (MSG91,
    /// 2Factor, Textlocal).
    pub url_token: Option<SecretString>,
    /// Vonage's signature secret (signed webhooks, "SHA-256 HMAC").
    pub vonage_signature_secret: Option<SecretString>,
}

/// A receipt request as it reached the webhook.
pub struct ReceiptRequest<'a> {
    /// The URL the provider called, as it signs it: scheme, host, path and query.
    pub url: &'a str,
    /// `Content-Type` without parameters, lower case.
    pub content_type: &'a str,
    pub body: &'a [u8],
    /// Headers by lower-case name.
    pub headers: &'a [(String, String)],
    pub secrets: &'a ReceiptSecrets,
}

impl ReceiptRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body's form parameters, or the query's when the body is empty (providers that GET).
    pub fn form(&self) -> Vec<(String, String)> {
        if self.body.is_empty() {
            let query = self.url.split_once('?').map_or("", |(_, q)| q);
            crate::hooks::receipts::form_pairs(query.as_bytes())
        } else {
            crate::hooks::receipts::form_pairs(self.body)
        }
    }
}

/// A receipt an adapter read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReceipt {
    /// The provider's id of the message, as its send answered it.
    pub reference: String,
    /// `None`: an interim status (queued, sent, buffered) that says nothing final yet.
    pub status: Option<DeliveryStatus>,
    pub error_code: Option<String>,
    /// When the provider says the status happened, when it says.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("this provider does not push delivery receipts here")]
    NotSupported,
    #[error("the receipt is not signed or authenticated as the provider does")]
    Unauthenticated,
    #[error("{0}")]
    Malformed(String),
}
