//! The OpenAPI document: served at `/openapi.json`, the same as the committed `openapi.json`,
//! and covering every route `src/api/mod.rs` mounts but the settings page's assets.
//!
//! After changing a route or a request/response type, rewrite the committed file with
//! `OPENAPI_WRITE=1 scripts/test --test api openapi`.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, ADMIN_TOKEN, PHONE, SEND_TOKEN};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

/// The settings page's static assets (`src/api/admin_page.rs`): HTML, script and style, not API.
const PAGE_ASSETS: [&str; 5] = ["/admin", "/admin/", "/admin/index.html", "/admin/app.js", "/admin/app.css"];

/// Routes mounted in `src/api/mod.rs` and `src/api/admin_page.rs`, as written in their
/// `at("...")` calls.
fn mounted_routes() -> Vec<String> {
    let source = concat!(include_str!("../../src/api/mod.rs"), include_str!("../../src/api/admin_page.rs"));
    source
        .split("at(\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(path, _)| path.to_string()))
        .filter(|path| path.starts_with('/'))
        .collect()
}

async fn served() -> (reqwest::header::HeaderMap, String) {
    let app = spawn_app(Backend::Memory).await;
    let res = app.http.get(format!("{}/openapi.json", app.base)).send().await.expect("request");
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    (headers, res.text().await.expect("body"))
}

#[tokio::test]
async fn the_served_document_is_the_committed_openapi_json() {
    let (headers, served) = served().await;
    assert_eq!(headers["content-type"], "application/json");
    if std::env::var_os("OPENAPI_WRITE").is_some() {
        std::fs::write(COMMITTED, &served).expect("openapi.json written");
    }
    let committed = std::fs::read_to_string(COMMITTED).expect("openapi.json is committed");
    assert!(
        served == committed,
        "openapi.json differs from GET /openapi.json; rewrite it with `OPENAPI_WRITE=1 scripts/test --test api openapi`"
    );
}

#[tokio::test]
async fn every_mounted_route_but_the_settings_page_assets_is_documented_with_its_methods() {
    let (_, served) = served().await;
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    let routes = mounted_routes();
    assert!(routes.len() > 20, "mod.rs parsed: {routes:?}");
    let mut missing = Vec::new();
    for asset in PAGE_ASSETS {
        assert!(
            routes.iter().any(|r| r == asset),
            "{asset} is no longer mounted: update PAGE_ASSETS"
        );
    }
    for route in routes.iter().filter(|r| !PAGE_ASSETS.contains(&r.as_str())) {
        if doc["paths"][route.as_str()].as_object().is_none_or(|ops| ops.is_empty()) {
            missing.push(route.clone());
        }
    }
    assert!(missing.is_empty(), "routes without a path in the document: {missing:?}");
    // Nothing documented that is not mounted.
    for path in doc["paths"].as_object().expect("paths").keys() {
        assert!(routes.contains(path), "{path} is documented but not mounted");
    }
    // The methods match the mount: contact takes GET and PUT, sends POST, probes GET.
    let ops = |p: &str| {
        let mut m: Vec<String> = doc["paths"][p].as_object().expect(p).keys().cloned().collect();
        m.sort();
        m
    };
    assert_eq!(ops("/v1/users/{user_id}/contact"), ["get", "put"]);
    assert_eq!(ops("/api/sms/sendOtp"), ["post"]);
    assert_eq!(ops("/readyz"), ["get"]);
    assert_eq!(ops("/v1/admin/providers"), ["get", "post"]);
    assert_eq!(ops("/v1/admin/providers/{name}"), ["delete", "patch"]);
    assert_eq!(ops("/v1/opt-outs"), ["delete", "get", "post"]);
    assert_eq!(ops("/v1/campaigns"), ["get", "post"]);
    // The page's assets stay out; the admin API they call is in.
    for asset in PAGE_ASSETS {
        assert!(doc["paths"].get(asset).is_none(), "{asset} is documented");
    }
}

#[tokio::test]
async fn seed_aliases_answer_in_the_seed_shape_and_v1_routes_in_theirs() {
    let (_, served) = served().await;
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    let answer =
        |path: &str, status: &str| doc["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"]["$ref"].clone();
    assert_eq!(answer("/v1/otp/send", "200"), "#/components/schemas/OtpSent");
    assert_eq!(answer("/otp/send", "200"), "#/components/schemas/OtpSentSeed");
    assert_eq!(answer("/api/sms/verifyOtp", "200"), "#/components/schemas/OtpVerifiedSeed");
    assert_eq!(answer("/sms/send-transactional", "202"), "#/components/schemas/MessageAcceptedSeed");
    // Every operation has its own id.
    let mut ids: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("item").values())
        .map(|op| op["operationId"].as_str().expect("operationId").to_string())
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "duplicate operationIds");
}

