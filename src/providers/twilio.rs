//! `twilio` adapter (to be written).

use async_trait::async_trait;

use super::{
    Accepted, BuildContext, BuildError, Capabilities, OutboundSms, Provider, ProviderError,
};

pub struct Twilio {
    name: String,
    capabilities: Capabilities,
}

impl Twilio {
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        Err(ctx.invalid("kind", "is not built yet"))
    }
}

#[async_trait]
impl Provider for Twilio {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, _sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        Err(ProviderError::misconfigured(None, "not built"))
    }
}
