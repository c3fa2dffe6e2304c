//! Transactional and promotional messages (texts and provider templates): measured in SMS parts,
//! admitted by the limits, dispatched by the router, every attempt committed before the answer.
//! No session, no code: that is `otp`.

pub mod segments;

use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::{LimitError, SendContext};
use crate::metrics::Metrics;
use crate::otp::send::attempt_rows;
use crate::phone::Phone;
use crate::providers::{MessageBody, OutboundSms};
use crate::routing::DispatchError;
use crate::service::{Gateway, GatewayError};
use crate::store::{AttemptRow, SendLog};

/// What a message is for. OTPs are their own kind (`otp`); this is every other message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// Order updates, alerts, receipts: what the user asked for.
    #[default]
    Transactional,
    /// Marketing: held to opt-outs and quiet hours where those apply.
    Promotional,
}

impl MessageType {
    /// The `type` of its attempt rows (`sms_messages_log.type`: `transactional` | `promo`).
    pub fn log_type(&self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Promotional => "promo",
        }
    }
}

/// A transactional or promotional text or template message to send.
#[derive(Debug, Clone)]
pub struct MessageRequest {
    pub to: Phone,
    pub body: MessageBody,
    pub kind: MessageType,
    pub user_id: Option<String>,
    pub client: String,
    pub client_ip: Option<IpAddr>,
    /// The request's `Idempotency-Key`, claimed with the admission.
    pub claim: Option<std::sync::Arc<crate::limits::Claim>>,
}

/// A message that went out.
#[derive(Debug, Clone)]
pub struct MessageSent {
    pub message_id: Uuid,
    pub provider: String,
    /// False when the provider timed out after the request was sent (it may still deliver).
    pub confirmed: bool,
    pub response_time_ms: u64,
    /// SMS parts of the text; `None` for a provider template (the provider renders it).
    pub parts: Option<u32>,
}

/// Counts the SMS parts of every attempt a provider accepted.
pub(crate) fn count_parts(metrics: &Metrics, attempts: &[AttemptRow]) {
    for a in attempts.iter().filter(|a| a.outcome == "accepted") {
        if let Some(parts) = a.parts {
            metrics
                .sms_parts
                .with_label_values(&[&a.provider, &a.kind])
                .inc_by(parts.max(0) as u64);
        }
    }
}

impl Gateway {
    /// Sends a text or a template message. A text longer than `[messages] max_segments` parts
    /// is refused before the limits or any provider see it.
    pub async fn send_message(&self, req: MessageRequest) -> Result<MessageSent, GatewayError> {
        if req.kind == MessageType::Promotional {
            self.may_promote(&req.to).await?;
        }
        self.deliver_message(req).await
    }

    /// Refuses a promotional message to a number that opted out of them, or inside its
    /// country's quiet hours (a single send cannot be held, so it is refused with the wait).
    async fn may_promote(&self, to: &Phone) -> Result<(), GatewayError> {
        let now = self.clock.now();
        use crate::campaigns::quiet_hours::{held_until, rule_for};
        if let Some((prefix, rule)) = rule_for(&self.settings.campaigns.quiet_hours, to) {
            if let Some(until) = held_until(now, rule) {
                return Err(GatewayError::Limit(LimitError::Refused {
                    reason: "quiet_hours",
                    retry_after_secs: (until - now).num_seconds().max(1) as u64,
                    message: format!("promotional messages to +{prefix} wait for the end of quiet hours"),
                }));
            }
        }
        let opted_out = self
            .store
            .opted_out(&[to.e164().to_string()], &crate::campaigns::OPT_OUT_SCOPES)
            .await?;
        if !opted_out.is_empty() {
            return Err(GatewayError::OptedOut);
        }
        Ok(())
    }

    /// Sends a message whose opt-outs and quiet hours were already checked (a campaign worker
    /// checks a whole batch at once).
    pub(crate) async fn deliver_message(&self, req: MessageRequest) -> Result<MessageSent, GatewayError> {
        let started = Instant::now();
        let measured = req.body.text().map(segments::measure);
        if let Some(m) = measured {
            let max = self.settings.messages.max_segments;
            if m.parts > max {
                return Err(GatewayError::TooManySegments {
                    parts: m.parts,
                    max,
                    encoding: m.encoding.as_str(),
                });
            }
        }
        let ctx = SendContext {
            phone: &req.to,
            client_ip: req.client_ip,
            user_id: req.user_id.as_deref(),
            client: &req.client,
            is_otp: false,
            claim: req.claim.as_deref(),
        };
        self.limits.admit(&*self.store, &ctx, self.clock.now()).await?;
        let message_id = Uuid::new_v4();
        let sms = OutboundSms {
            id: message_id,
            to: req.to,
            body: req.body,
        };
        let dispatch = self.router.dispatch(&sms, None, self.router.request_deadline()).await;
        let mut attempts = attempt_rows(&sms, req.user_id.as_deref(), None, &dispatch);
        for a in &mut attempts {
            a.kind = req.kind.log_type().to_string();
        }
        let log = SendLog {
            attempts,
            ..SendLog::default()
        };
        let sent = matches!(dispatch.result, Ok(_) | Err(DispatchError::Ambiguous { .. }));
        self.commit(log, sent).await?;
        let response_time_ms = started.elapsed().as_millis() as u64;
        let parts = measured.map(|m| m.parts);
        match dispatch.result {
            Ok(d) => Ok(MessageSent {
                message_id,
                provider: d.provider,
                confirmed: true,
                response_time_ms,
                parts,
            }),
            Err(DispatchError::Ambiguous { provider }) => Ok(MessageSent {
                message_id,
                provider,
                confirmed: false,
                response_time_ms,
                parts,
            }),
            Err(e) if dispatch.attempts.iter().any(|a| a.ambiguous) => Err(GatewayError::MaybeSent(e)),
            Err(e) => Err(e.into()),
        }
    }
}
