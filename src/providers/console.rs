//! `console`: a development provider that writes each message to the log instead of sending it.
//! It is what `serve` falls back to when no real provider has credentials.

use async_trait::async_trait;

use super::{Accepted, BuildContext, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError};
use crate::config::ConsoleConfig;

pub struct Console {
    name: String,
    capabilities: Capabilities,
}

impl Console {
    pub fn build(_config: &ConsoleConfig, ctx: &BuildContext<'_>) -> Self {
        Self::new(ctx.common.name, ctx.common.countries.to_vec())
    }

    pub fn new(name: &str, countries: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            capabilities: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: true,
                countries,
            },
        }
    }
}

#[async_trait]
impl Provider for Console {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        // Printing the whole number and code is this provider's purpose. Configuration refuses a
        // `console` entry when `database_url` is set, and `routing::Registry::build` falls back
        // to it only when no provider has credentials and there is no database.
        match &sms.body {
            MessageBody::Otp { text, .. } | MessageBody::Text { text } => {
                tracing::warn!(target: "smsgate::console", to = %sms.to, id = %sms.id, "console SMS: {text}");
            }
            MessageBody::Template { name, vars } => {
                tracing::warn!(target: "smsgate::console", to = %sms.to, id = %sms.id, template = %name, ?vars, "console SMS (template)");
            }
        }
        Ok(Accepted::message(Some(sms.id.to_string()), 0))
    }
}
