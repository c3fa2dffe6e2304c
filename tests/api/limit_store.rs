//! The `LimitStore` conformance suite on memory and PostgreSQL, with the clock in the test's
//! hands: all-or-nothing admissions, window roll-over, the resend cooldown's growth, cap and
//! reset, idempotency claims (conflict, replay, lease takeover, expiry, release), and races:
//! concurrent admissions and claims through two stores (two pools, as two instances) on one schema.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use smsgate::metrics::Metrics;
use smsgate::store::{Admission, CooldownSpec, IdempotencyClaim, KeyClaim, LimitStore, MemoryStore, PostgresStore, Quota, Store};

use crate::db::TestDb;
use crate::on_both_stores;

/// Ten seconds into a minute (and into no particular day).
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_010, 0).unwrap()
}

fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

fn quota(key: &str, window_secs: u32, limit: u32) -> Quota {
    Quota {
        key: key.into(),
        window_secs,
        limit,
    }
}

fn cooldown(base: u32, max: u32) -> CooldownSpec {
    CooldownSpec {
        key: "resend:+919876543210".into(),
        base_secs: base,
        max_secs: max,
        reset_secs: 3600,
    }
}

fn admitted(resend: Option<u64>) -> Admission {
    Admission::Admitted { resend_after_secs: resend }
}

fn refused(key: &str, retry: u64) -> Admission {
    Admission::Refused {
        key: key.into(),
        retry_after_secs: retry,
    }
}

fn key(scope: &str, key: &str, hash: &[u8], ttl_secs: u32, lease_secs: u32) -> KeyClaim {
    KeyClaim {
        scope: scope.into(),
        key: key.into(),
        hash: hash.to_vec(),
        ttl_secs,
        lease_secs,
    }
}

/// Claims a key with an admission that counts nothing: what the claim found.
async fn claim(s: &dyn Store, scope: &str, k: &str, hash: &[u8], now: DateTime<Utc>, ttl_secs: u32, lease_secs: u32) -> IdempotencyClaim {
    match s
        .admit_claiming(&key(scope, k, hash, ttl_secs, lease_secs), &[], None, now)
        .await
        .unwrap()
    {
        Admission::Admitted { .. } => IdempotencyClaim::Claimed,
        Admission::KeyHeld(found) => found,
        refused => panic!("nothing to refuse, yet {refused:?}"),
    }
}

async fn an_admission_takes_every_quota_or_none(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let (a, b) = (quota("a", 60, 2), quota("b", 60, 1));
    let both = [a.clone(), b.clone()];
    assert_eq!(s.admit(&both, None, t0()).await.unwrap(), admitted(None));
    assert_eq!(s.admit(&both, None, t0()).await.unwrap(), refused("b", 60));
    let only_a = [a];
    assert_eq!(
        s.admit(&only_a, None, t0()).await.unwrap(),
        admitted(None),
        "the refusal took nothing from `a`"
    );
    assert_eq!(s.admit(&only_a, None, t0()).await.unwrap(), refused("a", 60));
}

async fn a_window_admits_its_limit_then_slides(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let q = [quota("phone:m:x", 60, 3)];
    for _ in 0..3 {
        assert_eq!(s.admit(&q, None, t0()).await.unwrap(), admitted(None));
    }
    assert_eq!(s.admit(&q, None, t0() + secs(1)).await.unwrap(), refused("phone:m:x", 59));
    assert_eq!(s.admit(&q, None, t0() + secs(49)).await.unwrap(), refused("phone:m:x", 11));
    assert_eq!(
        s.admit(&q, None, t0() + secs(50)).await.unwrap(),
        refused("phone:m:x", 10),
        "a new clock minute is no new window"
    );
    assert_eq!(
        s.admit(&q, None, t0() + secs(60)).await.unwrap(),
        admitted(None),
        "the window slid past them"
    );
}

