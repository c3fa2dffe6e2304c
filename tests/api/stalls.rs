//! One bad client or a stalled database must not hold a request without bound: a body that
//! stalls is cut at `server.body_timeout_ms`, a head at `server.header_timeout_ms`, and a
//! database that waits on a lock or stops answering turns into 503 `store_unavailable` within
//! the `[database]` bounds, while `/readyz` says so within seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use smsgate::config::Settings;
use smsgate::sim::SimHandle;

use crate::db::TestDb;
use crate::helpers::{config_with, eventually, spawn_app, spawn_via, spawn_with, start_sim, Backend, TestApp, SEND_TOKEN};

/// The default settings with small bounds, so that the tests wait only as long as the bounds say.
fn bounded(sim: &SimHandle) -> Settings {
    config_with(sim, |c| {
        c.server.header_timeout_ms = 1000;
        c.server.body_timeout_ms = 300;
        c.database.pool_size = 4;
        c.database.pool_wait_ms = 200;
        c.database.connect_timeout_ms = 300;
        c.database.statement_timeout_ms = 300;
    })
}

const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
const BODY_TIMEOUT: Duration = Duration::from_millis(300);
/// actix's default `client_disconnect_timeout`, which `[server]` keeps.
const DISCONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// pool_wait_ms + connect_timeout_ms + statement_timeout_ms, the longest a store call may take.
const STORE_BOUND: Duration = Duration::from_millis(800);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);

async fn bounded_app(backend: Backend) -> TestApp {
    spawn_with(backend, bounded).await
}

/// What a raw connection received, when its first byte came and when it closed (`None`: it was
/// still open when the wait ran out), both from the start of the wait.
struct Received {
    text: String,
    first_byte: Option<Duration>,
    closed: Option<Duration>,
}

/// Reads from `stream` until it closes or `within` runs out.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Received {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut first_byte = None;
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => {
                first_byte.get_or_insert(started.elapsed());
                got.extend_from_slice(&buf[..n]);
            }
            Err(_) => break None,
        }
    };
    Received {
        text: String::from_utf8_lossy(&got).into(),
        first_byte,
        closed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_answered_408_and_closed_while_others_are_served() {
    let app = bounded_app(Backend::Memory).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/otp/send HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SEND_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"phone\": \"+91"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let stalled_at = Instant::now();

    let served = app.send_otp().await;
    assert_eq!(served.status, 200, "another connection is served meanwhile: {}", served.body);

    // Waiting starts after the other request, so times are measured from the stall.
    let before_wait = stalled_at.elapsed();
    let got = read_until_closed(&mut stalled, BODY_TIMEOUT + DISCONNECT_TIMEOUT + SLACK + SLACK).await;
    let answered = got.first_byte.map(|t| before_wait + t);
    let closed = got.closed.map(|t| before_wait + t);
    assert!(got.text.starts_with("HTTP/1.1 408"), "{}", got.text);
    assert!(got.text.contains(r#""error":"request_timeout""#), "{}", got.text);
    let answered = answered.unwrap();
    assert!(
        answered >= BODY_TIMEOUT - Duration::from_millis(50),
        "not before the timeout: {answered:?}"
    );
    assert!(answered < BODY_TIMEOUT + SLACK, "answered within the timeout: {answered:?}");
    // actix lets the client read the answer for `client_disconnect_timeout_ms`, then closes.
    let closed = closed.expect("the connection is closed");
    assert!(closed < BODY_TIMEOUT + DISCONNECT_TIMEOUT + SLACK, "closed after {closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_head_is_cut_at_the_header_timeout() {
    let app = bounded_app(Backend::Memory).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(b"POST /v1/otp/send HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    let got = read_until_closed(&mut stalled, HEADER_TIMEOUT + DISCONNECT_TIMEOUT + SLACK + SLACK).await;
    assert!(got.text.starts_with("HTTP/1.1 408"), "{}", got.text);
    let closed = got.closed.expect("the connection is closed");
    let waited = started.elapsed();
    assert!(closed < HEADER_TIMEOUT + DISCONNECT_TIMEOUT + SLACK, "closed after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_on_a_locked_table_answers_503_within_the_statement_timeout() {
    let app = bounded_app(Backend::Postgres).await;
    assert_eq!(app.send_otp().await.status, 200, "the database works before the lock");
    let mut locker = app.db.as_ref().unwrap().client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE rate_counters IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), app.send_otp())
        .await
        .expect("the send answers while the lock is held");
    let took = started.elapsed();
    assert_eq!((r.status, r.body["error"].as_str()), (503, Some("store_unavailable")), "{}", r.body);
    assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(took < STORE_BOUND + SLACK, "answered after {took:?}");
    assert_eq!(app.sim.state().messages(None).len(), 1, "nothing was sent during the lock");
    tx.rollback().await.unwrap();
    assert_eq!(app.send_otp().await.status, 200, "sends work again once the lock is gone");
}

/// A TCP proxy in front of PostgreSQL that can stop forwarding: bytes are read and dropped,
/// connections stay open, nothing answers.
struct BlackHole {
    port: u16,
    forwarding: Arc<AtomicBool>,
}

impl BlackHole {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarding = Arc::new(AtomicBool::new(true));
        let on = Arc::clone(&forwarding);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, Arc::clone(&on)));
                tokio::spawn(pump(sr, cw, Arc::clone(&on)));
            }
        });
        Self { port, forwarding }
    }

    fn swallow(&self) {
        self.forwarding.store(false, Ordering::SeqCst);
    }
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, on: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if on.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_makes_sends_and_readyz_answer_503_in_bounded_time() {
    let db = TestDb::new().await;
    let mut url = url::Url::parse(&db.url()).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = BlackHole::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let sim = start_sim().await;
    let settings = bounded(&sim);
    let app = spawn_via(db, url.to_string(), sim, settings).await;
    assert_eq!(app.send_otp().await.status, 200, "the database works through the proxy");
    assert_eq!(app.get("/readyz", None).await.status, 200);

    proxy.swallow();
    for _ in 0..3 {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(15), app.send_otp())
            .await
            .expect("the send answers while the database is silent");
        let took = started.elapsed();
        assert_eq!((r.status, r.body["error"].as_str()), (503, Some("store_unavailable")), "{}", r.body);
        assert!(took < STORE_BOUND + SLACK, "answered after {took:?}");
    }
    let started = Instant::now();
    let ready = tokio::time::timeout(Duration::from_secs(15), app.get("/readyz", None))
        .await
        .expect("/readyz answers while the database is silent");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body["store"]["reachable"], false);
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_every_provider_is_cooling_down_after_a_429() {
    let app = spawn_app(Backend::Memory).await;
    assert_eq!(app.get("/readyz", None).await.status, 200);
    app.fault("2factor", "throttle:60");
    app.fault("twilio", "throttle:60");
    let r = app.send_otp().await;
    assert_eq!(r.status, 503, "{}", r.body);
    let not_ready = eventually(Duration::from_secs(2), || async { app.get("/readyz", None).await.status == 503 }).await;
    assert!(not_ready, "every provider is cooling down");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.body["providers"]["usable"], 0, "{}", ready.body);
    assert!(
        ready.body["reasons"][0].as_str().unwrap().contains("cooling down"),
        "{}",
        ready.body
    );
}
