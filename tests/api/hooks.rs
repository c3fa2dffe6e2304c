//! The auth servers' SMS hooks: Supabase Auth's Send SMS hook (Standard Webhooks signatures,
//! both payload versions, GoTrue's retries), Ory Kratos' courier and Keycloak's authenticator
//! (credentials of their own, requeued sends), and failover for hook sends as for API sends.

use serde_json::{json, Value};
use smsgate::hooks::standard_webhooks::sign;

use smsgate::config::{ProviderConfig, Settings};
use smsgate::sim::SimHandle;

use crate::helpers::{config, config_with, spawn_with, Backend, Reply, SettingsExt, TestApp, ADMIN_TOKEN, PHONE, SEND_TOKEN};
use crate::on_both_stores;

const SUPABASE: &str = "/v1/hooks/supabase/send-sms";
const KRATOS: &str = "/v1/hooks/kratos/sms";
const KEYCLOAK: &str = "/v1/hooks/keycloak/sms";

/// GoTrue's current secret and the one being rotated out, as Supabase shows them.
const NEW_SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "v1,whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// A secret neither side configured.
const OTHER_SECRET: &str = "v1,whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCB5b3UgYXJlIGxvb2tpbmcgZm9y";

const KRATOS_BASIC: (&str, &str) = ("kratos", "courier-password");
const KEYCLOAK_TOKEN: &str = "keycloak-api-secret";

/// The default providers (2factor AUTOGEN, then twilio) with every hook configured: smsgate
/// accepts both Supabase secrets while GoTrue rotates.
fn hooks_config(sim: &SimHandle) -> Settings {
    config_with(sim, |c| {
        c.hooks.supabase.secrets = vec![OLD_SECRET.to_string().into(), NEW_SECRET.to_string().into()];
        c.hooks.kratos.username = Some(KRATOS_BASIC.0.into());
        c.hooks.kratos.password = Some(KRATOS_BASIC.1.to_string().into());
        c.hooks.keycloak.token = Some(KEYCLOAK_TOKEN.to_string().into());
    })
}

/// `hooks_config` with `adjust` applied.
fn hooks_config_with(sim: &SimHandle, adjust: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = hooks_config(sim);
    adjust(&mut settings);
    settings
}

async fn spawn_hooks(backend: Backend) -> TestApp {
    spawn_with(backend, hooks_config).await
}

/// GoTrue's current payload: the number in `sms.phone` without `+`, and metadata.
fn gotrue_body(uuid: &str, otp: &str) -> String {
    json!({
        "metadata": {"uuid": uuid, "time": "2026-12-02T07:00:00Z", "name": "send-sms", "ip_address": "203.0.113.7"},
        "user": {"id": "5a1d0a43-8a33-4b0c-9a0b-2f1f3c1f7b11", "aud": "authenticated", "role": "authenticated",
                 "phone": PHONE.trim_start_matches('+'), "app_metadata": {"provider": "phone"}, "user_metadata": {}},
        "sms": {"otp": otp, "phone": PHONE.trim_start_matches('+')}
    })
    .to_string()
}

/// Older GoTrue: no metadata, no `sms.phone`: the number is the user's.
fn older_gotrue_body(otp: &str) -> String {
    json!({ "user": {"id": "5a1d0a43-8a33-4b0c-9a0b-2f1f3c1f7b11", "phone": PHONE.trim_start_matches('+')}, "sms": {"otp": otp} })
        .to_string()
}

/// Signs as GoTrue does: one signature per secret, joined by ", ".
fn gotrue_signature(secrets: &[&str], id: &str, ts: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, ts, body.as_bytes()).unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn post_signed(app: &TestApp, body: &str, headers: &[(&str, &str)]) -> Reply {
    app.request(reqwest::Method::POST, SUPABASE, None, Some(body.to_string()), headers)
        .await
}

/// A call signed with `secrets` at the app's now.
async fn gotrue_call(app: &TestApp, secrets: &[&str], id: &str, body: &str) -> Reply {
    let ts = app.clock.now().timestamp();
    let signature = gotrue_signature(secrets, id, ts, body);
    post_signed(
        app,
        body,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &signature),
        ],
    )
    .await
}

fn texts(app: &TestApp) -> Vec<String> {
    app.sim.state().messages(Some(PHONE)).into_iter().filter_map(|m| m.text).collect()
}

async fn attempts(app: &TestApp) -> Value {
    app.get("/v1/admin/attempts", Some(ADMIN_TOKEN)).await.body
}

