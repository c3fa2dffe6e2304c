//! Verifying a code. Every check of one session is serialised under the session's lock, so
//! verification is linearisable: of concurrent right codes exactly one wins, and a right code
//! inside the attempt cap is never lost to a concurrent wrong one. A session accepts smsgate's
//! own code only when an SMS carried it, and each provider-held code only through the provider
//! that sent it for this session; a check that asks a provider holds the session (a lease) so
//! concurrent checks wait for its answer instead of spending the code twice. A provider that
//! cannot be reached spends no attempt. Wrong codes count against the phone's and the user's
//! daily cap of failed verifications.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use uuid::Uuid;

use super::token::{issue_token, TokenClaims};
use crate::service::{Gateway, GatewayError, Tenant};
use crate::store::{OtpEvent, ProviderRef, SendLog, Session, SessionStatus};

/// A check waiting for another one's provider answer looks again after this, doubling.
const BUSY_POLL_FIRST: Duration = Duration::from_millis(20);
const BUSY_POLL_MAX: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Verified {
    pub verified: bool,
    pub status: SessionStatus,
    pub attempts_left: u32,
    pub session: Session,
    pub response_time_ms: u64,
    /// A signed, short-lived proof of this verification (on success only).
    pub token: Option<String>,
    /// The provider whose SMS carried the code that verified, when known (a resent SMS's code,
    /// a provider-held code); `None` for the session's first code.
    pub via: Option<String>,
}

/// Where a check stands after looking at the session under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Expired,
    AlreadyVerified,
    Exhausted,
    /// Another check of this session is waiting for a provider.
    Busy,
    /// Decided here: the local code matched, or there was nothing else to ask.
    Decided {
        verified: bool,
    },
    /// The session is leased to this check: ask the providers that hold its codes.
    AskProviders,
}

