//! Storage: `trait Store` with a PostgreSQL backend (production) and an in-memory one (the
//! zero-setup default). Both pass one conformance suite. The store holds no business rules: it
//! applies the state changes `otp`, `messages` and `limits` decide, atomically (a session edit under
//! its row lock, an admission in one statement, a send's log in one group commit).

pub mod admin_logs;
mod admission;
mod answers;
pub mod campaigns;
mod campaigns_memory;
mod campaigns_postgres;
mod health;
pub mod listen;
mod memory;
mod memory_limits;
pub mod migrate;
pub mod opt_outs;
mod postgres;
mod postgres_limits;
mod postgres_tls;
pub mod receipts;
mod registry;
pub mod retention;
mod sliding;
mod writer;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use health::{HealthStore, TallyRow, TallyWindow};

/// A map of the memory store keyed by what callers send (phones, addresses, keys): foldhash,
/// seeded per map, in place of SipHash, which was 3 % of the memory store's CPU per send.
pub(crate) type KeyMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use registry::{AuditEntry, AuditNote, RegistryCommit, RegistryRow, RegistryStore, StoredRegistry, REGISTRY_CHANNEL};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Verified,
    Expired,
    Failed,
}

impl SessionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "verified" => Self::Verified,
            "expired" => Self::Expired,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A code a provider made and checks (2Factor AUTOGEN, Twilio Verify): where to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRef {
    pub provider: String,
    pub reference: String,
}

/// One OTP session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: Uuid,
    /// The calling app that opened it; no other app may see or touch it.
    pub client: String,
    /// E.164.
    pub phone: String,
    pub user_id: Option<String>,
    pub purpose: String,
    /// HMAC-SHA256 of smsgate's own code under the server secret; never the code.
    pub code_hmac: Vec<u8>,
    /// Provider-held codes sent for this session, in send order.
    pub provider_refs: Vec<ProviderRef>,
    pub status: SessionStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    /// Whether any SMS of the session carried smsgate's own code (else only provider-held
    /// codes went out, and the local code must not verify).
    pub local_code_sent: bool,
    /// A verification asking a provider holds the session until then.
    pub verify_lease_until: Option<DateTime<Utc>>,
    /// The provider whose SMS carried the code that verified the session, when it was not the
    /// session's first code (a resent SMS's, a provider-held one). Provider health credits the
    /// verification to it, else to the provider of the first SMS.
    pub verified_by: Option<String>,
}

/// One provider attempt: a row of `sms_messages_log`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: Uuid,
    pub message_id: Uuid,
    pub session_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub to: String,
    pub kind: String,
    pub provider: String,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub provider_ref: Option<String>,
    pub response_time_ms: i32,
    pub ambiguous: bool,
    pub created_at: DateTime<Utc>,
    /// SMS parts the text took (`messages::segments`); `None` for a provider template.
    pub parts: Option<i32>,
    /// What the provider's delivery receipt said, once one arrived (`store::receipts`).
    pub delivery: Option<receipts::Delivery>,
}

/// An OTP event: a row of `otp_logs` (`autogen`: a provider-held code went out; `local`:
/// smsgate's own code; `verify`).
#[derive(Debug, Clone, PartialEq)]
pub struct OtpEvent {
    pub session_id: Uuid,
    pub user_id: Option<String>,
    pub phone: String,
    pub event: String,
    pub status: String,
    pub provider: Option<String>,
    pub response_time_ms: i32,
    pub created_at: DateTime<Utc>,
}

/// What a finished send changes in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUpdate {
    pub id: Uuid,
    /// Provider-held codes to add.
    pub add_refs: Vec<ProviderRef>,
    /// The provider that took the message and its reference.
    pub delivered_by: Option<ProviderRef>,
    /// No provider took the message: the session cannot be verified.
    pub failed: bool,
    /// An SMS carrying smsgate's own code went out (or may have).
    pub local_code_sent: bool,
}

