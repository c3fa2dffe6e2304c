//! Campaigns: bulk sends to many recipients. A campaign is stored with its recipients at once
//! (parsed to E.164, deduplicated, invalid ones listed), then `worker`s on every instance send
//! it from the queue in the store, honouring opt-outs, quiet hours and each provider's
//! throughput, through the same send path as a single message (`send`).

pub mod quiet_hours;
pub mod recipients;
pub mod send;
pub mod throughput;
pub mod twilio_inbound;
pub mod worker;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::phone::Phone;
use crate::service::{Gateway, Tenant};
use crate::store::campaigns::{Campaign, CampaignContent, CampaignKind, CampaignStatus, MessageState, NewCampaign, PageCursor};
use crate::store::opt_outs::OptOut;
use crate::store::StoreError;

pub use recipients::{Invalid, RawRecipient, Recipients};
pub use worker::Workers;

/// A campaign as a request asks for it.
#[derive(Debug, Clone)]
pub struct CampaignRequest {
    pub name: String,
    pub kind: CampaignKind,
    pub content: CampaignContent,
    /// Each with its position in the request, for the invalid list.
    pub recipients: Vec<(usize, RawRecipient)>,
    pub schedule_at: Option<DateTime<Utc>>,
    pub max_per_second: Option<u32>,
}

/// A stored campaign's first answer.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: Uuid,
    pub queued: usize,
    pub duplicates: u32,
    pub invalid: Vec<Invalid>,
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{count} recipients is more than the {max} a campaign may have")]
    TooManyRecipients { count: usize, max: usize },
    #[error("no recipient is a valid phone number")]
    NoValidRecipients { invalid: Vec<Invalid> },
    #[error("no such campaign")]
    NotFound,
    #[error("the campaign is {status}; it cannot be {action}")]
    WrongState { status: &'static str, action: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A campaign's status as shown: what the operator asked, `scheduled` before its start, and
/// `done` once nothing is left to send.
pub fn shown_status(c: &Campaign, now: DateTime<Utc>) -> &'static str {
    let open: u64 = c.counts.iter().filter(|(s, _)| s.is_open()).map(|(_, n)| n).sum();
    match c.status {
        CampaignStatus::Running if open == 0 => "done",
        CampaignStatus::Running if c.schedule_at.is_some_and(|at| at > now) => "scheduled",
        other => other.as_str(),
    }
}

/// Which opt-out scopes exist: `promotional` blocks promotional campaigns, `all` every campaign.
pub const OPT_OUT_SCOPES: [&str; 2] = ["promotional", "all"];

/// The opt-out scopes that block a campaign message of `kind`: any for a promotional one, `all`
/// for a transactional one. OTPs are never checked.
pub fn blocking_scopes(kind: CampaignKind) -> &'static [&'static str] {
    match kind {
        CampaignKind::Promotional => &OPT_OUT_SCOPES,
        CampaignKind::Transactional => &["all"],
    }
}

impl Gateway {
    /// Stores a campaign and its recipients (all or nothing); workers send it from the queue.
    pub async fn create_campaign(&self, tenant: &Tenant, req: CampaignRequest) -> Result<Created, CampaignError> {
        let max = self.settings.campaigns.max_recipients;
        if req.recipients.len() > max {
            return Err(CampaignError::TooManyRecipients {
                count: req.recipients.len(),
                max,
            });
        }
        let recipients = Recipients::collect(req.recipients, &self.settings.otp.default_country);
        if recipients.unique.is_empty() {
            return Err(CampaignError::NoValidRecipients {
                invalid: recipients.invalid,
            });
        }
        let id = Uuid::new_v4();
        let campaign = NewCampaign {
            id,
            client: tenant.client.clone(),
            name: req.name,
            kind: req.kind,
            content: req.content,
            schedule_at: req.schedule_at,
            max_per_second: req.max_per_second,
            duplicates: recipients.duplicates,
            invalid: recipients.invalid.len() as u32,
            created_at: self.clock.now(),
            recipients: recipients.unique,
        };
        self.store.insert_campaign(&campaign).await?;
        tracing::info!(campaign = %id, recipients = campaign.recipients.len(), kind = req.kind.as_str(), "campaign queued");
        Ok(Created {
            id,
            queued: campaign.recipients.len(),
            duplicates: recipients.duplicates,
            invalid: recipients.invalid,
        })
    }