/// The window-edge burst a fixed window lets through: the limit just before a minute turns and
/// again just after. `t0` is ten seconds into a minute, so the minute turns at `t0 + 50 s`.
async fn no_span_of_a_window_admits_more_than_its_limit_across_the_minute_edge(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let q = [quota("client:edge", 60, 3)];
    let at = |t: i64| t0() + secs(t);
    for _ in 0..3 {
        assert_eq!(
            s.admit(&q, None, at(49)).await.unwrap(),
            admitted(None),
            "the limit, just before the edge"
        );
    }
    assert_eq!(
        s.admit(&q, None, at(50)).await.unwrap(),
        refused("client:edge", 59),
        "just after the edge"
    );
    // One attempt a second for the rest of three windows from t0 + 49 s: what got through.
    let mut admitted_at = vec![49, 49, 49];
    for t in 51..(49 + 180) {
        if let Admission::Admitted { .. } = s.admit(&q, None, at(t)).await.unwrap() {
            admitted_at.push(t);
        }
    }
    for (i, start) in admitted_at.iter().enumerate() {
        let within = admitted_at[i..].iter().take_while(|t| **t < start + 60).count();
        assert!(within <= 3, "{within} admitted in the 60 s from t0 + {start} s: {admitted_at:?}");
    }
    assert_eq!(admitted_at.len(), 3 * 3, "the limit is still reached each window: {admitted_at:?}");
}

async fn the_cooldown_doubles_caps_and_resets(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let cd = cooldown(10, 40);
    let q = [quota("c", 86_400, 1000)];
    let at = |t: i64| t0() + secs(t);
    assert_eq!(s.admit(&q, Some(&cd), at(0)).await.unwrap(), admitted(Some(10)));
    assert_eq!(s.admit(&q, Some(&cd), at(4)).await.unwrap(), refused(&cd.key, 6));
    assert_eq!(s.admit(&q, Some(&cd), at(10)).await.unwrap(), admitted(Some(20)));
    assert_eq!(s.admit(&q, Some(&cd), at(30)).await.unwrap(), admitted(Some(40)));
    assert_eq!(s.admit(&q, Some(&cd), at(70)).await.unwrap(), admitted(Some(40)), "capped");
    assert_eq!(
        s.admit(&q, Some(&cd), at(70 + 3600)).await.unwrap(),
        admitted(Some(10)),
        "reset an hour after the last send"
    );
}

async fn a_refused_quota_leaves_the_cooldown_alone(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let cd = cooldown(1, 100);
    let spent = [quota("spent", 3600, 2)];
    assert_eq!(s.admit(&spent, Some(&cd), t0()).await.unwrap(), admitted(Some(1)));
    assert_eq!(s.admit(&spent, Some(&cd), t0() + secs(1)).await.unwrap(), admitted(Some(2)));
    assert!(matches!(s.admit(&spent, Some(&cd), t0() + secs(3)).await.unwrap(), Admission::Refused { key, .. } if key == "spent"));
    let fresh = [quota("fresh", 3600, 2)];
    assert_eq!(
        s.admit(&fresh, Some(&cd), t0() + secs(3)).await.unwrap(),
        admitted(Some(4)),
        "the refused admission did not count as a resend"
    );
}

async fn concurrent_admissions_never_exceed_the_limit(s: Arc<dyn Store>, other: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&s) } else { Arc::clone(&other) };
            tokio::spawn(async move {
                let q = [
                    quota("client:app", 60, 100),
                    quota("phone:m:x", 60, 7),
                    quota("prefix:m:91-9876", 60, 100),
                ];
                store.admit(&q, None, t0()).await.unwrap()
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += matches!(t.await.unwrap(), Admission::Admitted { .. }) as u32;
    }
    assert_eq!(admitted, 7);
}