impl SessionUpdate {
    /// The update made to `session` in place.
    pub fn apply(&self, session: &mut Session) {
        session.provider_refs.extend(self.add_refs.iter().cloned());
        session.local_code_sent |= self.local_code_sent;
        if self.failed && session.status == SessionStatus::Pending {
            session.status = SessionStatus::Failed;
        }
    }
}

/// Everything written after a send, committed together (group commit in PostgreSQL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendLog {
    pub attempts: Vec<AttemptRow>,
    /// The session this send opened: stored here, once, with `session` applied, so that a send
    /// writes its session row once (never an insert at admission and an update after it).
    pub opened: Option<Session>,
    pub session: Option<SessionUpdate>,
    pub events: Vec<OtpEvent>,
}

/// A change to one session made under its lock: it sees the newest row and returns whether to
/// write the changed session back. The rules live with the caller; the store only makes the
/// read-modify-write atomic across instances.
pub type SessionEdit<'a> = &'a (dyn Fn(&mut Session) -> bool + Send + Sync);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool error")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("group-commit batch failed")]
    Batch(#[source] std::sync::Arc<StoreError>),
    #[error("the log writer has stopped")]
    WriterStopped,
    #[error("stored data is unreadable: {0}")]
    Corrupt(&'static str),
    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl StoreError {
    /// Whether the database is unreachable, stalled or overloaded (a wait ran out, a statement
    /// was cancelled, the connection broke), as opposed to a bug or bad data: worth a 503 and a
    /// retry rather than a 500.
    pub fn is_unavailable(&self) -> bool {
        use deadpool_postgres::PoolError;
        use tokio_postgres::error::SqlState;
        match self {
            Self::Timeout(_) | Self::WriterStopped => true,
            Self::Pool(PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed) => true,
            Self::Pool(_) => false,
            Self::Database(e) => match e.code() {
                // No SQLSTATE: the connection failed, closed or timed out.
                None => true,
                Some(code) => [
                    SqlState::QUERY_CANCELED,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::ADMIN_SHUTDOWN,
                ]
                .contains(code),
            },
            Self::Batch(e) => e.is_unavailable(),
            Self::Corrupt(_) => false,
        }
    }

    /// Whether PostgreSQL refused a batch statement for what its rows hold (SQLSTATE class 22,
    /// data exception, such as a NUL byte in `text`; or 23, integrity constraint violation), so
    /// that the same statement without the offending row would commit.
    pub(crate) fn blames_the_rows(&self) -> bool {
        match self {
            Self::Database(db) => db.code().is_some_and(|c| matches!(c.code().get(..2), Some("22" | "23"))),
            _ => false,
        }
    }
}

#[async_trait]
pub trait Store:
    LimitStore
    + RegistryStore
    + admin_logs::AdminLogStore
    + receipts::ReceiptStore
    + campaigns::CampaignStore
    + opt_outs::OptOutStore
    + HealthStore
    + Send
    + Sync
{
    /// `postgres` or `memory`.
    fn kind(&self) -> &'static str;
    /// Whether the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn get_session(&self, id: Uuid) -> Result<Option<Session>, StoreError>;
    /// Applies `edit` to the session under a lock that serialises every edit of it; returns the
    /// session as it then stands (`None`: no such session).
    async fn update_session(&self, id: Uuid, edit: SessionEdit<'_>) -> Result<Option<Session>, StoreError>;
    /// Commits the attempt rows, session update and events of one send; returns once durable.
    async fn write_log(&self, log: SendLog) -> Result<(), StoreError>;
    /// Gives sessions and contacts that have no owner (made before apps were isolated) to
    /// `client`; returns how many rows it took.
    async fn adopt_unowned(&self, _client: &str) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// The newest session to `phone` holding a code of `provider` (for providers that check
    /// codes by number, where only the newest code of a number is live).
    async fn newest_session_holding(&self, phone: &str, provider: &str) -> Result<Option<Uuid>, StoreError>;
    /// The newest attempt rows, newest first (admin logs and tests).
    async fn recent_attempts(&self, limit: usize) -> Result<Vec<AttemptRow>, StoreError>;
}

/// One sliding-window counter a send takes from: at most `limit` in any span of `window_secs`
/// (`sliding.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub key: String,
    pub window_secs: u32,
    pub limit: u32,
}

/// A resend cooldown: after each send to `key` the next waits `base * 2^resends` (capped at
/// `max`); `reset_secs` after the last send the count starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownSpec {
    pub key: String,
    pub base_secs: u32,
    pub max_secs: u32,
    pub reset_secs: u32,
}

/// The answer to an admission: all quotas and the cooldown are taken together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Taken; the next send to the same cooldown key may go after this many seconds.
    Admitted { resend_after_secs: Option<u64> },
    /// `key` is spent; nothing was taken.
    Refused { key: String, retry_after_secs: u64 },
    /// The `Idempotency-Key` claimed with the admission is held by an earlier request (never
    /// `IdempotencyClaim::Claimed`); nothing was taken.
    KeyHeld(IdempotencyClaim),
}

