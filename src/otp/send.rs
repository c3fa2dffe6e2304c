//! Opening a session and sending its code: the spine of `POST /v1/otp/send`.
//! limits admit (and store the session) → the router dispatches → every attempt is committed
//! with the session's provider references → the answer.

use std::net::IpAddr;
use std::time::Instant;

use chrono::Duration as ChronoDuration;
use uuid::Uuid;

use super::code::{self, Policy};
use crate::limits::SendContext;
use crate::phone::Phone;
use crate::providers::{MessageBody, OtpSupport, OutboundSms};
use crate::routing::{Dispatch, DispatchError};
use crate::service::{Gateway, GatewayError};
use crate::store::{AttemptRow, OtpEvent, ProviderRef, SendLog, Session, SessionStatus, SessionUpdate};

/// Where an OTP goes: a number the app gave, or the stored phone of its user (step-up).
#[derive(Debug, Clone)]
pub enum Recipient {
    Phone(Phone),
    /// The user's stored phone, with their preferred provider first.
    StoredPhoneOf(String),
}

/// An OTP to send.
#[derive(Debug, Clone)]
pub struct OtpRequest {
    pub to: Recipient,
    pub user_id: Option<String>,
    pub purpose: String,
    /// A provider to try first.
    pub preferred_provider: Option<String>,
    /// The calling app.
    pub client: String,
    /// The end user's IP, for the per-IP limit.
    pub client_ip: Option<IpAddr>,
}

/// A session whose code went out (or may have: `confirmed` false after an unanswered timeout).
#[derive(Debug, Clone)]
pub struct OtpSent {
    pub session: Session,
    pub provider: Option<String>,
    pub confirmed: bool,
    pub response_time_ms: u64,
    /// Seconds until another OTP may be sent to this phone.
    pub resend_after_secs: Option<u64>,
}

