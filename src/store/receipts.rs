//! Delivery receipts: what a provider later says became of a message it accepted. A receipt is
//! kept by (provider, reference) and written onto the attempt that carries that reference. The
//! attempt log is group-committed, so a receipt can arrive before its attempt row: it is kept
//! and the row takes it when it is written (and `match_pending_receipts` closes the window of a
//! receipt and its row committing at the same instant).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{MemoryStore, PostgresStore, StoreError};

/// What the carrier did with the message, in the words every provider maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Delivered,
    /// The carrier could not deliver it (handset off too long, expired, rejected by the carrier).
    Undelivered,
    /// The provider could not send it at all.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// The delivery an attempt row shows once its receipt arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub status: DeliveryStatus,
    /// The provider's own error code, as it sent it.
    pub error_code: Option<String>,
    /// When the provider says it happened (else when the receipt arrived).
    pub at: DateTime<Utc>,
}

/// One receipt as a provider pushed it, after its authentication was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The configured provider name (the `{provider}` of the webhook path).
    pub provider: String,
    /// The provider's id of the message (the attempt row's `provider_ref`).
    pub reference: String,
    pub delivery: Delivery,
    pub received_at: DateTime<Utc>,
}

/// What storing a receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Written onto the attempt, sent at `sent_at` to `to`.
    Matched { sent_at: DateTime<Utc>, to: String },
    /// Kept; no attempt carries the reference yet.
    Pending,
    /// The same receipt (or an older one than what is kept) arrived again: nothing changed.
    Duplicate,
}

/// Receipts; part of every `Store`.
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Keeps `receipt` (another status at least as new replaces the kept one; the same status
    /// or an older event changes nothing) and writes it onto the attempt carrying its reference.
    async fn record_receipt(&self, receipt: &Receipt) -> Result<ReceiptOutcome, StoreError>;
    /// Writes kept receipts received since `since` onto attempts that do not show them yet;
    /// returns how many attempts changed.
    async fn match_pending_receipts(&self, since: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Writes the kept receipt of (`provider`, `reference`) onto its attempt if the attempt does
    /// not show it yet; returns the attempt's send time and destination once the attempt exists
    /// (it may have taken the receipt itself as it was written).
    async fn match_receipt(&self, provider: &str, reference: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError>;
}

/// Whether `new` should replace `kept`: another status, no older than the kept one. The same
/// status again is a duplicate even when stamped later (a provider without event times is
/// stamped with the arrival time).
fn replaces(kept: &Delivery, new: &Delivery) -> bool {
    new.status != kept.status && new.at >= kept.at
}

#[async_trait]
impl ReceiptStore for MemoryStore {
    async fn record_receipt(&self, receipt: &Receipt) -> Result<ReceiptOutcome, StoreError> {
        let mut inner = self.lock();
        let key = (receipt.provider.clone(), receipt.reference.clone());
        if let Some(kept) = inner.receipts.get(&key) {
            if !replaces(&kept.delivery, &receipt.delivery) {
                return Ok(ReceiptOutcome::Duplicate);
            }
        }
        inner.receipts.insert(key, receipt.clone());
        let mut sent = None;
        for a in inner.attempts.iter_mut() {
            if a.provider == receipt.provider && a.provider_ref.as_deref() == Some(receipt.reference.as_str()) {
                a.delivery = Some(receipt.delivery.clone());
                sent = Some((a.created_at, a.to.clone()));
            }
        }
        Ok(match sent {
            Some((sent_at, to)) => ReceiptOutcome::Matched { sent_at, to },
            None => ReceiptOutcome::Pending,
        })
    }

    async fn match_pending_receipts(&self, _since: DateTime<Utc>) -> Result<u64, StoreError> {
        // Attempts take their kept receipt as they are written, under the same lock.
        Ok(0)
    }

    async fn match_receipt(&self, provider: &str, reference: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        let mut inner = self.lock();
        let Some(kept) = inner.receipts.get(&(provider.to_string(), reference.to_string())).cloned() else {
            return Ok(None);
        };
        let mut sent_at = None;
        for a in inner.attempts.iter_mut() {
            if a.provider == provider && a.provider_ref.as_deref() == Some(reference) {
                a.delivery = Some(kept.delivery.clone());
                sent_at = Some((a.created_at, a.to.clone()));
            }
        }
        Ok(sent_at)
    }
}

#[async_trait]
impl ReceiptStore for PostgresStore {
    async fn record_receipt(&self, r: &Receipt) -> Result<ReceiptOutcome, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let stmt = client.prepare_cached(RECORD_SQL).await?;
            let row = client
                .query_one(
                    &stmt,
                    &[
                        &r.provider,
                        &r.reference,
                        &r.delivery.status.as_str(),
                        &r.delivery.error_code,
                        &r.delivery.at,
                        &r.received_at,
                    ],
                )
                .await?;
            let kept: i64 = row.get(0);
            let sent_at: Option<DateTime<Utc>> = row.get(1);
            let to: Option<String> = row.get(2);
            Ok(match (kept, sent_at, to) {
                (0, _, _) => ReceiptOutcome::Duplicate,
                (_, Some(sent_at), Some(to)) => ReceiptOutcome::Matched { sent_at, to },
                _ => ReceiptOutcome::Pending,
            })
        })
        .await
    }

    async fn match_pending_receipts(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            Ok(client
                .execute(
                    "UPDATE sms_messages_log l
                        SET delivery_status = r.status, delivery_error = r.error_code, delivered_at = r.event_at
                       FROM sms_receipts r
                      WHERE r.received_at >= $1
                        AND l.provider_name = r.provider AND l.provider_ref = r.reference
                        AND l.delivered_at IS DISTINCT FROM r.event_at",
                    &[&since],
                )
                .await?)
        })
        .await
    }

    async fn match_receipt(&self, provider: &str, reference: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client.query(MATCH_ONE_SQL, &[&provider, &reference]).await?;
            Ok(rows.iter().map(|r| (r.get::<_, DateTime<Utc>>(0), r.get::<_, String>(1))).min())
        })
        .await
    }
}

