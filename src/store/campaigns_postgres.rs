//! The campaign queue in PostgreSQL, shared by every instance: claims take rows with
//! `FOR UPDATE SKIP LOCKED` under a lease, and every later change checks the lease is still
//! the caller's, so a worker whose lease ran out can no longer send or settle what it held.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::campaigns::{
    counts_from, Campaign, CampaignContent, CampaignKind, CampaignStatus, CampaignStore, Claimed, MessageState, NewCampaign, PageCursor,
    Reclaimed, Settle,
};
use super::{PostgresStore, StoreError};

const CAMPAIGN_COLUMNS: &str = "c.id, c.client, c.name, c.type, c.body, c.status, c.schedule_at, c.max_per_second, \
     c.duplicates, c.invalid, c.created_at, c.updated_at, \
     (SELECT coalesce(jsonb_object_agg(state, n), '{}'::jsonb) FROM \
        (SELECT CASE WHEN m.state = 'sent' AND EXISTS (SELECT 1 FROM sms_messages_log l \
                      WHERE l.message_id = m.message_id AND l.delivery_status = 'delivered') \
                     THEN 'delivered' ELSE m.state END AS state, count(*) AS n \
           FROM sms_campaign_messages m WHERE m.campaign_id = c.id GROUP BY 1) s) AS counts";

