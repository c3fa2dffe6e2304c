//! Resending a session's code through another provider: `POST /v1/otp/resend`. Within the resend
//! cooldown and the per-session cap, the session gets another SMS through the next healthy
//! provider that has not carried it yet (the same one only when none is left). Each resent SMS
//! carries its own code, derived from the server secret and the SMS's message id, so nothing new
//! is stored: a verify recomputes it for the session's accepted resends, and knows whose code
//! matched (the provider the health counts credit).

use std::net::IpAddr;

use uuid::Uuid;

use super::code::{self, Policy};
use super::send::{attempt_rows, Judged};
use crate::keys::HmacKey;
use crate::limits::{LimitError, SendContext};
use crate::phone::Phone;
use crate::providers::{MessageBody, OutboundSms};
use crate::service::{Gateway, GatewayError, Tenant};
use crate::store::{AttemptRow, OtpEvent, SendLog, Session, SessionStatus};

/// A resend that went out (or may have: `confirmed` false after an unanswered timeout).
#[derive(Debug, Clone)]
pub struct Resent {
    pub session: Session,
    /// Which SMS of the session this was: 2 for the first resend.
    pub attempt: u32,
    /// SMS the session may get in all.
    pub max_sends: u32,
    pub confirmed: bool,
    /// Seconds until the next resend may go; `None` when the cap is reached.
    pub resend_after_secs: Option<u64>,
}

/// The code a resent SMS carries: HMAC of its message id under the server secret, as `length`
/// digits. Unpredictable without the secret, and different for every SMS.
pub(crate) fn resend_code(key: &HmacKey, message_id: Uuid, length: usize) -> String {
    let mac = key.sign(&[b"smsgate resend code v1:".as_slice(), message_id.as_bytes()].concat());
    let mut n = u64::from_be_bytes(mac[..8].try_into().expect("HMAC-SHA256 has 32 bytes"));
    let mut digits = vec![b'0'; length];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    String::from_utf8(digits).expect("ASCII digits")
}

/// The SMS of a session that went out (an accepted attempt), one per message, in send order.
pub(crate) fn sent_messages(attempts: &[AttemptRow]) -> Vec<&AttemptRow> {
    let mut out: Vec<&AttemptRow> = Vec::new();
    for a in attempts.iter().filter(|a| a.outcome == "accepted") {
        if !out.iter().any(|o| o.message_id == a.message_id) {
            out.push(a);
        }
    }
    out
}

impl Gateway {
    /// Sends `id`'s session another SMS through a provider that has not carried it yet.
    pub async fn resend_otp(&self, tenant: &Tenant, id: Uuid, client_ip: Option<IpAddr>) -> Result<Resent, GatewayError> {
        self.health_tick();
        let result = self.resend(tenant, id, client_ip).await;
        let label = match &result {
            Ok(r) if r.confirmed => "sent",
            Ok(_) => "unconfirmed",
            Err(GatewayError::Dispatch(_) | GatewayError::MaybeSent(_)) => "failed",
            Err(_) => "refused",
        };
        self.metrics.otp_resends.with_label_values(&[label]).inc();
        result
    }

