//! `sms_opt_outs`: numbers that asked for no more campaign messages, kept by both stores
//! (`OptOutStore`, a supertrait of `Store`). Which sends an opt-out blocks is `campaigns`' rule.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{MemoryStore, PostgresStore, StoreError};

/// One opt-out. `scope` is `promotional` (no promotional campaign messages) or `all` (no
/// campaign messages of any type); OTPs are never blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptOut {
    pub phone: String,
    pub scope: String,
    /// `api`, `twilio_inbound`, …
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait OptOutStore: Send + Sync {
    /// Adds the opt-out unless the number already has one of that scope; returns whether it was new.
    async fn add_opt_out(&self, opt_out: &OptOut) -> Result<bool, StoreError>;
    /// Removes the number's opt-outs of `scope` (every scope when `None`); returns how many.
    async fn remove_opt_out(&self, phone: &str, scope: Option<&str>) -> Result<u64, StoreError>;
    /// Opt-outs ordered by phone then scope, after `after` (the last phone of the previous page).
    async fn list_opt_outs(&self, phone: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<OptOut>, StoreError>;
    /// Which of `phones` have an opt-out of one of `scopes`.
    async fn opted_out(&self, phones: &[String], scopes: &[&str]) -> Result<HashSet<String>, StoreError>;
}

#[async_trait]
impl OptOutStore for MemoryStore {
    async fn add_opt_out(&self, o: &OptOut) -> Result<bool, StoreError> {
        let mut map = self.campaigns.opt_outs.lock().unwrap_or_else(|e| e.into_inner());
        let key = (o.phone.clone(), o.scope.clone());
        if map.contains_key(&key) {
            return Ok(false);
        }
        map.insert(key, o.clone());
        Ok(true)
    }

    async fn remove_opt_out(&self, phone: &str, scope: Option<&str>) -> Result<u64, StoreError> {
        let mut map = self.campaigns.opt_outs.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|(p, s), _| !(p == phone && scope.is_none_or(|sc| sc == s)));
        Ok((before - map.len()) as u64)
    }

    async fn list_opt_outs(&self, phone: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<OptOut>, StoreError> {
        let map = self.campaigns.opt_outs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .values()
            .filter(|o| phone.is_none_or(|p| o.phone == p) && after.is_none_or(|a| o.phone.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn opted_out(&self, phones: &[String], scopes: &[&str]) -> Result<HashSet<String>, StoreError> {
        let map = self.campaigns.opt_outs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(phones
            .iter()
            .filter(|p| scopes.iter().any(|s| map.contains_key(&((*p).clone(), s.to_string()))))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl OptOutStore for PostgresStore {
    async fn add_opt_out(&self, o: &OptOut) -> Result<bool, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let n = client
                .execute(
                    "INSERT INTO sms_opt_outs (phone, scope, source, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (phone, scope) DO NOTHING",
                    &[&o.phone, &o.scope, &o.source, &o.created_at],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    async fn remove_opt_out(&self, phone: &str, scope: Option<&str>) -> Result<u64, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            Ok(client
                .execute(
                    "DELETE FROM sms_opt_outs WHERE phone = $1 AND ($2::text IS NULL OR scope = $2)",
                    &[&phone, &scope],
                )
                .await?)
        })
        .await
    }

    async fn list_opt_outs(&self, phone: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<OptOut>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client
                .query(
                    "SELECT phone, scope, source, created_at FROM sms_opt_outs
                     WHERE ($1::text IS NULL OR phone = $1) AND ($2::text IS NULL OR phone > $2)
                     ORDER BY phone, scope LIMIT $3",
                    &[&phone, &after, &(limit as i64)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| OptOut {
                    phone: r.get(0),
                    scope: r.get(1),
                    source: r.get(2),
                    created_at: r.get(3),
                })
                .collect())
        })
        .await
    }

    async fn opted_out(&self, phones: &[String], scopes: &[&str]) -> Result<HashSet<String>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client
                .query(
                    "SELECT DISTINCT phone FROM sms_opt_outs WHERE phone = ANY($1) AND scope = ANY($2)",
                    &[&phones, &scopes],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }
}
