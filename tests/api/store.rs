//! The `Store` conformance suite: the same checks against the in-memory and PostgreSQL stores.

use std::future::Future;
use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};
use smsgate::metrics::Metrics;
use smsgate::store::{
    AttemptRow, MemoryStore, PostgresStore, ProviderRef, SendLog, Session, SessionStatus, SessionUpdate, Store, TallyWindow,
};
use uuid::Uuid;

use crate::db::TestDb;
use crate::on_both_stores;

async fn postgres() -> (Arc<dyn Store>, TestDb) {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 4, Metrics::new()).unwrap();
    // Its own connection, without a statement timeout: waiting for the other tests'
    // migrations under the advisory lock may take longer than one.
    PostgresStore::migrate(&db.url(), &Default::default()).await.unwrap();
    (Arc::new(store), db)
}

fn session(max_attempts: u32, ttl_secs: i64) -> Session {
    let now = Utc::now().trunc_subsecs(6);
    Session {
        id: Uuid::new_v4(),
        client: "app".into(),
        phone: "+919876543210".into(),
        user_id: Some("u1".into()),
        purpose: "login".into(),
        code_hmac: vec![7; 32],
        provider_refs: Vec::new(),
        status: SessionStatus::Pending,
        attempts: 0,
        max_attempts,
        created_at: now,
        expires_at: now + Duration::seconds(ttl_secs),
        verified_at: None,
        local_code_sent: false,
        verify_lease_until: None,
        verified_by: None,
    }
}

fn attempt(message_id: Uuid, provider: &str, outcome: &str, ms: i32) -> AttemptRow {
    AttemptRow {
        id: Uuid::new_v4(),
        message_id,
        session_id: Some(message_id),
        user_id: None,
        to: "+919876543210".into(),
        kind: "otp".into(),
        provider: provider.into(),
        outcome: outcome.into(),
        http_status: Some(500),
        error: Some("boom".into()),
        provider_ref: None,
        response_time_ms: ms,
        ambiguous: false,
        created_at: Utc::now(),
        parts: None,
        delivery: None,
    }
}

async fn sessions_round_trip_with_provider_refs(store: Arc<dyn Store>) {
    let s = session(3, 60);
    store.insert_session(&s).await.unwrap();
    assert_eq!(store.get_session(s.id).await.unwrap().as_ref(), Some(&s));
    let r = ProviderRef {
        provider: "2factor".into(),
        reference: "abc".into(),
    };
    let update = SessionUpdate {
        id: s.id,
        add_refs: vec![r.clone()],
        delivered_by: Some(r.clone()),
        failed: false,
        local_code_sent: true,
    };
    store
        .write_log(SendLog {
            attempts: vec![attempt(s.id, "twilio", "unavailable", 12)],
            opened: None,
            session: Some(update),
            events: vec![],
        })
        .await
        .unwrap();
    let stored = store.get_session(s.id).await.unwrap().unwrap();
    assert_eq!((stored.provider_refs, stored.local_code_sent), (vec![r], true));
    assert!(store.get_session(Uuid::new_v4()).await.unwrap().is_none());
    let rows = store.recent_attempts(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].provider.as_str(), rows[0].response_time_ms), ("twilio", 12));
}

