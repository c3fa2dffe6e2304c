//! The admin operations routes: `me`, the test sender, the logs (masking, filters, cursor
//! paging, MFA) and the live status, against the simulator on both stores.

use reqwest::Method;
use serde_json::{json, Value};
use smsgate::config::Role;

use crate::helpers::{client, config_with, phone, spawn_tuned, spawn_with, Backend, Reply, TestApp, ADMIN_TOKEN, PHONE, SEND_TOKEN};

const ROOT_TOKEN: &str = "test-root-token";
const MFA_TOKEN: &str = "test-mfa-admin-token";
const MFA_PHONE: &str = "+919876599999";

/// The default providers (2factor then twilio), a super_admin, and an admin whose entry has a
/// phone (MFA applies to it).
async fn spawn(backend: Backend) -> TestApp {
    spawn_tuned(backend, |c| {
        c.clients.push(client("root", ROOT_TOKEN, &[Role::SuperAdmin]));
        let mut mfa = client("guarded", MFA_TOKEN, &[Role::Admin]);
        mfa.phone = Some(MFA_PHONE.into());
        c.clients.push(mfa);
    })
    .await
}

async fn admin_post(app: &TestApp, token: &str, path: &str, body: Value) -> Reply {
    app.post_as(token, path, body).await
}

async fn get_with(app: &TestApp, token: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    app.request(Method::GET, path, Some(token), None, headers).await
}

fn assert_field_error(reply: &Reply, code: &str, field: &str) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"], code, "{}", reply.body);
    assert_eq!(reply.body["field"], field, "{}", reply.body);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.body);
}

async fn test_send(app: &TestApp, provider: &str, to: &str) -> Reply {
    admin_post(
        app,
        ADMIN_TOKEN,
        &format!("/v1/admin/providers/{provider}/test"),
        json!({ "phone": to }),
    )
    .await
}

async fn test_verify(app: &TestApp, provider: &str, session: &Value, code: &str) -> Reply {
    let path = format!("/v1/admin/providers/{provider}/test/verify");
    admin_post(app, ADMIN_TOKEN, &path, json!({ "session_id": session, "code": code })).await
}

/// Every page of the logs at `query` with pages of `limit`, in order.
async fn all_pages(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/admin/logs?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, Some(token)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let rows = page.body["items"].as_array().unwrap().clone();
        assert!(rows.len() <= limit);
        items.extend(rows);
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return items,
        }
    }
    panic!("the logs never ended");
}

async fn me_says_who_the_caller_is_and_what_the_page_may_offer(backend: Backend) {
    let app = spawn(backend).await;
    let me = app.get("/v1/admin/me", Some(ADMIN_TOKEN)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.body,
        json!({"name": "ops", "roles": ["admin"], "mfa_required": false, "mfa_ok": true,
               "database": backend == Backend::Postgres, "can_set_secrets": false})
    );
    let guarded = app.get("/v1/admin/me", Some(MFA_TOKEN)).await;
    assert_eq!(
        (guarded.body["mfa_required"].clone(), guarded.body["mfa_ok"].clone()),
        (json!(true), json!(false))
    );
    let root = app.get("/v1/admin/me", Some(ROOT_TOKEN)).await;
    assert_eq!(root.body["roles"], json!(["super_admin"]));
}

async fn a_send_only_client_is_refused_every_admin_ops_route(backend: Backend) {
    let app = spawn(backend).await;
    let session = json!({"session_id": uuid::Uuid::new_v4(), "code": "123456"});
    let routes: [(Method, &str, Option<Value>); 7] = [
        (Method::GET, "/v1/admin/me", None),
        (Method::GET, "/v1/admin/status", None),
        (Method::GET, "/v1/admin/logs", None),
        (Method::POST, "/v1/admin/providers/twilio/test", Some(json!({"phone": PHONE}))),
        (Method::POST, "/v1/admin/providers/twilio/test/verify", Some(session.clone())),
        (Method::POST, "/v1/admin/mfa/send", None),
        (Method::POST, "/v1/admin/mfa/verify", Some(session)),
    ];
    for (method, path, body) in routes {
        let raw = body.map(|b| b.to_string());
        let refused = app.request(method.clone(), path, Some(SEND_TOKEN), raw.clone(), &[]).await;
        assert_eq!(
            (refused.status, refused.body["error"].as_str()),
            (403, Some("forbidden")),
            "{path}: {}",
            refused.body
        );
        let anonymous = app.request(method, path, None, raw, &[]).await;
        assert_eq!(anonymous.status, 401, "{path}");
    }
    assert_eq!(app.sent(), 0, "a refused test send sends nothing");
}

