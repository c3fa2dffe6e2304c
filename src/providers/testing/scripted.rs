//! `Scripted`: an in-process provider that answers from a queue of replies, for the router's
//! unit tests and the benches. It counts its calls, and its capabilities are set per test.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::providers::{Accepted, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError};

/// One scripted answer to a send.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Takes the message; the reference is `<name>-<call number>`.
    Accept,
    Fail(ProviderError),
    /// Waits this long on tokio's clock, then answers as the inner reply.
    Delayed(Duration, Box<Reply>),
    /// Never answers: the caller's timeout decides.
    Silence,
}

impl Reply {
    /// This reply, given after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Reply::Delayed(delay, Box::new(self))
    }
}

/// A provider that answers each send with the next scripted reply, then with `otherwise`
/// (`Accept` unless set) once the script is spent. By default it sends OTPs (smsgate's own code)
/// and texts to every country, and no templates.
pub struct Scripted {
    name: String,
    caps: Capabilities,
    script: Mutex<VecDeque<Reply>>,
    otherwise: Reply,
    calls: AtomicUsize,
}

impl Scripted {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            caps: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: false,
                countries: Vec::new(),
            },
            script: Mutex::new(VecDeque::new()),
            otherwise: Reply::Accept,
            calls: AtomicUsize::new(0),
        }
    }

    /// Queues `reply` after the replies already scripted.
    pub fn then(self, reply: Reply) -> Self {
        self.script.lock().unwrap_or_else(|e| e.into_inner()).push_back(reply);
        self
    }

    /// The reply once the script is spent.
    pub fn otherwise(mut self, reply: Reply) -> Self {
        self.otherwise = reply;
        self
    }

    pub fn otp(mut self, otp: OtpSupport) -> Self {
        self.caps.otp = otp;
        self
    }

    pub fn text(mut self, text: bool) -> Self {
        self.caps.text = text;
        self
    }

    pub fn template(mut self, template: bool) -> Self {
        self.caps.template = template;
        self
    }

    /// Country calling codes served (`"91"`); none means every country.
    pub fn countries(mut self, countries: &[&str]) -> Self {
        self.caps.countries = countries.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Sends made so far, answered or not.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let next = self.script.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let mut reply = next.unwrap_or_else(|| self.otherwise.clone());
        loop {
            match reply {
                Reply::Accept => {
                    let holds_code = self.caps.otp == OtpSupport::ProviderHeld && matches!(sms.body, MessageBody::Otp { .. });
                    return Ok(Accepted {
                        reference: Some(format!("{}-{call}", self.name)),
                        provider_verifies: holds_code,
                        http_status: 200,
                    });
                }
                Reply::Fail(err) => return Err(err),
                Reply::Delayed(delay, then) => {
                    tokio::time::sleep(delay).await;
                    reply = *then;
                }
                Reply::Silence => return std::future::pending().await,
            }
        }
    }
}
