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

criterion_group! {
    name = benches;
    config = fake::quick();
    targets = phone_parse, otp_code, breaker, candidates, call_stats
}
criterion_main!(benches);
