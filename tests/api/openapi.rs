//! The OpenAPI document: served at `/openapi.json`, the same as the committed `openapi.json`,
//! and covering every route `src/api/mod.rs` mounts but the admin API.
//!
//! After changing a route or a request/response type, rewrite the committed file with
//! `OPENAPI_WRITE=1 scripts/test --test api openapi`.

use serde_json::Value;

use crate::helpers::{spawn_app, Backend};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

/// Routes mounted in `src/api/mod.rs`, as written in its `at("...")` calls.
fn mounted_routes() -> Vec<String> {
    let source = include_str!("../../src/api/mod.rs");
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
async fn every_mounted_route_but_the_admin_api_is_documented_with_its_methods() {
    let (_, served) = served().await;
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    let routes = mounted_routes();
    assert!(routes.len() > 20, "mod.rs parsed: {routes:?}");
    let mut missing = Vec::new();
    for route in routes.iter().filter(|r| !r.starts_with("/v1/admin/")) {
        if doc["paths"][route.as_str()].as_object().map_or(true, |ops| ops.is_empty()) {
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
