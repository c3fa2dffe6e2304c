//! The live provider registry through the admin API: `api_integrations` seeded from the file and
//! then the truth, every write validated like the file and audited, secrets sealed and masked,
//! and every instance following a change within a second.

mod commands;
mod follow;
mod secrets;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{config_with, spawn_app, spawn_tuned, Backend, Reply, TestApp, ADMIN_TOKEN, PHONE, SEND_TOKEN};

/// `method path` with `body` as `token`.
pub async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    app.request(method, path, Some(token), body.map(|b| b.to_string()), &[]).await
}

/// The names of `GET /v1/admin/providers`, in the order it lists them.
pub async fn listed(app: &TestApp) -> Vec<String> {
    let list = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    names(&list.body["providers"])
}

pub fn names(providers: &Value) -> Vec<String> {
    providers
        .as_array()
        .expect("a provider list")
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The audit rows, newest first.
pub async fn audit(app: &TestApp) -> Vec<Value> {
    let page = app.get("/v1/admin/audit?limit=100", Some(ADMIN_TOKEN)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["items"].as_array().unwrap().clone()
}

fn assert_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (status, Some(error)),
        "{}",
        reply.body
    );
}

fn assert_field(reply: &Reply, field: &str) {
    assert_error(reply, 400, "invalid_field");
    assert_eq!(reply.body["field"], field, "{}", reply.body);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_the_file_is_the_registry_and_every_write_answers_409() {
    let app = spawn_app(Backend::Memory).await;
    let list = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
    assert_eq!((list.status, &list.body["source"]), (200, &json!("file")), "{}", list.body);
    assert_eq!(names(&list.body["providers"]), ["2factor", "twilio"]);
    assert_eq!(list.body["providers"][0]["fixed"], json!(["sender_id"]));
    // Secrets read from the environment are shown masked too; too short to show a tail.
    assert_eq!(list.body["providers"][0]["secrets"], json!({"api_key": "••••"}));
    assert_eq!(list.body["providers"][1]["secrets"]["auth_token"], "••••oken");
    let writes = [
        (
            Method::POST,
            "/v1/admin/providers",
            Some(json!({"name": "vonage", "kind": "vonage", "config": {}})),
        ),
        (Method::PATCH, "/v1/admin/providers/twilio", Some(json!({"enabled": false}))),
        (Method::DELETE, "/v1/admin/providers/twilio", None),
        (Method::PUT, "/v1/admin/providers/order", Some(json!(["twilio", "2factor"]))),
    ];
    for (method, path, body) in writes {
        let reply = call(&app, method.clone(), path, ADMIN_TOKEN, body).await;
        assert_error(&reply, 409, "registry_read_only");
        assert!(reply.body["message"].as_str().unwrap().contains("providers.toml"), "{}", reply.body);
    }
    assert_eq!(listed(&app).await, ["2factor", "twilio"], "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_seeds_an_empty_registry_and_the_table_is_the_truth_afterwards() {
    let first = spawn_app(Backend::Postgres).await;
    let list = first.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
    assert_eq!(list.body["source"], "database", "{}", list.body);
    assert_eq!(list.body["version"], 1, "the seed is the first change");
    let db = first.db.as_ref().unwrap().client().await;
    let rows = db.query("SELECT name FROM api_integrations ORDER BY priority", &[]).await.unwrap();
    let stored: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(stored, ["2factor", "twilio"]);
    let seeded = audit(&first).await;
    assert_eq!(
        (seeded[0]["action"].as_str(), seeded[0]["actor"].as_str()),
        (Some("seed"), Some("smsgate"))
    );

    // A second instance started with another file follows the table, not its file.
    let reordered = call(
        &first,
        Method::PUT,
        "/v1/admin/providers/order",
        ADMIN_TOKEN,
        Some(json!(["twilio", "2factor"])),
    )
    .await;
    assert_eq!(reordered.status, 200, "{}", reordered.body);
    let only_twilio = config_with(&first.sim, |c| c.providers.retain(|p| p.name() == "twilio"));
    let second = crate::helpers::spawn_second(&first, only_twilio).await;
    assert_eq!(listed(&second).await, ["twilio", "2factor"]);
    assert_eq!(
        audit(&second).await.iter().filter(|a| a["action"] == "seed").count(),
        1,
        "seeded once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_changes_and_removes_a_provider_and_each_change_is_audited() {
    let app = spawn_app(Backend::Postgres).await;
    let vonage_url = app.sim.url("vonage");
    let created = call(
        &app,
        Method::POST,
        "/v1/admin/providers",
        ADMIN_TOKEN,
        Some(json!({"name": "vonage", "kind": "vonage", "priority": 3, "config": {"base_url": vonage_url, "from": "SMSGATE"}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        (created.body["name"].as_str(), created.body["kind"].as_str()),
        (Some("vonage"), Some("vonage"))
    );
    assert_eq!(created.body["config"]["from"], "SMSGATE");
    assert_eq!(created.body["breaker"], "closed");
    assert_eq!(listed(&app).await, ["2factor", "twilio", "vonage"]);

    let patched = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/vonage",
        ADMIN_TOKEN,
        Some(json!({"priority": 0, "config": {"from": "NEWFROM"}})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        (patched.body["priority"].as_i64(), patched.body["config"]["from"].as_str()),
        (Some(0), Some("NEWFROM"))
    );
    assert_eq!(listed(&app).await, ["vonage", "2factor", "twilio"]);
    // Vonage serves India too: it now takes the OTP.
    let sent = app.send_otp().await;
    assert_eq!(
        (sent.status, app.delivered_by(PHONE).as_deref()),
        (200, Some("vonage")),
        "{}",
        sent.body
    );

    assert!(app.metric("smsgate_breaker_state{provider=\"vonage\"}").await.is_some());
    let deleted = call(&app, Method::DELETE, "/v1/admin/providers/vonage", ADMIN_TOKEN, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(listed(&app).await, ["2factor", "twilio"]);
    assert_eq!(
        app.metric("smsgate_breaker_state{provider=\"vonage\"}").await,
        None,
        "gone from the gauge"
    );

    let trail = audit(&app).await;
    let actions: Vec<&str> = trail.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["delete", "update", "create", "seed"]);
    assert!(
        trail[..3].iter().all(|a| a["actor"] == "ops" && a["target"] == "vonage"),
        "{trail:?}"
    );
    assert_eq!(trail[1]["before"]["config"]["from"], "SMSGATE");
    assert_eq!(trail[1]["after"]["config"]["from"], "NEWFROM");
    assert_eq!(
        (trail[0]["before"]["name"].as_str(), &trail[0]["after"]),
        (Some("vonage"), &Value::Null)
    );
    let page = app.get("/v1/admin/audit?limit=2", Some(ADMIN_TOKEN)).await;
    let next = page.body["next_cursor"].as_str().expect("a next page");
    let rest = app.get(&format!("/v1/admin/audit?limit=2&cursor={next}"), Some(ADMIN_TOKEN)).await;
    let rest: Vec<&str> = rest.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["create", "seed"]);
    assert_eq!(app.metric("smsgate_admin_changes_total{action=\"create\"}").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_validated_like_the_file_and_names_the_field() {
    let app = spawn_app(Backend::Postgres).await;
    let post = |body: Value| call(&app, Method::POST, "/v1/admin/providers", ADMIN_TOKEN, Some(body));
    assert_field(
        &post(json!({"name": "v", "kind": "vonage", "config": {"colour": "red"}})).await,
        "config.colour",
    );
    assert_field(
        &post(json!({"name": "v", "kind": "vonage", "config": {"base_url": "not a url"}})).await,
        "config.base_url",
    );
    assert_field(&post(json!({"name": "v", "kind": "pigeon", "config": {}})).await, "kind");
    assert_field(
        &post(json!({"name": "v", "kind": "vonage", "config": {"timeout_ms": "soon"}})).await,
        "config.timeout_ms",
    );
    assert_field(
        &post(json!({"name": "v", "kind": "vonage", "secrets": {"password": "x"}})).await,
        "secrets.password",
    );
    assert_error(
        &post(json!({"name": "twilio", "kind": "twilio", "config": {}})).await,
        409,
        "provider_exists",
    );

    let patch = |name: &str, body: Value| {
        let path = format!("/v1/admin/providers/{name}");
        let app = &app;
        async move { call(app, Method::PATCH, &path, ADMIN_TOKEN, Some(body)).await }
    };
    assert_error(&patch("nobody", json!({"enabled": false})).await, 404, "provider_not_found");
    assert_field(
        &patch("twilio", json!({"config": {"base_url": "ftp://x"}})).await,
        "config.base_url",
    );
    assert_field(
        &patch("2factor", json!({"config": {"sender_id": "OTHER"}})).await,
        "config.sender_id",
    );
    let none_left = patch("2factor", json!({"enabled": false})).await;
    assert_eq!(none_left.status, 200, "one provider may be switched off: {}", none_left.body);
    assert_error(&patch("twilio", json!({"enabled": false})).await, 400, "no_enabled_provider");
    assert_error(
        &call(&app, Method::DELETE, "/v1/admin/providers/twilio", ADMIN_TOKEN, None).await,
        400,
        "no_enabled_provider",
    );
    assert_error(
        &call(&app, Method::DELETE, "/v1/admin/providers/nobody", ADMIN_TOKEN, None).await,
        404,
        "provider_not_found",
    );

    let order = |body: Value| call(&app, Method::PUT, "/v1/admin/providers/order", ADMIN_TOKEN, Some(body));
    assert_field(&order(json!(["twilio", "2factor", "nobody"])).await, "order");
    assert_field(&order(json!(["twilio"])).await, "order");
    assert_field(&order(json!(["twilio", "twilio", "2factor"])).await, "order");
    assert_field(
        &order(json!({"order": ["twilio", "2factor"], "enabled": {"nobody": true}})).await,
        "enabled.nobody",
    );
    assert_error(
        &order(json!({"order": ["twilio", "2factor"], "enabled": {"twilio": false}})).await,
        400,
        "no_enabled_provider",
    );
    assert_error(&order(json!({"order": "twilio"})).await, 400, "invalid_request");

    // Nothing refused was written: only the one accepted switch is in the trail.
    let trail = audit(&app).await;
    let actions: Vec<&str> = trail.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["update", "seed"]);
    assert_eq!(listed(&app).await, ["2factor", "twilio"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_change_providers_or_read_the_audit_trail() {
    let app = spawn_app(Backend::Postgres).await;
    let routes = [
        (
            Method::POST,
            "/v1/admin/providers",
            Some(json!({"name": "v", "kind": "vonage", "config": {}})),
        ),
        (Method::PATCH, "/v1/admin/providers/twilio", Some(json!({"enabled": false}))),
        (Method::DELETE, "/v1/admin/providers/twilio", None),
        (Method::PUT, "/v1/admin/providers/order", Some(json!(["twilio", "2factor"]))),
        (Method::GET, "/v1/admin/audit", None),
    ];
    for (method, path, body) in routes {
        let as_app = call(&app, method.clone(), path, SEND_TOKEN, body.clone()).await;
        assert_error(&as_app, 403, "forbidden");
        let anonymous = app.request(method, path, None, body.map(|b| b.to_string()), &[]).await;
        assert_error(&anonymous, 401, "unauthorized");
    }
    assert_eq!(listed(&app).await, ["2factor", "twilio"]);
    assert_eq!(audit(&app).await.len(), 1, "only the seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorder_moves_traffic_at_once_and_keeps_the_breakers_of_unchanged_providers() {
    let app = spawn_tuned(Backend::Postgres, |c| {
        c.routing.breaker.consecutive_failures = 1;
        c.routing.breaker.open_ms = 600_000;
    })
    .await;
    app.fault("2factor", "500");
    assert_eq!(app.send_otp().await.status, 200);
    app.clear_fault("2factor");
    let before = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
    assert_eq!(before.body["providers"][0]["breaker"], "open", "{}", before.body);

    let reordered = call(
        &app,
        Method::PUT,
        "/v1/admin/providers/order",
        ADMIN_TOKEN,
        Some(json!({"order": ["twilio", "2factor"], "enabled": {"2factor": true}})),
    )
    .await;
    assert_eq!(reordered.status, 200, "{}", reordered.body);
    assert_eq!(names(&reordered.body["providers"]), ["twilio", "2factor"]);
    assert_eq!(reordered.body["version"], 2);
    assert_eq!(
        reordered.body["providers"][1]["breaker"], "open",
        "the reorder kept 2factor's breaker"
    );
    assert_eq!(reordered.body["providers"][1]["priority"], 2);
    app.otp_round_trip(PHONE, "twilio").await;
    assert_eq!(app.metric("smsgate_registry_version").await, Some(2.0));
    assert!(app.metric("smsgate_registry_reloads_total{cause=\"local\"}").await >= Some(1.0));

    // A changed entry starts afresh: its breaker closes.
    let changed = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/2factor",
        ADMIN_TOKEN,
        Some(json!({"config": {"template": "Other"}})),
    )
    .await;
    assert_eq!(
        (changed.status, &changed.body["breaker"]),
        (200, &json!("closed")),
        "{}",
        changed.body
    );
    let trail = audit(&app).await;
    assert_eq!(trail[1]["action"], "order");
    assert_eq!(trail[1]["before"]["order"], json!(["2factor", "twilio"]));
    assert_eq!(trail[1]["after"]["order"], json!(["twilio", "2factor"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_can_be_switched_off_and_on_again() {
    let app = spawn_app(Backend::Postgres).await;
    let off = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/2factor",
        ADMIN_TOKEN,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((off.status, &off.body["enabled"]), (200, &json!(false)), "{}", off.body);
    app.otp_round_trip(PHONE, "twilio").await;
    // The status panel lists the disabled provider as such, under the registry's version.
    let status = call(&app, Method::GET, "/v1/admin/status", ADMIN_TOKEN, None).await;
    let providers = status.body["providers"].as_array().expect("providers");
    let two_factor = providers.iter().find(|p| p["name"] == "2factor").expect("2factor listed");
    assert_eq!(two_factor["enabled"], json!(false), "{}", status.body);
    assert!(
        two_factor.get("breaker").is_none(),
        "no live figures for a disabled provider: {}",
        status.body
    );
    let twilio = providers.iter().find(|p| p["name"] == "twilio").expect("twilio listed");
    assert_eq!(twilio["calls_1m"], json!(1), "{}", status.body);
    assert!(status.body["version"].as_i64().unwrap_or(0) > 0, "{}", status.body);
    let on = call(
        &app,
        Method::PATCH,
        "/v1/admin/providers/2factor",
        ADMIN_TOKEN,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(on.status, 200, "{}", on.body);
    let sent = app.send_otp().await;
    assert_eq!(app.delivered_by(PHONE).as_deref(), Some("2factor"), "{}", sent.body);
}