impl Gateway {
    /// Opens a session and sends its code through the first provider that takes it.
    pub async fn send_otp(&self, req: OtpRequest) -> Result<OtpSent, GatewayError> {
        let started = Instant::now();
        let (phone, preferred) = self.resolve(&req).await?;
        let ctx = SendContext {
            phone: &phone,
            client_ip: req.client_ip,
            user_id: req.user_id.as_deref(),
            client: &req.client,
            is_otp: true,
        };
        let policy = Policy::for_purpose(&self.settings.otp, &req.purpose);
        let code = code::generate_code(policy.length);
        let id = Uuid::new_v4();
        let now = self.clock.now();
        let session = Session {
            id,
            client: req.client.clone(),
            phone: phone.e164().to_string(),
            user_id: req.user_id.clone(),
            purpose: policy.purpose.clone(),
            code_hmac: self.key.code_hmac(id, &code),
            provider_refs: Vec::new(),
            status: SessionStatus::Pending,
            attempts: 0,
            max_attempts: policy.max_attempts,
            created_at: now,
            expires_at: now + ChronoDuration::seconds(policy.ttl_seconds as i64),
            verified_at: None,
            local_code_sent: false,
            verify_lease_until: None,
        };
        let resend_after_secs = self.limits.admit(&*self.store, &ctx, Some(&session), now).await?;
        let text = code::render(&self.settings.otp.message, &code, policy.ttl_seconds);
        let sms = OutboundSms {
            id,
            to: phone.clone(),
            body: MessageBody::Otp { code, text },
        };
        let dispatch = self
            .router
            .dispatch(&sms, preferred.as_deref(), self.router.request_deadline())
            .await;

        let (refs, delivered_by) = match &dispatch.result {
            Ok(d) => {
                let r = d.accepted.reference.clone().map(|reference| ProviderRef {
                    provider: d.provider.clone(),
                    reference,
                });
                let held = if d.accepted.provider_verifies {
                    r.clone().into_iter().collect()
                } else {
                    Vec::new()
                };
                (held, r)
            }
            Err(_) => (Vec::new(), None),
        };
        // A provider-held code is bound to the reference its provider gave for this session;
        // a provider that timed out gave none, and its code (if it arrives) verifies nothing,
        // so an OTP timeout fails over to the next provider instead.
        let local_code_sent = self.carried_local_code(&dispatch);
        // An OTP whose only failure was a timeout after sending its local code may still
        // arrive: keep the session open so that code verifies, and say delivery is unconfirmed.
        let unconfirmed = matches!(dispatch.result, Err(DispatchError::AllFailed { .. })) && local_code_sent;
        let reached = dispatch.result.is_ok() || dispatch.attempts.iter().any(|a| a.ambiguous);
        let failed = dispatch.result.is_err() && !unconfirmed;

        let event_type = if refs.is_empty() { "local" } else { "autogen" };
        let status = if dispatch.result.is_ok() {
            "sent"
        } else if unconfirmed {
            "unconfirmed"
        } else {
            "failed"
        };
        let log = SendLog {
            attempts: attempt_rows(&sms, req.user_id.as_deref(), Some(id), &dispatch),
            session: Some(SessionUpdate {
                id,
                add_refs: refs.clone(),
                delivered_by,
                failed,
                local_code_sent,
            }),
            events: vec![OtpEvent {
                session_id: id,
                user_id: req.user_id.clone(),
                phone: session.phone.clone(),
                event: event_type.into(),
                status: status.into(),
                provider: dispatch.result.as_ref().ok().map(|d| d.provider.clone()),
                response_time_ms: started.elapsed().as_millis() as i32,
                created_at: self.clock.now(),
            }],
        };
        self.commit(log, reached).await?;
        self.metrics.otp_sends.with_label_values(&[status]).inc();
        let response_time_ms = started.elapsed().as_millis() as u64;
        match dispatch.result {
            Ok(d) => {
                let mut session = session;
                session.provider_refs = refs;
                Ok(OtpSent {
                    session,
                    provider: Some(d.provider),
                    confirmed: true,
                    response_time_ms,
                    resend_after_secs,
                })
            }
            Err(_) if unconfirmed => Ok(OtpSent {
                session,
                provider: None,
                confirmed: false,
                response_time_ms,
                resend_after_secs,
            }),
            Err(e) if reached => Err(GatewayError::MaybeSent(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// The number to send to and the provider to try first. A step-up send uses the user's
    /// stored phone and their preferred provider unless the request named one.
    async fn resolve(&self, req: &OtpRequest) -> Result<(Phone, Option<String>), GatewayError> {
        match &req.to {
            Recipient::Phone(phone) => Ok((phone.clone(), req.preferred_provider.clone())),
            Recipient::StoredPhoneOf(user) => {
                let contact = self.store.get_contact(&req.client, user).await?;
                let (stored, preferred) = contact
                    .and_then(|c| Some((c.phone?, c.preferred_provider)))
                    .ok_or_else(|| GatewayError::NoPhone("this user has no stored phone; send `phone`".into()))?;
                let phone = Phone::parse(&stored, &self.settings.otp.default_country)
                    .map_err(|e| GatewayError::Invalid(format!("the stored phone is not usable: {e}")))?;
                Ok((phone, req.preferred_provider.clone().or(preferred)))
            }
        }
    }

    /// Whether an SMS carrying smsgate's own code went out, or may have (a timeout).
    fn carried_local_code(&self, dispatch: &Dispatch) -> bool {
        let registry = self.router.registry();
        let local = |provider: &str| {
            registry
                .slot(provider)
                .is_some_and(|s| s.provider.capabilities().otp != OtpSupport::ProviderHeld)
        };
        let accepted = matches!(&dispatch.result, Ok(d) if !d.accepted.provider_verifies);
        accepted || dispatch.attempts.iter().any(|a| a.ambiguous && local(&a.provider))
    }

    /// Commits a send's log. Once an SMS went out (`sent`), the answer must say so whatever
    /// happens to the log: a failed write is retried in the background, never answered 500.
    pub(crate) async fn commit(&self, log: SendLog, sent: bool) -> Result<(), GatewayError> {
        match self.store.write_log(log.clone()).await {
            Ok(()) => Ok(()),
            Err(e) if sent => {
                tracing::error!(error = ?e, "committing a sent message's attempts failed; retrying in the background");
                let store = std::sync::Arc::clone(&self.store);
                tokio::spawn(async move {
                    let mut wait = std::time::Duration::from_millis(500);
                    for _ in 0..8 {
                        tokio::time::sleep(wait).await;
                        match store.write_log(log.clone()).await {
                            Ok(()) => return,
                            Err(e) => tracing::warn!(error = ?e, "retrying a sent message's attempt log"),
                        }
                        wait = (wait * 2).min(std::time::Duration::from_secs(30));
                    }
                    tracing::error!("a sent message's attempt log could not be committed");
                });
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The rows of `sms_messages_log` for every attempt of one dispatch.
pub(crate) fn attempt_rows(sms: &OutboundSms, user_id: Option<&str>, session_id: Option<Uuid>, dispatch: &Dispatch) -> Vec<AttemptRow> {
    dispatch
        .attempts
        .iter()
        .map(|a| AttemptRow {
            id: Uuid::new_v4(),
            message_id: sms.id,
            session_id,
            user_id: user_id.map(str::to_string),
            to: sms.to.e164().to_string(),
            kind: a.kind.to_string(),
            provider: a.provider.clone(),
            outcome: a.outcome.to_string(),
            http_status: a.http_status.map(i32::from),
            error: a.error.clone(),
            provider_ref: a.reference.clone(),
            response_time_ms: a.response_time_ms.min(i32::MAX as u32) as i32,
            ambiguous: a.ambiguous,
            created_at: a.started_at,
        })
        .collect()
}
