//! Campaign workers: background tasks on every instance that claim batches from the queue under
//! a lease, skip opted-out numbers, hold promotional messages in quiet hours, pace sends with the
//! shared token buckets, and mark each message `sending` before its provider call so that a
//! worker dying mid-batch leaves ambiguous rows, never a resend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::throughput::{campaign_key, provider_key, OtpMeter};
use super::{quiet_hours, send};
use crate::phone::Phone;
use crate::service::Gateway;
use crate::store::campaigns::{Campaign, CampaignKind, Claimed, Settle};
use crate::store::StoreError;

/// Provider calls one worker makes at once.
const CONCURRENCY: usize = 16;

/// The running workers of one instance.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// What the workers of one instance share.
struct Shared {
    gateway: Arc<Gateway>,
    meter: OtpMeter,
    /// Campaign content never changes once stored; status is checked where it matters (claim,
    /// `mark_sending`).
    campaigns: Mutex<HashMap<Uuid, Arc<Campaign>>>,
}

impl Workers {
    /// Starts `[campaigns] workers` tasks.
    pub fn spawn(gateway: Arc<Gateway>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let count = gateway.settings().campaigns.workers;
        let shared = Arc::new(Shared {
            meter: OtpMeter::new(gateway.metrics().clone()),
            gateway,
            campaigns: Mutex::new(HashMap::new()),
        });
        let handles = (0..count)
            .map(|_| tokio::spawn(run(Arc::clone(&shared), Uuid::new_v4(), stopped.clone())))
            .collect();
        Self { stop, handles }
    }

    /// Asks every worker to stop after its current batch, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

async fn run(shared: Arc<Shared>, owner: Uuid, mut stopped: watch::Receiver<bool>) {
    let poll = Duration::from_millis(shared.gateway.settings().campaigns.poll_ms);
    tracing::debug!(worker = %owner, "campaign worker started");
    while !*stopped.borrow() {
        let worked = match batch(&shared, owner, &stopped).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(worker = %owner, error = ?e, "campaign batch failed; retrying after the poll interval");
                0
            }
        };
        if worked == 0 {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stopped.changed() => {}
            }
        }
    }
    tracing::debug!(worker = %owner, "campaign worker stopped");
}

/// Reclaims expired leases, claims one batch and works it; returns how many messages it claimed.
async fn batch(shared: &Shared, owner: Uuid, stopped: &watch::Receiver<bool>) -> Result<usize, StoreError> {
    let gw = &shared.gateway;
    let cfg = &gw.settings().campaigns;
    let store = &gw.store;
    let now = gw.clock().now();
    for r in store.reclaim_expired(now).await? {
        match r.ambiguous_attempt {
            Some(attempt) => {
                gw.metrics().campaign_messages.with_label_values(&["ambiguous"]).inc();
                tracing::warn!(campaign = %r.campaign_id, message = %r.id, attempt = %attempt,
                    "a campaign message's lease ran out while it was being sent: it may have gone out, so it is marked ambiguous and not resent");
            }
            None => {
                tracing::info!(campaign = %r.campaign_id, message = %r.id, "a claimed campaign message's lease ran out; back in the queue")
            }
        }
    }
    let lease_until = now + chrono::Duration::seconds(i64::from(cfg.lease_seconds));
    let claimed = store.claim_messages(owner, now, lease_until, cfg.batch_size).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let count = claimed.len();
    let mut by_campaign: HashMap<Uuid, Vec<Claimed>> = HashMap::new();
    for c in claimed {
        by_campaign.entry(c.campaign_id).or_default().push(c);
    }
    for (id, messages) in by_campaign {
        let Some(campaign) = campaign(shared, id).await? else { continue };
        work_campaign(shared, owner, &campaign, messages, stopped).await?;
    }
    Ok(count)
}

async fn campaign(shared: &Shared, id: Uuid) -> Result<Option<Arc<Campaign>>, StoreError> {
    if let Some(c) = shared.campaigns.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return Ok(Some(Arc::clone(c)));
    }
    let Some(c) = shared.gateway.store.get_campaign(id).await? else {
        return Ok(None);
    };
    let c = Arc::new(c);
    shared
        .campaigns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, Arc::clone(&c));
    Ok(Some(c))
}

/// Works the messages of one campaign in a batch: opt-outs, quiet hours, then paced sends.
async fn work_campaign(
    shared: &Shared,
    owner: Uuid,
    campaign: &Campaign,
    messages: Vec<Claimed>,
    stopped: &watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let gw = &shared.gateway;
    let now = gw.clock().now();
    let phones: Vec<String> = messages.iter().map(|m| m.phone.clone()).collect();
    let opted_out = gw.store.opted_out(&phones, super::blocking_scopes(campaign.kind)).await?;
    let mut settled: Vec<(Uuid, Settle)> = Vec::new();
    // Ready messages by the provider that would carry them (None: no provider can).
    let mut ready: HashMap<Option<String>, Vec<(Claimed, Phone)>> = HashMap::new();
    let registry = gw.router().registry();
    let default_country = &gw.settings().otp.default_country;
    for m in messages {
        if opted_out.contains(&m.phone) {
            settled.push((m.id, Settle::SkippedOptOut));
            continue;
        }
        let Ok(phone) = Phone::parse(&m.phone, default_country) else {
            settled.push((
                m.id,
                Settle::Failed {
                    message_id: None,
                    error: "stored number no longer parses".into(),
                },
            ));
            continue;
        };
        if campaign.kind == CampaignKind::Promotional {
            let rule = quiet_hours::rule_for(&gw.settings().campaigns.quiet_hours, &phone);
            if let Some(until) = rule.and_then(|(_, r)| quiet_hours::held_until(now, r)) {
                settled.push((
                    m.id,
                    Settle::Requeue {
                        not_before: until,
                        held: true,
                    },
                ));
                continue;
            }
        }
        let body = send::body_for(campaign, &m);
        let provider = registry.candidates(&body, &phone, None).first().map(|s| s.name().to_string());
        ready.entry(provider).or_default().push((m, phone));
    }
    count(gw, &settled);
    gw.store.settle_messages(owner, now, &settled).await?;
    for (provider, group) in ready {
        send_paced(shared, owner, campaign, provider, group, stopped).await?;
    }
    Ok(())
}

