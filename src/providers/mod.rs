//! The provider contract: `trait Provider`, what it is asked to send, and the four classes of
//! failure the router acts on. One file per adapter below; adapters build the provider's request
//! and classify its answer. They never retry, sleep, log to the database or know other providers.

use async_trait::async_trait;

use crate::phone::Phone;

mod build;
mod clients;
pub mod console;
mod error;
pub mod fast2sms;
pub mod http;
pub mod msg91;
pub mod plivo;
pub mod raw;
mod receipt;
#[cfg(test)]
mod spec_checks;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod textlocal;
pub mod twilio;
pub mod two_factor;
pub mod vonage;
mod wire;

pub use build::{build, BuildContext, BuildError, SecretLookup};
pub use clients::{ClientSettings, Clients};
pub use error::ProviderError;
pub use receipt::{ProviderReceipt, ReceiptError, ReceiptRequest, ReceiptSecrets};
pub use wire::{exchange, read_body, retry_after, scalar_text, Body};

/// What one message asks of a provider.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    /// smsgate's id for the message (an OTP session id or a message id).
    pub id: uuid::Uuid,
    pub to: Phone,
    pub body: MessageBody,
}

/// What a message carries. Its `Debug` never shows a code, a text or template values (they may
/// hold a code too), so a stray `?sms` in a log line cannot leak one.
#[derive(Clone)]
pub enum MessageBody {
    /// A one-time code. `code` is the code smsgate made and `text` the rendered message carrying
    /// it; a provider that makes and checks its own code (2Factor AUTOGEN, Twilio Verify) ignores
    /// both and answers with a reference to verify against.
    Otp { code: String, text: String },
    /// A plain transactional text.
    Text { text: String },
    /// A template registered with the provider, filled with `vars` in order (VAR1, VAR2, …).
    Template { name: String, vars: Vec<String> },
}

impl std::fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Otp { .. } => f.write_str("Otp { code: <redacted>, text: <redacted> }"),
            Self::Text { text } => write!(f, "Text {{ text: <{} characters> }}", text.chars().count()),
            Self::Template { name, vars } => write!(f, "Template {{ name: {name:?}, vars: <{} values> }}", vars.len()),
        }
    }
}

impl MessageBody {
    /// `otp`, `text` or `template`: the `kind` label in metrics and attempt rows.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::Otp { .. } => "otp",
            MessageBody::Text { .. } => "text",
            MessageBody::Template { .. } => "template",
        }
    }

    /// The words to send as they are: an OTP's rendered message or a plain text. `None` for a
    /// provider template, which only providers with templates can carry.
    pub fn text(&self) -> Option<&str> {
        match self {
            MessageBody::Otp { text, .. } | MessageBody::Text { text } => Some(text),
            MessageBody::Template { .. } => None,
        }
    }
}

/// A provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message or, when `provider_verifies`, for the verification.
    pub reference: Option<String>,
    /// The provider made the code and checks it: verify with `Provider::verify(reference, code)`.
    pub provider_verifies: bool,
    /// The HTTP status of the provider's answer (0 for providers that are not HTTP).
    pub http_status: u16,
}

impl Accepted {
    /// A message the provider took to deliver; any code in it is smsgate's to check.
    pub fn message(reference: Option<String>, http_status: u16) -> Self {
        Self {
            reference,
            provider_verifies: false,
            http_status,
        }
    }
}

/// How an OTP reaches the user through this provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpSupport {
    /// Cannot send OTPs.
    None,
    /// Sends smsgate's own code as a message; smsgate checks it.
    Local,
    /// Makes its own code and checks it (2Factor AUTOGEN, Twilio Verify).
    ProviderHeld,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub otp: OtpSupport,
    pub text: bool,
    pub template: bool,
    /// Country calling codes served (`"91"`); empty means every country.
    pub countries: Vec<String>,
}

impl Capabilities {
    /// Whether this provider can carry `body` to `to`.
    pub fn can_send(&self, body: &MessageBody, to: &Phone) -> bool {
        let kind_ok = match body {
            MessageBody::Otp { .. } => self.otp != OtpSupport::None,
            MessageBody::Text { .. } => self.text,
            MessageBody::Template { .. } => self.template,
        };
        kind_ok && self.serves_country(to.country_code())
    }

    pub fn serves_country(&self, code: &str) -> bool {
        self.countries.is_empty() || self.countries.iter().any(|c| c == code)
    }
}

/// One SMS provider. Implementations own their `reqwest::Client`, base URL and secrets.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The configured name (`2factor`, `twilio-backup`): the `provider` label.
    fn name(&self) -> &str;
    fn capabilities(&self) -> &Capabilities;
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError>;
    /// Checks `code` against a code this provider made (`Accepted::provider_verifies`).
    /// `Ok(false)` is a wrong or expired code. When a send timed out there is no reference;
    /// `reference` is then the destination in E.164 (`+…`), and an adapter checks the newest
    /// code it holds for that number (2Factor VERIFY3, Twilio Verify by `To`, MSG91 by mobile).
    async fn verify(&self, reference: &str, code: &str) -> Result<bool, ProviderError> {
        let _ = (reference, code);
        Err(ProviderError::misconfigured(None, format!("{} does not hold codes", self.name())))
    }
    /// Reads a delivery receipt pushed to `/v1/webhooks/{name}/status`, after checking it is
    /// authenticated as this provider authenticates its receipts.
    fn receipt(&self, req: &ReceiptRequest<'_>) -> Result<ProviderReceipt, ReceiptError> {
        let _ = req;
        Err(ReceiptError::NotSupported)
    }
}

#[cfg(test)]
mod tests {
    use super::MessageBody;

    #[test]
    fn a_message_body_never_debug_prints_its_code_or_text() {
        let otp = MessageBody::Otp {
            code: "482913".into(),
            text: "Your code is 482913".into(),
        };
        let text = MessageBody::Text {
            text: "code 482913".into(),
        };
        let template = MessageBody::Template {
            name: "otp".into(),
            vars: vec!["482913".into()],
        };
        for body in [otp, text, template] {
            assert!(!format!("{body:?}").contains("482913"), "{body:?}");
        }
    }
}