async fn an_idempotency_key_is_claimed_once_then_replayed(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let claim = |hash: &'static [u8], t: i64| {
        let s = Arc::clone(&s);
        async move { claim(&*s, "app", "k", hash, t0() + secs(t), 3600, 60).await }
    };
    assert_eq!(claim(b"h1", 0).await, IdempotencyClaim::Claimed);
    assert_eq!(claim(b"h1", 1).await, IdempotencyClaim::InFlight);
    assert_eq!(claim(b"h2", 1).await, IdempotencyClaim::Conflict);
    assert_eq!(
        self::claim(&*s, "other-app", "k", b"h2", t0(), 3600, 60).await,
        IdempotencyClaim::Claimed,
        "keys are per calling app"
    );
    s.keep_answer("app", "k", Some((200, json!({"session_id": "s1"}))));
    s.flush_answers().await;
    let replay = IdempotencyClaim::Replay {
        status: 200,
        body: json!({"session_id": "s1"}),
    };
    assert_eq!(claim(b"h1", 2).await, replay);
    assert_eq!(claim(b"h2", 2).await, IdempotencyClaim::Conflict);
    s.keep_answer("app", "k", None);
    s.flush_answers().await;
    assert_eq!(claim(b"h1", 3).await, replay, "a completed key is not released");
    assert_eq!(claim(b"h2", 3600).await, IdempotencyClaim::Claimed, "an expired key is new again");
}

/// A key is claimed with its admission: a request whose key is held takes nothing from any
/// quota or cooldown, and a refused admission leaves its key unclaimed.
async fn a_key_is_claimed_with_its_admission_or_not_at_all(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let q = [quota("client:keyed", 60, 2)];
    let k1 = key("app", "k1", b"h", 3600, 60);
    assert_eq!(s.admit_claiming(&k1, &q, None, t0()).await.unwrap(), admitted(None));
    assert_eq!(
        s.admit_claiming(&k1, &q, None, t0()).await.unwrap(),
        Admission::KeyHeld(IdempotencyClaim::InFlight),
        "held while the first request runs"
    );
    assert_eq!(
        s.admit_claiming(&key("app", "k1", b"other", 3600, 60), &q, None, t0())
            .await
            .unwrap(),
        Admission::KeyHeld(IdempotencyClaim::Conflict)
    );
    assert_eq!(
        s.admit(&q, None, t0()).await.unwrap(),
        admitted(None),
        "the held requests took nothing"
    );
    let k2 = key("app", "k2", b"h", 3600, 60);
    assert_eq!(s.admit_claiming(&k2, &q, None, t0()).await.unwrap(), refused("client:keyed", 60));
    assert_eq!(
        claim(&*s, "app", "k2", b"h", t0(), 3600, 60).await,
        IdempotencyClaim::Claimed,
        "a refused admission claimed nothing"
    );

    let cd = cooldown(10, 40);
    let k3 = key("app", "k3", b"h", 3600, 60);
    assert_eq!(s.admit_claiming(&k3, &[], Some(&cd), t0()).await.unwrap(), admitted(Some(10)));
    assert_eq!(
        s.admit_claiming(&k3, &[], Some(&cd), t0() + secs(20)).await.unwrap(),
        Admission::KeyHeld(IdempotencyClaim::InFlight)
    );
    assert_eq!(
        s.admit(&[], Some(&cd), t0() + secs(20)).await.unwrap(),
        admitted(Some(20)),
        "the held request counted no resend"
    );
}

/// Forty admissions with one key, at once through two instances (PostgreSQL decides those of
/// one instance in one batch): one is admitted and counted, the others take nothing.
async fn concurrent_admissions_with_one_key_count_once(s: Arc<dyn Store>, other: Arc<dyn Store>) {
    let q = [quota("client:dup", 60, 2)];
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&s) } else { Arc::clone(&other) };
            let q = q.clone();
            tokio::spawn(async move {
                store
                    .admit_claiming(&key("app", "dup", b"h", 3600, 60), &q, None, t0())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|a| **a == admitted(None)).count(), 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|a| *a == admitted(None) || *a == Admission::KeyHeld(IdempotencyClaim::InFlight)));
    assert_eq!(s.admit(&q, None, t0()).await.unwrap(), admitted(None));
    assert_eq!(s.admit(&q, None, t0()).await.unwrap(), refused("client:dup", 60));
}

