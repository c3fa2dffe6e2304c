//! The per-request pure work of a send: parsing the number, the code HMAC and its
//! constant-time check, one breaker permit and record, and choosing the candidates.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smsgate::config::BreakerSettings;
use smsgate::keys::HmacKey;
use smsgate::phone::Phone;
use smsgate::providers::MessageBody;
use smsgate::routing::{Breaker, CallResult, CallStats};
use std::hint::black_box;
use uuid::Uuid;

mod fake;

fn phone_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("phone_parse");
    for (label, raw) in [
        ("e164", "+919876543210"),
        ("national", "98765 43210"),
        ("formatted_us", "+1 (415) 555-2671"),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(label), raw, |b, raw| {
            b.iter(|| Phone::parse(black_box(raw), "91").expect("valid"))
        });
    }
    g.finish();
}

fn otp_code(c: &mut Criterion) {
    let key = HmacKey::new("bench-secret-of-a-realistic-length-0123456789".to_string().into());
    let session = Uuid::new_v4();
    let stored = key.code_hmac(session, "123456");
    let mut g = c.benchmark_group("otp");
    g.bench_function("code_hmac", |b| b.iter(|| key.code_hmac(black_box(session), black_box("123456"))));
    g.bench_function("code_matches_right", |b| {
        b.iter(|| assert!(key.code_matches(black_box(session), black_box("123456"), &stored)))
    });
    g.bench_function("code_matches_wrong", |b| {
        b.iter(|| assert!(!key.code_matches(black_box(session), black_box("654321"), &stored)))
    });
    g.finish();
}

/// One permit and one recorded success, with the breaker's sliding window holding `calls` calls:
/// the steady state of a provider taking `calls / window_seconds` sends per second. A synthetic
/// clock advances by `window / calls` per call so each new call pushes the oldest one out.
fn breaker(c: &mut Criterion) {
    let settings = BreakerSettings::default();
    let window = Duration::from_secs(settings.window_seconds);
    let mut g = c.benchmark_group("breaker_acquire_record");
    for calls in [1u32, 1_000, 10_000, 60_000] {
        let b = Arc::new(Breaker::new(settings.clone()));
        let step = window / calls;
        let clock = Cell::new(Instant::now());
        let tick = || {
            let now = clock.get() + step;
            clock.set(now);
            now
        };
        for _ in 0..calls {
            let now = tick();
            b.try_acquire(now).expect("closed").record(CallResult::Success, now);
        }
        let per_second = calls as u64 / settings.window_seconds;
        g.bench_function(BenchmarkId::new("window_calls", format!("{calls} ({per_second}/s)")), |bench| {
            bench.iter(|| {
                let now = tick();
                b.try_acquire(now).expect("closed").record(CallResult::Success, now);
            })
        });
    }
    g.finish();
}

fn candidates(c: &mut Criterion) {
    let registry = fake::eight_with_country_order();
    let to = Phone::parse("+919876543210", "91").expect("valid");
    let body = MessageBody::Otp {
        code: "123456".into(),
        text: "Your code is 123456".into(),
    };
    assert_eq!(
        registry.candidates(&body, &to, None).len(),
        4,
        "the +91 order minus the +1-only provider"
    );
    let mut g = c.benchmark_group("registry_candidates");
    g.bench_function("8_providers_country_order", |b| {
        b.iter(|| registry.candidates(black_box(&body), &to, None))
    });
    g.bench_function("8_providers_country_order_preferred", |b| {
        b.iter(|| registry.candidates(black_box(&body), &to, Some("p0")))
    });
    g.finish();
}

/// What every attempt adds for the admin status panel, and what one status read costs.
fn call_stats(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_stats");
    let t0 = Instant::now();
    let stats = CallStats::new(t0);
    let at = Cell::new(t0);
    g.bench_function("record", |b| {
        b.iter(|| {
            // 1,000 calls a second: every bucket in use.
            let now = at.get() + Duration::from_millis(1);
            at.set(now);
            stats.record(black_box(now), black_box(Duration::from_millis(42)), true)
        })
    });
    g.bench_function("summary", |b| b.iter(|| stats.summary(black_box(at.get()))));
    g.finish();
}

/// A provider-health refresh on the memory store after 100,000 sessions, each with one accepted
/// attempt, were written: it reads the counts kept as they were written, under the store's lock,
/// so every send waits this long.
fn memory_health_tally(c: &mut Criterion) {
    use chrono::{Duration as Span, Utc};
    use smsgate::store::{AttemptRow, HealthStore, MemoryStore, SendLog, Session, SessionStatus, Store, TallyWindow};
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let store = MemoryStore::new();
    let now = Utc::now();
    for i in 0..100_000u32 {
        let id = Uuid::new_v4();
        let created_at = now - Span::milliseconds(i64::from(i) * 5);
        let session = Session {
            id,
            client: "app".into(),
            phone: format!("+9198{:08}", i),
            user_id: None,
            purpose: "login".into(),
            code_hmac: vec![7; 32],
            provider_refs: Vec::new(),
            status: if i % 4 == 0 {
                SessionStatus::Pending
            } else {
                SessionStatus::Verified
            },
            attempts: 0,
            max_attempts: 5,
            created_at,
            expires_at: created_at + Span::minutes(5),
            verified_at: None,
            local_code_sent: false,
            verify_lease_until: None,
            verified_by: None,
        };
        let attempt = AttemptRow {
            id: Uuid::new_v4(),
            message_id: id,
            session_id: Some(id),
            user_id: None,
            to: session.phone.clone(),
            kind: "otp".into(),
            provider: if i % 2 == 0 { "2factor" } else { "twilio" }.into(),
            outcome: "accepted".into(),
            http_status: Some(200),
            error: None,
            provider_ref: None,
            response_time_ms: 40,
            ambiguous: false,
            created_at,
            parts: Some(1),
            delivery: None,
        };
        let log = SendLog {
            attempts: vec![attempt],
            opened: Some(session),
            ..SendLog::default()
        };
        rt.block_on(store.write_log(log)).expect("written");
    }
    let window = TallyWindow {
        baseline_from: now - Span::minutes(10),
        window_from: now - Span::minutes(10),
        settled_before: now - Span::minutes(2),
        created_before: None,
    };
    let rows = rt.block_on(store.conversion_tally(window)).expect("tally");
    // Verified sessions count at once, pending ones once the ten seconds they were opened in are
    // wholly two minutes old.
    let tens = |t: chrono::DateTime<Utc>| t.timestamp_millis().div_euclid(10_000);
    let settled = (0..100_000i64)
        .filter(|i| i % 4 != 0 || tens(now - Span::milliseconds(i * 5)) < tens(window.settled_before))
        .count() as u64;
    assert_eq!(rows.iter().map(|r| r.sent).sum::<u64>(), settled);
    c.bench_function("memory_health_tally_100k", |b| {
        b.iter(|| rt.block_on(store.conversion_tally(black_box(window))).expect("tally"))
    });
}

criterion_group! {
    name = benches;
    config = fake::quick();
    targets = phone_parse, otp_code, breaker, candidates, call_stats, memory_health_tally
}
criterion_main!(benches);
