//! The send and verify spine: open a session, dispatch through the router, commit every
//! attempt, and answer. Handlers call this; it decides nothing about HTTP.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use uuid::Uuid;

use crate::config::Settings;
use crate::limits::{LimitError, Limits, SendContext};
use crate::metrics::Metrics;
use crate::otp::{self, OtpKey, Policy};
use crate::phone::Phone;
use crate::providers::{MessageBody, OtpSupport, OutboundSms};
use crate::routing::{Attempt, Dispatch, DispatchError, Router};
use crate::store::{AttemptRow, OtpEvent, ProviderRef, SendLog, Session, SessionStatus, SessionUpdate, Store, StoreError, VerifyClaim};

pub struct Gateway {
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    pub router: Arc<Router>,
    pub settings: Arc<Settings>,
    pub key: OtpKey,
    /// Signs verification tokens (`SMSGATE_TOKEN_SECRET`, shared with the apps that check them).
    pub token_key: OtpKey,
    pub metrics: Metrics,
}

/// An OTP to send.
#[derive(Debug, Clone)]
pub struct OtpRequest {
    pub phone: Phone,
    pub user_id: Option<String>,
    pub purpose: String,
    /// A provider to try first (the user's preferred one).
    pub preferred_provider: Option<String>,
    /// The calling app.
    pub client: String,
    /// The end user's IP, for the per-IP limit.
    pub client_ip: Option<std::net::IpAddr>,
}

/// A transactional or template message to send.
#[derive(Debug, Clone)]
pub struct MessageRequest {
    pub to: Phone,
    pub body: MessageBody,
    pub user_id: Option<String>,
    pub client: String,
    pub client_ip: Option<std::net::IpAddr>,
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

#[derive(Debug, Clone)]
pub struct Verified {
    pub verified: bool,
    pub status: SessionStatus,
    pub attempts_left: u32,
    pub session: Session,
    pub response_time_ms: u64,
    /// A signed, short-lived proof of this verification (on success only).
    pub token: Option<String>,
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

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has expired")]
    Expired,
    #[error("the session is already verified")]
    AlreadyVerified,
    #[error("no verification attempts left")]
    Exhausted,
    #[error("the provider holding the code could not be reached")]
    VerifyUnavailable,
    #[error(transparent)]
    Limit(LimitError),
}

impl From<LimitError> for GatewayError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Store(s) => Self::Store(s),
            other => Self::Limit(other),
        }
    }
}

