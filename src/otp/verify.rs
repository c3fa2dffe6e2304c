//! Verifying a code: the session is claimed (one attempt counted, atomically), the code is
//! checked against every code the session was sent (smsgate's own in constant time, then each
//! provider-held one through its provider), the result is recorded, and a success is vouched for
//! with a verification token.

use std::time::Instant;

use chrono::Duration as ChronoDuration;
use uuid::Uuid;

use super::token::{issue_token, TokenClaims};
use crate::service::{Gateway, GatewayError};
use crate::store::{OtpEvent, SendLog, Session, SessionStatus, VerifyClaim};

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

impl Gateway {
    /// Checks `code` against every code the session was sent: smsgate's own, then each
    /// provider-held one. A wrong code spends one attempt.
    pub async fn verify_otp(&self, session_id: Uuid, code: &str) -> Result<Verified, GatewayError> {
        let started = Instant::now();
        let session = match self.store.claim_verify(session_id, self.clock.now()).await? {
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
        let now = self.clock.now();
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
            let claims = TokenClaims {
                sid: session.id,
                uid: session.user_id.clone(),
                purpose: session.purpose.clone(),
                exp,
            };
            issue_token(&self.token_key, &claims)
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

    /// A session as its owner sees it: a pending session past its expiry reads as expired.
    pub async fn session(&self, id: Uuid) -> Result<Session, GatewayError> {
        let mut session = self.store.get_session(id).await?.ok_or(GatewayError::SessionNotFound)?;
        if session.status == SessionStatus::Pending && session.expires_at <= self.clock.now() {
            session.status = SessionStatus::Expired;
        }
        Ok(session)
    }
}
