//! The campaign queue's storage: `CampaignStore`, a supertrait of `Store`, kept by PostgreSQL
//! (`campaigns_postgres`: shared by every instance, claimed with `FOR UPDATE SKIP LOCKED`) and
//! by memory (`campaigns_memory`: one process). The rules (what is eligible, when, through which
//! bucket) live in `campaigns`; the store makes each state change atomic and lease-checked.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;

/// Which opt-outs a campaign honours and how it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    Transactional,
    Promotional,
}

impl CampaignKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Promotional => "promotional",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "transactional" => Self::Transactional,
            "promotional" => Self::Promotional,
            _ => return None,
        })
    }
}

/// What the operator last asked of a campaign (`done` is derived: nothing left to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Running,
    Paused,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "paused" => Self::Paused,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// What every message of a campaign carries: a text, or a provider template whose values are
/// the campaign's `vars` followed by the recipient's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CampaignContent {
    Text {
        text: String,
    },
    Template {
        template: String,
        #[serde(default)]
        vars: Vec<String>,
    },
}

/// One message's state in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Queued,
    HeldQuietHours,
    Claimed,
    Sending,
    Sent,
    Delivered,
    Failed,
    SkippedOptOut,
    Ambiguous,
    Cancelled,
}

impl MessageState {
    pub const ALL: [Self; 10] = [
        Self::Queued,
        Self::HeldQuietHours,
        Self::Claimed,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Failed,
        Self::SkippedOptOut,
        Self::Ambiguous,
        Self::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::HeldQuietHours => "held_quiet_hours",
            Self::Claimed => "claimed",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::SkippedOptOut => "skipped_opt_out",
            Self::Ambiguous => "ambiguous",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Still to be sent (or being sent).
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Queued | Self::HeldQuietHours | Self::Claimed | Self::Sending)
    }
}

/// A campaign to store with its recipients, all or nothing.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub id: Uuid,
    pub client: String,
    pub name: String,
    pub kind: CampaignKind,
    pub content: CampaignContent,
    pub schedule_at: Option<DateTime<Utc>>,
    pub max_per_second: Option<u32>,
    pub duplicates: u32,
    pub invalid: u32,
    pub created_at: DateTime<Utc>,
    /// Unique E.164 numbers in upload order, each with its own template values.
    pub recipients: Vec<(String, Vec<String>)>,
}

/// A stored campaign and how its messages stand.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: Uuid,
    pub client: String,
    pub name: String,
    pub kind: CampaignKind,
    pub content: CampaignContent,
    pub status: CampaignStatus,
    pub schedule_at: Option<DateTime<Utc>>,
    pub max_per_second: Option<u32>,
    pub duplicates: u32,
    pub invalid: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Messages per state.
    pub counts: Vec<(MessageState, u64)>,
}

impl Campaign {
    pub fn count(&self, state: MessageState) -> u64 {
        self.counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n)
    }
}

/// A message a worker claimed under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub phone: String,
    pub vars: Vec<String>,
}

/// A message whose lease ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    pub id: Uuid,
    pub campaign_id: Uuid,
    /// Set when the row was `sending`: the attempt that may or may not have reached the
    /// provider; the row is now `ambiguous`. `None`: a claimed row put back in the queue.
    pub ambiguous_attempt: Option<Uuid>,
}

/// How a worker leaves a message it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    SkippedOptOut,
    /// Back to the queue, eligible again at `not_before` (quiet hours hold, a limit, a pause).
    Requeue {
        not_before: DateTime<Utc>,
        held: bool,
    },
    Sent {
        message_id: Uuid,
        provider: String,
    },
    Failed {
        message_id: Option<Uuid>,
        error: String,
    },
    /// The provider may have taken it: never resent.
    Ambiguous {
        message_id: Option<Uuid>,
        error: String,
    },
}

impl Settle {
    pub fn state(&self) -> MessageState {
        match self {
            Self::SkippedOptOut => MessageState::SkippedOptOut,
            Self::Requeue { held: true, .. } => MessageState::HeldQuietHours,
            Self::Requeue { held: false, .. } => MessageState::Queued,
            Self::Sent { .. } => MessageState::Sent,
            Self::Failed { .. } => MessageState::Failed,
            Self::Ambiguous { .. } => MessageState::Ambiguous,
        }
    }
}

/// A page of campaigns, newest first, after `before` (a cursor from the previous page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores the campaign and every recipient as `queued`, in one transaction.
    async fn insert_campaign(&self, campaign: &NewCampaign) -> Result<(), StoreError>;
    async fn get_campaign(&self, id: Uuid) -> Result<Option<Campaign>, StoreError>;
    /// Newest first; `client` limits to one app's campaigns.
    async fn list_campaigns(&self, client: Option<&str>, before: Option<PageCursor>, limit: usize) -> Result<Vec<Campaign>, StoreError>;
    /// Moves a campaign from one of `from` to `to`; cancelling also cancels its unsent messages.
    /// Returns false when the campaign was in none of `from`.
    async fn set_campaign_status(
        &self,
        id: Uuid,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Expired leases: `claimed` rows go back to the queue, `sending` rows become `ambiguous`.
    async fn reclaim_expired(&self, now: DateTime<Utc>) -> Result<Vec<Reclaimed>, StoreError>;
    /// Claims up to `limit` eligible messages of running campaigns for `owner` until `lease_until`.
    async fn claim_messages(
        &self,
        owner: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Marks claimed messages `sending` with their attempt ids, only where `owner` still holds
    /// the lease and the campaign still runs; returns the ids marked.
    async fn mark_sending(&self, owner: Uuid, now: DateTime<Utc>, attempts: &[(Uuid, Uuid)]) -> Result<Vec<Uuid>, StoreError>;
    /// Leaves messages `owner` holds (claimed or sending) in their next state.
    async fn settle_messages(&self, owner: Uuid, now: DateTime<Utc>, settled: &[(Uuid, Settle)]) -> Result<u64, StoreError>;
    /// Takes up to `want` tokens from every bucket (`(key, rate per second, debt)`), the same
    /// number from each, on one clock shared by every instance; returns how many.
    async fn take_tokens(&self, buckets: &[(String, f64, f64)], want: u32) -> Result<u32, StoreError>;
}

/// The campaign message counts, by state, of a `GROUP BY` or a scan.
pub(super) fn counts_from(pairs: impl IntoIterator<Item = (MessageState, u64)>) -> Vec<(MessageState, u64)> {
    let mut counts: Vec<(MessageState, u64)> = MessageState::ALL.iter().map(|s| (*s, 0)).collect();
    for (state, n) in pairs {
        if let Some(c) = counts.iter_mut().find(|(s, _)| *s == state) {
            c.1 += n;
        }
    }
    counts
}