async fn a_stuck_claim_is_taken_over_after_its_lease_and_a_released_one_at_once(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let claim = |key: &'static str, t: i64| {
        let s = Arc::clone(&s);
        async move { claim(&*s, "app", key, b"h", t0() + secs(t), 3600, 60).await }
    };
    assert_eq!(claim("stuck", 0).await, IdempotencyClaim::Claimed);
    assert_eq!(claim("stuck", 59).await, IdempotencyClaim::InFlight);
    assert_eq!(claim("stuck", 60).await, IdempotencyClaim::Claimed, "its instance died: take over");
    assert_eq!(claim("stuck", 61).await, IdempotencyClaim::InFlight);
    assert_eq!(claim("failed", 0).await, IdempotencyClaim::Claimed);
    s.keep_answer("app", "failed", None);
    s.flush_answers().await;
    assert_eq!(claim("failed", 1).await, IdempotencyClaim::Claimed);
}

async fn concurrent_claims_yield_exactly_one_claimed(s: Arc<dyn Store>, other: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&s) } else { Arc::clone(&other) };
            tokio::spawn(async move { claim(&*store, "app", "race", b"h", t0(), 3600, 60).await })
        })
        .collect();
    let mut claims = Vec::new();
    for t in tasks {
        claims.push(t.await.unwrap());
    }
    assert_eq!(claims.iter().filter(|c| **c == IdempotencyClaim::Claimed).count(), 1);
    assert!(claims
        .iter()
        .all(|c| matches!(c, IdempotencyClaim::Claimed | IdempotencyClaim::InFlight)));
}

async fn a_sweep_deletes_expired_state_and_keeps_fresh_state(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    let day = 86_400;
    let cd = |key: &str| CooldownSpec {
        key: key.into(),
        base_secs: 10,
        max_secs: 40,
        reset_secs: 3600,
    };
    // Expired by `later`: a one-minute counter, a cooldown that ended over a day before, a key.
    assert_eq!(
        s.admit(&[quota("old", 60, 5)], Some(&cd("resend:old")), t0()).await.unwrap(),
        admitted(Some(10))
    );
    assert_eq!(claim(&*s, "app", "old", b"h", t0(), 60, 60).await, IdempotencyClaim::Claimed);
    let later = t0() + secs(2 * day);
    assert_eq!(
        s.admit(&[quota("new", 60, 1)], Some(&cd("resend:new")), later).await.unwrap(),
        admitted(Some(10))
    );
    assert_eq!(claim(&*s, "app", "new", b"h", later, 3600, 60).await, IdempotencyClaim::Claimed);

    assert_eq!(s.sweep(later + secs(1)).await.unwrap(), 3, "the old counter, cooldown and key");
    assert_eq!(s.sweep(later + secs(1)).await.unwrap(), 0, "they are gone");
    assert_eq!(
        s.admit(&[quota("new", 60, 1)], None, later + secs(1)).await.unwrap(),
        refused("new", 59),
        "the fresh counter stays"
    );
    assert_eq!(
        s.admit(&[quota("other", 60, 5)], Some(&cd("resend:new")), later + secs(1))
            .await
            .unwrap(),
        refused("resend:new", 9),
        "the fresh cooldown stays"
    );
    assert_eq!(
        claim(&*s, "app", "new", b"other", later + secs(1), 3600, 60).await,
        IdempotencyClaim::Conflict,
        "the fresh key stays"
    );
}

/// A session a send opens: pending, five attempts, five minutes.
fn pending_session(id: uuid::Uuid) -> smsgate::store::Session {
    smsgate::store::Session {
        id,
        client: "app".into(),
        phone: "+919876543210".into(),
        user_id: Some("u1".into()),
        purpose: "login".into(),
        code_hmac: vec![1; 32],
        provider_refs: Vec::new(),
        status: smsgate::store::SessionStatus::Pending,
        attempts: 0,
        max_attempts: 5,
        created_at: t0(),
        expires_at: t0() + secs(300),
        verified_at: None,
        local_code_sent: false,
        verify_lease_until: None,
        verified_by: None,
    }
}

async fn postgres_store(db: &TestDb) -> Arc<dyn Store> {
    let store = PostgresStore::connect(&db.url(), 4, Metrics::new()).unwrap();
    // Its own connection, without a statement timeout: waiting for the other tests'
    // migrations under the advisory lock may take longer than one.
    PostgresStore::migrate(&db.url(), &Default::default()).await.unwrap();
    Arc::new(store)
}

