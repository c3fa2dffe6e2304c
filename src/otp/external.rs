//! Delivering what an auth server made (Supabase Auth's code, Kratos' or Keycloak's whole text):
//! the same spine as `send_otp` without a session, since the auth server keeps and checks the
//! code. Limits admit as for an OTP (per phone, per IP, per user, resend cooldown) → the router
//! dispatches with failover → every attempt is committed through `Gateway::commit`. The code and
//! the text are never stored or logged: attempt rows hold who, which provider and the outcome.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::code;
use super::send::attempt_rows;
use crate::limits::SendContext;
use crate::phone::Phone;
use crate::providers::{MessageBody, OutboundSms};
use crate::routing::{Dispatch, DispatchError};
use crate::service::{Gateway, GatewayError};
use crate::store::SendLog;

/// Who asks and for whom, as far as limits and the attempt log care.
#[derive(Debug, Clone)]
pub struct ExternalSender {
    /// The hook's calling-app name (`hook:supabase`).
    pub client: String,
    /// The auth server's user id, when it gave one.
    pub user_id: Option<String>,
    /// The end user's IP, when the auth server gave it.
    pub client_ip: Option<IpAddr>,
    /// Time the providers get; the request deadline when longer.
    pub within: Option<Duration>,
    /// The hook's dedupe key, claimed with the admission.
    pub claim: Option<std::sync::Arc<crate::limits::Claim>>,
}

/// A message that went out, or may have (`confirmed` false after an unanswered timeout).
#[derive(Debug, Clone)]
pub struct ExternalSent {
    pub message_id: Uuid,
    pub provider: String,
    pub confirmed: bool,
}

impl Gateway {
    /// Delivers a code made and checked elsewhere, rendered into `otp.message` (`{minutes}`
    /// from `code_ttl_secs`). Only providers that carry the code they are given are tried.
    pub async fn deliver_code(
        &self,
        to: Phone,
        code: String,
        code_ttl_secs: u64,
        sender: ExternalSender,
    ) -> Result<ExternalSent, GatewayError> {
        let text = code::render(&self.settings.otp.message, &code, code_ttl_secs);
        self.deliver(to, MessageBody::Otp { code, text }, sender).await
    }

    /// Delivers a text written elsewhere (it carries the auth server's code) as it is: the auth
    /// server owns the words, so only providers that send plain text carry it. It is limited as
    /// an OTP is, since it is one.
    pub async fn deliver_text(&self, to: Phone, text: String, sender: ExternalSender) -> Result<ExternalSent, GatewayError> {
        self.deliver(to, MessageBody::Text { text }, sender).await
    }

    async fn deliver(&self, to: Phone, body: MessageBody, sender: ExternalSender) -> Result<ExternalSent, GatewayError> {
        let started = Instant::now();
        let ctx = SendContext {
            phone: &to,
            client_ip: sender.client_ip,
            user_id: sender.user_id.as_deref(),
            client: &sender.client,
            is_otp: true,
            claim: sender.claim.as_deref(),
        };
        self.limits.admit(&*self.store, &ctx, self.clock.now()).await?;
        let message_id = Uuid::new_v4();
        let sms = OutboundSms { id: message_id, to, body };
        let deadline = match sender.within {
            Some(within) => self.router.deadline_within(within),
            None => self.router.request_deadline(),
        };
        let dispatch = match sms.body {
            MessageBody::Otp { .. } => self.router.dispatch_given_code(&sms, deadline).await,
            _ => self.router.dispatch(&sms, None, deadline).await,
        };
        let log = SendLog {
            attempts: attempt_rows(&sms, sender.user_id.as_deref(), None, &dispatch),
            ..SendLog::default()
        };
        let reached = dispatch.result.is_ok() || dispatch.attempts.iter().any(|a| a.ambiguous);
        self.commit(log, reached).await?;
        let status = outcome(&dispatch);
        self.metrics.otp_sends.with_label_values(&[status]).inc();
        tracing::info!(
            client = %sender.client,
            to = %sms.to.masked(),
            kind = sms.body.kind(),
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "delivered an auth server's message"
        );
        match dispatch.result {
            Ok(d) => Ok(ExternalSent {
                message_id,
                provider: d.provider,
                confirmed: true,
            }),
            Err(DispatchError::Ambiguous { provider }) => Ok(ExternalSent {
                message_id,
                provider,
                confirmed: false,
            }),
            Err(e) if reached => Err(GatewayError::MaybeSent(e)),
            Err(e) => Err(e.into()),
        }
    }
}

fn outcome(dispatch: &Dispatch) -> &'static str {
    match &dispatch.result {
        Ok(_) => "sent",
        Err(DispatchError::Ambiguous { .. }) => "unconfirmed",
        Err(_) if dispatch.attempts.iter().any(|a| a.ambiguous) => "unconfirmed",
        Err(_) => "failed",
    }
}
