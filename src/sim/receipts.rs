//! Delivery receipts from the fakes: once a fake "delivers" a message it POSTs a receipt in its
//! provider's format, authenticated its provider's way (Twilio `X-Twilio-Signature`, Plivo
//! `X-Plivo-Signature-V3`, Vonage `sig` under [`SIGNATURE_SECRET`]; MSG91 and 2Factor carry the
//! token already in the callback URL), to the callback URL set for that provider.
//!
//! Receipt faults (`ReceiptFault::parse`): `late:MS` (sent after MS milliseconds), `missing`
//! (never sent), `duplicate` (sent twice), `failed` (the provider's failure status).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::names::canonical;
use super::state::SimMessage;
use super::SimCredentials;
use crate::hooks::receipts::{plivo_v3_signature, twilio_signature, vonage_signature};

/// The Vonage signature secret the fake signs receipts with.
pub const SIGNATURE_SECRET: &str = "sim-signature-secret";

/// What happens to a fake's receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptFault {
    Late(Duration),
    Missing,
    Duplicate,
    Failed,
}

impl ReceiptFault {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        Ok(match spec {
            "missing" => Self::Missing,
            "duplicate" => Self::Duplicate,
            "failed" => Self::Failed,
            _ => match spec.strip_prefix("late:").map(str::parse::<u64>) {
                Some(Ok(ms)) => Self::Late(Duration::from_millis(ms)),
                _ => return Err(format!("`{spec}` is not a receipt fault (late:MS, missing, duplicate, failed)")),
            },
        })
    }
}

/// Where each fake sends receipts, and their faults.
#[derive(Default)]
pub struct Receipts {
    inner: Mutex<Plan>,
}

#[derive(Default)]
struct Plan {
    callbacks: HashMap<&'static str, String>,
    faults: HashMap<&'static str, ReceiptFault>,
}

/// One receipt request, ready to send.
struct Outgoing {
    url: String,
    content_type: &'static str,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Receipts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or with `None` stops) the URL `provider`'s receipts are POSTed to.
    pub fn set_callback(&self, provider: &str, url: Option<&str>) {
        let Some(name) = canonical(provider) else { return };
        match url {
            Some(u) => self.lock().callbacks.insert(name, u.to_string()),
            None => self.lock().callbacks.remove(name),
        };
    }

    /// Sets (or clears) the receipt fault of `provider`.
    pub fn set_fault(&self, provider: &str, fault: Option<ReceiptFault>) {
        let Some(name) = canonical(provider) else { return };
        match fault {
            Some(f) => self.lock().faults.insert(name, f),
            None => self.lock().faults.remove(name),
        };
    }

    /// Sends the receipt of `message` in the background, when its provider has a callback.
    pub(crate) fn dispatch(&self, message: &SimMessage, credentials: &SimCredentials) {
        let Some(name) = canonical(&message.provider) else { return };
        let (url, fault) = {
            let plan = self.lock();
            let Some(url) = plan.callbacks.get(name).cloned() else { return };
            (url, plan.faults.get(name).copied())
        };
        let failed = fault == Some(ReceiptFault::Failed);
        let Some(outgoing) = build(name, &url, message, failed, credentials) else {
            return;
        };
        let (delay, times) = match fault {
            Some(ReceiptFault::Missing) => return,
            Some(ReceiptFault::Late(d)) => (d, 1),
            Some(ReceiptFault::Duplicate) => (Duration::ZERO, 2),
            _ => (Duration::ZERO, 1),
        };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let http = reqwest::Client::new();
            for _ in 0..times {
                let mut req = http
                    .post(&outgoing.url)
                    .header("content-type", outgoing.content_type)
                    .body(outgoing.body.clone());
                for (k, v) in &outgoing.headers {
                    req = req.header(*k, v);
                }
                if let Err(e) = req.send().await {
                    tracing::warn!(error = %e, "sim: sending a receipt failed");
                }
            }
        });
    }
}

fn form(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The receipt `provider` would send for `message`, signed its way; `None` for providers whose
/// receipts smsgate does not take.
fn build(provider: &str, url: &str, m: &SimMessage, failed: bool, creds: &SimCredentials) -> Option<Outgoing> {
    let to = m.to.trim_start_matches('+');
    let now = m.at.format("%Y-%m-%d %H:%M:%S").to_string();
    let form_of = |p: Vec<(String, String)>, headers| Outgoing {
        url: url.to_string(),
        content_type: "application/x-www-form-urlencoded",
        body: form(&p),
        headers,
    };
    Some(match provider {
        "twilio" => {
            let (status, code) = if failed { ("failed", "30008") } else { ("delivered", "") };
            let mut p = pairs(&[("MessageSid", &m.id), ("SmsSid", &m.id), ("MessageStatus", status), ("To", &m.to)]);
            p.push(("AccountSid".into(), creds.account_sid.clone()));
            if !code.is_empty() {
                p.push(("ErrorCode".into(), code.into()));
            }
            let sig = twilio_signature(&creds.auth_token, url, &p);
            form_of(p, vec![("x-twilio-signature", sig)])
        }
        "plivo" => {
            let (status, code) = if failed { ("failed", "200") } else { ("delivered", "000") };
            let p = pairs(&[("MessageUUID", &m.id), ("Status", status), ("ErrorCode", code), ("To", to)]);
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            let sig = plivo_v3_signature(&creds.auth_token, url, &p, &nonce);
            form_of(p, vec![("x-plivo-signature-v3", sig), ("x-plivo-signature-v3-nonce", nonce)])
        }
        "vonage" => {
            let (status, code) = if failed { ("failed", "5") } else { ("delivered", "0") };
            let mut p = pairs(&[
                ("messageId", &m.id),
                ("msisdn", to),
                ("status", status),
                ("err-code", code),
                ("message-timestamp", &now),
                ("timestamp", &m.at.timestamp().to_string()),
            ]);
            let sig = vonage_signature(SIGNATURE_SECRET, &p);
            p.push(("sig".into(), sig));
            form_of(p, Vec::new())
        }
        "msg91" => {
            let (status, desc) = if failed { ("2", "FAILED") } else { ("1", "DELIVERED") };
            let body = serde_json::json!([{
                "requestId": m.id,
                "report": [{"date": (m.at + chrono::Duration::minutes(330)).format("%Y-%m-%d %H:%M:%S").to_string(),
                            "number": to, "status": status, "desc": desc}],
            }]);
            Outgoing {
                url: url.to_string(),
                content_type: "application/json",
                body: body.to_string(),
                headers: Vec::new(),
            }
        }
        "2factor" => {
            let (status, id, name) = if failed {
                ("FAILED", "3", "DND_NUMBER")
            } else {
                ("DELIVERED", "0", "NO_ERROR")
            };
            let p = pairs(&[
                ("SessionId", &m.id),
                ("SmsTo", to),
                ("SmsStatus", status),
                ("ErrorId", id),
                ("ErrorName", name),
            ]);
            form_of(p, Vec::new())
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_faults_parse() {
        assert_eq!(ReceiptFault::parse("late:250"), Ok(ReceiptFault::Late(Duration::from_millis(250))));
        assert_eq!(ReceiptFault::parse("missing"), Ok(ReceiptFault::Missing));
        assert_eq!(ReceiptFault::parse("duplicate"), Ok(ReceiptFault::Duplicate));
        assert_eq!(ReceiptFault::parse("failed"), Ok(ReceiptFault::Failed));
        assert!(ReceiptFault::parse("late:soon").is_err());
        assert!(ReceiptFault::parse("500").is_err());
    }
}