impl Gateway {
    /// Opens a session and sends its code through the first provider that takes it.
    pub async fn send_otp(&self, req: OtpRequest) -> Result<OtpSent, GatewayError> {
        let started = Instant::now();
        let ctx = SendContext {
            phone: &req.phone,
            client_ip: req.client_ip,
            user_id: req.user_id.as_deref(),
            client: &req.client,
            is_otp: true,
        };
        let policy = Policy::for_purpose(&self.settings.otp, &req.purpose);
        let code = otp::generate_code(policy.length);
        let id = Uuid::new_v4();
        // PostgreSQL keeps microseconds: round here so the answer and the row agree.
        let now = Utc::now().trunc_subsecs(6);
        let session = Session {
            id,
            phone: req.phone.e164().to_string(),
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
        let text = otp::render(&self.settings.otp.message, &code, policy.ttl_seconds);
        let sms = OutboundSms {
            id,
            to: req.phone.clone(),
            body: MessageBody::Otp { code, text },
        };
        let dispatch = self
            .router
            .dispatch(&sms, req.preferred_provider.as_deref(), self.router.request_deadline())
            .await;

        // An OTP whose only failure was a timeout after sending may still arrive: keep the
        // session open so that code verifies, and say delivery is unconfirmed.
        let unconfirmed = matches!(dispatch.result, Err(DispatchError::AllFailed { .. })) && dispatch.attempts.iter().any(|a| a.ambiguous);
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
        // A provider that makes its own codes and timed out may still have delivered one we
        // have no reference for: remember to ask it by number (see `Provider::verify`).
        let mut refs = refs;
        refs.extend(self.ambiguous_provider_held(&dispatch, &req.phone));
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
                created_at: Utc::now(),
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

    /// Checks `code` against every code the session was sent: smsgate's own, then each
    /// provider-held one. A wrong code spends one attempt.
    pub async fn verify_otp(&self, session_id: Uuid, code: &str) -> Result<Verified, GatewayError> {
        let started = Instant::now();
        let session = match self.store.claim_verify(session_id, Utc::now()).await? {
            VerifyClaim::Claimed(s) => s,
            other => {
                let (result, err) = match other {
                    VerifyClaim::NotFound => ("not_found", GatewayError::SessionNotFound),
                    VerifyClaim::Expired => ("expired", GatewayError::Expired),
                    VerifyClaim::AlreadyVerified => ("already_verified", GatewayError::AlreadyVerified),
                    _ => ("exhausted", GatewayError::Exhausted),
                };
                self.metrics.otp_verifications.with_label_values(&[result]).inc();
                return Err(err);
            }
        };
        let mut matched = self.key.code_matches(session.id, code, &session.code_hmac);
        let mut unreachable = false;
        for r in &session.provider_refs {
            if matched {
                break;
            }
            match self.router.verify_with(&r.provider, &r.reference, code).await {
                Ok(ok) => matched = ok,
                Err(e) => {
                    tracing::warn!(provider = %r.provider, error = %e, "provider verification failed");
                    unreachable = true;
                }
            }
        }
        let now = Utc::now();
        let won = self.store.finish_verify(session.id, matched, now).await?;
        if matched && !won {
            self.metrics.otp_verifications.with_label_values(&["already_verified"]).inc();
            return Err(GatewayError::AlreadyVerified);
        }
        let attempts_left = session.max_attempts.saturating_sub(session.attempts);
        let status = if matched {
            SessionStatus::Verified
        } else if attempts_left == 0 {
            SessionStatus::Failed
        } else {
            SessionStatus::Pending
        };
        let result = if matched {
            "verified"
        } else if unreachable {
            "provider_unreachable"
        } else {
            "wrong_code"
        };
        self.metrics.otp_verifications.with_label_values(&[result]).inc();
        let event = OtpEvent {
            session_id: session.id,
            user_id: session.user_id.clone(),
            phone: session.phone.clone(),
            event: "verify".into(),
            status: result.into(),
            provider: None,
            response_time_ms: started.elapsed().as_millis() as i32,
            created_at: now,
        };
        self.store
            .write_log(SendLog {
                events: vec![event],
                ..SendLog::default()
            })
            .await?;
        if !matched && unreachable {
            return Err(GatewayError::VerifyUnavailable);
        }
        let mut session = session;
        session.status = status;
        let token = matched.then(|| {
            let exp = (now + ChronoDuration::seconds(self.settings.otp.token_ttl_seconds as i64)).timestamp();
            let claims = otp::TokenClaims {
                sid: session.id,
                uid: session.user_id.clone(),
                purpose: session.purpose.clone(),
                exp,
            };
            otp::issue_token(&self.token_key, &claims)
        });
        Ok(Verified {
            verified: matched,
            status,
            attempts_left,
            session,
            response_time_ms: started.elapsed().as_millis() as u64,
            token,
        })
    }

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
        self.limits.admit(&*self.store, &ctx, None, Utc::now()).await?;
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
        self.store.write_log(log).await?;
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
            Err(e) => Err(e.into()),
        }
    }
}

impl Gateway {
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

fn attempt_rows(sms: &OutboundSms, user_id: Option<&str>, session_id: Option<Uuid>, dispatch: &Dispatch) -> Vec<AttemptRow> {
    dispatch
        .attempts
        .iter()
        .map(|a: &Attempt| AttemptRow {
            id: Uuid::new_v4(),
            message_id: sms.id,
            session_id,
            user_id: user_id.map(str::to_string),
            to: sms.to.e164().to_string(),
            kind: a.kind.to_string(),
            provider: a.provider.clone(),
            outcome: a.outcome.as_str().to_string(),
            http_status: a.http_status.map(i32::from),
            error: a.error.clone(),
            provider_ref: a.reference.clone(),
            response_time_ms: a.response_time_ms.min(i32::MAX as u32) as i32,
            ambiguous: a.ambiguous,
            created_at: a.started_at,
        })
        .collect()
}