async fn a_send_log_stores_the_session_it_opened_with_the_send_applied(s: Arc<dyn Store>, _: Arc<dyn Store>) {
    use smsgate::store::{ProviderRef, SendLog, Session, SessionStatus, SessionUpdate};
    let q = [quota("phone:m:y", 60, 1)];
    assert_eq!(s.admit(&q, None, t0()).await.unwrap(), admitted(None));
    let (sent, failed) = (pending_session(uuid::Uuid::new_v4()), pending_session(uuid::Uuid::new_v4()));
    assert_eq!(s.get_session(sent.id).await.unwrap(), None, "admission stores no session");
    let held = ProviderRef {
        provider: "2factor".into(),
        reference: "ref-1".into(),
    };
    let log = |opened: &Session, update: SessionUpdate| SendLog {
        opened: Some(opened.clone()),
        session: Some(update),
        ..SendLog::default()
    };
    s.write_log(log(
        &sent,
        SessionUpdate {
            id: sent.id,
            add_refs: vec![held.clone()],
            delivered_by: Some(held.clone()),
            failed: false,
            local_code_sent: false,
        },
    ))
    .await
    .unwrap();
    s.write_log(log(
        &failed,
        SessionUpdate {
            id: failed.id,
            add_refs: Vec::new(),
            delivered_by: None,
            failed: true,
            local_code_sent: true,
        },
    ))
    .await
    .unwrap();
    let stored = s.get_session(sent.id).await.unwrap().expect("the sent session is stored");
    assert_eq!(stored.provider_refs, vec![held]);
    assert_eq!((stored.status, stored.local_code_sent), (SessionStatus::Pending, false));
    let stored = s.get_session(failed.id).await.unwrap().expect("the failed session is stored");
    assert_eq!((stored.status, stored.local_code_sent), (SessionStatus::Failed, true));
    assert!(stored.provider_refs.is_empty());
}

/// Admissions decided in one batch (PostgreSQL) share a transaction: one that PostgreSQL refuses
/// (a key holding a NUL, which `text` cannot store) fails alone and takes nothing; the others
/// are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_only_the_admission_postgres_refuses() {
    let db = TestDb::new().await;
    let s = postgres_store(&db).await;
    let q = [quota("client:batch", 60, 21)];
    let tasks: Vec<_> = (0..21)
        .map(|i| {
            let s = Arc::clone(&s);
            let mut quotas = q.to_vec();
            if i == 10 {
                quotas.push(quota("phone:m:\0", 60, 5));
            }
            tokio::spawn(async move { (s.admit(&quotas, None, t0()).await, i) })
        })
        .collect();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            (Ok(a), _) => assert_eq!(a, admitted(None)),
            (Err(_), i) => {
                assert_eq!(i, 10, "only the admission at fault fails");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 1);
    // 20 admitted of 21: the failed admission took nothing, so one more goes, then none.
    assert_eq!(s.admit(&q, None, t0()).await.unwrap(), admitted(None));
    assert_eq!(s.admit(&q, None, t0()).await.unwrap(), refused("client:batch", 60));
}

/// Answers written together (PostgreSQL): one that PostgreSQL refuses (a NUL in its body, which
/// `jsonb` cannot hold) is lost alone, its key staying claimed; the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_postgres_refuses_is_lost_alone() {
    let db = TestDb::new().await;
    let s = postgres_store(&db).await;
    for i in 0..5 {
        assert_eq!(
            claim(&*s, "app", &format!("k{i}"), b"h", t0(), 3600, 60).await,
            IdempotencyClaim::Claimed
        );
    }
    for i in 0..5 {
        let body = if i == 2 { json!({"message": "\u{0}"}) } else { json!({"i": i}) };
        s.keep_answer("app", &format!("k{i}"), Some((200, body)));
    }
    s.flush_answers().await;
    for i in 0..5 {
        let found = claim(&*s, "app", &format!("k{i}"), b"h", t0() + secs(1), 3600, 60).await;
        let expected = match i {
            2 => IdempotencyClaim::InFlight,
            _ => IdempotencyClaim::Replay {
                status: 200,
                body: json!({"i": i}),
            },
        };
        assert_eq!(found, expected, "key {i}");
    }
}