fn campaign_from_row(row: &Row) -> Result<Campaign, StoreError> {
    let kind: String = row.get("type");
    let status: String = row.get("status");
    let body: serde_json::Value = row.get("body");
    let counts: serde_json::Value = row.get("counts");
    let counts = counts
        .as_object()
        .ok_or(StoreError::Corrupt("campaign counts"))?
        .iter()
        .map(|(k, v)| {
            Ok((
                MessageState::parse(k).ok_or(StoreError::Corrupt("message state"))?,
                v.as_u64().unwrap_or(0),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Campaign {
        id: row.get("id"),
        client: row.get("client"),
        name: row.get("name"),
        kind: CampaignKind::parse(&kind).ok_or(StoreError::Corrupt("campaign type"))?,
        content: serde_json::from_value::<CampaignContent>(body).map_err(|_| StoreError::Corrupt("campaign body"))?,
        status: CampaignStatus::parse(&status).ok_or(StoreError::Corrupt("campaign status"))?,
        schedule_at: row.get("schedule_at"),
        max_per_second: row.get::<_, Option<i32>>("max_per_second").map(|n| n as u32),
        duplicates: row.get::<_, i32>("duplicates") as u32,
        invalid: row.get::<_, i32>("invalid") as u32,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        counts: counts_from(counts),
    })
}

#[async_trait]
impl CampaignStore for PostgresStore {
    async fn insert_campaign(&self, c: &NewCampaign) -> Result<(), StoreError> {
        self.bounded(async move {
            let mut client = self.pool().get().await?;
            let tx = client.transaction().await?;
            let body = serde_json::to_value(&c.content).map_err(|_| StoreError::Corrupt("campaign body"))?;
            tx.execute(
                "INSERT INTO sms_campaigns (id, client, name, type, body, status, schedule_at, max_per_second, duplicates,
                                            invalid, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $10)",
                &[
                    &c.id,
                    &c.client,
                    &c.name,
                    &c.kind.as_str(),
                    &body,
                    &c.schedule_at,
                    &c.max_per_second.map(|n| n as i32),
                    &(c.duplicates as i32),
                    &(c.invalid as i32),
                    &c.created_at,
                ],
            )
            .await?;
            let ids: Vec<Uuid> = c.recipients.iter().map(|_| Uuid::new_v4()).collect();
            let phones: Vec<&str> = c.recipients.iter().map(|(p, _)| p.as_str()).collect();
            // Per-recipient values travel as JSON arrays: PostgreSQL has no ragged text[][].
            let vars: Vec<serde_json::Value> = c.recipients.iter().map(|(_, v)| serde_json::json!(v)).collect();
            let not_before = c.schedule_at.unwrap_or(c.created_at);
            tx.execute(
                "INSERT INTO sms_campaign_messages (id, campaign_id, seq, phone, vars, state, not_before, updated_at)
                 SELECT r.id, $1, r.seq::integer, r.phone,
                        ARRAY(SELECT jsonb_array_elements_text(r.vars)), 'queued', $5, $6
                 FROM UNNEST($2::uuid[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS r(id, phone, vars, seq)",
                &[&c.id, &ids, &phones, &vars, &not_before, &c.created_at],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_campaign(&self, id: Uuid) -> Result<Option<Campaign>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM sms_campaigns c WHERE c.id = $1");
            client.query_opt(&sql, &[&id]).await?.as_ref().map(campaign_from_row).transpose()
        })
        .await
    }

    async fn list_campaigns(&self, owner: Option<&str>, before: Option<PageCursor>, limit: usize) -> Result<Vec<Campaign>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let sql = format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM sms_campaigns c
                 WHERE ($1::text IS NULL OR c.client = $1)
                   AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3))
                 ORDER BY c.created_at DESC, c.id DESC LIMIT $4"
            );
            let (at, id) = (before.map(|b| b.created_at), before.map(|b| b.id));
            let rows = client.query(&sql, &[&owner, &at, &id, &(limit as i64)]).await?;
            rows.iter().map(campaign_from_row).collect()
        })
        .await
    }

    async fn set_campaign_status(
        &self,
        id: Uuid,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.bounded(async move {
            let mut client = self.pool().get().await?;
            let tx = client.transaction().await?;
            let from: Vec<&str> = from.iter().map(CampaignStatus::as_str).collect();
            let changed = tx
                .execute(
                    "UPDATE sms_campaigns SET status = $2, updated_at = $3 WHERE id = $1 AND status = ANY($4)",
                    &[&id, &to.as_str(), &now, &from],
                )
                .await?;
            if changed == 1 && to == CampaignStatus::Cancelled {
                tx.execute(
                    "UPDATE sms_campaign_messages SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, updated_at = $2
                     WHERE campaign_id = $1 AND state IN ('queued', 'held_quiet_hours', 'claimed')",
                    &[&id, &now],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn reclaim_expired(&self, now: DateTime<Utc>) -> Result<Vec<Reclaimed>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client
                .query(
                    "UPDATE sms_campaign_messages m
                     SET state = CASE WHEN m.state = 'sending' THEN 'ambiguous' ELSE 'queued' END,
                         lease_owner = NULL, lease_until = NULL, updated_at = $1
                     FROM (SELECT id FROM sms_campaign_messages
                           WHERE state IN ('claimed', 'sending') AND lease_until <= $1
                           FOR UPDATE SKIP LOCKED) x
                     WHERE m.id = x.id
                     RETURNING m.id, m.campaign_id, m.state, m.attempt_id",
                    &[&now],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Reclaimed {
                    id: r.get(0),
                    campaign_id: r.get(1),
                    ambiguous_attempt: (r.get::<_, &str>(2) == "ambiguous").then(|| r.get(3)).flatten(),
                })
                .collect())
        })
        .await
    }

    async fn claim_messages(
        &self,
        owner: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE sms_campaign_messages m
                     SET state = 'claimed', lease_owner = $1, lease_until = $3, updated_at = $2
                     FROM (SELECT q.id FROM sms_campaign_messages q
                           JOIN sms_campaigns c ON c.id = q.campaign_id AND c.status = 'running'
                           WHERE q.state IN ('queued', 'held_quiet_hours') AND q.not_before <= $2
                           ORDER BY q.not_before, q.seq
                           LIMIT $4
                           FOR UPDATE OF q SKIP LOCKED) pick
                     WHERE m.id = pick.id
                     RETURNING m.id, m.campaign_id, m.phone, m.vars, m.seq",
                )
                .await?;
            let mut rows = client.query(&stmt, &[&owner, &now, &lease_until, &i64::from(limit)]).await?;
            rows.sort_by_key(|r| r.get::<_, i32>(4));
            Ok(rows
                .iter()
                .map(|r| Claimed {
                    id: r.get(0),
                    campaign_id: r.get(1),
                    phone: r.get(2),
                    vars: r.get(3),
                })
                .collect())
        })
        .await
    }

    async fn mark_sending(&self, owner: Uuid, now: DateTime<Utc>, attempts: &[(Uuid, Uuid)]) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<Uuid> = attempts.iter().map(|a| a.0).collect();
        let attempt_ids: Vec<Uuid> = attempts.iter().map(|a| a.1).collect();
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client
                .query(
                    "UPDATE sms_campaign_messages m SET state = 'sending', attempt_id = a.attempt_id, updated_at = $2
                     FROM UNNEST($3::uuid[], $4::uuid[]) AS a(id, attempt_id), sms_campaigns c
                     WHERE m.id = a.id AND c.id = m.campaign_id AND c.status = 'running'
                       AND m.state = 'claimed' AND m.lease_owner = $1 AND m.lease_until > $2
                     RETURNING m.id",
                    &[&owner, &now, &ids, &attempt_ids],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    async fn settle_messages(&self, owner: Uuid, now: DateTime<Utc>, settled: &[(Uuid, Settle)]) -> Result<u64, StoreError> {
        let mut ids = Vec::new();
        let mut states = Vec::new();
        let mut not_before: Vec<Option<DateTime<Utc>>> = Vec::new();
        let mut message_ids: Vec<Option<Uuid>> = Vec::new();
        let mut providers: Vec<Option<String>> = Vec::new();
        let mut errors: Vec<Option<String>> = Vec::new();
        for (id, s) in settled {
            ids.push(*id);
            states.push(s.state().as_str());
            let (nb, mid, provider, error) = match s {
                Settle::SkippedOptOut => (None, None, None, None),
                Settle::Requeue { not_before, .. } => (Some(*not_before), None, None, None),
                Settle::Sent { message_id, provider } => (None, Some(*message_id), Some(provider.clone()), None),
                Settle::Failed { message_id, error } | Settle::Ambiguous { message_id, error } => {
                    (None, *message_id, None, Some(error.clone()))
                }
            };
            not_before.push(nb);
            message_ids.push(mid);
            providers.push(provider);
            errors.push(error);
        }
        self.bounded(async move {
            let client = self.pool().get().await?;
            let n = client
                .execute(
                    "UPDATE sms_campaign_messages m
                     SET state = s.state, not_before = coalesce(s.not_before, m.not_before),
                         message_id = coalesce(s.message_id, m.message_id), provider = coalesce(s.provider, m.provider),
                         error = s.error, lease_owner = NULL, lease_until = NULL, updated_at = $2
                     FROM UNNEST($3::uuid[], $4::text[], $5::timestamptz[], $6::uuid[], $7::text[], $8::text[])
                          AS s(id, state, not_before, message_id, provider, error)
                     WHERE m.id = s.id AND m.lease_owner = $1 AND m.state IN ('claimed', 'sending')",
                    &[&owner, &now, &ids, &states, &not_before, &message_ids, &providers, &errors],
                )
                .await?;
            Ok(n)
        })
        .await
    }

    async fn take_tokens(&self, buckets: &[(String, f64, f64)], want: u32) -> Result<u32, StoreError> {
        let keys: Vec<&str> = buckets.iter().map(|b| b.0.as_str()).collect();
        let rates: Vec<f64> = buckets.iter().map(|b| b.1).collect();
        let debts: Vec<f64> = buckets.iter().map(|b| b.2).collect();
        self.bounded(async move {
            let client = self.pool().get().await?;
            let row = client
                .query_one(
                    "SELECT smsgate_take_tokens($1::text[], $2::float8[], $3::float8[], $4)",
                    &[&keys, &rates, &debts, &(want as i32)],
                )
                .await?;
            Ok(row.get::<_, i32>(0).max(0) as u32)
        })
        .await
    }
}
