//! Every `smsgate_` metric named by an alert (`deploy/prometheus-alerts.yaml`) or a dashboard
//! panel (`deploy/grafana-dashboard.json`) is exported by `/metrics`: a renamed metric breaks
//! this test, not the pager at night. Series that exist only once something happened (a
//! failover, a block, a capped 429, a group commit) are made to happen first.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{config_with, eventually, spawn_with, Backend, ADMIN_TOKEN, PHONE};

const ALERTS: &str = include_str!("../../deploy/prometheus-alerts.yaml");
const DASHBOARD: &str = include_str!("../../deploy/grafana-dashboard.json");

/// Every `smsgate_…` identifier in `text` (the job label `"smsgate"` has no underscore after it).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("smsgate_") {
        let ident: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + ident.len()..];
        if ident.len() > "smsgate_".len() {
            names.insert(ident);
        }
    }
    names
}

/// Names in the exposition text: each sample line's series name (`…_bucket` included) and each
/// family's name from its `# TYPE` line (a histogram's own name has no sample line).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(family) => family.split(' ').next(),
            None if l.starts_with('#') || l.is_empty() => None,
            None => l.split(['{', ' ']).next(),
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn names_are_read_from_alert_and_dashboard_files() {
    let alerts = metric_names(ALERTS);
    let dashboard = metric_names(DASHBOARD);
    assert!(alerts.contains("smsgate_failovers_total"), "{alerts:?}");
    assert!(alerts.contains("smsgate_attempt_log_write_errors_total"), "{alerts:?}");
    assert!(dashboard.contains("smsgate_http_request_duration_seconds_bucket"), "{dashboard:?}");
    assert!(!alerts.iter().any(|n| n.ends_with('_')), "{alerts:?}");
}

#[tokio::test]
async fn every_metric_in_the_alerts_and_the_dashboard_is_exported_after_traffic() {
    // A 429 with a Retry-After longer than the cap counts `retry_after_capped`; a low per-phone
    // limit makes a block; PostgreSQL makes the group-commit histogram.
    let app = spawn_with(Backend::Postgres, |sim| {
        config_with(sim, |s| {
            s.routing.throttle_backoff_max_ms = 1_000;
            s.limits.per_phone_per_minute = 2;
            // One settled session is enough for health to judge a provider.
            s.health.min_sessions = 1;
            s.health.settle_seconds = 1;
        })
    })
    .await;
    app.fault("2factor", "throttle:5");
    // The first send fails over from the throttled 2factor to twilio.
    let first = app.send_otp().await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let session = first.body["session_id"].as_str().expect("session_id").to_string();
    assert_eq!(app.verify(&session, "000000").await.status, 200);
    // Sends to one phone until a limit refuses one.
    let mut refused = false;
    for _ in 0..5 {
        if app.send_otp().await.status == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "no limit refused a send");
    // A hook without credentials counts a refusal.
    let hook = app.post("/v1/hooks/kratos/sms", json!({"to": PHONE, "text": "hi"})).await;
    assert_eq!(hook.status, 401);

    // Health judges the settled sessions at its next refresh (an explain asks for one when due).
    app.advance(60);
    let judged = eventually(Duration::from_secs(10), || async {
        let explain = app.get("/v1/routing/explain?to=%2B919876500000&kind=otp", Some(ADMIN_TOKEN)).await;
        explain.body["candidates"]
            .as_array()
            .is_some_and(|c| c.iter().any(|p| p["health"]["sessions"].as_u64() > Some(0)))
    })
    .await;
    assert!(judged, "health never judged the sessions");

    let wanted: BTreeSet<String> = metric_names(ALERTS).union(&metric_names(DASHBOARD)).cloned().collect();
    // Every counter above moved before its response was sent.
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let missing: BTreeSet<String> = wanted.difference(&exported(&text)).cloned().collect();
    assert!(missing.is_empty(), "named in deploy/ but not exported by /metrics: {missing:?}");
}
