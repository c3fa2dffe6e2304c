//! The campaign queue under failure and load: leases that run out (a worker that died), the
//! shared token buckets, two instances on one PostgreSQL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde_json::json;
use smsgate::metrics::Metrics;
use smsgate::store::campaigns::{CampaignContent, CampaignKind, MessageState, NewCampaign, Settle};
use smsgate::store::{MemoryStore, PostgresStore, Store};
use uuid::Uuid;

use super::{campaign, campaign_settings, created_id, deliveries, numbers, wait_done};
use crate::db::TestDb;
use crate::helpers::{phone, sim_provider, spawn_pair, spawn_with, Backend};
use crate::on_both_stores;

fn new_campaign(recipients: u32) -> NewCampaign {
    NewCampaign {
        id: Uuid::new_v4(),
        client: "app".into(),
        name: "lease".into(),
        kind: CampaignKind::Transactional,
        content: CampaignContent::Text { text: "hi".into() },
        schedule_at: None,
        max_per_second: None,
        duplicates: 0,
        invalid: 0,
        created_at: Utc::now().trunc_subsecs(6),
        recipients: numbers(0..recipients).into_iter().map(|p| (p, Vec::new())).collect(),
    }
}

async fn an_expired_lease_requeues_claimed_rows_and_makes_sending_rows_ambiguous(store: Arc<dyn Store>) {
    let c = new_campaign(4);
    store.insert_campaign(&c).await.unwrap();
    let now = c.created_at;
    let lease = chrono::Duration::seconds(60);
    let (dead, alive) = (Uuid::new_v4(), Uuid::new_v4());
    let claimed = store.claim_messages(dead, now, now + lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
    assert!(
        store.claim_messages(alive, now, now + lease, 10).await.unwrap().is_empty(),
        "leased rows are skipped"
    );
    let (a0, a1) = (Uuid::new_v4(), Uuid::new_v4());
    let marked = store
        .mark_sending(dead, now, &[(claimed[0].id, a0), (claimed[1].id, a1)])
        .await
        .unwrap();
    assert_eq!(marked.len(), 2);
    // The worker dies here, mid-batch.
    assert!(store.reclaim_expired(now + chrono::Duration::seconds(59)).await.unwrap().is_empty());
    let later = now + chrono::Duration::seconds(61);
    let mut reclaimed = store.reclaim_expired(later).await.unwrap();
    reclaimed.sort_by_key(|r| r.ambiguous_attempt.is_none());
    let ambiguous: Vec<Option<Uuid>> = reclaimed.iter().map(|r| r.ambiguous_attempt).collect();
    assert_eq!(ambiguous.len(), 4);
    assert!(
        ambiguous[..2].contains(&Some(a0)) && ambiguous[..2].contains(&Some(a1)),
        "{reclaimed:?}"
    );
    assert_eq!(&ambiguous[2..], &[None, None]);
    // The dead worker's lease is gone: it can neither send nor settle what it held.
    assert!(store
        .mark_sending(dead, later, &[(claimed[2].id, Uuid::new_v4())])
        .await
        .unwrap()
        .is_empty());
    let sent = Settle::Sent {
        message_id: Uuid::new_v4(),
        provider: "twilio".into(),
    };
    assert_eq!(store.settle_messages(dead, later, &[(claimed[0].id, sent)]).await.unwrap(), 0);
    // Another worker gets only the rows that never started.
    let mut again: Vec<Uuid> = store
        .claim_messages(alive, later, later + lease, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    again.sort();
    let mut expected = vec![claimed[2].id, claimed[3].id];
    expected.sort();
    assert_eq!(again, expected);
    let stored = store.get_campaign(c.id).await.unwrap().unwrap();
    assert_eq!((stored.count(MessageState::Ambiguous), stored.count(MessageState::Claimed)), (2, 2));
}

async fn a_new_bucket_starts_empty_refills_at_its_rate_and_pays_otp_debt_first(store: Arc<dyn Store>) {
    let key = |k: &str, debt: f64| vec![(format!("provider:{k}"), 5.0, debt)];
    assert_eq!(store.take_tokens(&key("a", 0.0), 10).await.unwrap(), 0, "no burst at the start");
    assert_eq!(store.take_tokens(&key("b", 0.0), 10).await.unwrap(), 0);
    // The buckets refill on the real clock: this measures a rate, not a timeout.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let granted = store.take_tokens(&key("a", 0.0), 10).await.unwrap();
    assert!((2..=5).contains(&granted), "5/s for ~0.65 s, capped at one second: {granted}");
    assert_eq!(store.take_tokens(&key("b", 10.0), 10).await.unwrap(), 0, "OTP calls are paid first");
    assert_eq!(store.take_tokens(&[], 7).await.unwrap(), 7, "no bucket, no limit");
}

async fn on_memory<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>) -> F) {
    test(Arc::new(MemoryStore::new())).await
}

async fn on_postgres<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>) -> F) {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 4, Metrics::new()).unwrap();
    // Its own connection, without a statement timeout: waiting for the other tests'
    // migrations under the advisory lock may take longer than one.
    PostgresStore::migrate(&db.url(), &Default::default()).await.unwrap();
    test(Arc::new(store)).await
}

on_both_stores!(
    memory: super::on_memory,
    postgres: super::on_postgres;
    an_expired_lease_requeues_claimed_rows_and_makes_sending_rows_ambiguous,
    a_new_bucket_starts_empty_refills_at_its_rate_and_pays_otp_debt_first,
);