// What the schemathesis run (`scripts/check-api`) found, each pinned here.

/// RFC 9110: a 405 names the methods the route takes. Every documented route, asked with TRACE,
/// answers 405 with `Allow` equal to its documented methods, and each documented method is taken
/// (never 405): the document and the mount agree.
#[tokio::test]
async fn a_method_a_route_does_not_take_gets_405_with_allow_naming_those_it_does() {
    let app = spawn_app(Backend::Memory).await;
    let (_, served) = served().await;
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{id}", "6b0d0bd8-8c3f-4a57-9c3e-2f1d7b5b0c11")
            .replace("{user_id}", "u1")
            .replace("{action}", "pause")
            .replace("{name}", "twilio")
            .replace("{provider}", "twilio");
        let mut methods: Vec<String> = item.as_object().expect("item").keys().map(|m| m.to_uppercase()).collect();
        let trace = app.request(reqwest::Method::TRACE, &concrete, Some(ADMIN_TOKEN), None, &[]).await;
        assert_eq!(trace.status, 405, "TRACE {path}");
        assert_eq!(trace.body["error"], "method_not_allowed");
        let allow = trace
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut allowed: Vec<String> = allow.split(", ").map(str::to_string).collect();
        allowed.sort();
        methods.sort();
        assert_eq!(allowed, methods, "Allow of {path}");
        for method in &methods {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let body = (method != reqwest::Method::GET).then(|| "{}".to_string());
            let reply = app.request(method.clone(), &concrete, Some(ADMIN_TOKEN), body, &[]).await;
            assert_ne!(reply.status, 405, "{method} {path} is documented but not mounted");
        }
    }
}

