//! Access control: roles on the admin routes, token rotation, the caller allowlist, and answers
//! that never tell a caller whether a phone number or user is known.

use reqwest::Method;
use serde_json::{json, Value};

use smsgate::config::{ClientConfig, Role, Settings};
use smsgate::sim::SimHandle;

use crate::helpers::{client, config_with, spawn_app, spawn_with, Backend, ADMIN_TOKEN, PHONE, SEND_TOKEN};
use crate::on_both_stores;

const ROOT_TOKEN: &str = "test-root-token";
const OLD_TOKEN: &str = "test-rotated-old";
const NEW_TOKEN: &str = "test-rotated-new";
const ADMIN_ROUTES: [&str; 3] = [
    "/v1/routing/explain?to=%2B919876543210",
    "/v1/admin/attempts",
    "/v1/admin/providers",
];

/// The default settings plus a `super_admin` client and a `send` client with two active tokens
/// (one hash in upper case: hashes are read case-blind), then `adjust`.
fn with_more_clients(sim: &SimHandle, adjust: impl FnOnce(&mut Settings)) -> Settings {
    config_with(sim, |c| {
        c.clients.push(client("root", ROOT_TOKEN, &[Role::SuperAdmin]));
        c.clients.push(ClientConfig {
            name: "rotating".into(),
            token_sha256: None,
            token_sha256s: vec![
                smsgate::api::sha256_hex(OLD_TOKEN),
                smsgate::api::sha256_hex(NEW_TOKEN).to_uppercase(),
            ],
            roles: vec![Role::Send],
            phone: None,
        });
        adjust(c);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_admin_role_and_super_admin_holds_every_role() {
    let app = spawn_with(Backend::Memory, |sim| with_more_clients(sim, |_| {})).await;
    for route in ADMIN_ROUTES {
        let none = app.get(route, None).await;
        assert_eq!((none.status, none.body["error"].as_str()), (401, Some("unauthorized")), "{route}");
        for token in [SEND_TOKEN, NEW_TOKEN] {
            let r = app.get(route, Some(token)).await;
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (403, Some("forbidden")),
                "{route} with a send token"
            );
            assert!(r.body["message"].as_str().unwrap().contains("admin"), "{}", r.body);
        }
        for token in [ADMIN_TOKEN, ROOT_TOKEN] {
            let r = app.get(route, Some(token)).await;
            assert_eq!(r.status, 200, "{route}: {}", r.body);
        }
    }
    // super_admin also holds `send`, and so does admin.
    for token in [ROOT_TOKEN, ADMIN_TOKEN] {
        let sent = app
            .request(
                Method::POST,
                "/v1/otp/send",
                Some(token),
                Some(json!({"phone": PHONE}).to_string()),
                &[],
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_active_token_of_a_client_works_during_rotation() {
    let app = spawn_with(Backend::Memory, |sim| with_more_clients(sim, |_| {})).await;
    for token in [OLD_TOKEN, NEW_TOKEN] {
        let r = app.contact("u1", Some(token)).await;
        assert_eq!(r.status, 200, "{token}: {}", r.body);
        let sent = app
            .request(
                Method::POST,
                "/v1/otp/send",
                Some(token),
                Some(json!({"phone": PHONE}).to_string()),
                &[],
            )
            .await;
        assert_eq!(sent.status, 200, "{token}: {}", sent.body);
    }
    let retired = app.contact("u1", Some("test-rotated-retired")).await;
    assert_eq!(retired.status, 401, "a token whose hash is not listed is refused");
    let hash = app.contact("u1", Some(&smsgate::api::sha256_hex(NEW_TOKEN))).await;
    assert_eq!(hash.status, 401, "the stored hash is not itself a token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_outside_the_allowlist_are_refused() {
    let app = spawn_with(Backend::Memory, |sim| {
        with_more_clients(sim, |c| c.server.allowed_callers = vec!["10.0.0.0/8".into()])
    })
    .await;
    let body = Some(json!({"phone": PHONE}).to_string());
    for (method, route, token) in [
        (Method::POST, "/v1/otp/send", SEND_TOKEN),
        (Method::POST, "/v1/otp/verify", SEND_TOKEN),
        (Method::GET, "/v1/users/u1/contact", SEND_TOKEN),
        (Method::GET, "/v1/admin/attempts", ADMIN_TOKEN),
        (Method::GET, "/v1/admin/attempts", ROOT_TOKEN),
    ] {
        let b = (method == Method::POST).then(|| body.clone()).flatten();
        // A spoofed X-Forwarded-For does not help: the allowlist checks the connection's peer.
        let r = app.request(method, route, Some(token), b, &[("x-forwarded-for", "10.1.2.3")]).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (403, Some("caller_not_allowed")),
            "{route}: {}",
            r.body
        );
        assert!(r.body["message"].is_string());
    }
    assert_eq!(app.sim.state().calls("2factor"), 0, "nothing was sent");
    assert_eq!(app.get("/healthz", None).await.status, 200, "probes stay open");

    let allowed = spawn_with(Backend::Memory, |sim| {
        with_more_clients(sim, |c| c.server.allowed_callers = vec!["127.0.0.1/32".into()])
    })
    .await;
    assert_eq!(allowed.send_otp().await.status, 200);
    assert_eq!(allowed.get(ADMIN_ROUTES[1], Some(ADMIN_TOKEN)).await.status, 200);
}

/// Removes the per-session fields, leaving what could differ between two numbers or users.
fn shape(mut body: Value) -> Value {
    for key in ["session_id", "created_at", "expires_at", "user_id"] {
        body.as_object_mut().unwrap().remove(key);
    }
    body
}

async fn answers_never_say_whether_a_number_or_user_is_known(backend: Backend) {
    let app = spawn_app(backend).await;
    // A known user with a phone, and a known number that has verified before.
    let put = app
        .request(
            Method::PUT,
            "/v1/users/known/contact",
            Some(SEND_TOKEN),
            Some(json!({"phone": PHONE, "otp_enabled": true}).to_string()),
            &[],
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let first = app.send_otp().await;
    let ok = app.verify(first.body["session_id"].as_str().unwrap(), &app.last_code()).await;
    assert_eq!(ok.body["verified"], true);

    let known = app.post("/v1/otp/send", json!({"phone": PHONE})).await;
    let fresh = app.post("/v1/otp/send", json!({"phone": "+919812345678"})).await;
    assert_eq!((known.status, fresh.status), (200, 200));
    assert_eq!(
        shape(known.body),
        shape(fresh.body),
        "a known and a first-time number get the same answer"
    );

    // A user with no stored contact reads like one that stored nothing.
    let empty = app
        .request(Method::PUT, "/v1/users/blank/contact", Some(SEND_TOKEN), Some("{}".into()), &[])
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    let unknown = app.contact("nobody", Some(SEND_TOKEN)).await;
    let blank = app.contact("blank", Some(SEND_TOKEN)).await;
    assert_eq!((unknown.status, blank.status), (200, 200));
    assert_eq!(unknown.body["user_id"], "nobody");
    assert_eq!(shape(unknown.body), shape(blank.body));

    // Step-up for an unknown user and for a user without a phone: the same refusal.
    let a = app.post("/v1/otp/send", json!({"user_id": "nobody"})).await;
    let b = app.post("/v1/otp/send", json!({"user_id": "blank"})).await;
    assert_eq!((a.status, a.body["error"].as_str()), (422, Some("no_phone")), "{}", a.body);
    assert_eq!((a.status, &a.body), (b.status, &b.body));
}

on_both_stores!(answers_never_say_whether_a_number_or_user_is_known);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_list_shows_live_health_and_the_client_list_is_for_super_admins_only() {
    let app = spawn_with(Backend::Memory, |sim| {
        with_more_clients(sim, |c| {
            c.routing.breaker.consecutive_failures = 1;
            c.routing.breaker.open_ms = 60_000;
        })
    })
    .await;
    app.fault("2factor", "500");
    assert_eq!(app.send_otp().await.status, 200);
    let list = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let providers = list.body["providers"].as_array().unwrap();
    let names: Vec<&str> = providers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["2factor", "twilio"], "priority order");
    assert_eq!(providers[0]["breaker"], "open");
    assert_eq!(providers[0]["otp"], "provider_held");
    assert_eq!(providers[1]["breaker"], "closed");
    assert!(
        !list.body.to_string().contains("sim-key") && !list.body.to_string().contains("sim-token"),
        "no secret in the answer"
    );

    let forbidden = app.get("/v1/admin/clients", Some(ADMIN_TOKEN)).await;
    assert_eq!((forbidden.status, forbidden.body["error"].as_str()), (403, Some("forbidden")));
    let clients = app.get("/v1/admin/clients", Some(ROOT_TOKEN)).await;
    assert_eq!(clients.status, 200, "{}", clients.body);
    let rotating = clients.body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rotating")
        .cloned()
        .unwrap();
    assert_eq!(rotating["tokens"], 2);
    assert_eq!(rotating["roles"], json!(["send"]));
    let text = clients.body.to_string().to_lowercase();
    assert!(!text.contains(&smsgate::api::sha256_hex(NEW_TOKEN)), "no token hash in the answer");
}