/// An `Idempotency-Key` to claim for a request whose body hashes to `hash`, within `scope` (the
/// calling client). A claim older than `lease_secs` that never completed is taken over; keys
/// live `ttl_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    pub scope: String,
    pub key: String,
    pub hash: Vec<u8>,
    pub ttl_secs: u32,
    pub lease_secs: u32,
}

/// What an `Idempotency-Key` claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use: go ahead, then complete or release.
    Claimed,
    /// Done before with the same body: answer this again.
    Replay { status: u16, body: serde_json::Value },
    /// Used before with a different body.
    Conflict,
    /// The first request with this key is still running.
    InFlight,
}

/// A user's contact settings (`user_contact_settings`), kept per calling app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contact {
    /// The calling app whose user this is.
    #[serde(skip)]
    pub client: String,
    pub user_id: String,
    pub phone: Option<String>,
    pub otp_enabled: bool,
    pub preferred_provider: Option<String>,
}

/// Shared state for limits, idempotency and step-up contacts; part of every `Store`.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Takes one from every quota and the cooldown, atomically and across instances, or nothing.
    async fn admit(&self, quotas: &[Quota], cooldown: Option<&CooldownSpec>, now: DateTime<Utc>) -> Result<Admission, StoreError>;
    /// `admit`, claiming `claim` in the same step (PostgreSQL: the same round trip): when the key
    /// is held, `KeyHeld` and nothing taken; when a quota refuses, the key stays unclaimed.
    async fn admit_claiming(
        &self,
        claim: &KeyClaim,
        quotas: &[Quota],
        cooldown: Option<&CooldownSpec>,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError>;
    /// The first quota already spent in its sliding window, without taking anything: `Refused`
    /// naming it, else `Admitted`.
    async fn peek(&self, quotas: &[Quota], now: DateTime<Utc>) -> Result<Admission, StoreError>;
    /// Stores the answer of a claimed key (`Some((status, body))`), or forgets the key of a
    /// request that failed in a way worth retrying (`None`), in the background: PostgreSQL
    /// writes the answers of concurrent requests together. Until then a retry with the key finds
    /// it in flight and waits. `flush_answers` waits for what was queued.
    fn keep_answer(&self, scope: &str, key: &str, answer: Option<(u16, serde_json::Value)>);
    /// Waits until every answer queued by `keep_answer` is stored.
    async fn flush_answers(&self);
    /// `client`'s user's contact.
    async fn get_contact(&self, client: &str, user_id: &str) -> Result<Option<Contact>, StoreError>;
    async fn put_contact(&self, contact: &Contact) -> Result<(), StoreError>;
    /// Deletes expired counters, cooldowns and idempotency keys.
    async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The next cooldown wait after `resends` earlier resends.
pub fn cooldown_wait(spec: &CooldownSpec, resends: u32) -> u32 {
    spec.base_secs
        .saturating_mul(1u32 << resends.min(16))
        .min(spec.max_secs.max(spec.base_secs))
}