/// Sends `group` (all bound for `provider`) as fast as the shared buckets allow: take tokens,
/// mark that many `sending`, send them, settle them; repeat.
async fn send_paced(
    shared: &Shared,
    owner: Uuid,
    campaign: &Campaign,
    provider: Option<String>,
    mut group: Vec<(Claimed, Phone)>,
    stopped: &watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let gw = &shared.gateway;
    let poll = Duration::from_millis(gw.settings().campaigns.poll_ms);
    let reserve = f64::from(gw.settings().campaigns.otp_reserve_percent) / 100.0;
    let cap = provider
        .as_deref()
        .and_then(|p| provider_cap(gw, p))
        .map(|c| (c * (1.0 - reserve)).max(1.0));
    let mut buckets: Vec<(String, f64, f64)> = Vec::new();
    if let (Some(p), Some(rate)) = (&provider, cap) {
        buckets.push((provider_key(p), rate, 0.0));
    }
    if let Some(rate) = campaign.max_per_second {
        buckets.push((campaign_key(campaign.id), f64::from(rate), 0.0));
    }
    group.reverse();
    while !group.is_empty() {
        let now = gw.clock().now();
        if *stopped.borrow() {
            // Shutting down: what was not started goes back to the queue for any instance.
            let back: Vec<(Uuid, Settle)> = group
                .iter()
                .map(|(m, _)| {
                    (
                        m.id,
                        Settle::Requeue {
                            not_before: now,
                            held: false,
                        },
                    )
                })
                .collect();
            gw.store.settle_messages(owner, now, &back).await?;
            return Ok(());
        }
        if let (Some(p), Some(first)) = (&provider, buckets.first_mut()) {
            first.2 = shared.meter.take(p) as f64;
        }
        let want = group.len().min(CONCURRENCY) as u32;
        let granted = if buckets.is_empty() {
            want
        } else {
            gw.store.take_tokens(&buckets, want).await?
        };
        if granted == 0 {
            let slowest = buckets.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
            let wait = Duration::from_secs_f64(1.0 / slowest.max(1.0)).min(poll);
            tokio::time::sleep(wait).await;
            continue;
        }
        let chunk: Vec<(Claimed, Phone)> = group.split_off(group.len() - granted as usize);
        let attempts: Vec<(Uuid, Uuid)> = chunk.iter().map(|(m, _)| (m.id, Uuid::new_v4())).collect();
        let marked = gw.store.mark_sending(owner, now, &attempts).await?;
        if marked.len() < chunk.len() {
            // Paused, cancelled, or the lease is gone: leave what is still ours in the queue.
            let back: Vec<(Uuid, Settle)> = chunk
                .iter()
                .chain(group.iter())
                .filter(|(m, _)| !marked.contains(&m.id))
                .map(|(m, _)| {
                    (
                        m.id,
                        Settle::Requeue {
                            not_before: now,
                            held: false,
                        },
                    )
                })
                .collect();
            gw.store.settle_messages(owner, now, &back).await?;
            group.clear();
        }
        let routable = provider.is_some();
        let mut sends = Vec::with_capacity(chunk.len());
        for (m, phone) in &chunk {
            if marked.contains(&m.id) {
                sends.push(send_or_fail(gw, campaign, m, phone, routable));
            }
        }
        let settled: Vec<(Uuid, Settle)> = futures::stream::iter(sends).buffer_unordered(CONCURRENCY).collect().await;
        count(gw, &settled);
        gw.store.settle_messages(owner, gw.clock().now(), &settled).await?;
    }
    Ok(())
}

async fn send_or_fail(gw: &Gateway, campaign: &Campaign, m: &Claimed, phone: &Phone, routable: bool) -> (Uuid, Settle) {
    let settle = if routable {
        send::send_one(gw, campaign, m, phone.clone()).await
    } else {
        Settle::Failed {
            message_id: None,
            error: "no configured provider can send this message".into(),
        }
    };
    (m.id, settle)
}

/// The provider's `max_per_second`, when it has one.
fn provider_cap(gw: &Gateway, provider: &str) -> Option<f64> {
    gw.settings()
        .providers
        .iter()
        .find(|p| p.name() == provider)
        .and_then(|p| p.max_per_second())
        .map(f64::from)
}

fn count(gw: &Gateway, settled: &[(Uuid, Settle)]) {
    for (_, s) in settled {
        gw.metrics().campaign_messages.with_label_values(&[s.state().as_str()]).inc();
    }
}