async fn an_edit_is_written_back_only_when_asked(store: Arc<dyn Store>) {
    let s = session(2, 60);
    store.insert_session(&s).await.unwrap();
    let lease = Utc::now().trunc_subsecs(6) + Duration::seconds(5);
    let edited = store
        .update_session(s.id, &|s| {
            s.attempts = 2;
            s.status = SessionStatus::Failed;
            s.verify_lease_until = Some(lease);
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.get_session(s.id).await.unwrap().as_ref(), Some(&edited));
    assert_eq!(
        (edited.attempts, edited.status, edited.verify_lease_until),
        (2, SessionStatus::Failed, Some(lease))
    );
    let seen = store
        .update_session(s.id, &|s| {
            s.attempts = 99;
            false
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.attempts, 99, "the edit sees its own change");
    assert_eq!(
        store.get_session(s.id).await.unwrap().unwrap().attempts,
        2,
        "but nothing is written"
    );
    assert!(store.update_session(Uuid::new_v4(), &|_| true).await.unwrap().is_none());
}

async fn concurrent_edits_of_one_session_are_serialised(store: Arc<dyn Store>) {
    let s = session(1000, 60);
    store.insert_session(&s).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .update_session(s.id, &|s| {
                        s.attempts += 1;
                        true
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().unwrap().attempts);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>(), "every edit saw the one before it");
}

async fn a_failed_send_fails_the_session(store: Arc<dyn Store>) {
    let s = session(5, 60);
    store.insert_session(&s).await.unwrap();
    let update = SessionUpdate {
        id: s.id,
        add_refs: vec![],
        delivered_by: None,
        failed: true,
        local_code_sent: false,
    };
    store
        .write_log(SendLog {
            session: Some(update),
            ..SendLog::default()
        })
        .await
        .unwrap();
    assert_eq!(store.get_session(s.id).await.unwrap().unwrap().status, SessionStatus::Failed);
}

/// The health tally counts a session by when it was opened: the window read takes every session
/// since `baseline_from`, each marked recent or not; the baseline read (`created_before`) takes
/// only those older than the window.
async fn the_baseline_tally_leaves_the_window_out(store: Arc<dyn Store>) {
    let now = Utc::now().trunc_subsecs(6);
    for age in [Duration::minutes(30), Duration::minutes(1)] {
        let mut s = session(3, 300);
        s.id = Uuid::new_v4();
        s.created_at = now - age;
        s.expires_at = s.created_at + Duration::minutes(5);
        s.status = SessionStatus::Verified;
        let mut sent = attempt(s.id, "2factor", "accepted", 40);
        sent.created_at = s.created_at;
        store
            .write_log(SendLog {
                attempts: vec![sent],
                opened: Some(s),
                ..SendLog::default()
            })
            .await
            .unwrap();
    }
    let window = TallyWindow {
        baseline_from: now - Duration::hours(6),
        window_from: now - Duration::minutes(10),
        settled_before: now - Duration::minutes(2),
        created_before: None,
    };
    let counts = |rows: Vec<smsgate::store::TallyRow>| {
        let mut c: Vec<(bool, u64, u64)> = rows.iter().map(|r| (r.recent, r.sent, r.verified)).collect();
        c.sort();
        c
    };
    let all = store.conversion_tally(window).await.unwrap();
    assert_eq!(counts(all), vec![(false, 1, 1), (true, 1, 1)]);
    let baseline = store
        .conversion_tally(TallyWindow {
            created_before: Some(window.window_from),
            ..window
        })
        .await
        .unwrap();
    assert_eq!(counts(baseline), vec![(false, 1, 1)], "the window is not read again");
}

/// Two sessions opened at `opened_at` through 2factor, each resent through Twilio and then
/// 2factor again, and verified 30 s after: one with the resent Twilio code, one with its first
/// (2Factor) code.
async fn open_resend_and_verify(store: &dyn Store, opened_at: chrono::DateTime<Utc>) {
    for verified_by in [Some("twilio"), None] {
        let mut s = session(3, 300);
        s.created_at = opened_at;
        s.expires_at = opened_at + Duration::minutes(5);
        store
            .write_log(SendLog {
                attempts: vec![attempt(s.id, "2factor", "accepted", 40)],
                opened: Some(s.clone()),
                ..SendLog::default()
            })
            .await
            .unwrap();
        // Two resends, each a message of its own.
        for provider in ["twilio", "2factor"] {
            let mut resent = attempt(Uuid::new_v4(), provider, "accepted", 40);
            resent.session_id = Some(s.id);
            store
                .write_log(SendLog {
                    attempts: vec![resent],
                    session: Some(SessionUpdate {
                        id: s.id,
                        add_refs: Vec::new(),
                        delivered_by: None,
                        failed: false,
                        local_code_sent: true,
                    }),
                    ..SendLog::default()
                })
                .await
                .unwrap();
        }
        store
            .update_session(s.id, &move |s| {
                s.status = SessionStatus::Verified;
                s.verified_at = Some(s.created_at + Duration::seconds(30));
                s.verified_by = verified_by.map(str::to_string);
                true
            })
            .await
            .unwrap()
            .unwrap();
    }
}

/// (provider, sent, verified, delay) of a tally, by provider.
async fn tally(store: &dyn Store, window: TallyWindow) -> Vec<(String, u64, u64, f64)> {
    let mut got: Vec<_> = store
        .conversion_tally(window)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.provider.clone(), r.sent, r.verified, r.delay_secs))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

/// The window of the last ten minutes before `now`, settled two minutes before it.
fn last_ten_minutes(now: chrono::DateTime<Utc>) -> TallyWindow {
    TallyWindow {
        baseline_from: now - Duration::hours(6),
        window_from: now - Duration::minutes(10),
        settled_before: now - Duration::minutes(2),
        created_before: None,
    }
}

/// A session counts once for each provider that took an SMS of it, however often; its
/// verification is credited to the provider whose code verified it, else to the provider of its
/// first SMS.
async fn a_resent_session_counts_for_each_carrier_and_credits_the_verifying_one(store: Arc<dyn Store>) {
    let now = Utc::now().trunc_subsecs(6);
    open_resend_and_verify(&*store, now - Duration::minutes(5)).await;
    assert_eq!(
        tally(&*store, last_ten_minutes(now)).await,
        vec![("2factor".to_string(), 2, 1, 30.0), ("twilio".to_string(), 2, 1, 30.0)],
        "each session once per carrier; one verification each"
    );
}

/// Sessions are counted by the ten seconds they were opened in: one not verified counts as sent
/// only once the whole of its ten seconds is older than `settled_before`; a verified one counts
/// at once.
async fn a_pending_session_counts_once_its_ten_seconds_are_settled(store: Arc<dyn Store>) {
    let now = Utc::now();
    // A multiple of ten seconds since the epoch, five minutes ago.
    let edge = chrono::DateTime::from_timestamp((now.timestamp() - 300).div_euclid(10) * 10, 0).unwrap();
    for (offset_ms, status) in [
        (-1_000, SessionStatus::Pending),
        (1_000, SessionStatus::Pending),
        (2_000, SessionStatus::Verified),
    ] {
        let mut s = session(3, 300);
        s.created_at = edge + Duration::milliseconds(offset_ms);
        s.status = status;
        store
            .write_log(SendLog {
                attempts: vec![attempt(s.id, "2factor", "accepted", 40)],
                opened: Some(s),
                ..SendLog::default()
            })
            .await
            .unwrap();
    }
    let window = TallyWindow {
        settled_before: edge + Duration::seconds(5),
        ..last_ten_minutes(now)
    };
    assert_eq!(
        tally(&*store, window).await,
        vec![("2factor".to_string(), 2, 1, 0.0)],
        "the session opened a second before the edge and the verified one; not the pending one \
         opened in the ten seconds `settled_before` falls in"
    );
    let later = TallyWindow {
        settled_before: edge + Duration::seconds(10),
        ..window
    };
    assert_eq!(tally(&*store, later).await, vec![("2factor".to_string(), 3, 1, 0.0)]);
}

/// Runs a conformance test on a fresh memory store.
async fn on_memory<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>) -> F) {
    test(Arc::new(MemoryStore::new())).await
}

