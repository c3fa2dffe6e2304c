//! `Router::dispatch` against providers that answer at once: the router's own cost per send
//! (candidates, breaker, budget, metrics, attempt record), without network or store.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use smsgate::config::{BreakerSettings, RoutingSettings};
use smsgate::metrics::Metrics;
use smsgate::phone::Phone;
use smsgate::providers::{MessageBody, OutboundSms};
use smsgate::routing::{Registry, Router};

mod fake;

/// `window_seconds` of the breakers: the default (30 s) keeps every call of the last 30 s, and
/// each record counts the failures among them; 0 keeps one call, isolating the router's own cost.
fn router(primary_fails: bool, window_seconds: u64) -> Router {
    let primary = BreakerSettings {
        window_seconds,
        ..fake::never_open()
    };
    let backup = BreakerSettings {
        window_seconds,
        ..BreakerSettings::default()
    };
    let slots = vec![
        fake::slot(fake::at_once("primary", &["91"], primary_fails), 1, primary),
        fake::slot(fake::at_once("backup", &[], false), 2, backup),
    ];
    let settings = RoutingSettings {
        // Every send fails over once; a budget of one retry per request never runs dry.
        retry_budget_ratio: 1.0,
        ..RoutingSettings::default()
    };
    Router::new(Registry::new(slots, BTreeMap::new()), settings, Metrics::new())
}

fn sms() -> OutboundSms {
    OutboundSms {
        id: uuid::Uuid::new_v4(),
        to: Phone::parse("+919876543210", "91").expect("valid"),
        body: MessageBody::Otp {
            code: "123456".into(),
            text: "Your verification code is 123456. It expires in 5 minutes.".into(),
        },
    }
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let sms = sms();
    let mut g = c.benchmark_group("router_dispatch");
    let default_window = BreakerSettings::default().window_seconds;
    let cases = [
        ("accepted_first", false, default_window, "primary", 1),
        ("one_failover", true, default_window, "backup", 2),
        ("accepted_first_window_0s", false, 0, "primary", 1),
        ("one_failover_window_0s", true, 0, "backup", 2),
    ];
    for (label, primary_fails, window, delivered_by, attempts) in cases {
        let router = router(primary_fails, window);
        let check = rt.block_on(router.dispatch(&sms, None, router.request_deadline()));
        assert_eq!(check.result.expect("delivered").provider, delivered_by);
        assert_eq!(check.attempts.len(), attempts);
        g.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let d = router.dispatch(&sms, None, router.request_deadline()).await;
                debug_assert!(d.result.is_ok());
                d
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = fake::quick();
    targets = dispatch
}
criterion_main!(benches);
