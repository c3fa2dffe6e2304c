//! The admin log query: provider attempts (`sms_messages_log`) and OTP events (`otp_logs`)
//! merged newest first, filtered, and paged by a keyset cursor `(created_at, key)` so a page
//! never repeats or skips a row whatever is written meanwhile.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AttemptRow, MemoryStore, OtpEvent, PostgresStore, StoreError};

/// Which log a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    Attempt,
    OtpEvent,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attempt => "attempt",
            Self::OtpEvent => "otp_event",
        }
    }
}

/// What to show; every filter is an exact match, `since` inclusive and `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// E.164.
    pub phone: Option<String>,
    pub provider: Option<String>,
    /// An attempt's outcome (`accepted`, `unavailable`, …) or an event's status (`sent`, `failed`, …).
    pub outcome: Option<String>,
    /// An attempt's type (`otp`, `text`, `template`) or an event's (`autogen`, `local`, `verify`).
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// One log only (an outcome or type only one log has: the other need not be read).
    pub source: Option<LogSource>,
}

/// Where a page starts: strictly older than this row in `(at, key)` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    pub at: DateTime<Utc>,
    pub key: String,
}

/// One row of either log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogItem {
    pub at: DateTime<Utc>,
    /// Unique across both logs and ordered bytewise: `a:<uuid>` or `e:<20-digit id>`.
    pub key: String,
    pub source: LogSource,
    /// E.164, unmasked: the caller masks it for whoever reads it.
    pub phone: String,
    pub provider: Option<String>,
    pub outcome: String,
    pub kind: String,
    pub http_status: Option<i32>,
    pub response_time_ms: Option<i32>,
    pub error: Option<String>,
    pub session_id: Option<Uuid>,
    pub user_id: Option<String>,
}

impl LogItem {
    pub fn cursor(&self) -> LogCursor {
        LogCursor {
            at: self.at,
            key: self.key.clone(),
        }
    }
}

/// The admin log query, part of every `Store`.
#[async_trait]
pub trait AdminLogStore: Send + Sync {
    /// Up to `limit` rows matching `filter`, newest first, older than `before` when given.
    async fn admin_logs(&self, filter: &LogFilter, before: Option<&LogCursor>, limit: usize) -> Result<Vec<LogItem>, StoreError>;
}

fn event_key(id: u64) -> String {
    format!("e:{id:020}")
}

fn attempt_item(a: &AttemptRow) -> LogItem {
    LogItem {
        at: a.created_at,
        key: format!("a:{}", a.id),
        source: LogSource::Attempt,
        phone: a.to.clone(),
        provider: Some(a.provider.clone()),
        outcome: a.outcome.clone(),
        kind: a.kind.clone(),
        http_status: a.http_status,
        response_time_ms: Some(a.response_time_ms),
        error: a.error.clone(),
        session_id: a.session_id,
        user_id: a.user_id.clone(),
    }
}

fn event_item(id: u64, e: &OtpEvent) -> LogItem {
    LogItem {
        at: e.created_at,
        key: event_key(id),
        source: LogSource::OtpEvent,
        phone: e.phone.clone(),
        provider: e.provider.clone(),
        outcome: e.status.clone(),
        kind: e.event.clone(),
        http_status: None,
        response_time_ms: Some(e.response_time_ms),
        error: None,
        session_id: Some(e.session_id),
        user_id: e.user_id.clone(),
    }
}

impl LogFilter {
    fn keeps(&self, item: &LogItem, before: Option<&LogCursor>) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
        eq(&self.phone, Some(&item.phone))
            && eq(&self.provider, item.provider.as_deref())
            && eq(&self.outcome, Some(&item.outcome))
            && eq(&self.kind, Some(&item.kind))
            && self.since.is_none_or(|s| item.at >= s)
            && self.until.is_none_or(|u| item.at < u)
            && self.source.is_none_or(|s| s == item.source)
            && before.is_none_or(|c| (item.at, item.key.as_str()) < (c.at, c.key.as_str()))
    }
}

#[async_trait]
impl AdminLogStore for MemoryStore {
    async fn admin_logs(&self, filter: &LogFilter, before: Option<&LogCursor>, limit: usize) -> Result<Vec<LogItem>, StoreError> {
        let mut items: Vec<LogItem> = self.with_logs(|attempts, events| {
            let attempts = attempts.iter().map(attempt_item);
            let events = events.map(|(id, e)| event_item(id, e));
            attempts.chain(events).filter(|i| filter.keeps(i, before)).collect()
        });
        items.sort_by(|a, b| (b.at, &b.key).cmp(&(a.at, &a.key)));
        items.truncate(limit);
        Ok(items)
    }
}

