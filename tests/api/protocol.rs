//! The HTTP protocol at the edge: the `Bearer` scheme in any case, and errors that actix raises
//! before a handler runs (extractors, oversize heads) in the API's JSON error shape.

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_app, Backend, ADMIN_TOKEN, SEND_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let app = spawn_app(Backend::Memory).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {ADMIN_TOKEN}");
        let r = app
            .request(Method::GET, "/v1/admin/attempts", None, None, &[("authorization", &value)])
            .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    for value in [format!("Basic {ADMIN_TOKEN}"), format!("Bearer{ADMIN_TOKEN}"), "Bearer ".into()] {
        let r = app
            .request(Method::GET, "/v1/admin/attempts", None, None, &[("authorization", &value)])
            .await;
        assert_eq!((r.status, r.body["error"].as_str()), (401, Some("unauthorized")), "{value}");
    }
}

/// Every error body is `{"error": "<code>", "message": "..."}`.
fn assert_json_error(what: &str, r: &crate::helpers::Reply, status: u16) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(
        r.body["error"].is_string() && r.body["message"].is_string(),
        "{what}: {status} {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_errors_answer_in_the_json_error_shape() {
    let app = spawn_app(Backend::Memory).await;
    let session = app.get("/v1/otp/sessions/%C0", Some(SEND_TOKEN)).await;
    assert_json_error("undecodable session id", &session, 400);
    for query in ["limit=abc", "limit=-1", "bogus=1", "limit=%FF"] {
        let r = app.get(&format!("/v1/admin/attempts?{query}"), Some(ADMIN_TOKEN)).await;
        assert_json_error(query, &r, 400);
    }
    let explain = app.get("/v1/routing/explain?kind=otp", Some(ADMIN_TOKEN)).await;
    assert_json_error("missing `to`", &explain, 400);
    let anonymous = app.get("/v1/admin/attempts?limit=abc", None).await;
    assert_eq!(anonymous.status, 401, "authentication comes before the query: {}", anonymous.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_answer_413_in_the_json_error_shape_however_they_are_framed() {
    let app = spawn_app(Backend::Memory).await;
    let big = format!(r#"{{"phone": "+919876543210", "x": "{}"}}"#, "a".repeat(64 * 1024));
    let declared = app
        .request(Method::POST, "/v1/otp/send", Some(SEND_TOKEN), Some(big.clone()), &[])
        .await;
    assert_json_error("Content-Length over the limit", &declared, 413);
    // Chunked: the size is known only while reading.
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut raw = format!(
        "POST /v1/otp/send HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SEND_TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in big.as_bytes().chunks(4096) {
        raw.push_str(&format!("{:x}\r\n{}\r\n", chunk.len(), String::from_utf8_lossy(chunk)));
    }
    raw.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = conn.write_all(raw.as_bytes()).await;
    let mut answer = String::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"payload_too_large""#), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_too_large_is_refused_before_routing() {
    // actix-http answers 431 (a head over 128 KiB) and 400 (a malformed head) before any
    // application code runs, with an empty body: these are the only non-JSON errors.
    let app = spawn_app(Backend::Memory).await;
    let huge = "a".repeat(300 * 1024);
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-padding", huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_and_a_proxys_plain_id_is_kept() {
    let app = spawn_app(Backend::Memory).await;
    let fresh = app.get("/healthz", None).await;
    let id = fresh.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
    let again = app.get("/healthz", None).await;
    assert_ne!(again.headers["x-request-id"].to_str().unwrap(), id, "one id per request");

    let kept = app
        .request(Method::GET, "/healthz", None, None, &[("X-Request-Id", "lb-7f3a:42")])
        .await;
    assert_eq!(kept.headers["x-request-id"], "lb-7f3a:42");
    let odd = app
        .request(
            Method::GET,
            "/v1/otp/sessions/x",
            Some(SEND_TOKEN),
            None,
            &[("X-Request-Id", "a b;c")],
        )
        .await;
    assert_ne!(odd.headers["x-request-id"], "a b;c", "an id that is not a plain token is replaced");
}
