//! `http` adapter (to be written).

use async_trait::async_trait;

use super::{
    Accepted, BuildContext, BuildError, Capabilities, OutboundSms, Provider, ProviderError,
};

pub struct HttpProvider {
    name: String,
    capabilities: Capabilities,
}

impl HttpProvider {
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        Err(ctx.invalid("kind", "is not built yet"))
    }
}

#[async_trait]
impl Provider for HttpProvider {
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

/// Request and answer rules of a generic HTTP provider (placeholder).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HttpSpec {}