/// Each log's newest `limit` matches (each side uses its `created_at` index), merged. Keys
/// compare under the "C" collation: bytewise, as the memory store and the cursor do. The
/// cursor's `created_at <= $7` is said on its own so the index scan starts at the cursor
/// instead of filtering every newer row (a page 400,000 rows deep: 250 ms → under 1 ms).
const LOGS_SQL: &str = r#"
WITH attempts AS (
    SELECT created_at, 'a:' || id::text AS key, 'attempt' AS source, "to" AS phone, provider_name AS provider,
           outcome, type, status_code, response_time_ms, error, session_id, user_id
      FROM sms_messages_log
     WHERE ($10::text IS NULL OR $10::text = 'attempt') AND ($1::text IS NULL OR "to" = $1) AND ($2::text IS NULL OR provider_name = $2)
       AND ($3::text IS NULL OR outcome = $3) AND ($4::text IS NULL OR type = $4)
       AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
       AND ($7::timestamptz IS NULL OR created_at <= $7)
       AND ($7::timestamptz IS NULL OR created_at < $7 OR ('a:' || id::text) COLLATE "C" < $8::text COLLATE "C")
     ORDER BY created_at DESC, ('a:' || id::text) COLLATE "C" DESC
     LIMIT $9
), events AS (
    SELECT created_at, 'e:' || lpad(id::text, 20, '0') AS key, 'otp_event' AS source, coalesce(phone, '') AS phone, provider,
           status AS outcome, type, NULL::integer AS status_code, response_time_ms, NULL::text AS error, session_id, user_id
      FROM otp_logs
     WHERE ($10::text IS NULL OR $10::text = 'otp_event') AND ($1::text IS NULL OR phone = $1) AND ($2::text IS NULL OR provider = $2)
       AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR type = $4)
       AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
       AND ($7::timestamptz IS NULL OR created_at <= $7)
       AND ($7::timestamptz IS NULL OR created_at < $7 OR ('e:' || lpad(id::text, 20, '0')) COLLATE "C" < $8::text COLLATE "C")
     ORDER BY created_at DESC, ('e:' || lpad(id::text, 20, '0')) COLLATE "C" DESC
     LIMIT $9
)
SELECT * FROM (SELECT * FROM attempts UNION ALL SELECT * FROM events) merged
 ORDER BY created_at DESC, key COLLATE "C" DESC
 LIMIT $9
"#;

#[async_trait]
impl AdminLogStore for PostgresStore {
    async fn admin_logs(&self, filter: &LogFilter, before: Option<&LogCursor>, limit: usize) -> Result<Vec<LogItem>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let (at, key) = (before.map(|c| c.at), before.map(|c| c.key.clone()));
            let rows = client
                .query(
                    LOGS_SQL,
                    &[
                        &filter.phone,
                        &filter.provider,
                        &filter.outcome,
                        &filter.kind,
                        &filter.since,
                        &filter.until,
                        &at,
                        &key,
                        &(limit as i64),
                        &filter.source.map(LogSource::as_str),
                    ],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let source = match r.get::<_, &str>(2) {
                        "attempt" => LogSource::Attempt,
                        _ => LogSource::OtpEvent,
                    };
                    Ok(LogItem {
                        at: r.get(0),
                        key: r.get(1),
                        source,
                        phone: r.get(3),
                        provider: r.get(4),
                        outcome: r.get(5),
                        kind: r.get(6),
                        http_status: r.get(7),
                        response_time_ms: r.get(8),
                        error: r.get(9),
                        session_id: r.get(10),
                        user_id: r.get(11),
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SendLog, Store};

    fn attempt(to: &str, provider: &str, outcome: &str, at: DateTime<Utc>) -> AttemptRow {
        AttemptRow {
            id: Uuid::new_v4(),
            message_id: Uuid::new_v4(),
            session_id: None,
            user_id: None,
            to: to.into(),
            kind: "otp".into(),
            provider: provider.into(),
            outcome: outcome.into(),
            http_status: Some(200),
            error: None,
            provider_ref: None,
            response_time_ms: 7,
            ambiguous: false,
            created_at: at,
            parts: Some(1),
            delivery: None,
        }
    }

    fn event(phone: &str, status: &str, at: DateTime<Utc>) -> OtpEvent {
        OtpEvent {
            session_id: Uuid::new_v4(),
            user_id: None,
            phone: phone.into(),
            event: "local".into(),
            status: status.into(),
            provider: Some("twilio".into()),
            response_time_ms: 9,
            created_at: at,
        }
    }

    #[tokio::test]
    async fn memory_pages_newest_first_through_both_logs_without_repeats_or_gaps() {
        let store = MemoryStore::new();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        // Rows sharing a timestamp must still page cleanly.
        let log = SendLog {
            attempts: (0..5).map(|i| attempt("+919876543210", "twilio", "accepted", at(i / 2))).collect(),
            opened: None,
            session: None,
            events: (0..4).map(|i| event("+919876543211", "sent", at(i / 2))).collect(),
        };
        store.write_log(log).await.unwrap();
        let all = store.admin_logs(&LogFilter::default(), None, 100).await.unwrap();
        assert_eq!(all.len(), 9);
        assert!(all.windows(2).all(|w| (w[0].at, &w[0].key) > (w[1].at, &w[1].key)));
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.admin_logs(&LogFilter::default(), cursor.as_ref(), 2).await.unwrap();
            if page.is_empty() {
                break;
            }
            cursor = page.last().map(LogItem::cursor);
            paged.extend(page);
        }
        assert_eq!(paged, all);
        let only = |f: LogFilter| {
            let store = &store;
            async move { store.admin_logs(&f, None, 100).await.unwrap().len() }
        };
        assert_eq!(
            only(LogFilter {
                phone: Some("+919876543211".into()),
                ..Default::default()
            })
            .await,
            4
        );
        assert_eq!(
            only(LogFilter {
                outcome: Some("accepted".into()),
                ..Default::default()
            })
            .await,
            5
        );
        assert_eq!(
            only(LogFilter {
                kind: Some("local".into()),
                ..Default::default()
            })
            .await,
            4
        );
        assert_eq!(
            only(LogFilter {
                since: Some(at(1)),
                until: Some(at(2)),
                ..Default::default()
            })
            .await,
            4
        );
    }
}
