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

        // An OTP whose only failure was a timeout after sending may still arrive: keep the
        // session open so that code verifies, and say delivery is unconfirmed.
        let unconfirmed = matches!(dispatch.result, Err(DispatchError::AllFailed { .. })) && dispatch.attempts.iter().any(|a| a.ambiguous);
        let (mut refs, delivered_by) = match &dispatch.result {
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
        // A provider that makes its own codes and timed out may still have delivered one we
        // have no reference for: remember to ask it by number (see `Provider::verify`).
        refs.extend(self.ambiguous_provider_held(&dispatch, &phone));
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
        self.store.write_log(log).await?;
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
            Err(e) => Err(e.into()),
        }
    }

    /// The number to send to and the provider to try first. A step-up send uses the user's
    /// stored phone and their preferred provider unless the request named one.
    async fn resolve(&self, req: &OtpRequest) -> Result<(Phone, Option<String>), GatewayError> {
        match &req.to {
            Recipient::Phone(phone) => Ok((phone.clone(), req.preferred_provider.clone())),
            Recipient::StoredPhoneOf(user) => {
                let contact = self.store.get_contact(user).await?;
                let (stored, preferred) = contact
                    .and_then(|c| Some((c.phone?, c.preferred_provider)))
                    .ok_or_else(|| GatewayError::NoPhone("this user has no stored phone; send `phone`".into()))?;
                let phone = Phone::parse(&stored, &self.settings.otp.default_country)
                    .map_err(|e| GatewayError::Invalid(format!("the stored phone is not usable: {e}")))?;
                Ok((phone, req.preferred_provider.clone().or(preferred)))
            }
        }
    }

    fn ambiguous_provider_held(&self, dispatch: &Dispatch, phone: &Phone) -> Vec<ProviderRef> {
        let registry = self.router.registry();
        dispatch
            .attempts
            .iter()
            .filter(|a| a.ambiguous)
            .filter(|a| {
                registry
                    .slot(&a.provider)
                    .is_some_and(|s| s.provider.capabilities().otp == OtpSupport::ProviderHeld)
            })
            .map(|a| ProviderRef {
                provider: a.provider.clone(),
                reference: phone.e164().to_string(),
            })
            .collect()
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