async fn a_signed_gotrue_call_delivers_its_code_and_answers_an_empty_object(backend: Backend) {
    let app = spawn_hooks(backend).await;
    // GoTrue in the middle of a rotation signs with both secrets, joined by ", ".
    let body = gotrue_body("0b4f7c1e-1111-4c9b-9a57-4f6a3c2b1a01", "482913");
    let r = gotrue_call(&app, &[OTHER_SECRET, NEW_SECRET], "msg_1", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({}), "Supabase reads an empty object as sent");
    assert_eq!(r.headers["content-type"], "application/json");
    let delivered = texts(&app);
    assert_eq!(delivered.len(), 1);
    assert!(
        delivered[0].contains("482913"),
        "the code made by GoTrue reaches the phone: {}",
        delivered[0]
    );
    // 2Factor in AUTOGEN mode would send a code of its own, which GoTrue never issued.
    assert_eq!(app.calls("2factor"), 0);
    let rows = attempts(&app).await;
    assert_eq!(rows["attempts"][0]["kind"], "otp");
    assert_eq!(rows["attempts"][0]["provider"], "twilio");
    assert!(!rows.to_string().contains("482913"), "the code is not in the attempt log: {rows}");
    let sent = app.metric(r#"smsgate_hook_requests_total{hook="supabase",result="sent"}"#).await;
    assert_eq!(sent, Some(1.0));
}

async fn an_older_gotrue_payload_and_a_secret_being_rotated_out_are_accepted(backend: Backend) {
    let app = spawn_hooks(backend).await;
    let body = older_gotrue_body("730155");
    let r = gotrue_call(&app, &[OLD_SECRET], "msg_old", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({}));
    assert!(texts(&app).iter().any(|t| t.contains("730155")));
}

/// A refused call: what it tries, its body and its headers.
type Case<'a> = (&'a str, String, Vec<(&'a str, String)>);

async fn a_gotrue_user_with_large_metadata_is_still_delivered(backend: Backend) {
    let app = spawn_hooks(backend).await;
    let mut body: Value = serde_json::from_str(&gotrue_body("0b4f7c1e-9999-4c9b-9a57-4f6a3c2b1a01", "314159")).unwrap();
    body["user"]["user_metadata"] = json!({ "notes": "x".repeat(40 * 1024) });
    let r = gotrue_call(&app, &[NEW_SECRET], "msg_big", &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(texts(&app).iter().any(|t| t.contains("314159")));
}

async fn unsigned_stale_future_or_altered_calls_are_401_and_send_nothing(backend: Backend) {
    let app = spawn_hooks(backend).await;
    let body = gotrue_body("0b4f7c1e-2222-4c9b-9a57-4f6a3c2b1a01", "111222");
    let now = app.clock.now().timestamp();
    let at = |ts: i64| ts.to_string();
    let good = gotrue_signature(&[NEW_SECRET], "msg_2", now, &body);
    let wrong = gotrue_signature(&[OTHER_SECRET], "msg_2", now, &body);
    let stale = gotrue_signature(&[NEW_SECRET], "msg_2", now - 301, &body);
    let future = gotrue_signature(&[NEW_SECRET], "msg_2", now + 301, &body);
    let altered = body.replace("111222", "999888");
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong secret",
            body.clone(),
            vec![
                ("webhook-id", "msg_2".into()),
                ("webhook-timestamp", at(now)),
                ("webhook-signature", wrong),
            ],
        ),
        (
            "no id",
            body.clone(),
            vec![("webhook-timestamp", at(now)), ("webhook-signature", good.clone())],
        ),
        (
            "no timestamp",
            body.clone(),
            vec![("webhook-id", "msg_2".into()), ("webhook-signature", good.clone())],
        ),
        (
            "no signature",
            body.clone(),
            vec![("webhook-id", "msg_2".into()), ("webhook-timestamp", at(now))],
        ),
        (
            "stale",
            body.clone(),
            vec![
                ("webhook-id", "msg_2".into()),
                ("webhook-timestamp", at(now - 301)),
                ("webhook-signature", stale),
            ],
        ),
        (
            "future",
            body.clone(),
            vec![
                ("webhook-id", "msg_2".into()),
                ("webhook-timestamp", at(now + 301)),
                ("webhook-signature", future),
            ],
        ),
        (
            "replayed headers, changed body",
            altered,
            vec![
                ("webhook-id", "msg_2".into()),
                ("webhook-timestamp", at(now)),
                ("webhook-signature", good.clone()),
            ],
        ),
    ];
    for (case, body, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = post_signed(&app, &body, &headers).await;
        assert_eq!(r.status, 401, "{case}: {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{case}: {}", r.body);
    }
    // An API client token is not a hook secret.
    let r = app
        .request(reqwest::Method::POST, SUPABASE, Some(SEND_TOKEN), Some(body.clone()), &[])
        .await;
    assert_eq!(r.status, 401);
    assert!(texts(&app).is_empty(), "nothing was sent");
    assert_eq!(app.calls("twilio"), 0);
    let refused = app
        .metric(r#"smsgate_hook_requests_total{hook="supabase",result="unauthorized"}"#)
        .await;
    assert_eq!(refused, Some(8.0));
}

async fn a_gotrue_retry_with_a_new_webhook_id_sends_once(backend: Backend) {
    let app = spawn_hooks(backend).await;
    let body = gotrue_body("0b4f7c1e-3333-4c9b-9a57-4f6a3c2b1a01", "654321");
    for id in ["msg_try_1", "msg_try_2", "msg_try_3"] {
        app.advance(2);
        let r = gotrue_call(&app, &[NEW_SECRET], id, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, json!({}));
    }
    assert_eq!(texts(&app).len(), 1, "GoTrue's retries are one SMS");
    // Another call (a new code, a new uuid) is another SMS.
    let next = gotrue_body("0b4f7c1e-4444-4c9b-9a57-4f6a3c2b1a01", "654322");
    assert_eq!(gotrue_call(&app, &[NEW_SECRET], "msg_next", &next).await.status, 200);
    assert_eq!(texts(&app).len(), 2);
    let replayed = app
        .metric(r#"smsgate_hook_requests_total{hook="supabase",result="replayed"}"#)
        .await;
    assert_eq!(replayed, Some(2.0));
}

async fn a_refused_send_answers_supabases_error_shape(backend: Backend) {
    let app = spawn_with(backend, |sim| hooks_config_with(sim, |c| c.limits.per_phone_per_minute = 1)).await;
    let first = gotrue_body("0b4f7c1e-5555-4c9b-9a57-4f6a3c2b1a01", "100001");
    assert_eq!(gotrue_call(&app, &[NEW_SECRET], "msg_a", &first).await.body, json!({}));
    let second = gotrue_body("0b4f7c1e-6666-4c9b-9a57-4f6a3c2b1a01", "100002");
    let r = gotrue_call(&app, &[NEW_SECRET], "msg_b", &second).await;
    assert_eq!(r.status, 200, "Supabase shows a 200 with `error` to the user");
    assert_eq!(r.body["error"]["http_code"], 429, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("too many codes"));
    assert_eq!(texts(&app).len(), 1);
}

async fn the_end_users_ip_from_gotrue_takes_the_per_ip_limit(backend: Backend) {
    let app = spawn_with(backend, |sim| hooks_config_with(sim, |c| c.limits.per_ip_per_minute = 1)).await;
    let first = gotrue_body("0b4f7c1e-aaaa-4c9b-9a57-4f6a3c2b1a01", "200001");
    assert_eq!(gotrue_call(&app, &[NEW_SECRET], "msg_ip1", &first).await.body, json!({}));
    // Another number, the same end user (203.0.113.7).
    let other = gotrue_body("0b4f7c1e-bbbb-4c9b-9a57-4f6a3c2b1a01", "200002").replace(PHONE.trim_start_matches('+'), "919876500001");
    let r = gotrue_call(&app, &[NEW_SECRET], "msg_ip2", &other).await;
    assert_eq!(r.body["error"]["http_code"], 429, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("address"), "{}", r.body);
    assert!(app.sim.state().messages(Some("+919876500001")).is_empty());
}

async fn a_hook_code_fails_over_as_an_api_otp_does(backend: Backend) {
    // 2Factor sending smsgate's (here GoTrue's) code, then twilio.
    let app = spawn_with(backend, |sim| {
        hooks_config_with(sim, |c| {
            let ProviderConfig::TwoFactor(two_factor) = c.provider_mut("2factor") else {
                unreachable!("2factor is a two_factor entry")
            };
            two_factor.otp_mode = Some("local".into());
        })
    })
    .await;
    app.fault("2factor", "500");
    let body = gotrue_body("0b4f7c1e-7777-4c9b-9a57-4f6a3c2b1a01", "246810");
    let r = gotrue_call(&app, &[NEW_SECRET], "msg_fo", &body).await;
    assert_eq!(r.body, json!({}), "{}", r.body);
    assert_eq!(app.calls("2factor"), 1, "the primary was tried");
    let msgs = app.sim.state().messages(Some(PHONE));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].provider, "twilio");
    assert!(msgs[0].text.as_deref().unwrap_or_default().contains("246810"));
    let failovers = app
        .metric(r#"smsgate_failovers_total{from="2factor",reason="unavailable",to="twilio"}"#)
        .await;
    assert_eq!(failovers, Some(1.0));
    let rows = attempts(&app).await;
    let providers: Vec<&str> = rows["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.len(), 2, "both attempts are logged: {rows}");
    assert!(!rows.to_string().contains("246810"));
}

async fn a_gateway_without_a_supabase_secret_refuses_the_hook(backend: Backend) {
    let app = spawn_with(backend, config).await;
    let body = gotrue_body("0b4f7c1e-8888-4c9b-9a57-4f6a3c2b1a01", "135790");
    let r = gotrue_call(&app, &[NEW_SECRET], "msg_off", &body).await;
    assert_eq!(r.status, 401);
    assert!(texts(&app).is_empty());
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// What `contrib/kratos/sms.jsonnet` renders for a login code.
fn kratos_body(code: &str) -> String {
    json!({ "to": PHONE, "body": format!("Your login code is: {code}\n\nIt expires in 15 minutes.\n"), "template_type": "login_code_valid" })
        .to_string()
}

async fn kratos_sms_is_delivered_with_its_basic_auth_and_refused_without(backend: Backend) {
    let app = spawn_hooks(backend).await;
    let body = kratos_body("718293");
    let post = |auth: Option<String>| {
        let body = body.clone();
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("authorization", a)]).unwrap_or_default();
            app.request(reqwest::Method::POST, KRATOS, None, Some(body), &headers).await
        }
    };
    for refused in [
        None,
        Some(basic(KRATOS_BASIC.0, "wrong")),
        Some(format!("Bearer {SEND_TOKEN}")),
        Some(format!("Bearer {KEYCLOAK_TOKEN}")),
    ] {
        let r = post(refused.clone()).await;
        assert_eq!(r.status, 401, "{refused:?}: {}", r.body);
    }
    assert!(texts(&app).is_empty());
    let good = basic(KRATOS_BASIC.0, KRATOS_BASIC.1);
    let first = post(Some(good.clone())).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        texts(&app),
        vec!["Your login code is: 718293\n\nIt expires in 15 minutes.".to_string()],
        "the text goes out as Kratos wrote it"
    );
    // Kratos requeues a message it thinks failed and sends the same body again.
    let again = post(Some(good)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(texts(&app).len(), 1, "a requeued message is sent once");
    let rows = attempts(&app).await;
    assert!(!rows.to_string().contains("718293"));
}

async fn keycloak_sms_is_delivered_with_its_token_and_refused_without(backend: Backend) {
    let app = spawn_hooks(backend).await;
    let body = json!({ "text": "Your SMS code is 402816 and is valid for 5 minutes.", "to": PHONE, "from": "SMSGATE" }).to_string();
    let post = |token: Option<&'static str>| {
        let body = body.clone();
        let app = &app;
        async move { app.request(reqwest::Method::POST, KEYCLOAK, token, Some(body), &[]).await }
    };
    for refused in [None, Some(SEND_TOKEN), Some("keycloak-api-secret-2")] {
        assert_eq!(post(refused).await.status, 401, "{refused:?}");
    }
    // Kratos' credentials do not open Keycloak's route.
    let kratos = basic(KRATOS_BASIC.0, KRATOS_BASIC.1);
    let r = app
        .request(
            reqwest::Method::POST,
            KEYCLOAK,
            None,
            Some(body.clone()),
            &[("authorization", &kratos)],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(texts(&app).is_empty());
    let first = post(Some(KEYCLOAK_TOKEN)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The plugin's "API secret in header" mode sends the secret bare.
    let bare = app
        .request(
            reqwest::Method::POST,
            KEYCLOAK,
            None,
            Some(body.clone()),
            &[("authorization", KEYCLOAK_TOKEN)],
        )
        .await;
    assert_eq!(bare.status, 200);
    assert_eq!(
        texts(&app),
        vec!["Your SMS code is 402816 and is valid for 5 minutes.".to_string()],
        "sent once"
    );
    let other = json!({ "text": "Your SMS code is 402817 and is valid for 5 minutes.", "to": PHONE, "from": null }).to_string();
    let r = app
        .request(reqwest::Method::POST, KEYCLOAK, Some(KEYCLOAK_TOKEN), Some(other), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(texts(&app).len(), 2);
    let sent = app.metric(r#"smsgate_hook_requests_total{hook="keycloak",result="sent"}"#).await;
    assert_eq!(sent, Some(2.0));
}

on_both_stores!(
    a_signed_gotrue_call_delivers_its_code_and_answers_an_empty_object,
    an_older_gotrue_payload_and_a_secret_being_rotated_out_are_accepted,
    unsigned_stale_future_or_altered_calls_are_401_and_send_nothing,
    a_gotrue_retry_with_a_new_webhook_id_sends_once,
    a_refused_send_answers_supabases_error_shape,
    the_end_users_ip_from_gotrue_takes_the_per_ip_limit,
    a_hook_code_fails_over_as_an_api_otp_does,
    a_gateway_without_a_supabase_secret_refuses_the_hook,
    a_gotrue_user_with_large_metadata_is_still_delivered,
    kratos_sms_is_delivered_with_its_basic_auth_and_refused_without,
    keycloak_sms_is_delivered_with_its_token_and_refused_without,
);
