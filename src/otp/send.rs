//! Opening a session and sending its code: the spine of `POST /v1/otp/send`.
//! limits admit → the router dispatches → the session, with its provider references, is
//! committed with every attempt → the answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Duration as ChronoDuration;
use uuid::Uuid;

use super::code::{self, Policy};
use crate::limits::{Claim, SendContext};
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
    /// The request's `Idempotency-Key`, claimed with the admission.
    pub claim: Option<Arc<Claim>>,
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
        self.health_tick();
        let started = Instant::now();
        let (phone, preferred) = self.resolve(&req).await?;
        let policy = Policy::for_purpose(&self.settings.otp, &req.purpose);
        let code = code::generate_code(policy.length);
        let session = self.new_session(&req, &phone, &policy, &code);
        let ctx = SendContext {
            phone: &phone,
            client_ip: req.client_ip,
            user_id: req.user_id.as_deref(),
            client: &req.client,
            is_otp: true,
            claim: req.claim.as_deref(),
        };
        // Admitted or not in one round trip; the session is stored with the attempts.
        let resend_after_secs = self.limits.admit(&*self.store, &ctx, session.created_at).await?;
        let sms = OutboundSms {
            id: session.id,
            to: phone,
            body: MessageBody::Otp {
                text: code::render(&self.settings.otp.message, &code, policy.ttl_seconds),
                code,
            },
        };
        let dispatch = self
            .router
            .dispatch(&sms, preferred.as_deref(), self.router.request_deadline())
            .await;
        let judged = Judged::of(&dispatch, self.carried_local_code(&dispatch));
        let log = SendLog {
            attempts: attempt_rows(&sms, req.user_id.as_deref(), Some(session.id), &dispatch),
            opened: Some(session.clone()),
            session: Some(judged.session_update(session.id)),
            events: vec![OtpEvent {
                session_id: session.id,
                user_id: req.user_id.clone(),
                phone: session.phone.clone(),
                event: judged.event_type().into(),
                status: judged.status.into(),
                provider: dispatch.result.as_ref().ok().map(|d| d.provider.clone()),
                response_time_ms: started.elapsed().as_millis() as i32,
                created_at: self.clock.now(),
            }],
        };
        self.commit(log, judged.reached).await?;
        self.metrics.otp_sends.with_label_values(&[judged.status]).inc();
        let sent = |session: Session, provider: Option<String>| OtpSent {
            confirmed: provider.is_some(),
            session,
            provider,
            response_time_ms: started.elapsed().as_millis() as u64,
            resend_after_secs,
        };
        match dispatch.result {
            Ok(d) => Ok(sent(
                Session {
                    provider_refs: judged.refs,
                    ..session
                },
                Some(d.provider),
            )),
            Err(_) if judged.unconfirmed => Ok(sent(session, None)),
            Err(e) if judged.reached => Err(GatewayError::MaybeSent(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// A pending session for `code`, which is kept only as an HMAC bound to the session id.
    fn new_session(&self, req: &OtpRequest, phone: &Phone, policy: &Policy, code: &str) -> Session {
        let id = Uuid::new_v4();
        let now = self.clock.now();
        Session {
            id,
            client: req.client.clone(),
            phone: phone.e164().to_string(),
            user_id: req.user_id.clone(),
            purpose: policy.purpose.clone(),
            code_hmac: self.key.code_hmac(id, code),
            provider_refs: Vec::new(),
            status: SessionStatus::Pending,
            attempts: 0,
            max_attempts: policy.max_attempts,
            created_at: now,
            expires_at: now + ChronoDuration::seconds(policy.ttl_seconds as i64),
            verified_at: None,
            local_code_sent: false,
            verify_lease_until: None,
            verified_by: None,
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
    pub(crate) fn carried_local_code(&self, dispatch: &Dispatch) -> bool {
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
        crate::messages::count_parts(&self.metrics, &log.attempts);
        match self.store.write_log(log.clone()).await {
            Ok(()) => Ok(()),
            Err(e) if sent => {
                self.metrics.attempt_log_write_errors.inc();
                tracing::error!(error = ?e, "committing a sent message's attempts failed; retrying in the background");
                let store = std::sync::Arc::clone(&self.store);
                let errors = self.metrics.attempt_log_write_errors.clone();
                tokio::spawn(async move {
                    let mut wait = std::time::Duration::from_millis(500);
                    for _ in 0..8 {
                        tokio::time::sleep(wait).await;
                        match store.write_log(log.clone()).await {
                            Ok(()) => return,
                            Err(e) => {
                                errors.inc();
                                tracing::warn!(error = ?e, "retrying a sent message's attempt log");
                            }
                        }
                        wait = (wait * 2).min(std::time::Duration::from_secs(30));
                    }
                    tracing::error!("a sent message's attempt log could not be committed");
                });
                Ok(())
            }
            Err(e) => {
                self.metrics.attempt_log_write_errors.inc();
                Err(e.into())
            }
        }
    }
}

/// What a dispatch means for the session it carried.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judged {
    /// Provider-held codes the session now has, each bound by its provider's reference.
    refs: Vec<ProviderRef>,
    /// The provider that took the message and its reference.
    delivered_by: Option<ProviderRef>,
    /// An SMS with smsgate's own code went out, or may have.
    local_code_sent: bool,
    /// Every provider failed, but smsgate's own code may still arrive: the session stays open.
    pub(crate) unconfirmed: bool,
    /// A provider took the request, or may have: the answer must never be a plain failure.
    pub(crate) reached: bool,
    /// `sent`, `unconfirmed` or `failed`.
    pub(crate) status: &'static str,
}

impl Judged {
    pub(crate) fn of(dispatch: &Dispatch, local_code_sent: bool) -> Self {
        let delivered_by = dispatch.result.as_ref().ok().and_then(|d| {
            d.accepted.reference.clone().map(|reference| ProviderRef {
                provider: d.provider.clone(),
                reference,
            })
        });
        // A provider-held code is bound to the reference its provider gave for this session; a
        // provider that timed out gave none, and its code (if it arrives) verifies nothing.
        let held = matches!(&dispatch.result, Ok(d) if d.accepted.provider_verifies);
        let refs = if held {
            delivered_by.clone().into_iter().collect()
        } else {
            Vec::new()
        };
        let unconfirmed = matches!(dispatch.result, Err(DispatchError::AllFailed { .. })) && local_code_sent;
        let status = match (&dispatch.result, unconfirmed) {
            (Ok(_), _) => "sent",
            (Err(_), true) => "unconfirmed",
            (Err(_), false) => "failed",
        };
        Self {
            refs,
            delivered_by,
            local_code_sent,
            unconfirmed,
            reached: dispatch.result.is_ok() || dispatch.attempts.iter().any(|a| a.ambiguous),
            status,
        }
    }

    pub(crate) fn session_update(&self, id: Uuid) -> SessionUpdate {
        SessionUpdate {
            id,
            add_refs: self.refs.clone(),
            delivered_by: self.delivered_by.clone(),
            failed: self.status == "failed",
            local_code_sent: self.local_code_sent,
        }
    }

    /// The `otp_logs` type: `autogen` when a provider holds the code, else `local`.
    pub(crate) fn event_type(&self) -> &'static str {
        if self.refs.is_empty() {
            "local"
        } else {
            "autogen"
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
            // The log names what was sent as the plans do: texts and templates are transactional
            // (a promotional send re-labels its rows).
            kind: match a.kind {
                "otp" => "otp",
                _ => "transactional",
            }
            .to_string(),
            provider: a.provider.clone(),
            outcome: a.outcome.to_string(),
            http_status: a.http_status.map(i32::from),
            error: a.error.clone(),
            provider_ref: a.reference.clone(),
            response_time_ms: a.response_time_ms.min(i32::MAX as u32) as i32,
            ambiguous: a.ambiguous,
            created_at: a.started_at,
            parts: sms.body.text().map(|t| crate::messages::segments::measure(t).parts as i32),
            delivery: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Accepted;
    use crate::routing::{Attempt, Delivered, Outcome};

    fn attempt(provider: &str, outcome: Outcome) -> Attempt {
        Attempt {
            provider: provider.into(),
            kind: "otp",
            outcome,
            http_status: None,
            error: None,
            reference: None,
            response_time_ms: 1,
            ambiguous: outcome == Outcome::Timeout,
            started_at: chrono::Utc::now(),
        }
    }

    fn delivered(provider_verifies: bool) -> Result<Delivered, DispatchError> {
        Ok(Delivered {
            provider: "p".into(),
            accepted: Accepted {
                reference: Some("ref-1".into()),
                provider_verifies,
                http_status: 200,
            },
        })
    }

    fn all_failed() -> Result<Delivered, DispatchError> {
        Err(DispatchError::AllFailed { reasons: Vec::new() })
    }

    #[test]
    fn a_dispatch_is_judged_for_its_session() {
        let held = ProviderRef {
            provider: "p".into(),
            reference: "ref-1".into(),
        };
        // (case, result, attempts, local code sent) → (refs, status, reached)
        let cases = [
            (
                "smsgate's own code accepted",
                delivered(false),
                vec![attempt("p", Outcome::Accepted)],
                true,
                0,
                "sent",
                true,
            ),
            (
                "a provider-held code accepted",
                delivered(true),
                vec![attempt("p", Outcome::Accepted)],
                false,
                1,
                "sent",
                true,
            ),
            (
                "own code timed out, the rest failed: it may arrive",
                all_failed(),
                vec![attempt("a", Outcome::Timeout), attempt("b", Outcome::Unavailable)],
                true,
                0,
                "unconfirmed",
                true,
            ),
            (
                "a provider-held code timed out: nothing can verify, but it may have gone out",
                all_failed(),
                vec![attempt("a", Outcome::Timeout)],
                false,
                0,
                "failed",
                true,
            ),
            (
                "nothing left",
                all_failed(),
                vec![attempt("a", Outcome::Unavailable)],
                false,
                0,
                "failed",
                false,
            ),
        ];
        for (case, result, attempts, local, refs, status, reached) in cases {
            let judged = Judged::of(&Dispatch { result, attempts }, local);
            assert_eq!(
                (judged.refs.len(), judged.status, judged.reached),
                (refs, status, reached),
                "{case}"
            );
            assert_eq!(judged.session_update(Uuid::nil()).failed, status == "failed", "{case}");
            if refs == 1 {
                assert_eq!(judged.refs, vec![held.clone()], "{case}");
                assert_eq!(judged.event_type(), "autogen");
            }
        }
    }
}