    /// The campaign, when `tenant` may see it.
    pub async fn campaign(&self, tenant: &Tenant, id: Uuid) -> Result<Campaign, CampaignError> {
        match self.store.get_campaign(id).await? {
            Some(c) if tenant.may_see(&c.client) => Ok(c),
            _ => Err(CampaignError::NotFound),
        }
    }

    /// A page of the campaigns `tenant` sees, newest first, and the cursor of the next page.
    pub async fn campaigns(
        &self,
        tenant: &Tenant,
        before: Option<PageCursor>,
        limit: usize,
    ) -> Result<(Vec<Campaign>, Option<PageCursor>), CampaignError> {
        let owner = (!tenant.sees_every_app).then_some(tenant.client.as_str());
        let mut page = self.store.list_campaigns(owner, before, limit + 1).await?;
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|c| PageCursor {
                created_at: c.created_at,
                id: c.id,
            })
        });
        Ok((page, next.flatten()))
    }

    /// Stops workers from starting more of the campaign's messages (those in flight finish).
    pub async fn pause_campaign(&self, tenant: &Tenant, id: Uuid) -> Result<Campaign, CampaignError> {
        self.move_campaign(tenant, id, &[CampaignStatus::Running], CampaignStatus::Paused, "paused")
            .await
    }

    pub async fn resume_campaign(&self, tenant: &Tenant, id: Uuid) -> Result<Campaign, CampaignError> {
        self.move_campaign(tenant, id, &[CampaignStatus::Paused], CampaignStatus::Running, "resumed")
            .await
    }

    /// Cancels every message not yet started; the campaign cannot be resumed.
    pub async fn cancel_campaign(&self, tenant: &Tenant, id: Uuid) -> Result<Campaign, CampaignError> {
        let from = [CampaignStatus::Running, CampaignStatus::Paused];
        self.move_campaign(tenant, id, &from, CampaignStatus::Cancelled, "cancelled").await
    }

    async fn move_campaign(
        &self,
        tenant: &Tenant,
        id: Uuid,
        from: &[CampaignStatus],
        to: CampaignStatus,
        action: &'static str,
    ) -> Result<Campaign, CampaignError> {
        let before = self.campaign(tenant, id).await?;
        let done = shown_status(&before, self.clock.now()) == "done";
        if done || !self.store.set_campaign_status(id, from, to, self.clock.now()).await? {
            let now = self.campaign(tenant, id).await?;
            return Err(CampaignError::WrongState {
                status: shown_status(&now, self.clock.now()),
                action,
            });
        }
        tracing::info!(campaign = %id, status = to.as_str(), "campaign {action}");
        self.campaign(tenant, id).await
    }

    /// Opts `phone` out of campaign messages of `scope`; returns whether it was new.
    pub async fn add_opt_out(&self, phone: &Phone, scope: &str, source: &str) -> Result<bool, StoreError> {
        let opt_out = OptOut {
            phone: phone.e164().to_string(),
            scope: scope.to_string(),
            source: source.to_string(),
            created_at: self.clock.now(),
        };
        let added = self.store.add_opt_out(&opt_out).await?;
        if added {
            tracing::info!(phone = %phone.masked(), scope, source, "opted out");
        }
        Ok(added)
    }

    /// Removes `phone`'s opt-outs of `scope` (every scope when `None`); returns how many.
    pub async fn remove_opt_out(&self, phone: &Phone, scope: Option<&str>) -> Result<u64, StoreError> {
        self.store.remove_opt_out(phone.e164(), scope).await
    }

    pub async fn opt_outs(&self, phone: Option<&Phone>, after: Option<&str>, limit: usize) -> Result<Vec<OptOut>, StoreError> {
        self.store.list_opt_outs(phone.map(Phone::e164), after, limit).await
    }
}

/// The counts a campaign's progress shows, by name.
pub fn progress(c: &Campaign) -> serde_json::Value {
    let n = |s: MessageState| c.count(s);
    serde_json::json!({
        "total": c.counts.iter().map(|(_, n)| n).sum::<u64>(),
        "queued": n(MessageState::Queued) + n(MessageState::Claimed),
        "sending": n(MessageState::Sending),
        "sent": n(MessageState::Sent) + n(MessageState::Delivered),
        "delivered": n(MessageState::Delivered),
        "failed": n(MessageState::Failed),
        "skipped_opt_out": n(MessageState::SkippedOptOut),
        "held_quiet_hours": n(MessageState::HeldQuietHours),
        "ambiguous": n(MessageState::Ambiguous),
        "cancelled": n(MessageState::Cancelled),
        "duplicate": c.duplicates,
        "invalid": c.invalid,
    })
}