/// A well-formed provider name that is not configured is the deployment's, not the request's
/// shape: 422 `unknown_provider`, not 400 (schemathesis sent `"preferred_provider": "0"`, which
/// the document cannot rule out).
#[tokio::test]
async fn a_contact_preferring_an_unconfigured_provider_is_422_unknown_provider() {
    let app = spawn_app(Backend::Memory).await;
    let put = app
        .put_contact(
            SEND_TOKEN,
            "u1",
            json!({"phone": PHONE, "otp_enabled": true, "preferred_provider": "0"}),
        )
        .await;
    assert_eq!(put.status, 422, "{}", put.body);
    assert_eq!(put.body["error"], "unknown_provider");
    assert!(put.body["message"].as_str().unwrap_or_default().contains("`preferred_provider`"));
    // Nothing was stored.
    let got = app.contact("u1", Some(SEND_TOKEN)).await;
    assert_eq!(got.body["preferred_provider"], Value::Null, "{}", got.body);
    let ok = app
        .put_contact(
            SEND_TOKEN,
            "u1",
            json!({"phone": PHONE, "otp_enabled": true, "preferred_provider": "twilio"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

/// The request patterns in the document refuse what the handlers refuse (control characters,
/// blank values, a phone without its country) and take what they take, so schemathesis' "valid"
/// requests are valid (it found blank texts, control characters and empty phones the document
/// allowed).
#[test]
fn the_documents_request_patterns_match_what_the_handlers_accept() {
    let doc: Value = serde_json::from_str(smsgate::api::openapi::document_json()).expect("JSON");
    let schemas = &doc["components"]["schemas"];
    let pattern = |schema: &str, field: &str| {
        let p = schemas[schema]["properties"][field]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{schema}.{field} has a pattern"));
        regex::Regex::new(p).unwrap_or_else(|e| panic!("{schema}.{field}: {e}"))
    };
    let identifier = pattern("SendOtpBody", "user_id");
    for good in ["u1", "ünï·code", " padded "] {
        assert!(identifier.is_match(good), "{good:?}");
    }
    for bad in ["", "   ", "a\0b", "a\nb", "a\tb", "a\u{1b}b", "a\u{7f}b", "a\u{85}b", "a\u{9f}b"] {
        assert!(!identifier.is_match(bad), "{bad:?}");
    }
    let text = pattern("TextBody", "text");
    for good in ["hello", "line 1\nline 2\tend"] {
        assert!(text.is_match(good), "{good:?}");
    }
    for bad in ["", " \n\t", "a\rb", "a\0b", "a\u{7}b", "a\u{9b}b"] {
        assert!(!text.is_match(bad), "{bad:?}");
    }
    let phone = pattern("SendOtpBody", "phone");
    for good in [PHONE, "+14155550100"] {
        assert!(phone.is_match(good), "{good:?}");
    }
    for bad in ["", "0", "+0123456789", "+1234567", "+1234567890123456", "98765 43210x"] {
        assert!(!phone.is_match(bad), "{bad:?}");
    }
    let otp = pattern("VerifyOtpBody", "otp");
    assert!(otp.is_match("123456") && !otp.is_match("123") && !otp.is_match("12345678901") && !otp.is_match("12a4"));
    // A send names a phone or a user (the other may be null); step-up by SMS needs a phone.
    assert_eq!(
        schemas["SendOtpBody"]["anyOf"],
        json!([
            {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
            {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
        ])
    );
    assert_eq!(schemas["ContactBody"]["anyOf"][1]["required"], json!(["phone"]));
}

/// A null `phone` or `user_id` is as if left out, as the document says: a phone with a null
/// user sends; two nulls name no destination and are 400.
#[tokio::test]
async fn a_null_phone_or_user_is_as_if_left_out() {
    let app = spawn_app(Backend::Memory).await;
    let r = app.post("/v1/otp/send", json!({"phone": PHONE, "user_id": null})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.post("/v1/otp/send", json!({"phone": null, "user_id": null})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| m.contains("phone")), "{}", r.body);
}

/// JSON Schema's `integer` includes whole floats (`5.0`), which schemathesis sends: the
/// provider's `priority` and a campaign's `max_per_second` take them; a fraction is still 400.
#[tokio::test]
async fn integer_fields_take_whole_floats_and_refuse_fractions() {
    let app = spawn_app(Backend::Memory).await;
    let provider = |body: Value| {
        let app = &app;
        async move {
            app.request(
                reqwest::Method::POST,
                "/v1/admin/providers",
                Some(ADMIN_TOKEN),
                Some(body.to_string()),
                &[],
            )
            .await
        }
    };
    // On the memory store the registry is the config file's: a well-formed change is 409.
    let whole = provider(json!({"name": "demo", "kind": "twilio", "priority": -399.0})).await;
    assert_eq!(whole.status, 409, "{}", whole.body);
    assert_eq!(whole.body["error"], "registry_read_only");
    let fraction = provider(json!({"name": "demo", "kind": "twilio", "priority": 1.5})).await;
    assert_eq!(fraction.status, 400, "{}", fraction.body);
    let patch = app
        .request(
            reqwest::Method::PATCH,
            "/v1/admin/providers/twilio",
            Some(ADMIN_TOKEN),
            Some(json!({"priority": 2.0}).to_string()),
            &[],
        )
        .await;
    assert_eq!(patch.status, 409, "{}", patch.body);
    let campaign = |mps: Value| {
        let app = &app;
        async move {
            app.post(
                "/v1/campaigns",
                json!({"name": "c", "type": "transactional", "text": "hi", "recipients": [PHONE], "max_per_second": mps}),
            )
            .await
        }
    };
    let created = campaign(json!(5.0)).await;
    assert_eq!(created.status, 202, "{}", created.body);
    let got = app
        .get(
            &format!("/v1/campaigns/{}", created.body["id"].as_str().expect("id")),
            Some(SEND_TOKEN),
        )
        .await;
    assert_eq!(got.body["max_per_second"], 5, "{}", got.body);
    assert_eq!(campaign(json!(5.5)).await.status, 400);
}

/// A page size past any page (even past `usize`) is clamped like any large one, not 400
/// (schemathesis sent `limit=22895503144372176579005903798272`); a non-number is still 400.
#[tokio::test]
async fn a_huge_page_size_is_clamped_on_every_paged_route() {
    let app = spawn_app(Backend::Memory).await;
    let huge = "22895503144372176579005903798272";
    for (path, token) in [
        ("/v1/campaigns", SEND_TOKEN),
        ("/v1/opt-outs", ADMIN_TOKEN),
        ("/v1/admin/attempts", ADMIN_TOKEN),
        ("/v1/admin/audit", ADMIN_TOKEN),
    ] {
        let ok = app.get(&format!("{path}?limit={huge}"), Some(token)).await;
        assert_eq!(ok.status, 200, "{path}: {}", ok.body);
        let bad = app.get(&format!("{path}?limit=-1"), Some(token)).await;
        assert_eq!(bad.status, 400, "{path}: {}", bad.body);
        assert_eq!(bad.body["error"], "invalid_request", "{path}");
    }
}

/// The cursors the document describes are the ones the handlers give and take: a campaign
/// page's `next_cursor` matches the documented pattern, and the logs' empty filters (which the
/// settings page sends) are documented as no filter.
#[tokio::test]
async fn documented_cursor_and_filter_patterns_match_what_the_handlers_give_and_take() {
    let app = spawn_app(Backend::Memory).await;
    for name in ["a", "b"] {
        let r = app
            .post(
                "/v1/campaigns",
                json!({"name": name, "type": "transactional", "text": "hi", "recipients": [PHONE]}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let page = app.get("/v1/campaigns?limit=1", Some(SEND_TOKEN)).await;
    let cursor = page.body["next_cursor"].as_str().expect("a next page").to_string();
    let doc: Value = serde_json::from_str(smsgate::api::openapi::document_json()).expect("JSON");
    let param = |path: &str, name: &str| {
        let params = doc["paths"][path]["get"]["parameters"].as_array().expect("parameters").clone();
        let p = params
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} {name}"));
        regex::Regex::new(p["schema"]["pattern"].as_str().expect("pattern")).expect("regex")
    };
    assert!(param("/v1/campaigns", "cursor").is_match(&cursor), "{cursor}");
    let next = app.get(&format!("/v1/campaigns?limit=1&cursor={cursor}"), Some(SEND_TOKEN)).await;
    assert_eq!(next.status, 200, "{}", next.body);
    for name in ["phone", "provider", "outcome", "type", "since", "until", "limit"] {
        assert!(
            param("/v1/admin/logs", name).is_match(""),
            "logs {name} documents empty as no filter"
        );
        let r = app.get(&format!("/v1/admin/logs?{name}="), Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status, 200, "{name}=: {}", r.body);
    }
    let since = param("/v1/admin/logs", "since");
    for good in ["2026-01-31T09:00:00Z", "2026-04-30T23:59:59.5+05:30", "2026-02-28T00:00:00-08:00"] {
        assert!(since.is_match(good), "{good}");
        let r = app
            .get(&format!("/v1/admin/logs?since={}", good.replace('+', "%2B")), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(r.status, 200, "{good}: {}", r.body);
    }
    // Days a month does not have are left out of the pattern, as the handler refuses them.
    for bad in ["2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "yesterday"] {
        assert!(!since.is_match(bad), "{bad}");
    }
    assert!(param("/v1/admin/audit", "cursor").is_match("") && param("/v1/admin/audit", "cursor").is_match("42"));
}
