//! The router's decisions as one table: scripted providers, a message, settings, and what each
//! dispatch must do. Time is tokio's paused clock, so cool-downs, breaker waits, timeouts and
//! deadlines pass in an instant and exactly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Breaker, DispatchError, Outcome, Registry, Router, Slot};
use crate::config::RoutingSettings;
use crate::metrics::Metrics;
use crate::providers::testing::{self, Reply, Scripted};
use crate::providers::{OtpSupport, OutboundSms, Provider, ProviderError};

use Outcome::{Accepted, Misconfigured, Rejected, Throttled, Timeout, Unavailable};

/// How a dispatch ended.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    By(&'static str),
    Rejected,
    Ambiguous,
    AllFailed,
    NoRoute,
}

enum Msg {
    Otp,
    Text,
    Template,
}

enum Step {
    Send {
        msg: Msg,
        preferred: Option<&'static str>,
        want: Want,
        /// Every attempt of this dispatch, in order.
        attempts: &'static [(&'static str, Outcome)],
        /// Each provider's calls since the case began, in table order.
        calls: &'static [usize],
        /// Time the dispatch took on the paused clock (timeouts, waits for a cool-down).
        took: Duration,
    },
    Advance(Duration),
}

fn send(msg: Msg, want: Want, attempts: &'static [(&'static str, Outcome)], calls: &'static [usize]) -> Step {
    Step::Send {
        msg,
        preferred: None,
        want,
        attempts,
        calls,
        took: Duration::ZERO,
    }
}

impl Step {
    fn preferring(mut self, name: &'static str) -> Self {
        if let Step::Send { preferred, .. } = &mut self {
            *preferred = Some(name);
        }
        self
    }

    fn taking(mut self, duration: Duration) -> Self {
        if let Step::Send { took, .. } = &mut self {
            *took = duration;
        }
        self
    }
}

struct Case {
    name: &'static str,
    /// In priority order.
    providers: Vec<Scripted>,
    /// Throughput caps by provider name.
    caps: &'static [(&'static str, u32)],
    settings: RoutingSettings,
    steps: Vec<Step>,
}

fn p1() -> Scripted {
    Scripted::new("p1")
}

fn p2() -> Scripted {
    Scripted::new("p2")
}

fn fail(err: ProviderError) -> Reply {
    Reply::Fail(err)
}

fn throttled(retry_after_secs: u64) -> Reply {
    fail(ProviderError::throttled(Some(429), Some(secs(retry_after_secs)), "slow down"))
}

