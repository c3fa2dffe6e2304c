//! Transactional and template messages: admitted by the limits, dispatched by the router, every
//! attempt committed before the answer. No session, no code: that is `otp`.

use std::net::IpAddr;
use std::time::Instant;

use uuid::Uuid;

use crate::limits::SendContext;
use crate::otp::send::attempt_rows;
use crate::phone::Phone;
use crate::providers::{MessageBody, OutboundSms};
use crate::routing::DispatchError;
use crate::service::{Gateway, GatewayError};
use crate::store::SendLog;

/// A transactional or template message to send.
#[derive(Debug, Clone)]
pub struct MessageRequest {
    pub to: Phone,
    pub body: MessageBody,
    pub user_id: Option<String>,
    pub client: String,
    pub client_ip: Option<IpAddr>,
}

/// A transactional or template message that went out.
#[derive(Debug, Clone)]
pub struct MessageSent {
    pub message_id: Uuid,
    pub provider: String,
    /// False when the provider timed out after the request was sent (it may still deliver).
    pub confirmed: bool,
    pub response_time_ms: u64,
}

impl Gateway {
    /// Sends a transactional text or a template message.
    pub async fn send_message(&self, req: MessageRequest) -> Result<MessageSent, GatewayError> {
        let started = Instant::now();
        let ctx = SendContext {
            phone: &req.to,
            client_ip: req.client_ip,
            user_id: req.user_id.as_deref(),
            client: &req.client,
            is_otp: false,
        };
        self.limits.admit(&*self.store, &ctx, None, self.clock.now()).await?;
        let message_id = Uuid::new_v4();
        let sms = OutboundSms {
            id: message_id,
            to: req.to,
            body: req.body,
        };
        let dispatch = self.router.dispatch(&sms, None, self.router.request_deadline()).await;
        let log = SendLog {
            attempts: attempt_rows(&sms, req.user_id.as_deref(), None, &dispatch),
            ..SendLog::default()
        };
        let sent = matches!(dispatch.result, Ok(_) | Err(DispatchError::Ambiguous { .. }));
        self.commit(log, sent).await?;
        let response_time_ms = started.elapsed().as_millis() as u64;
        match dispatch.result {
            Ok(d) => Ok(MessageSent {
                message_id,
                provider: d.provider,
                confirmed: true,
                response_time_ms,
            }),
            Err(DispatchError::Ambiguous { provider }) => Ok(MessageSent {
                message_id,
                provider,
                confirmed: false,
                response_time_ms,
            }),
            Err(e) if dispatch.attempts.iter().any(|a| a.ambiguous) => Err(GatewayError::MaybeSent(e)),
            Err(e) => Err(e.into()),
        }
    }
}