    async fn resend(&self, tenant: &Tenant, id: Uuid, client_ip: Option<IpAddr>) -> Result<Resent, GatewayError> {
        let session = self.session(tenant, id).await?;
        match session.status {
            SessionStatus::Pending => {}
            SessionStatus::Verified => return Err(GatewayError::AlreadyVerified),
            SessionStatus::Expired => return Err(GatewayError::Expired),
            SessionStatus::Failed => return Err(GatewayError::Exhausted),
        }
        let max_sends = self.settings.health.max_sends_per_session;
        let attempts = self.store.session_attempts(id).await?;
        let sent = sent_messages(&attempts);
        if sent.len() as u32 >= max_sends {
            return Err(GatewayError::Limit(LimitError::Refused {
                reason: "resend_cap",
                retry_after_secs: 0,
                message: format!("this session has had its {max_sends} SMS; open a new session to send another code"),
            }));
        }
        let carried: Vec<String> = sent.iter().map(|a| a.provider.clone()).collect();
        let phone = Phone::parse(&session.phone, &self.settings.otp.default_country)
            .map_err(|e| GatewayError::Invalid(format!("the session's phone is not usable: {e}")))?;
        let ctx = SendContext {
            phone: &phone,
            client_ip,
            user_id: session.user_id.as_deref(),
            client: &session.client,
            is_otp: true,
            claim: None,
        };
        // The same windows and cooldown as a new OTP to this phone, in one round trip.
        let resend_after = self.limits.admit(&*self.store, &ctx, self.clock.now()).await?;
        let policy = Policy::for_purpose(&self.settings.otp, &session.purpose);
        let message_id = Uuid::new_v4();
        let code = resend_code(&self.key, message_id, policy.length);
        let left = session.expires_at - self.clock.now();
        let sms = OutboundSms {
            id: message_id,
            to: phone,
            body: MessageBody::Otp {
                text: code::render(&self.settings.otp.message, &code, left.num_seconds().max(1) as u64),
                code,
            },
        };
        let dispatch = self.router.dispatch_avoiding(&sms, &carried, self.router.request_deadline()).await;
        let judged = Judged::of(&dispatch, self.carried_local_code(&dispatch));
        let mut update = judged.session_update(session.id);
        // A failed resend leaves the session as it was (its earlier SMS may still arrive), and
        // a resend's own code is not the session's first code.
        update.failed = false;
        update.local_code_sent = false;
        let log = SendLog {
            attempts: attempt_rows(&sms, session.user_id.as_deref(), Some(session.id), &dispatch),
            opened: None,
            session: Some(update),
            events: vec![OtpEvent {
                session_id: session.id,
                user_id: session.user_id.clone(),
                phone: session.phone.clone(),
                event: judged.event_type().into(),
                status: format!("resend_{}", judged.status),
                provider: dispatch.result.as_ref().ok().map(|d| d.provider.clone()),
                response_time_ms: dispatch.attempts.iter().map(|a| a.response_time_ms as i32).sum(),
                created_at: self.clock.now(),
            }],
        };
        self.commit(log, judged.reached).await?;
        let attempt = sent.len() as u32 + 1;
        let resent = Resent {
            session,
            attempt,
            max_sends,
            confirmed: dispatch.result.is_ok(),
            resend_after_secs: (attempt < max_sends).then_some(resend_after.unwrap_or(0)),
        };
        match dispatch.result {
            Ok(_) => Ok(resent),
            Err(_) if judged.unconfirmed => Ok(resent),
            Err(e) if judged.reached => Err(GatewayError::MaybeSent(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// The provider whose resent SMS carried `code` for `session`, if one did.
    pub(crate) async fn resend_code_of(&self, session: &Session, code: &str) -> Result<Option<String>, GatewayError> {
        let attempts = self.store.session_attempts(session.id).await?;
        let length = Policy::for_purpose(&self.settings.otp, &session.purpose).length;
        let held = |a: &AttemptRow| {
            session
                .provider_refs
                .iter()
                .any(|r| r.provider == a.provider && a.provider_ref.as_deref() == Some(r.reference.as_str()))
        };
        let resends = attempts
            .iter()
            .filter(|a| a.message_id != session.id && (a.outcome == "accepted" || a.ambiguous) && !held(a));
        for a in resends {
            let expected = resend_code(&self.key, a.message_id, length);
            if self
                .key
                .code_matches(a.message_id, code, &self.key.code_hmac(a.message_id, &expected))
            {
                return Ok(Some(a.provider.clone()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_resent_sms_has_its_own_code_of_the_policy_length() {
        let key = HmacKey::new("k".to_string().into());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(resend_code(&key, a, 6), resend_code(&key, a, 6), "recomputable");
        assert_ne!(resend_code(&key, a, 8), resend_code(&key, b, 8));
        assert_eq!(resend_code(&key, a, 4).len(), 4);
        assert!(resend_code(&key, a, 10).bytes().all(|c| c.is_ascii_digit()));
        let other = HmacKey::new("other".to_string().into());
        assert_ne!(resend_code(&key, a, 10), resend_code(&other, a, 10), "bound to the secret");
    }
}
