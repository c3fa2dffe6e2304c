//! Two instances on one PostgreSQL schema: a change on one routes the other within a second, and
//! a dropped LISTEN connection comes back and still delivers changes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::{call, listed};
use crate::helpers::{config, eventually, spawn_pair, TestApp, ADMIN_TOKEN, PHONE};

/// How long `app` takes to list `order` after `change` returns; panics past `within`.
async fn follows_within(app: &TestApp, order: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    let followed = eventually(within, || async { listed(app).await == order }).await;
    let took = started.elapsed();
    assert!(
        followed,
        "the other instance did not follow within {within:?}: {:?}",
        listed(app).await
    );
    took
}

async fn reorder(app: &TestApp, order: &[&str]) {
    let reply = call(app, Method::PUT, "/v1/admin/providers/order", ADMIN_TOKEN, Some(json!(order))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The pids of this schema's registry listeners.
async fn listeners(app: &TestApp) -> Vec<i32> {
    let db = app.db.as_ref().expect("the first instance owns the schema");
    let client = db.client().await;
    let name = format!("{}:{}", smsgate::store::listen::APPLICATION_NAME, db.schema);
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = left($1, 63) ORDER BY pid",
            &[&name],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorder_on_one_instance_routes_the_other_by_the_new_order_within_a_second() {
    let (a, b) = spawn_pair(config).await;
    assert!(
        eventually(Duration::from_secs(5), || async { listeners(&a).await.len() == 2 }).await,
        "both instances listen"
    );
    assert_eq!(listed(&b).await, ["2factor", "twilio"]);
    reorder(&a, &["twilio", "2factor"]).await;
    let took = follows_within(&b, &["twilio", "2factor"], Duration::from_secs(1)).await;
    println!("instance B followed a reorder on A in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(1));
    b.otp_round_trip(PHONE, "twilio").await;
    assert!(b.metric("smsgate_registry_reloads_total{cause=\"notify\"}").await >= Some(1.0));
    assert_eq!(b.metric("smsgate_registry_version").await, Some(2.0));

    reorder(&b, &["2factor", "twilio"]).await;
    follows_within(&a, &["2factor", "twilio"], Duration::from_secs(1)).await;
    a.otp_round_trip(PHONE, "2factor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listen_connection_is_reestablished_and_still_delivers_changes() {
    let (a, b) = spawn_pair(config).await;
    assert!(
        eventually(Duration::from_secs(5), || async { listeners(&a).await.len() == 2 }).await,
        "both instances listen"
    );
    let dropped = listeners(&a).await;
    let admin = a.db.as_ref().unwrap().client().await;
    for pid in &dropped {
        admin.execute("SELECT pg_terminate_backend($1)", &[pid]).await.unwrap();
    }
    let back = eventually(Duration::from_secs(5), || async {
        let now = listeners(&a).await;
        now.len() == 2 && now.iter().all(|p| !dropped.contains(p))
    })
    .await;
    assert!(back, "the listeners reconnected: {:?} (dropped {dropped:?})", listeners(&a).await);
    reorder(&a, &["twilio", "2factor"]).await;
    let took = follows_within(&b, &["twilio", "2factor"], Duration::from_secs(1)).await;
    println!("after a dropped LISTEN connection, instance B followed in {} ms", took.as_millis());
    b.otp_round_trip(PHONE, "twilio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_reload_catches_a_change_no_notification_announced() {
    let (a, b) = spawn_pair(|sim| crate::helpers::config_with(sim, |c| c.registry.reload_seconds = 1)).await;
    // Each listener reloads once it is connected; only a change after that is the periodic's.
    for app in [&a, &b] {
        let listening = eventually(Duration::from_secs(5), || async {
            app.metric("smsgate_registry_reloads_total{cause=\"notify\"}").await >= Some(1.0)
        })
        .await;
        assert!(listening, "the listener connected");
    }
    // A change written behind the instances' backs: committed rows, no NOTIFY.
    let client = a.db.as_ref().unwrap().client().await;
    client
        .batch_execute(
            "UPDATE api_integrations SET priority = CASE name WHEN 'twilio' THEN 1 ELSE 2 END;
             UPDATE registry_version SET version = version + 1;",
        )
        .await
        .unwrap();
    follows_within(&b, &["twilio", "2factor"], Duration::from_secs(3)).await;
    follows_within(&a, &["twilio", "2factor"], Duration::from_secs(3)).await;
    assert!(b.metric("smsgate_registry_reloads_total{cause=\"periodic\"}").await >= Some(1.0));
}