/// The send path's batches run on connections of their own (PostgreSQL): with every pooled
/// connection held (as slow admin or health queries would hold them), sends are still admitted
/// and their attempts logged; and those connections keep the generic plan, whatever a batch's
/// length, one that reads by index even when made on empty tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_admitted_and_logged_while_the_pool_is_held() {
    use smsgate::config::DatabaseSettings;
    use smsgate::store::SendLog;
    let db = TestDb::new().await;
    let settings = DatabaseSettings {
        pool_size: 2,
        pool_wait_ms: 200,
        ..Default::default()
    };
    let store = PostgresStore::connect_with(&db.url(), &settings, Metrics::new()).unwrap();
    PostgresStore::migrate(&db.url(), &Default::default()).await.unwrap();
    let held = [store.pool().get().await.unwrap(), store.pool().get().await.unwrap()];
    assert!(store.pool().get().await.is_err(), "the pool is held");

    let q = [quota("phone:m:held", 60, 1)];
    assert_eq!(store.admit(&q, None, t0()).await.unwrap(), admitted(None));
    assert_eq!(store.admit(&q, None, t0()).await.unwrap(), refused("phone:m:held", 60));
    let id = uuid::Uuid::new_v4();
    let log = SendLog {
        opened: Some(pending_session(id)),
        ..SendLog::default()
    };
    store.write_log(log).await.unwrap();

    let batch = store.batch_pool().get().await.unwrap();
    let mode: String = batch.query_one("SHOW plan_cache_mode", &[]).await.unwrap().get(0);
    assert_eq!(mode, "force_generic_plan");
    // A generic plan made while a table is empty (a new database) still reads it by its index:
    // the group commit joins each attempt to an early receipt this way.
    batch
        .batch_execute(
            "PREPARE early(text[], text[]) AS SELECT r.status FROM unnest($1, $2) AS a(provider, reference) \
             LEFT JOIN sms_receipts r ON r.provider = a.provider AND r.reference = a.reference",
        )
        .await
        .unwrap();
    let plan: String = batch
        .query("EXPLAIN (COSTS OFF) EXECUTE early('{}', '{}')", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("Index Scan using sms_receipts_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    let stored: i64 = batch
        .query_one("SELECT count(*) FROM sms_otp_sessions WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1, "the session was written");
    drop(held);
    let mode: String = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SHOW plan_cache_mode", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "auto", "other queries plan as PostgreSQL chooses");
}

/// Runs a test on one memory store, handed over twice (one process shares one store).
async fn on_memory<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>, Arc<dyn Store>) -> F) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    test(store.clone(), store).await
}

/// Runs a test on two stores (two pools, as two instances) over one fresh PostgreSQL schema.
async fn on_postgres<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>, Arc<dyn Store>) -> F) {
    let db = TestDb::new().await;
    let (a, b) = (postgres_store(&db).await, postgres_store(&db).await);
    test(a, b).await
}

on_both_stores!(
    memory: super::on_memory,
    postgres: super::on_postgres;
    a_send_log_stores_the_session_it_opened_with_the_send_applied,
    an_admission_takes_every_quota_or_none,
    a_window_admits_its_limit_then_slides,
    no_span_of_a_window_admits_more_than_its_limit_across_the_minute_edge,
    the_cooldown_doubles_caps_and_resets,
    a_refused_quota_leaves_the_cooldown_alone,
    concurrent_admissions_never_exceed_the_limit,
    an_idempotency_key_is_claimed_once_then_replayed,
    a_key_is_claimed_with_its_admission_or_not_at_all,
    concurrent_admissions_with_one_key_count_once,
    a_stuck_claim_is_taken_over_after_its_lease_and_a_released_one_at_once,
    concurrent_claims_yield_exactly_one_claimed,
    a_sweep_deletes_expired_state_and_keeps_fresh_state,
);