fn unavailable() -> Reply {
    fail(ProviderError::unavailable(Some(503), "down"))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings(change: impl FnOnce(&mut RoutingSettings)) -> RoutingSettings {
    let mut s = RoutingSettings::default();
    change(&mut s);
    s
}

fn cases() -> Vec<Case> {
    let defaults = RoutingSettings::default;
    let timeout = ms(defaults().attempt_timeout_ms);
    let misconfigured_open = ms(defaults().breaker.open_ms * 8);
    vec![
        Case {
            name: "Rejected stops at #1 and never calls #2",
            providers: vec![p1().then(fail(ProviderError::rejected(Some(400), "21211", "bad number"))), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![send(Msg::Otp, Want::Rejected, &[("p1", Rejected)], &[1, 0])],
        },
        Case {
            name: "Throttled cools #1 for its Retry-After while #2 serves, then #1 serves again",
            providers: vec![p1().then(throttled(30)), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![
                send(Msg::Otp, Want::By("p2"), &[("p1", Throttled), ("p2", Accepted)], &[1, 1]),
                send(Msg::Otp, Want::By("p2"), &[("p2", Accepted)], &[1, 2]),
                Step::Advance(secs(29)),
                send(Msg::Otp, Want::By("p2"), &[("p2", Accepted)], &[1, 3]),
                Step::Advance(secs(1)),
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[2, 3]),
            ],
        },
        Case {
            name: "a Retry-After beyond throttle_backoff_max_ms cools #1 only for the cap",
            providers: vec![p1().then(throttled(86_400)), p2()],
            caps: &[],
            settings: settings(|s| s.throttle_backoff_max_ms = 60_000),
            steps: vec![
                send(Msg::Otp, Want::By("p2"), &[("p1", Throttled), ("p2", Accepted)], &[1, 1]),
                Step::Advance(secs(60)),
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[2, 1]),
            ],
        },
        Case {
            name: "an OTP fails over on a timeout (the session takes either code)",
            providers: vec![p1().then(Reply::Silence), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![send(Msg::Otp, Want::By("p2"), &[("p1", Timeout), ("p2", Accepted)], &[1, 1]).taking(timeout)],
        },
        Case {
            name: "a text stops on a timeout: it may have been delivered",
            providers: vec![p1().then(Reply::Silence), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![send(Msg::Text, Want::Ambiguous, &[("p1", Timeout)], &[1, 0]).taking(timeout)],
        },
        Case {
            name: "a text fails over on a timeout with failover_on_ambiguous_timeout",
            providers: vec![p1().then(Reply::Silence), p2()],
            caps: &[],
            settings: settings(|s| s.failover_on_ambiguous_timeout = true),
            steps: vec![send(Msg::Text, Want::By("p2"), &[("p1", Timeout), ("p2", Accepted)], &[1, 1]).taking(timeout)],
        },
        Case {
            name: "Misconfigured fails over and opens #1's breaker long",
            providers: vec![p1().then(fail(ProviderError::misconfigured(Some(401), "bad key"))), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![
                send(Msg::Otp, Want::By("p2"), &[("p1", Misconfigured), ("p2", Accepted)], &[1, 1]),
                // Far past an ordinary open wait (open_ms), #1 is still left alone.
                Step::Advance(misconfigured_open - ms(1)),
                send(Msg::Otp, Want::By("p2"), &[("p2", Accepted)], &[1, 2]),
                Step::Advance(ms(1)),
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[2, 2]),
            ],
        },
        Case {
            name: "Unavailable fails over, and one failure leaves #1 in rotation",
            providers: vec![p1().then(unavailable()), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![
                send(Msg::Otp, Want::By("p2"), &[("p1", Unavailable), ("p2", Accepted)], &[1, 1]),
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[2, 1]),
            ],
        },
        Case {
            name: "an exhausted retry budget ends in AllFailed without calling #2",
            providers: vec![p1().then(unavailable()), p2()],
            caps: &[],
            settings: settings(|s| {
                s.retry_budget_ratio = 0.0;
                s.retry_budget_min_per_second = 0;
            }),
            steps: vec![send(Msg::Otp, Want::AllFailed, &[("p1", Unavailable)], &[1, 0])],
        },
        Case {
            name: "a provider at its throughput cap is skipped",
            providers: vec![p1(), p2()],
            caps: &[("p1", 1)],
            settings: defaults(),
            steps: vec![
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[1, 0]),
                send(Msg::Otp, Want::By("p2"), &[("p2", Accepted)], &[1, 1]),
                Step::Advance(secs(1)),
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[2, 1]),
            ],
        },
        Case {
            name: "the preferred provider goes first",
            providers: vec![p1(), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![send(Msg::Otp, Want::By("p2"), &[("p2", Accepted)], &[0, 1]).preferring("p2")],
        },
        Case {
            name: "with every candidate cooling and time left, the dispatch waits for the earliest",
            providers: vec![p1().then(throttled(3)), p2().then(throttled(1))],
            caps: &[],
            settings: defaults(),
            steps: vec![
                send(Msg::Otp, Want::AllFailed, &[("p1", Throttled), ("p2", Throttled)], &[1, 1]),
                send(Msg::Otp, Want::By("p2"), &[("p2", Accepted)], &[1, 2]).taking(secs(1)),
            ],
        },
        Case {
            name: "with every candidate cooling past the deadline, the dispatch fails without waiting",
            providers: vec![p1().then(throttled(3)), p2().then(throttled(1))],
            caps: &[],
            settings: settings(|s| s.deadline_ms = 1_000),
            steps: vec![
                send(Msg::Otp, Want::AllFailed, &[("p1", Throttled), ("p2", Throttled)], &[1, 1]),
                send(Msg::Otp, Want::AllFailed, &[], &[1, 1]),
            ],
        },
        Case {
            name: "NoRoute when no provider serves the country",
            providers: vec![p1().countries(&["1"]), p2().countries(&["44"])],
            caps: &[],
            settings: defaults(),
            steps: vec![send(Msg::Otp, Want::NoRoute, &[], &[0, 0])],
        },
        Case {
            name: "a provider without the capability is passed over",
            providers: vec![p1(), p2().template(true).otp(OtpSupport::None)],
            caps: &[],
            settings: defaults(),
            steps: vec![
                send(Msg::Template, Want::By("p2"), &[("p2", Accepted)], &[0, 1]),
                send(Msg::Otp, Want::By("p1"), &[("p1", Accepted)], &[1, 1]),
            ],
        },
        Case {
            name: "NoRoute for a template when no provider carries templates",
            providers: vec![p1(), p2()],
            caps: &[],
            settings: defaults(),
            steps: vec![send(Msg::Template, Want::NoRoute, &[], &[0, 0])],
        },
    ]
}

fn router(providers: &[Arc<Scripted>], caps: &[(&str, u32)], settings: RoutingSettings, metrics: Metrics) -> Router {
    let slots = providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let cap = caps.iter().find(|(n, _)| *n == p.name()).map(|(_, c)| *c);
            Arc::new(Slot::new(
                Arc::clone(p) as _,
                "fake",
                i as i32,
                ms(settings.attempt_timeout_ms),
                Arc::new(Breaker::new(settings.breaker.clone())),
                cap,
            ))
        })
        .collect();
    Router::new(Registry::new(slots, BTreeMap::new()), settings, metrics)
}

fn message(msg: &Msg) -> OutboundSms {
    match msg {
        Msg::Otp => testing::otp("123456", "Your code is 123456"),
        Msg::Text => testing::text("Your order shipped"),
        Msg::Template => testing::template("shipped", &["A-1"]),
    }
}