async fn a_test_send_goes_through_that_provider_alone_and_its_code_verifies(backend: Backend) {
    let app = spawn(backend).await;
    // twilio is second in the order; the test still goes to it, carrying smsgate's own code.
    let sent = test_send(&app, "twilio", PHONE).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(
        (sent.body["provider"].as_str(), sent.body["status"].as_str()),
        (Some("twilio"), Some("sent"))
    );
    assert_eq!(sent.body["http_status"], 201, "{}", sent.body);
    assert!(sent.body["raw"].is_object(), "twilio answers JSON: {}", sent.body);
    assert!(sent.body["response_time_ms"].is_u64());
    assert_eq!(app.delivered_by(PHONE).as_deref(), Some("twilio"));
    assert_eq!(app.calls("2factor"), 0);
    let raw = sent.body["raw"].to_string();
    let creds = smsgate::sim::SimCredentials::default();
    for secret in [&creds.account_sid, &creds.auth_token, &"9876543210".to_string()] {
        assert!(!raw.contains(secret.as_str()), "the raw answer leaks {secret}: {raw}");
    }
    let session = &sent.body["session_id"];
    let code = app.last_code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let invalid = test_verify(&app, "twilio", session, wrong).await;
    assert_eq!(
        (invalid.status, invalid.body["status"].as_str()),
        (200, Some("invalid")),
        "{}",
        invalid.body
    );
    let verified = test_verify(&app, "twilio", session, &code).await;
    assert_eq!(verified.body["status"], "verified", "{}", verified.body);
    assert_eq!(verified.body["raw"], Value::Null, "smsgate checked its own code");
    let again = test_verify(&app, "twilio", session, &code).await;
    assert_eq!(again.body["status"], "already_verified", "{}", again.body);
}

async fn a_provider_held_test_code_is_checked_by_the_provider_with_its_raw_answer(backend: Backend) {
    let app = spawn(backend).await;
    let sent = test_send(&app, "2factor", PHONE).await;
    assert_eq!((sent.status, sent.body["status"].as_str()), (200, Some("sent")), "{}", sent.body);
    assert_eq!(sent.body["raw"]["Status"], "Success", "{}", sent.body);
    let key = smsgate::sim::SimCredentials::default().api_key;
    let verified = test_verify(&app, "2factor", &sent.body["session_id"], &app.last_code()).await;
    assert_eq!(verified.body["status"], "verified", "{}", verified.body);
    assert!(!verified.body["raw"].is_null(), "2Factor's answer is shown: {}", verified.body);
    for body in [&sent.body, &verified.body] {
        assert!(!body.to_string().contains(&key), "the API key leaks: {body}");
    }
}

async fn a_failing_provider_test_reports_the_failure_and_does_not_fail_over(backend: Backend) {
    let app = spawn(backend).await;
    app.fault("twilio", "500");
    let sent = test_send(&app, "twilio", PHONE).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(
        (sent.body["status"].as_str(), sent.body["http_status"].as_u64()),
        (Some("failed"), Some(500))
    );
    assert!(!sent.body["raw"].is_null(), "{}", sent.body);
    assert_eq!(app.calls("2factor"), 0, "a test never fails over");
}