/// A worker of the app dies holding five rows (three already `sending`): once the lease runs out
/// on the app's clock, the two that never started are sent and the three are reported
/// ambiguous, never resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_mid_batch_has_its_rows_reclaimed_and_its_sending_rows_never_resent() {
    let app = spawn_with(Backend::Postgres, |sim| campaign_settings(sim, |s| s.campaigns.lease_seconds = 30)).await;
    let start = app.clock.now() + chrono::Duration::seconds(120);
    let id = created_id(
        &app,
        json!({"name": "crash", "type": "transactional", "text": "t", "recipients": numbers(0..10), "schedule_at": start.to_rfc3339()}),
    )
    .await;
    // What a worker that claimed phone(0..5) and started phone(0..3) leaves behind when killed.
    let db = app.db.as_ref().unwrap().client().await;
    let lease_until = app.clock.now() + chrono::Duration::seconds(30);
    let dying: Vec<String> = numbers(0..5);
    db.execute(
        "UPDATE sms_campaign_messages SET lease_owner = $1, lease_until = $2, not_before = $3,
                state = CASE WHEN phone = ANY($5) THEN 'sending' ELSE 'claimed' END,
                attempt_id = CASE WHEN phone = ANY($5) THEN gen_random_uuid() END
         WHERE phone = ANY($4)",
        &[&Uuid::new_v4(), &lease_until, &app.clock.now(), &dying, &numbers(0..3)],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sent(), 0, "the leases still hold");
    app.advance(121);
    let c = wait_done(&app, &id).await;
    assert_eq!(
        (c["counts"]["sent"].as_u64(), c["counts"]["ambiguous"].as_u64()),
        (Some(7), Some(3)),
        "{c}"
    );
    let got = deliveries(&app);
    assert!(
        numbers(0..3).iter().all(|p| !got.contains_key(p)),
        "an ambiguous row is never resent: {got:?}"
    );
    assert!(numbers(3..10).iter().all(|p| got.get(p) == Some(&1)), "{got:?}");
    assert_eq!(
        app.metric("smsgate_campaign_messages_total{outcome=\"ambiguous\"}").await,
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_send_each_message_exactly_once() {
    let (a, b) = spawn_pair(|sim| {
        campaign_settings(sim, |s| {
            s.campaigns.workers = 3;
            s.campaigns.batch_size = 7;
        })
    })
    .await;
    let id = created_id(
        &a,
        json!({"name": "pair", "type": "transactional", "text": "t", "recipients": numbers(0..300)}),
    )
    .await;
    let c = wait_done(&b, &id).await;
    assert_eq!(
        (c["counts"]["sent"].as_u64(), c["counts"]["ambiguous"].as_u64()),
        (Some(300), Some(0)),
        "{c}"
    );
    let got = deliveries(&a);
    assert_eq!(got.len(), 300);
    assert!(got.values().all(|n| *n == 1), "a number got two messages");
    let sent_by = |m: Option<f64>| m.unwrap_or(0.0);
    let (by_a, by_b) = (
        sent_by(a.metric("smsgate_campaign_messages_total{outcome=\"sent\"}").await),
        sent_by(b.metric("smsgate_campaign_messages_total{outcome=\"sent\"}").await),
    );
    assert_eq!(by_a + by_b, 300.0);
    assert!(by_a > 0.0 && by_b > 0.0, "both instances work the queue: {by_a} + {by_b}");
    assert_eq!(campaign(&a, &id).await["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_per_second_holds_across_two_instances_and_otps_still_go_during_a_campaign() {
    const CAP: u32 = 20;
    let (a, b) = spawn_pair(|sim| {
        campaign_settings(sim, |s| {
            let mut twilio = serde_json::to_value(sim_provider(sim, "twilio", 1)).unwrap();
            twilio["max_per_second"] = json!(CAP);
            s.providers = vec![serde_json::from_value(twilio).unwrap()];
        })
    })
    .await;
    let id = created_id(
        &a,
        json!({"name": "paced", "type": "transactional", "text": "t", "recipients": numbers(0..64)}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for (i, app) in [&a, &b, &a].into_iter().enumerate() {
        let otp = app.send_otp_to(&phone(900 + i as u32)).await;
        assert_eq!(otp.status, 200, "an OTP during the campaign: {}", otp.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_done(&a, &id).await;
    let campaign_numbers = numbers(0..64);
    let mut at: Vec<_> = a
        .sim
        .state()
        .messages(None)
        .into_iter()
        .filter(|m| campaign_numbers.contains(&m.to))
        .map(|m| m.at)
        .collect();
    at.sort();
    assert_eq!(at.len(), 64);
    let busiest = (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t < at[i] + chrono::Duration::seconds(1)).count())
        .max()
        .unwrap();
    // One second of burst allowed: sends granted in time may reach the simulator bunched up on a
    // loaded machine.
    assert!(
        busiest <= 2 * CAP as usize,
        "{busiest} campaign messages within one second, cap {CAP}"
    );
    let span = (at[at.len() - 1] - at[0]).num_milliseconds();
    // 64 messages at 80% of 20/s, starting from an empty bucket: about four seconds.
    assert!(span >= 2_500, "64 messages went out in {span} ms");
    let rate = (at.len() - 1) as f64 * 1000.0 / span as f64;
    assert!(rate <= f64::from(CAP), "{rate:.1} messages/s on average, cap {CAP}");
}
