//! The campaign queue in memory: one process's workers share it under one mutex, with the
//! same states, leases and buckets as PostgreSQL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::campaigns::{
    counts_from, Campaign, CampaignStatus, CampaignStore, Claimed, MessageState, NewCampaign, PageCursor, Reclaimed, Settle,
};
use super::{MemoryStore, StoreError};

#[derive(Default)]
pub(super) struct MemoryCampaigns {
    inner: Mutex<Inner>,
    /// Opt-outs by (phone, scope) (`opt_outs`).
    pub(super) opt_outs: Mutex<std::collections::BTreeMap<(String, String), super::opt_outs::OptOut>>,
}

#[derive(Default)]
struct Inner {
    campaigns: HashMap<Uuid, Campaign>,
    /// In insertion order, which is claim order among equally eligible rows.
    messages: Vec<Row>,
    buckets: HashMap<String, (f64, Instant)>,
}

struct Row {
    id: Uuid,
    campaign_id: Uuid,
    phone: String,
    vars: Vec<String>,
    state: MessageState,
    not_before: DateTime<Utc>,
    lease: Option<(Uuid, DateTime<Utc>)>,
    attempt_id: Option<Uuid>,
    /// The `message_id` of its attempt rows, once sent.
    message_id: Option<Uuid>,
}

impl MemoryCampaigns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// `c` with its messages counted; a sent message whose receipt said delivered counts as
    /// delivered.
    fn with_counts(&self, c: &Campaign, delivered: &std::collections::HashSet<Uuid>) -> Campaign {
        let rows = self.messages.iter().filter(|m| m.campaign_id == c.id);
        let state = |m: &Row| match m.state {
            MessageState::Sent if m.message_id.is_some_and(|id| delivered.contains(&id)) => MessageState::Delivered,
            s => s,
        };
        Campaign {
            counts: counts_from(rows.map(|m| (state(m), 1))),
            ..c.clone()
        }
    }

    fn running(&self, campaign: Uuid) -> bool {
        self.campaigns.get(&campaign).is_some_and(|c| c.status == CampaignStatus::Running)
    }
}

impl MemoryStore {
    /// Message ids whose delivery receipt said delivered.
    fn delivered_messages(&self) -> std::collections::HashSet<Uuid> {
        let inner = self.lock();
        inner
            .attempts
            .iter()
            .filter(|a| {
                a.delivery
                    .as_ref()
                    .is_some_and(|d| d.status == super::receipts::DeliveryStatus::Delivered)
            })
            .map(|a| a.message_id)
            .collect()
    }
}

#[async_trait]
impl CampaignStore for MemoryStore {
    async fn insert_campaign(&self, new: &NewCampaign) -> Result<(), StoreError> {
        let mut inner = self.campaigns.lock();
        let campaign = Campaign {
            id: new.id,
            client: new.client.clone(),
            name: new.name.clone(),
            kind: new.kind,
            content: new.content.clone(),
            status: CampaignStatus::Running,
            schedule_at: new.schedule_at,
            max_per_second: new.max_per_second,
            duplicates: new.duplicates,
            invalid: new.invalid,
            created_at: new.created_at,
            updated_at: new.created_at,
            counts: Vec::new(),
        };
        let not_before = new.schedule_at.unwrap_or(new.created_at);
        inner.campaigns.insert(new.id, campaign);
        for (phone, vars) in &new.recipients {
            inner.messages.push(Row {
                id: Uuid::new_v4(),
                campaign_id: new.id,
                phone: phone.clone(),
                vars: vars.clone(),
                state: MessageState::Queued,
                not_before,
                lease: None,
                attempt_id: None,
                message_id: None,
            });
        }
        Ok(())
    }

    async fn get_campaign(&self, id: Uuid) -> Result<Option<Campaign>, StoreError> {
        let delivered = self.delivered_messages();
        let inner = self.campaigns.lock();
        Ok(inner.campaigns.get(&id).map(|c| inner.with_counts(c, &delivered)))
    }

    async fn list_campaigns(&self, client: Option<&str>, before: Option<PageCursor>, limit: usize) -> Result<Vec<Campaign>, StoreError> {
        let delivered = self.delivered_messages();
        let inner = self.campaigns.lock();
        let mut all: Vec<&Campaign> = inner
            .campaigns
            .values()
            .filter(|c| client.is_none_or(|cl| c.client == cl))
            .filter(|c| before.is_none_or(|b| (c.created_at, c.id) < (b.created_at, b.id)))
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
        Ok(all.into_iter().take(limit).map(|c| inner.with_counts(c, &delivered)).collect())
    }