async fn test_sends_refuse_bad_input_by_field(backend: Backend) {
    let app = spawn(backend).await;
    assert_field_error(
        &admin_post(&app, ADMIN_TOKEN, "/v1/admin/providers/twilio/test", json!({})).await,
        "invalid_field",
        "phone",
    );
    assert_field_error(&test_send(&app, "twilio", "12ab").await, "invalid_phone", "phone");
    let unknown = test_send(&app, "nope", PHONE).await;
    assert_eq!(
        (unknown.status, unknown.body["error"].as_str()),
        (404, Some("provider_not_found")),
        "{}",
        unknown.body
    );
    // 2factor serves India only in the default settings.
    let abroad = test_send(&app, "2factor", "+14155550123").await;
    assert_eq!(
        (abroad.status, abroad.body["error"].as_str()),
        (422, Some("no_route")),
        "{}",
        abroad.body
    );
    let path = "/v1/admin/providers/twilio/test/verify";
    let id = uuid::Uuid::new_v4().to_string();
    assert_field_error(
        &admin_post(&app, ADMIN_TOKEN, path, json!({"code": "123456"})).await,
        "invalid_field",
        "session_id",
    );
    assert_field_error(
        &admin_post(&app, ADMIN_TOKEN, path, json!({"session_id": "x", "code": "123456"})).await,
        "invalid_field",
        "session_id",
    );
    assert_field_error(
        &admin_post(&app, ADMIN_TOKEN, path, json!({"session_id": id})).await,
        "invalid_field",
        "code",
    );
    assert_field_error(
        &admin_post(&app, ADMIN_TOKEN, path, json!({"session_id": id, "code": "12x"})).await,
        "invalid_field",
        "code",
    );
    let missing = admin_post(&app, ADMIN_TOKEN, path, json!({"session_id": id, "code": "123456"})).await;
    assert_eq!((missing.status, missing.body["error"].as_str()), (404, Some("session_not_found")));
    // An app's own OTP session is not a test session, even for an admin.
    let app_session = app.send_otp().await;
    let theirs = test_verify(&app, "2factor", &app_session.body["session_id"], "123456").await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    assert_eq!(app.sent(), 1, "no bad request sent anything");
}

async fn test_sends_have_their_own_per_admin_limit_and_not_the_apps(backend: Backend) {
    let app = spawn_with(backend, |sim| {
        config_with(sim, |c| {
            c.limits.per_phone_per_minute = 1;
            c.limits.per_phone_per_day = 1;
        })
    })
    .await;
    for i in 0..10 {
        let sent = test_send(&app, "twilio", PHONE).await;
        assert_eq!(
            sent.body["status"], "sent",
            "test send {i} is not held to the app's per-phone limit: {}",
            sent.body
        );
    }
    let limited = test_send(&app, "twilio", PHONE).await;
    assert_eq!(
        (limited.status, limited.body["error"].as_str()),
        (429, Some("rate_limited")),
        "{}",
        limited.body
    );
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(app.calls("twilio"), 10);
    // The app's own limit is untouched by the tests.
    assert_eq!(app.send_otp().await.status, 200);
    app.advance(60);
    assert_eq!(test_send(&app, "twilio", PHONE).await.body["status"], "sent");
}

/// Five sends to `phone(1)`, one failing over from 2factor to twilio, and one to `phone(2)`.
async fn fill_logs(app: &TestApp) {
    app.fault("2factor", "500");
    assert_eq!(app.send_otp_to(&phone(1)).await.status, 200);
    app.clear_fault("2factor");
    for _ in 0..4 {
        assert_eq!(app.send_otp_to(&phone(1)).await.status, 200);
    }
    assert_eq!(app.send_otp_to(&phone(2)).await.status, 200);
}

async fn logs_mask_numbers_for_admins_and_show_them_to_super_admins(backend: Backend) {
    let app = spawn(backend).await;
    fill_logs(&app).await;
    let admin = app.get("/v1/admin/logs", Some(ADMIN_TOKEN)).await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    let items = admin.body["items"].as_array().unwrap();
    // 7 attempts (one failed over) and 6 send events.
    assert_eq!(items.len(), 13, "{}", admin.body);
    assert!(!admin.body.to_string().contains("9876500001"), "{}", admin.body);
    assert!(items.iter().all(|i| i["phone"].as_str().unwrap().contains('*')));
    let root = app.get("/v1/admin/logs", Some(ROOT_TOKEN)).await;
    let phones: Vec<&str> = root.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["phone"].as_str().unwrap())
        .collect();
    assert!(
        phones.contains(&phone(1).as_str()) && phones.contains(&phone(2).as_str()),
        "{phones:?}"
    );
    let first = &root.body["items"][0];
    for key in [
        "at",
        "source",
        "phone",
        "provider",
        "outcome",
        "type",
        "http_status",
        "response_time_ms",
        "error",
        "session_id",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
}