fn outcome_of(result: &Result<super::Delivered, DispatchError>) -> Want {
    match result {
        Ok(d) if d.provider == "p1" => Want::By("p1"),
        Ok(d) if d.provider == "p2" => Want::By("p2"),
        Ok(d) => panic!("delivered by an unknown provider {}", d.provider),
        Err(DispatchError::Rejected { .. }) => Want::Rejected,
        Err(DispatchError::Ambiguous { .. }) => Want::Ambiguous,
        Err(DispatchError::AllFailed { .. }) => Want::AllFailed,
        Err(DispatchError::NoRoute { .. }) => Want::NoRoute,
    }
}

#[tokio::test(start_paused = true)]
async fn the_router_acts_on_each_answer_as_the_failover_rules_say() {
    for case in cases() {
        let providers: Vec<Arc<Scripted>> = case.providers.into_iter().map(Arc::new).collect();
        let router = router(&providers, case.caps, case.settings, Metrics::new());
        for (i, step) in case.steps.into_iter().enumerate() {
            let (msg, preferred, want, attempts, calls, took) = match step {
                Step::Advance(by) => {
                    tokio::time::advance(by).await;
                    continue;
                }
                Step::Send {
                    msg,
                    preferred,
                    want,
                    attempts,
                    calls,
                    took,
                } => (msg, preferred, want, attempts, calls, took),
            };
            let at = format!("{} (step {i})", case.name);
            let started = tokio::time::Instant::now();
            let dispatch = router.dispatch(&message(&msg), preferred, router.request_deadline()).await;
            assert_eq!(outcome_of(&dispatch.result), want, "{at}: {:?}", dispatch.result);
            let got: Vec<(&str, Outcome)> = dispatch.attempts.iter().map(|a| (a.provider.as_str(), a.outcome)).collect();
            assert_eq!(got, attempts, "{at}: attempts");
            let made: Vec<usize> = providers.iter().map(|p| p.calls()).collect();
            assert_eq!(made, calls, "{at}: calls per provider");
            assert_eq!(started.elapsed(), took, "{at}: time taken");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_cut_to_the_cap_is_counted_per_provider() {
    let providers = [Arc::new(p1().then(throttled(86_400))), Arc::new(p2())];
    let metrics = Metrics::new();
    let router = router(&providers, &[], settings(|s| s.throttle_backoff_max_ms = 60_000), metrics.clone());
    let dispatch = router.dispatch(&message(&Msg::Otp), None, router.request_deadline()).await;
    assert_eq!(outcome_of(&dispatch.result), Want::By("p2"));
    let rendered = metrics.render();
    assert!(
        rendered.contains("smsgate_retry_after_capped_total{provider=\"p1\"} 1"),
        "{rendered}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_attempt_is_counted_in_its_providers_stats_on_the_routers_clock() {
    let providers = [
        Arc::new(p1().then(unavailable().after(ms(100)))),
        Arc::new(p2().then(Reply::Accept.after(ms(20)))),
    ];
    let router = router(&providers, &[], RoutingSettings::default(), Metrics::new());
    let dispatch = router.dispatch(&message(&Msg::Otp), None, router.request_deadline()).await;
    assert_eq!(outcome_of(&dispatch.result), Want::By("p2"));
    let registry = router.registry();
    let now = || tokio::time::Instant::now().into_std();
    let (s1, s2) = (registry.slots()[0].stats.summary(now()), registry.slots()[1].stats.summary(now()));
    assert_eq!((s1.calls_1m, s1.success_rate_1m, s1.p50_ms_1m), (1, Some(0.0), Some(100)));
    assert_eq!((s2.calls_1m, s2.success_rate_1m, s2.p95_ms_1m), (1, Some(1.0), Some(20)));
    tokio::time::advance(secs(61)).await;
    let later = registry.slots()[0].stats.summary(now());
    assert_eq!((later.calls_1m, later.calls_1h, later.success_rate_1h), (0, 1, Some(0.0)));
}

#[tokio::test(start_paused = true)]
async fn a_probe_calls_its_provider_alone_even_with_the_breaker_open() {
    let providers = [Arc::new(p1().otherwise(unavailable())), Arc::new(p2())];
    let router = router(&providers, &[], settings(|s| s.breaker.consecutive_failures = 1), Metrics::new());
    let sms = message(&Msg::Otp);
    let first = router.dispatch(&sms, None, router.request_deadline()).await;
    assert_eq!(outcome_of(&first.result), Want::By("p2"));
    let breaker = |router: &Router| {
        router.registry().slots()[0]
            .breaker
            .state(tokio::time::Instant::now().into_std())
            .label()
    };
    assert_eq!(breaker(&router), "open");
    let probe = router.test_through("p1", &sms).await.expect("p1 is configured");
    assert_eq!(outcome_of(&probe.result), Want::AllFailed, "a probe never fails over");
    assert_eq!((providers[0].calls(), providers[1].calls()), (2, 1));
    assert_eq!(probe.attempts.len(), 1);
    assert_eq!(breaker(&router), "open", "a probe without a permit teaches the breaker nothing");
    assert!(router.test_through("p3", &sms).await.is_none());
}