/// Runs a conformance test on a fresh PostgreSQL schema, dropped afterwards.
async fn on_postgres<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>) -> F) {
    let (store, _db) = postgres().await;
    test(store).await
}

on_both_stores!(
    memory: super::on_memory,
    postgres: super::on_postgres;
    sessions_round_trip_with_provider_refs,
    an_edit_is_written_back_only_when_asked,
    concurrent_edits_of_one_session_are_serialised,
    a_failed_send_fails_the_session,
    the_baseline_tally_leaves_the_window_out,
    a_resent_session_counts_for_each_carrier_and_credits_the_verifying_one,
    a_pending_session_counts_once_its_ten_seconds_are_settled,
);

/// Health's counts are written with the sessions and read without them (migration 0016): with
/// every session row deleted the tally is the same, and the migration's count of the sessions
/// already stored is the count the writes made.
#[tokio::test]
async fn health_counts_are_written_with_the_sessions_and_read_without_them() {
    let (store, db) = postgres().await;
    let now = Utc::now().trunc_subsecs(6);
    open_resend_and_verify(&*store, now - Duration::minutes(5)).await;
    let written = tally(&*store, last_ten_minutes(now)).await;
    assert_eq!(
        written,
        vec![("2factor".to_string(), 2, 1, 30.0), ("twilio".to_string(), 2, 1, 30.0)]
    );
    let client = db.client().await;
    client.batch_execute("DELETE FROM provider_tallies").await.unwrap();
    assert_eq!(tally(&*store, last_ten_minutes(now)).await, Vec::new(), "read from the counts");
    client
        .batch_execute(include_str!("../../migrations/0016_health_counted_at_write.sql"))
        .await
        .unwrap();
    assert_eq!(
        tally(&*store, last_ten_minutes(now)).await,
        written,
        "counted from the stored sessions"
    );
    client.batch_execute("DELETE FROM sms_otp_sessions").await.unwrap();
    assert_eq!(tally(&*store, last_ten_minutes(now)).await, written, "not from the sessions");
}

/// A send whose row PostgreSQL refuses (a NUL byte that got past the edge) fails on its own:
/// the sends that shared its group-commit statement commit, and their rows are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_fails_only_its_own_send_in_a_group_commit() {
    const SENDS: usize = 50;
    const BAD: usize = 25;
    let (store, _db) = postgres().await;
    let start = Arc::new(tokio::sync::Barrier::new(SENDS));
    let tasks: Vec<_> = (0..SENDS)
        .map(|i| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            tokio::spawn(async move {
                let mut row = attempt(Uuid::new_v4(), "twilio", "accepted", i as i32);
                if i == BAD {
                    row.user_id = Some("u\u{0}1".into());
                }
                let id = row.id;
                start.wait().await;
                let log = SendLog {
                    attempts: vec![row],
                    ..SendLog::default()
                };
                (id, store.write_log(log).await)
            })
        })
        .collect();
    let mut committed = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (id, result) = task.await.unwrap();
        match (i == BAD, result) {
            (false, Ok(())) => committed.push(id),
            (true, Err(_)) => {}
            (bad, result) => panic!("send {i} (bad: {bad}): {result:?}"),
        }
    }
    let mut stored: Vec<Uuid> = store.recent_attempts(SENDS * 2).await.unwrap().iter().map(|r| r.id).collect();
    stored.sort();
    committed.sort();
    assert_eq!(stored, committed, "every good send's row, and no other");
}