    async fn set_campaign_status(
        &self,
        id: Uuid,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.campaigns.lock();
        let Some(c) = inner.campaigns.get_mut(&id).filter(|c| from.contains(&c.status)) else {
            return Ok(false);
        };
        c.status = to;
        c.updated_at = now;
        if to == CampaignStatus::Cancelled {
            for m in inner.messages.iter_mut().filter(|m| m.campaign_id == id) {
                if matches!(m.state, MessageState::Queued | MessageState::HeldQuietHours | MessageState::Claimed) {
                    m.state = MessageState::Cancelled;
                    m.lease = None;
                }
            }
        }
        Ok(true)
    }

    async fn reclaim_expired(&self, now: DateTime<Utc>) -> Result<Vec<Reclaimed>, StoreError> {
        let mut inner = self.campaigns.lock();
        let mut out = Vec::new();
        for m in inner.messages.iter_mut() {
            let expired = m.lease.is_some_and(|(_, until)| until <= now);
            if !expired || !matches!(m.state, MessageState::Claimed | MessageState::Sending) {
                continue;
            }
            m.lease = None;
            let ambiguous_attempt = if m.state == MessageState::Sending {
                m.state = MessageState::Ambiguous;
                m.attempt_id
            } else {
                m.state = MessageState::Queued;
                None
            };
            out.push(Reclaimed {
                id: m.id,
                campaign_id: m.campaign_id,
                ambiguous_attempt,
            });
        }
        Ok(out)
    }

    async fn claim_messages(
        &self,
        owner: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut guard = self.campaigns.lock();
        let inner = &mut *guard;
        let mut ready: Vec<usize> = (0..inner.messages.len())
            .filter(|&i| {
                let m = &inner.messages[i];
                matches!(m.state, MessageState::Queued | MessageState::HeldQuietHours)
                    && m.not_before <= now
                    && inner
                        .campaigns
                        .get(&m.campaign_id)
                        .is_some_and(|c| c.status == CampaignStatus::Running)
            })
            .collect();
        ready.sort_by_key(|&i| inner.messages[i].not_before);
        ready.truncate(limit as usize);
        Ok(ready
            .into_iter()
            .map(|i| {
                let m = &mut inner.messages[i];
                m.state = MessageState::Claimed;
                m.lease = Some((owner, lease_until));
                Claimed {
                    id: m.id,
                    campaign_id: m.campaign_id,
                    phone: m.phone.clone(),
                    vars: m.vars.clone(),
                }
            })
            .collect())
    }

    async fn mark_sending(&self, owner: Uuid, now: DateTime<Utc>, attempts: &[(Uuid, Uuid)]) -> Result<Vec<Uuid>, StoreError> {
        let mut guard = self.campaigns.lock();
        let inner = &mut *guard;
        let mut marked = Vec::new();
        for (id, attempt) in attempts {
            let Some(i) = inner.messages.iter().position(|m| m.id == *id) else {
                continue;
            };
            let campaign = inner.messages[i].campaign_id;
            let running = inner.running(campaign);
            let m = &mut inner.messages[i];
            let held = m.lease.is_some_and(|(o, until)| o == owner && until > now);
            if m.state == MessageState::Claimed && held && running {
                m.state = MessageState::Sending;
                m.attempt_id = Some(*attempt);
                marked.push(*id);
            }
        }
        Ok(marked)
    }

    async fn settle_messages(&self, owner: Uuid, _now: DateTime<Utc>, settled: &[(Uuid, Settle)]) -> Result<u64, StoreError> {
        let mut inner = self.campaigns.lock();
        let mut n = 0;
        for (id, settle) in settled {
            let Some(m) = inner.messages.iter_mut().find(|m| m.id == *id) else {
                continue;
            };
            let mine = m.lease.is_some_and(|(o, _)| o == owner);
            if !mine || !matches!(m.state, MessageState::Claimed | MessageState::Sending) {
                continue;
            }
            m.state = settle.state();
            m.lease = None;
            match settle {
                Settle::Requeue { not_before, .. } => m.not_before = *not_before,
                Settle::Sent { message_id, .. } => m.message_id = Some(*message_id),
                _ => {}
            }
            n += 1;
        }
        Ok(n)
    }

    async fn take_tokens(&self, buckets: &[(String, f64, f64)], want: u32) -> Result<u32, StoreError> {
        let mut inner = self.campaigns.lock();
        let now = Instant::now();
        let mut avail = Vec::with_capacity(buckets.len());
        let mut grant = want;
        for (key, rate, debt) in buckets {
            let (tokens, at) = *inner.buckets.entry(key.clone()).or_insert((0.0, now));
            let t = ((tokens + rate * now.duration_since(at).as_secs_f64()).min(*rate) - debt).max(-rate);
            grant = grant.min(t.max(0.0).floor() as u32);
            avail.push(t);
        }
        for ((key, _, _), t) in buckets.iter().zip(avail) {
            inner.buckets.insert(key.clone(), (t - f64::from(grant), now));
        }
        Ok(grant)
    }
}
