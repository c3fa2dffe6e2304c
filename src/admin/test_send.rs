//! An admin's test send: a real OTP through one provider alone (no failover), to check that
//! provider end to end, and the check of its code. Both keep the provider's raw answer for the
//! admin. Test sends are logged like any attempt (their `user_id` names the admin, marked
//! `admin-test:`), are not counted against the apps' limits, and have a per-admin limit of
//! their own.

use std::time::Instant;

use serde_json::Value;
use uuid::Uuid;

use crate::limits::LimitError;
use crate::otp::send::attempt_rows;
use crate::otp::{generate_code, render, Policy};
use crate::phone::Phone;
use crate::providers::raw::capture_raw;
use crate::providers::{MessageBody, OutboundSms};
use crate::routing::Outcome;
use crate::service::{Gateway, GatewayError, Tenant};
use crate::store::{Admission, OtpEvent, ProviderRef, Quota, SendLog, SessionStatus, SessionUpdate};

/// The purpose of test sessions; only the test verify route checks them.
pub const TEST_PURPOSE: &str = "admin_test";
/// The `user_id` prefix that marks a test send's rows in the logs.
pub const TEST_USER_PREFIX: &str = "admin-test:";
/// Test sends one admin may make per minute.
pub const TESTS_PER_MINUTE: u32 = 10;

/// A test send's answer.
#[derive(Debug, Clone)]
pub struct TestSent {
    pub session_id: Uuid,
    pub provider: String,
    /// The provider took the message.
    pub sent: bool,
    pub http_status: Option<u16>,
    /// The provider's answer (masked, at most 2 KiB), or why there was none.
    pub raw: Value,
    pub response_time_ms: u64,
}