/// A send's attempts (stamped by the router) and its OTP event (by the gateway) read one clock:
/// the logs of a gateway whose clock is days off the system's still sit together.
async fn attempts_and_events_are_stamped_by_the_gateways_clock(backend: Backend) {
    let app = spawn(backend).await;
    app.advance(3 * 86_400);
    app.fault("2factor", "500");
    assert_eq!(app.send_otp_to(&phone(1)).await.status, 200);
    let logs = app.get("/v1/admin/logs", Some(ROOT_TOKEN)).await;
    let items = logs.body["items"].as_array().unwrap();
    let sources: Vec<&str> = items.iter().map(|i| i["source"].as_str().unwrap()).collect();
    assert_eq!(items.len(), 3, "two attempts (one failed over) and one event: {sources:?}");
    for item in items {
        let at = chrono::DateTime::parse_from_rfc3339(item["at"].as_str().unwrap()).unwrap();
        assert_eq!(at, app.clock.now(), "{item}");
    }
}

async fn logs_filter_and_page_without_repeats_or_gaps(backend: Backend) {
    let app = spawn(backend).await;
    fill_logs(&app).await;
    let whole = all_pages(&app, ROOT_TOKEN, "", 500).await;
    assert_eq!(whole.len(), 13);
    let at = |i: &Value| chrono::DateTime::parse_from_rfc3339(i["at"].as_str().unwrap()).unwrap();
    assert!(whole.windows(2).all(|w| at(&w[0]) >= at(&w[1])), "newest first");
    for limit in [1, 2, 5] {
        assert_eq!(all_pages(&app, ROOT_TOKEN, "", limit).await, whole, "pages of {limit}");
    }
    let count = |q: &'static str| {
        let app = &app;
        async move { all_pages(app, ROOT_TOKEN, q, 3).await }
    };
    let one = count("phone=%2B919876500002").await;
    assert_eq!(one.len(), 2, "one attempt and one event: {one:?}");
    let failed = count("outcome=unavailable").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["provider"].as_str(), failed[0]["http_status"].as_u64()),
        (Some("2factor"), Some(500))
    );
    let twilio = count("provider=twilio").await;
    assert!(twilio.iter().all(|i| i["provider"] == "twilio") && !twilio.is_empty());
    let events = count("type=autogen").await;
    assert!(events.iter().all(|i| i["source"] == "otp_event"), "{events:?}");
    assert_eq!(events.len(), 5, "2factor held the code of five sends");
    assert_eq!(count("type=otp&outcome=accepted&provider=2factor").await.len(), 5);
    // Attempts and OTP events are stamped with the app's clock: an hour later, only the new
    // send's attempt and event are "since".
    let later = app.clock.now() + chrono::Duration::hours(1);
    app.advance(3600);
    assert_eq!(app.send_otp_to(&phone(3)).await.status, 200);
    let since = format!("since={}", later.to_rfc3339().replace('+', "%2B"));
    let recent = all_pages(&app, ROOT_TOKEN, &since, 10).await;
    let sources: Vec<&str> = recent.iter().map(|i| i["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["otp_event", "attempt"], "{recent:?}");
    assert!(recent.iter().all(|i| i["phone"] == phone(3)), "{recent:?}");
    let until = format!("until={}&type=autogen", later.to_rfc3339().replace('+', "%2B"));
    assert_eq!(all_pages(&app, ROOT_TOKEN, &until, 10).await.len(), 5);
}

async fn logs_refuse_bad_filters_by_field(backend: Backend) {
    let app = spawn(backend).await;
    for (query, field) in [
        ("phone=12ab", "phone"),
        ("outcome=great", "outcome"),
        ("type=fax", "type"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("cursor=not-a-cursor", "cursor"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
    ] {
        let reply = app.get(&format!("/v1/admin/logs?{query}"), Some(ADMIN_TOKEN)).await;
        assert_field_error(&reply, "invalid_field", field);
    }
    let unknown = app.get("/v1/admin/logs?colour=red", Some(ADMIN_TOKEN)).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
}

async fn test_sends_are_logged_as_admin_tests(backend: Backend) {
    let app = spawn(backend).await;
    let sent = test_send(&app, "twilio", PHONE).await;
    let logs = app.get("/v1/admin/logs", Some(ADMIN_TOKEN)).await;
    let items = logs.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "one attempt and one event: {}", logs.body);
    assert!(items
        .iter()
        .all(|i| i["admin_test"] == true && i["session_id"] == sent.body["session_id"]));
    assert_eq!(items.iter().filter(|i| i["source"] == "attempt").count(), 1);
}

async fn logs_need_a_passed_mfa_check_when_the_admin_has_a_phone(backend: Backend) {
    let app = spawn(backend).await;
    let refused = app.get("/v1/admin/logs", Some(MFA_TOKEN)).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (403, Some("mfa_required")),
        "{}",
        refused.body
    );
    // An admin without a phone needs no check, and cannot start one.
    assert_eq!(app.get("/v1/admin/logs", Some(ADMIN_TOKEN)).await.status, 200);
    let none = app.request(Method::POST, "/v1/admin/mfa/send", Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!((none.status, none.body["error"].as_str()), (409, Some("mfa_not_configured")));

    let sent = app.request(Method::POST, "/v1/admin/mfa/send", Some(MFA_TOKEN), None, &[]).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body["expires_at"].is_string());
    let session = sent.body["session_id"].clone();
    let code = app.sim.state().last_code(MFA_PHONE).expect("the code went to the admin's phone");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let bad = admin_post(
        &app,
        MFA_TOKEN,
        "/v1/admin/mfa/verify",
        json!({"session_id": session, "code": wrong}),
    )
    .await;
    assert_field_error(&bad, "invalid_code", "code");
    // Another admin cannot use this session.
    let theirs = admin_post(
        &app,
        ROOT_TOKEN,
        "/v1/admin/mfa/verify",
        json!({"session_id": session, "code": code}),
    )
    .await;
    assert_eq!(theirs.status, 409, "root has no phone: {}", theirs.body);
    let passed = admin_post(
        &app,
        MFA_TOKEN,
        "/v1/admin/mfa/verify",
        json!({"session_id": session, "code": code}),
    )
    .await;
    assert_eq!(passed.status, 200, "{}", passed.body);
    let token = passed.body["mfa_token"].as_str().unwrap().to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(passed.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.timestamp(), (app.clock.now() + chrono::Duration::minutes(15)).timestamp());

    let verify = "/v1/admin/mfa/verify";
    let missing = admin_post(&app, MFA_TOKEN, verify, json!({"code": "123456"})).await;
    assert_field_error(&missing, "invalid_field", "session_id");
    let short = admin_post(&app, MFA_TOKEN, verify, json!({"session_id": session, "code": "1"})).await;
    assert_field_error(&short, "invalid_field", "code");
    let stranger = admin_post(
        &app,
        MFA_TOKEN,
        verify,
        json!({"session_id": uuid::Uuid::new_v4(), "code": "123456"}),
    )
    .await;
    assert_eq!((stranger.status, stranger.body["error"].as_str()), (404, Some("session_not_found")));
    // The same admin's test session is not an MFA session, even with its right code.
    let test = admin_post(&app, MFA_TOKEN, "/v1/admin/providers/twilio/test", json!({"phone": MFA_PHONE})).await;
    let test_code = app.sim.state().last_code(MFA_PHONE).unwrap();
    let not_mfa = admin_post(
        &app,
        MFA_TOKEN,
        verify,
        json!({"session_id": test.body["session_id"], "code": test_code}),
    )
    .await;
    assert_eq!(not_mfa.status, 404, "{}", not_mfa.body);

    let header = [("X-Admin-MFA", token.as_str())];
    let opened = get_with(&app, MFA_TOKEN, "/v1/admin/logs", &header).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(
        !opened.body.to_string().contains("9876599999"),
        "an admin still sees masked numbers"
    );
    let me = get_with(&app, MFA_TOKEN, "/v1/admin/me", &header).await;
    assert_eq!(me.body["mfa_ok"], true);
    let last = if token.ends_with('A') { "B" } else { "A" };
    let tampered = format!("{}{last}", &token[..token.len() - 1]);
    let forged = get_with(&app, MFA_TOKEN, "/v1/admin/logs", &[("X-Admin-MFA", &tampered)]).await;
    assert_eq!(forged.status, 403);

    app.advance(15 * 60);
    let expired = get_with(&app, MFA_TOKEN, "/v1/admin/logs", &header).await;
    assert_eq!(
        (expired.status, expired.body["error"].as_str()),
        (403, Some("mfa_required")),
        "{}",
        expired.body
    );
    assert!(expired.body["message"].as_str().unwrap().contains("expired"));
}

async fn status_counts_each_providers_calls_successes_and_latency(backend: Backend) {
    let app = spawn(backend).await;
    let before = app.get("/v1/admin/status", Some(ADMIN_TOKEN)).await;
    assert_eq!(before.status, 200, "{}", before.body);
    let idle = &before.body["providers"][0];
    assert_eq!((idle["name"].as_str(), idle["calls_1m"].as_u64()), (Some("2factor"), Some(0)));
    assert_eq!(
        (idle["success_rate_1m"].clone(), idle["p50_ms_1m"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(idle["breaker"], "closed");
    // Two sends on which 2factor fails and twilio serves, then three on which 2factor serves.
    app.fault("2factor", "500");
    for i in 0..2 {
        assert_eq!(app.send_otp_to(&phone(i)).await.status, 200);
    }
    app.clear_fault("2factor");
    for i in 2..5 {
        assert_eq!(app.send_otp_to(&phone(i)).await.status, 200);
    }
    let status = app.get("/v1/admin/status", Some(ADMIN_TOKEN)).await;
    let providers = status.body["providers"].as_array().unwrap();
    let (two_factor, twilio) = (&providers[0], &providers[1]);
    assert_eq!(two_factor["name"], "2factor");
    assert_eq!(
        (two_factor["calls_1m"].as_u64(), two_factor["calls_1h"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(two_factor["success_rate_1m"].as_f64(), Some(0.6), "{}", status.body);
    assert_eq!(two_factor["success_rate_1h"].as_f64(), Some(0.6));
    assert_eq!(
        (twilio["calls_1m"].as_u64(), twilio["success_rate_1m"].as_f64()),
        (Some(2), Some(1.0))
    );
    for p in providers {
        let (p50, p95) = (p["p50_ms_1m"].as_u64().unwrap(), p["p95_ms_1m"].as_u64().unwrap());
        assert!(p50 <= p95 && p95 < 5_000, "{p}");
        assert_eq!(p["cooling_until"], Value::Null);
        assert_eq!(p["enabled"], true);
    }
    assert!(status.body["version"].is_u64());
    // A 429 benches the provider: the panel says until when.
    app.fault("twilio", "429");
    let throttled = test_send(&app, "twilio", PHONE).await;
    assert_eq!(throttled.body["http_status"], 429, "{}", throttled.body);
    let cooling = app.get("/v1/admin/status", Some(ADMIN_TOKEN)).await;
    let until = cooling.body["providers"][1]["cooling_until"]
        .as_str()
        .expect("twilio is cooling down");
    assert!(chrono::DateTime::parse_from_rfc3339(until).unwrap() > app.clock.now(), "{until}");
    assert_eq!(cooling.body["providers"][1]["calls_1m"], 3);
}

crate::on_both_stores!(
    me_says_who_the_caller_is_and_what_the_page_may_offer,
    a_send_only_client_is_refused_every_admin_ops_route,
    a_test_send_goes_through_that_provider_alone_and_its_code_verifies,
    a_provider_held_test_code_is_checked_by_the_provider_with_its_raw_answer,
    a_failing_provider_test_reports_the_failure_and_does_not_fail_over,
    test_sends_refuse_bad_input_by_field,
    test_sends_have_their_own_per_admin_limit_and_not_the_apps,
    logs_mask_numbers_for_admins_and_show_them_to_super_admins,
    logs_filter_and_page_without_repeats_or_gaps,
    attempts_and_events_are_stamped_by_the_gateways_clock,
    logs_refuse_bad_filters_by_field,
    test_sends_are_logged_as_admin_tests,
    logs_need_a_passed_mfa_check_when_the_admin_has_a_phone,
    status_counts_each_providers_calls_successes_and_latency,
);
