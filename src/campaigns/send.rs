//! The one place a campaign message leaves: through the gateway's text/template send path
//! (limits, segment count, routing, failover, the attempt log), so a campaign never bypasses
//! what a single send goes through, and its attempts are logged with the campaign's type.

use chrono::Duration;

use crate::limits::LimitError;
use crate::messages::{MessageRequest, MessageType};
use crate::phone::Phone;
use crate::providers::MessageBody;
use crate::routing::DispatchError;
use crate::service::{Gateway, GatewayError};
use crate::store::campaigns::{Campaign, CampaignContent, CampaignKind, Claimed, Settle};

/// The message `claimed` gets: the campaign's text, or its template with the campaign's values
/// followed by the recipient's own.
pub fn body_for(campaign: &Campaign, claimed: &Claimed) -> MessageBody {
    match &campaign.content {
        CampaignContent::Text { text } => MessageBody::Text { text: text.clone() },
        CampaignContent::Template { template, vars } => MessageBody::Template {
            name: template.clone(),
            vars: vars.iter().chain(&claimed.vars).cloned().collect(),
        },
    }
}

/// Sends one claimed message (already marked `sending`) and says how to leave it.
pub async fn send_one(gateway: &Gateway, campaign: &Campaign, claimed: &Claimed, to: Phone) -> Settle {
    let request = MessageRequest {
        to,
        body: body_for(campaign, claimed),
        kind: match campaign.kind {
            CampaignKind::Transactional => MessageType::Transactional,
            CampaignKind::Promotional => MessageType::Promotional,
        },
        user_id: None,
        client: campaign.client.clone(),
        client_ip: None,
        claim: None,
    };
    match gateway.deliver_message(request).await {
        Ok(sent) if sent.confirmed => Settle::Sent {
            message_id: sent.message_id,
            provider: sent.provider,
        },
        Ok(sent) => Settle::Ambiguous {
            message_id: Some(sent.message_id),
            error: format!("{} did not confirm; it may still deliver", sent.provider),
        },
        // Refused before any provider was called: nothing went out, so it may wait and go later.
        Err(GatewayError::Limit(LimitError::Refused { retry_after_secs, .. })) => Settle::Requeue {
            not_before: gateway.clock().now() + Duration::seconds(retry_after_secs.max(1) as i64),
            held: false,
        },
        Err(GatewayError::Limit(LimitError::Store(e))) => {
            tracing::warn!(error = ?e, "campaign message not admitted: the store failed; it waits and goes later");
            Settle::Requeue {
                not_before: gateway.clock().now() + Duration::seconds(5),
                held: false,
            }
        }
        Err(e @ (GatewayError::MaybeSent(_) | GatewayError::Dispatch(DispatchError::Ambiguous { .. }))) => Settle::Ambiguous {
            message_id: None,
            error: e.to_string(),
        },
        // The attempt log may not have committed after a provider took the message.
        Err(e @ GatewayError::Store(_)) => Settle::Ambiguous {
            message_id: None,
            error: e.to_string(),
        },
        Err(e) => Settle::Failed {
            message_id: None,
            error: crate::phone::mask_numbers_in(&e.to_string()),
        },
    }
}