/// A test code check's answer.
#[derive(Debug, Clone)]
pub struct TestVerified {
    /// `verified`, `invalid`, `expired`, `already_verified`, `exhausted` or `unavailable`.
    pub status: &'static str,
    pub attempts_left: Option<u32>,
    /// The provider's answer when the provider holds the code; `null` when smsgate checked it.
    pub raw: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    #[error("no provider named `{0}`")]
    UnknownProvider(String),
    #[error("{provider} cannot send an OTP to +{country}")]
    CannotCarry { provider: String, country: String },
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl Gateway {
    /// Sends a test OTP to `phone` through `provider` alone, as `admin`.
    pub async fn admin_test_send(&self, admin: &str, provider: &str, phone: Phone) -> Result<TestSent, TestSendError> {
        let started = Instant::now();
        let registry = self.router.registry();
        let slot = registry
            .slot(provider)
            .ok_or_else(|| TestSendError::UnknownProvider(provider.to_string()))?;
        let policy = Policy::for_purpose(&self.settings.otp, TEST_PURPOSE);
        let code = generate_code(policy.length);
        let body = MessageBody::Otp {
            text: render(&self.settings.otp.message, &code, policy.ttl_seconds),
            code: code.clone(),
        };
        if !slot.provider.capabilities().can_send(&body, &phone) {
            return Err(TestSendError::CannotCarry {
                provider: provider.to_string(),
                country: phone.country_code().to_string(),
            });
        }
        self.admit_test(admin).await?;
        let session = self.open_test_session(admin, &phone, &policy, &code);
        self.store.insert_session(&session).await.map_err(GatewayError::from)?;
        let sms = OutboundSms {
            id: session.id,
            to: phone,
            body,
        };
        let (dispatch, raw) = capture_raw(self.router.test_through(provider, &sms)).await;
        let dispatch = dispatch.ok_or_else(|| TestSendError::UnknownProvider(provider.to_string()))?;
        let attempt = dispatch.attempts.first();
        let accepted = dispatch.result.as_ref().ok().map(|d| &d.accepted);
        let ambiguous = attempt.is_some_and(|a| a.ambiguous);
        let held = accepted.filter(|a| a.provider_verifies).and_then(|a| a.reference.clone());
        let marker = format!("{TEST_USER_PREFIX}{admin}");
        let status = if accepted.is_some() { "sent" } else { "failed" };
        let log = SendLog {
            attempts: attempt_rows(&sms, Some(&marker), Some(session.id), &dispatch),
            opened: None,
            session: Some(SessionUpdate {
                id: session.id,
                add_refs: held
                    .iter()
                    .map(|r| ProviderRef {
                        provider: provider.into(),
                        reference: r.clone(),
                    })
                    .collect(),
                delivered_by: None,
                failed: accepted.is_none() && !ambiguous,
                local_code_sent: accepted.is_some_and(|a| !a.provider_verifies) || ambiguous,
            }),
            events: vec![OtpEvent {
                session_id: session.id,
                user_id: Some(marker),
                phone: session.phone.clone(),
                event: if held.is_some() { "autogen" } else { "local" }.into(),
                status: status.into(),
                provider: Some(provider.into()),
                response_time_ms: started.elapsed().as_millis() as i32,
                created_at: self.clock.now(),
            }],
        };
        self.commit(log, accepted.is_some() || ambiguous).await?;
        let http_status = attempt.and_then(|a| a.http_status).or(raw.as_ref().and_then(|r| r.http_status));
        // No HTTP answer (a timeout, a provider that is not HTTP): say what happened instead.
        let raw = match (raw, attempt) {
            (Some(raw), _) => raw.body,
            (None, Some(a)) if a.outcome != Outcome::Accepted => {
                Value::String(crate::phone::mask_numbers_in(a.error.as_deref().unwrap_or(a.outcome.as_str())))
            }
            (None, _) => Value::Null,
        };
        Ok(TestSent {
            session_id: session.id,
            provider: provider.into(),
            sent: accepted.is_some(),
            http_status,
            raw,
            response_time_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Checks `code` for `admin`'s test session, asking the provider when it holds the code.
    pub async fn admin_test_verify(&self, admin: &str, session_id: Uuid, code: &str) -> Result<TestVerified, GatewayError> {
        let tenant = Tenant {
            client: admin.into(),
            sees_every_app: false,
        };
        let session = self.session(&tenant, session_id).await?;
        if session.purpose != TEST_PURPOSE {
            return Err(GatewayError::SessionNotFound);
        }
        let (result, raw) = capture_raw(self.verify_otp(&tenant, session_id, code)).await;
        let raw = raw.map_or(Value::Null, |r| r.body);
        let (status, attempts_left) = match result {
            Ok(v) if v.verified => ("verified", Some(v.attempts_left)),
            Ok(v) if v.status == SessionStatus::Failed => ("exhausted", Some(0)),
            Ok(v) => ("invalid", Some(v.attempts_left)),
            Err(GatewayError::Expired) => ("expired", None),
            Err(GatewayError::AlreadyVerified) => ("already_verified", None),
            Err(GatewayError::Exhausted) => ("exhausted", Some(0)),
            Err(GatewayError::VerifyUnavailable) => ("unavailable", None),
            Err(e) => return Err(e),
        };
        Ok(TestVerified {
            status,
            attempts_left,
            raw,
        })
    }

    /// Takes one of `admin`'s test sends for this minute (shared across instances).
    async fn admit_test(&self, admin: &str) -> Result<(), GatewayError> {
        let quota = Quota {
            key: format!("admin_test:{admin}"),
            window_secs: 60,
            limit: TESTS_PER_MINUTE,
        };
        match self.store.admit(&[quota], None, self.clock.now()).await? {
            // No key is claimed: `KeyHeld` cannot come back.
            Admission::Admitted { .. } | Admission::KeyHeld(_) => Ok(()),
            Admission::Refused { retry_after_secs, .. } => Err(GatewayError::Limit(LimitError::Refused {
                reason: "admin_test_rate",
                retry_after_secs,
                message: format!("at most {TESTS_PER_MINUTE} test sends a minute per admin; retry in {retry_after_secs} s"),
            })),
        }
    }

    fn open_test_session(&self, admin: &str, phone: &Phone, policy: &Policy, code: &str) -> crate::store::Session {
        let id = Uuid::new_v4();
        let now = self.clock.now();
        crate::store::Session {
            id,
            client: admin.into(),
            phone: phone.e164().to_string(),
            user_id: Some(format!("{TEST_USER_PREFIX}{admin}")),
            purpose: TEST_PURPOSE.into(),
            code_hmac: self.key.code_hmac(id, code),
            provider_refs: Vec::new(),
            status: SessionStatus::Pending,
            attempts: 0,
            max_attempts: policy.max_attempts,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(policy.ttl_seconds as i64),
            verified_at: None,
            local_code_sent: false,
            verify_lease_until: None,
            verified_by: None,
        }
    }
}
