//! Abuse limits: per-phone, per-IP, per-user, per-client and per-prefix windows, the resend
//! cooldown, and the SMS-pumping guard (allowed and blocked countries, prefix velocity,
//! record-only mode), the daily cap on wrong codes, and `Idempotency-Key`. The counting lives in
//! the store so every limit holds across instances; this module decides which counters a request
//! takes from. It never sends anything.

mod idempotency;
mod kind;

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::phone::Phone;
use crate::store::{Admission, CooldownSpec, Quota, Session, Store, StoreError};

pub use idempotency::{Claim, Idempotency, IdempotencyError, Once, Replayable};
pub use kind::LimitKind;

const MINUTE: u32 = 60;
const DAY: u32 = 86_400;

/// Who is sending what, as far as limits care.
#[derive(Debug, Clone)]
pub struct SendContext<'a> {
    pub phone: &'a Phone,
    /// The end user's IP, when the app passed it.
    pub client_ip: Option<IpAddr>,
    pub user_id: Option<&'a str>,
    /// The calling app's name.
    pub client: &'a str,
    /// OTPs take the per-phone windows and the resend cooldown; other messages do not.
    pub is_otp: bool,
    /// The request's `Idempotency-Key`, claimed with the admission.
    pub claim: Option<&'a Claim>,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// A window or the cooldown is spent; nothing was sent or counted.
    #[error("{message}")]
    Refused {
        reason: &'static str,
        retry_after_secs: u64,
        message: String,
    },
    /// The destination is not allowed (pumping guard).
    #[error("{message}")]
    Blocked { reason: &'static str, message: String },
    /// The request's `Idempotency-Key` is held by an earlier request (its `Claim` says how);
    /// nothing was counted.
    #[error("this Idempotency-Key belongs to another request")]
    KeyHeld,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Limits {
    settings: crate::config::LimitSettings,
    /// Countries that may receive SMS; `None` allows every country.
    allowed: Option<BTreeSet<String>>,
    metrics: Metrics,
}

impl Limits {
    /// The allowed countries default to those the configured providers serve; a provider that
    /// serves every country allows every country.
    pub fn new(settings: &Settings, metrics: Metrics) -> Self {
        let l = &settings.limits;
        let allowed = if !l.allowed_countries.is_empty() {
            Some(l.allowed_countries.iter().cloned().collect())
        } else {
            let enabled: Vec<_> = settings
                .providers
                .iter()
                .filter(|p| !p.is_console())
                .map(|p| p.common())
                .filter(|p| p.enabled)
                .collect();
            if enabled.is_empty() || enabled.iter().any(|p| p.countries.is_empty()) {
                None
            } else {
                Some(enabled.iter().flat_map(|p| p.countries.iter().cloned()).collect())
            }
        };
        Self {
            settings: l.clone(),
            allowed,
            metrics,
        }
    }

    /// Admits one send or says why not. Nothing is counted for a refused send.
    /// Returns the seconds until the next OTP to the same phone may go.
    pub async fn admit(&self, store: &dyn Store, ctx: &SendContext<'_>, now: DateTime<Utc>) -> Result<Option<u64>, LimitError> {
        self.pumping_guard(ctx.phone)?;
        let l = &self.settings;
        let mut quotas = vec![Quota {
            key: LimitKind::ClientRate.key(ctx.client),
            window_secs: MINUTE,
            limit: l.per_client_per_minute,
        }];
        if ctx.is_otp {
            quotas.push(Quota {
                key: LimitKind::PhonePerMinute.key(ctx.phone),
                window_secs: MINUTE,
                limit: l.per_phone_per_minute,
            });
            quotas.push(Quota {
                key: LimitKind::PhonePerDay.key(ctx.phone),
                window_secs: DAY,
                limit: l.per_phone_per_day,
            });
            if let Some(user) = ctx.user_id {
                quotas.push(Quota {
                    key: LimitKind::UserPerDay.key(user),
                    window_secs: DAY,
                    limit: l.per_user_per_day,
                });
            }
        }
        if let Some(ip) = ctx.client_ip {
            quotas.push(Quota {
                key: LimitKind::IpPerMinute.key(ip),
                window_secs: MINUTE,
                limit: l.per_ip_per_minute,
            });
        }
        let prefix = Quota {
            key: LimitKind::PrefixVelocity.key(ctx.phone.prefix(l.prefix_digits)),
            window_secs: MINUTE,
            limit: l.per_prefix_per_minute,
        };
        if !l.record_only {
            quotas.push(prefix.clone());
        }
        let cooldown = (ctx.is_otp && l.resend_cooldown_seconds > 0).then(|| CooldownSpec {
            key: LimitKind::ResendCooldown.key(ctx.phone),
            base_secs: l.resend_cooldown_seconds as u32,
            max_secs: l.resend_cooldown_max_seconds as u32,
            reset_secs: DAY,
        });
        let admission = match ctx.claim {
            Some(claim) => store.admit_claiming(claim.spec(), &quotas, cooldown.as_ref(), now).await?,
            None => store.admit(&quotas, cooldown.as_ref(), now).await?,
        };
        let resend_after = match admission {
            Admission::Admitted { resend_after_secs } => resend_after_secs,
            Admission::Refused { key, retry_after_secs } => return Err(self.refused(&key, retry_after_secs)),
            Admission::KeyHeld(found) => {
                if let Some(claim) = ctx.claim {
                    claim.settle(found);
                }
                return Err(LimitError::KeyHeld);
            }
        };
        if let Some(claim) = ctx.claim {
            claim.settle(crate::store::IdempotencyClaim::Claimed);
        }
        if l.record_only {
            // Counted on its own so that it never refuses; only what it would have done is kept.
            if let Admission::Refused { .. } = store.admit(std::slice::from_ref(&prefix), None, now).await? {
                tracing::warn!(prefix = %ctx.phone.prefix(l.prefix_digits), "record-only: prefix velocity exceeded");
                self.metrics.blocks.with_label_values(&["recorded_prefix_velocity"]).inc();
            }
        }
        Ok(resend_after)
    }

    /// The counters a failed verification takes from: the session's phone and its user, per day.
    pub fn verify_failure_quotas(&self, session: &Session) -> Vec<Quota> {
        let l = &self.settings;
        let mut quotas = vec![Quota {
            key: LimitKind::VerifyFailuresPerPhone.key(&session.phone),
            window_secs: DAY,
            limit: l.verify_failures_per_phone_per_day,
        }];
        if let Some(user) = &session.user_id {
            quotas.push(Quota {
                key: LimitKind::VerifyFailuresPerUser.key(format_args!("{}:{user}", session.client)),
                window_secs: DAY,
                limit: l.verify_failures_per_user_per_day,
            });
        }
        quotas
    }

    /// Refuses a verification when the phone or the user has failed too often today.
    pub async fn check_verify_failures(&self, store: &dyn Store, quotas: &[Quota], now: DateTime<Utc>) -> Result<(), LimitError> {
        match store.peek(quotas, now).await? {
            Admission::Admitted { .. } | Admission::KeyHeld(_) => Ok(()),
            Admission::Refused { key, retry_after_secs } => Err(self.refused(&key, retry_after_secs)),
        }
    }

    /// Counts one wrong code against the phone and the user.
    pub async fn count_verify_failure(&self, store: &dyn Store, quotas: &[Quota], now: DateTime<Utc>) -> Result<(), LimitError> {
        // Checks of one session are serialised, so only checks of different sessions can pass
        // `check_verify_failures` together: the count may overshoot by that many, never more.
        store.admit(quotas, None, now).await?;
        Ok(())
    }

    /// The refusal of a spent counter, counted by its reason.
    fn refused(&self, key: &str, retry_after_secs: u64) -> LimitError {
        let (reason, message) = match LimitKind::of_key(key) {
            Some(kind) => (kind.reason(), kind.message(retry_after_secs)),
            None => ("rate_limited", format!("rate limited; try again in {retry_after_secs} s")),
        };
        self.metrics.blocks.with_label_values(&[reason]).inc();
        LimitError::Refused {
            reason,
            retry_after_secs,
            message,
        }
    }

    /// Countries: blocked ones never, and only allowed ones (record-only mode logs instead).
    fn pumping_guard(&self, phone: &Phone) -> Result<(), LimitError> {
        let cc = phone.country_code();
        let blocked = self.settings.blocked_countries.iter().any(|c| c == cc);
        let not_allowed = self.allowed.as_ref().is_some_and(|a| !a.contains(cc));
        if !(blocked || not_allowed) {
            return Ok(());
        }
        let reason = if blocked { "country_blocked" } else { "country_not_allowed" };
        if self.settings.record_only {
            tracing::warn!(country = cc, reason, "record-only: would have blocked this destination");
            self.metrics.blocks.with_label_values(&[&format!("recorded_{reason}")]).inc();
            return Ok(());
        }
        self.metrics.blocks.with_label_values(&[reason]).inc();
        Err(LimitError::Blocked {
            reason,
            message: format!("SMS to +{cc} numbers is not allowed by this gateway"),
        })
    }
}