/// The first look at a pending session, under its lock. `local_matches`: the code is
/// smsgate's own code for this session; `resent_by`: it is the code of an SMS this provider
/// resent.
fn begin(s: &mut Session, local_matches: bool, resent_by: Option<&str>, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> (Step, bool) {
    match s.status {
        SessionStatus::Verified => return (Step::AlreadyVerified, false),
        SessionStatus::Expired => return (Step::Expired, false),
        SessionStatus::Failed => return (Step::Exhausted, false),
        SessionStatus::Pending => {}
    }
    if s.expires_at <= now {
        s.status = SessionStatus::Expired;
        return (Step::Expired, true);
    }
    if s.attempts >= s.max_attempts {
        s.status = SessionStatus::Failed;
        return (Step::Exhausted, true);
    }
    if s.verify_lease_until.is_some_and(|until| until > now) {
        return (Step::Busy, false);
    }
    if (s.local_code_sent && local_matches) || resent_by.is_some() {
        settle(s, Some(true), now, resent_by);
        return (Step::Decided { verified: true }, true);
    }
    if !s.provider_refs.is_empty() {
        s.verify_lease_until = Some(lease_until);
        return (Step::AskProviders, true);
    }
    settle(s, Some(false), now, None);
    (Step::Decided { verified: false }, true)
}

/// Records a check's result: `Some(true)` verified, `Some(false)` a wrong code (one attempt
/// spent; the last one fails the session), `None` nobody could tell (nothing spent).
/// Returns false when the session was no longer pending (another check ended it). `via`: the
/// provider whose SMS carried the code, when it was not the session's first code.
fn settle(s: &mut Session, result: Option<bool>, now: DateTime<Utc>, via: Option<&str>) -> bool {
    s.verify_lease_until = None;
    if s.status != SessionStatus::Pending {
        return false;
    }
    match result {
        Some(true) => {
            s.attempts += 1;
            s.status = SessionStatus::Verified;
            s.verified_at = Some(now);
            s.verified_by = via.map(str::to_string);
        }
        Some(false) => {
            s.attempts += 1;
            if s.attempts >= s.max_attempts {
                s.status = SessionStatus::Failed;
            }
        }
        None => {}
    }
    true
}

impl Gateway {
    /// Checks `code` against every code the session was sent. A wrong code spends one attempt.
    pub async fn verify_otp(&self, tenant: &Tenant, session_id: Uuid, code: &str) -> Result<Verified, GatewayError> {
        let started = Instant::now();
        let result = self.check(tenant, session_id, code).await;
        let label = match &result {
            Ok((v, _)) if v.verified => "verified",
            Ok(_) => "wrong_code",
            Err(GatewayError::SessionNotFound) => "not_found",
            Err(GatewayError::Expired) => "expired",
            Err(GatewayError::AlreadyVerified) => "already_verified",
            Err(GatewayError::Exhausted) => "exhausted",
            Err(GatewayError::VerifyUnavailable) => "provider_unreachable",
            Err(GatewayError::Limit(_)) => "limited",
            Err(_) => "error",
        };
        self.metrics.otp_verifications.with_label_values(&[label]).inc();
        let (mut verified, session) = result?;
        let event = OtpEvent {
            session_id: session.id,
            user_id: session.user_id.clone(),
            phone: session.phone.clone(),
            event: "verify".into(),
            status: label.into(),
            provider: verified.via.clone().filter(|_| verified.verified),
            response_time_ms: started.elapsed().as_millis() as i32,
            created_at: self.clock.now(),
        };
        self.store
            .write_log(SendLog {
                events: vec![event],
                ..SendLog::default()
            })
            .await?;
        verified.response_time_ms = started.elapsed().as_millis() as u64;
        Ok(verified)
    }

    /// The check itself; also returns the session as it was first read, for the event log.
    async fn check(&self, tenant: &Tenant, id: Uuid, code: &str) -> Result<(Verified, Session), GatewayError> {
        let session = self.owned_session(tenant, id).await?;
        let failures = self.limits.verify_failure_quotas(&session);
        self.limits.check_verify_failures(&*self.store, &failures, self.clock.now()).await?;
        let (step, after, via) = self.decide(&session, code).await?;
        if step == (Step::Decided { verified: false }) {
            self.limits.count_verify_failure(&*self.store, &failures, self.clock.now()).await?;
        }
        match step {
            Step::Decided { verified } => {
                let token = verified.then(|| self.token_for(&after));
                let attempts_left = after.max_attempts.saturating_sub(after.attempts);
                let verified = Verified {
                    verified,
                    status: after.status,
                    attempts_left,
                    session: after,
                    response_time_ms: 0,
                    token,
                    via,
                };
                Ok((verified, session))
            }
            Step::Expired => Err(GatewayError::Expired),
            Step::AlreadyVerified => Err(GatewayError::AlreadyVerified),
            Step::Exhausted => Err(GatewayError::Exhausted),
            Step::Busy => Err(GatewayError::VerifyInProgress),
            Step::AskProviders => Err(GatewayError::VerifyUnavailable),
        }
    }

    /// Runs the session's state machine to a decision: `Decided`, or why there is none
    /// (`AskProviders` here means a provider could not be reached).
    async fn decide(&self, session: &Session, code: &str) -> Result<(Step, Session, Option<String>), GatewayError> {
        let local_matches = self.key.code_matches(session.id, code, &session.code_hmac);
        // Only a code that is not the first one is looked for among the resent SMS.
        let resent_by = if local_matches && session.local_code_sent {
            None
        } else {
            self.resend_code_of(session, code).await?
        };
        let lease = ChronoDuration::milliseconds(self.settings.routing.deadline_ms as i64);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.settings.routing.deadline_ms);
        let mut poll = BUSY_POLL_FIRST;
        loop {
            let now = self.clock.now();
            let step = Mutex::new(Step::Busy);
            let after = self
                .store
                .update_session(session.id, &|s| {
                    let (next, write) = begin(s, local_matches, resent_by.as_deref(), now, now + lease);
                    *step.lock().unwrap_or_else(|e| e.into_inner()) = next;
                    write
                })
                .await?
                .ok_or(GatewayError::SessionNotFound)?;
            let step = step.into_inner().unwrap_or_else(|e| e.into_inner());
            match step {
                Step::Busy if tokio::time::Instant::now() + poll < deadline => {
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(BUSY_POLL_MAX);
                }
                Step::AskProviders => return self.ask_providers(&after, code).await,
                other => return Ok((other, after, resent_by)),
            }
        }
    }

    /// Asks each provider holding one of the session's codes, in send order, then records the
    /// answer and gives the session's lease back.
    async fn ask_providers(&self, session: &Session, code: &str) -> Result<(Step, Session, Option<String>), GatewayError> {
        let mut result = Some(false);
        let mut via = None;
        for r in &session.provider_refs {
            if !self.binds_to(session, r).await? {
                continue;
            }
            match self.router.verify_with(&r.provider, &r.reference, code).await {
                Ok(true) => {
                    result = Some(true);
                    via = Some(r.provider.clone());
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(provider = %r.provider, error = %e, "provider verification failed");
                    result = None;
                }
            }
        }
        let now = self.clock.now();
        let won = Mutex::new(false);
        let after = self
            .store
            .update_session(session.id, &|s| {
                *won.lock().unwrap_or_else(|e| e.into_inner()) = settle(s, result, now, via.as_deref());
                true
            })
            .await?
            .ok_or(GatewayError::SessionNotFound)?;
        if !won.into_inner().unwrap_or_else(|e| e.into_inner()) {
            // The lease ran out and another check ended the session meanwhile.
            return Ok(match after.status {
                SessionStatus::Verified => (Step::AlreadyVerified, after, None),
                SessionStatus::Expired => (Step::Expired, after, None),
                _ => (Step::Exhausted, after, None),
            });
        }
        Ok(match result {
            Some(verified) => (Step::Decided { verified }, after, via),
            None => (Step::AskProviders, after, None),
        })
    }

    /// Whether the provider's code for `r` can only be this session's. A reference that is the
    /// phone number itself (a provider that checks codes by number, such as MSG91 autogen)
    /// matches whatever code the provider last sent that number, so it is asked only for the
    /// newest session holding one of its codes: an older session never accepts a newer code.
    async fn binds_to(&self, session: &Session, r: &ProviderRef) -> Result<bool, GatewayError> {
        let by_number = r.reference.trim_start_matches('+') == session.phone.trim_start_matches('+');
        if !by_number {
            return Ok(true);
        }
        Ok(self.store.newest_session_holding(&session.phone, &r.provider).await? == Some(session.id))
    }

    fn token_for(&self, session: &Session) -> String {
        let now = self.clock.now();
        let claims = TokenClaims {
            sid: session.id,
            uid: session.user_id.clone(),
            purpose: session.purpose.clone(),
            exp: (now + ChronoDuration::seconds(self.settings.otp.token_ttl_seconds as i64)).timestamp(),
        };
        issue_token(&self.token_key, &claims)
    }

    /// The session if `tenant` may see it; another app's session does not exist for it.
    async fn owned_session(&self, tenant: &Tenant, id: Uuid) -> Result<Session, GatewayError> {
        self.store
            .get_session(id)
            .await?
            .filter(|s| tenant.may_see(&s.client))
            .ok_or(GatewayError::SessionNotFound)
    }

    /// A session as its owner sees it: a pending session past its expiry reads as expired.
    pub async fn session(&self, tenant: &Tenant, id: Uuid) -> Result<Session, GatewayError> {
        let mut session = self.owned_session(tenant, id).await?;
        if session.status == SessionStatus::Pending && session.expires_at <= self.clock.now() {
            session.status = SessionStatus::Expired;
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(local: bool, refs: usize) -> Session {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Session {
            id: Uuid::new_v4(),
            client: "app".into(),
            phone: "+919876543210".into(),
            user_id: None,
            purpose: "login".into(),
            code_hmac: Vec::new(),
            provider_refs: (0..refs)
                .map(|i| ProviderRef {
                    provider: "2factor".into(),
                    reference: format!("ref-{i}"),
                })
                .collect(),
            status: SessionStatus::Pending,
            attempts: 0,
            max_attempts: 2,
            created_at: t0,
            expires_at: t0 + ChronoDuration::seconds(300),
            verified_at: None,
            local_code_sent: local,
            verify_lease_until: None,
            verified_by: None,
        }
    }

    #[test]
    fn each_state_of_a_session_leads_to_one_step() {
        let now = DateTime::from_timestamp(1_800_000_010, 0).unwrap();
        let lease = now + ChronoDuration::seconds(10);
        let cases: Vec<(&str, Session, bool, Step, SessionStatus, u32)> = vec![
            (
                "local code right",
                session(true, 0),
                true,
                Step::Decided { verified: true },
                SessionStatus::Verified,
                1,
            ),
            (
                "local code wrong",
                session(true, 0),
                false,
                Step::Decided { verified: false },
                SessionStatus::Pending,
                1,
            ),
            (
                "the local code was never sent: it does not verify",
                session(false, 1),
                true,
                Step::AskProviders,
                SessionStatus::Pending,
                0,
            ),
            (
                "the local code was never sent and no provider holds one",
                session(false, 0),
                true,
                Step::Decided { verified: false },
                SessionStatus::Pending,
                1,
            ),
            (
                "provider-held code",
                session(true, 1),
                false,
                Step::AskProviders,
                SessionStatus::Pending,
                0,
            ),
            (
                "the last attempt fails the session",
                Session {
                    attempts: 1,
                    ..session(true, 0)
                },
                false,
                Step::Decided { verified: false },
                SessionStatus::Failed,
                2,
            ),
            (
                "no attempts left",
                Session {
                    attempts: 2,
                    ..session(true, 0)
                },
                true,
                Step::Exhausted,
                SessionStatus::Failed,
                2,
            ),
            (
                "expired",
                Session {
                    expires_at: now,
                    ..session(true, 0)
                },
                true,
                Step::Expired,
                SessionStatus::Expired,
                0,
            ),
            (
                "another check is asking a provider",
                Session {
                    verify_lease_until: Some(lease),
                    verified_by: None,
                    ..session(true, 1)
                },
                true,
                Step::Busy,
                SessionStatus::Pending,
                0,
            ),
            (
                "a lease that ran out is taken over",
                Session {
                    verify_lease_until: Some(now),
                    verified_by: None,
                    ..session(true, 1)
                },
                false,
                Step::AskProviders,
                SessionStatus::Pending,
                0,
            ),
            (
                "verified already",
                Session {
                    status: SessionStatus::Verified,
                    ..session(true, 0)
                },
                true,
                Step::AlreadyVerified,
                SessionStatus::Verified,
                0,
            ),
        ];
        for (name, mut s, local_matches, step, status, attempts) in cases {
            let (got, _) = begin(&mut s, local_matches, None, now, lease);
            assert_eq!((got, s.status, s.attempts), (step, status, attempts), "{name}");
        }
    }

    #[test]
    fn a_resent_sms_code_verifies_even_when_the_first_code_was_never_sent() {
        let now = DateTime::from_timestamp(1_800_000_010, 0).unwrap();
        let mut s = session(false, 1);
        let (step, _) = begin(&mut s, false, Some("twilio"), now, now + ChronoDuration::seconds(10));
        assert_eq!((step, s.status), (Step::Decided { verified: true }, SessionStatus::Verified));
        assert_eq!(s.verified_by.as_deref(), Some("twilio"), "health credits the resending provider");
        let mut expired = Session {
            expires_at: now,
            ..session(true, 0)
        };
        assert_eq!(
            begin(&mut expired, false, Some("twilio"), now, now).0,
            Step::Expired,
            "not once the session expired"
        );
    }

    #[test]
    fn an_unreachable_provider_spends_no_attempt_and_frees_the_session() {
        let now = DateTime::from_timestamp(1_800_000_010, 0).unwrap();
        let mut s = session(false, 1);
        let (step, _) = begin(&mut s, false, None, now, now + ChronoDuration::seconds(10));
        assert_eq!(step, Step::AskProviders);
        assert!(settle(&mut s, None, now, None));
        assert_eq!((s.attempts, s.status, s.verify_lease_until), (0, SessionStatus::Pending, None));
        let mut verified = Session {
            status: SessionStatus::Verified,
            ..s.clone()
        };
        assert!(
            !settle(&mut verified, Some(true), now, None),
            "a check that lost its lease does not win"
        );
    }
}
