//! `smsgate sim` from the outside: each fake's wire format, its provider-held codes, every fault
//! kind, and the control API, through real HTTP.

mod faults;
mod flows;
mod providers;

use serde_json::Value;
use smsgate::sim::{self, SimHandle, SimOptions};

/// The number used throughout: digits as the Indian providers take them.
pub const DIGITS: &str = "919876543210";
pub const E164: &str = "+919876543210";
pub const KEY: &str = "sim-key";

/// A started simulator and a client.
pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
}

/// A provider's answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Reply {
    /// A string field at a JSON pointer (`/messages/0/status`).
    pub fn str(&self, pointer: &str) -> &str {
        self.json
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer} in {}", self.json))
    }
}

impl Sim {
    pub async fn start() -> Self {
        Self::with(SimOptions::default()).await
    }

    pub async fn with(options: SimOptions) -> Self {
        Self {
            handle: sim::start(options).await.expect("simulator starts"),
            http: reqwest::Client::new(),
        }
    }

    /// `provider`'s base URL followed by `path`.
    pub fn url(&self, provider: &str, path: &str) -> String {
        format!("{}{path}", self.handle.url(provider))
    }

    /// Sends a request and reads the answer; panics on transport errors or non-JSON bodies.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the fake answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("HTTP {status} body is not JSON ({e}): {text:?}"));
        Reply { status, headers, json }
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.send(self.http.get(url)).await
    }

    /// Messages the fakes delivered to [`E164`].
    pub fn delivered(&self) -> Vec<sim::SimMessage> {
        self.handle.state().messages(Some(E164))
    }

    /// A successful 2Factor AUTOGEN send: the session id.
    pub async fn two_factor_autogen(&self) -> String {
        let url = self.url("2factor", &format!("/API/V1/{KEY}/SMS/{DIGITS}/AUTOGEN/OTP1"));
        let reply = self.get(&url).await;
        assert_eq!(reply.str("/Status"), "Success", "{:?}", reply.json);
        reply.str("/Details").to_string()
    }

    /// A Twilio Messages send with the simulator's credentials.
    pub fn twilio_send(&self, body: &str) -> reqwest::RequestBuilder {
        self.twilio_send_with(&sim::SimCredentials::default().auth_token, body)
    }

    /// A Twilio Messages send authenticated with `token`.
    pub fn twilio_send_with(&self, token: &str, body: &str) -> reqwest::RequestBuilder {
        let creds = sim::SimCredentials::default();
        let url = self.url("twilio", &format!("/2010-04-01/Accounts/{}/Messages.json", creds.account_sid));
        self.http
            .post(url)
            .basic_auth(&creds.account_sid, Some(token))
            .form(&[("To", E164), ("From", "+15005550006"), ("Body", body)])
    }
}

/// Whether `id` is `prefix` followed by 32 lowercase hex digits.
pub fn is_sid(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Whether `id` is a hyphenated uuid.
pub fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok() && id.len() == 36
}