/// Writes one kept receipt onto its attempt(s) that do not show it yet; answers the attempts that
/// carry the reference (written now, or earlier as they were inserted).
const MATCH_ONE_SQL: &str = r#"
WITH written AS (
    UPDATE sms_messages_log l
       SET delivery_status = r.status, delivery_error = r.error_code, delivered_at = r.event_at
      FROM sms_receipts r
     WHERE r.provider = $1 AND r.reference = $2
       AND l.provider_name = r.provider AND l.provider_ref = r.reference
       AND l.delivered_at IS DISTINCT FROM r.event_at
    RETURNING l.created_at, l."to"
)
SELECT created_at, "to" FROM written
UNION ALL
SELECT l.created_at, l."to" FROM sms_messages_log l
 WHERE l.provider_name = $1 AND l.provider_ref = $2 AND NOT EXISTS (SELECT 1 FROM written)
"#;

/// Keeps the receipt unless one as new is kept already, then writes it onto its attempt(s).
/// Answers (receipts kept: 0 or 1, the attempt's send time when one carries the reference).
const RECORD_SQL: &str = r#"
WITH kept AS (
    INSERT INTO sms_receipts AS r (provider, reference, status, error_code, event_at, received_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (provider, reference) DO UPDATE
       SET status = EXCLUDED.status, error_code = EXCLUDED.error_code,
           event_at = EXCLUDED.event_at, received_at = EXCLUDED.received_at
     WHERE r.status <> EXCLUDED.status AND r.event_at <= EXCLUDED.event_at
    RETURNING 1
), attempts AS (
    UPDATE sms_messages_log l
       SET delivery_status = $3, delivery_error = $4, delivered_at = $5
     WHERE l.provider_name = $1 AND l.provider_ref = $2 AND EXISTS (SELECT 1 FROM kept)
    RETURNING l.created_at, l."to"
)
SELECT (SELECT count(*) FROM kept), (SELECT min(created_at) FROM attempts), (SELECT min("to") FROM attempts)
"#;

/// The delivery an attempt row's columns show, if any.
pub(super) fn delivery_from(status: Option<&str>, error_code: Option<String>, at: Option<DateTime<Utc>>) -> Option<Delivery> {
    Some(Delivery {
        status: DeliveryStatus::parse(status?)?,
        error_code,
        at: at?,
    })
}
