//! A pod being stopped: the real binary gets SIGTERM while a send is waiting on a slow provider.
//! The send still answers, its attempt row is committed, and the process exits cleanly.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::db::TestDb;
use crate::helpers::{config, eventually, sim_secrets, start_sim, to_toml, PHONE, SEND_TOKEN};

/// Kills the child if a failed assertion leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_send_in_flight_finish_and_commit_its_attempts() {
    let sim = start_sim().await;
    sim.state()
        .set_fault("2factor", Some(smsgate::sim::Fault::parse("latency:1500").unwrap()));
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("smsgate-shutdown-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("providers.toml");
    std::fs::write(&file, to_toml(&config(&sim))).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsgate"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&file)
        .env("DATABASE_URL", db.url())
        .env("SMSGATE_OTP_SECRET", "shutdown-test")
        .env_remove("SMSGATE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in sim_secrets() {
        command.env(k, v);
    }
    let mut child = Running(command.spawn().expect("the binary starts"));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let up = eventually(Duration::from_secs(20), || async {
        http.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await;
    assert!(up, "the gateway came up");

    let send = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move {
            let res = http
                .post(format!("{base}/v1/otp/send"))
                .bearer_auth(SEND_TOKEN)
                .json(&json!({"phone": PHONE}))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    });
    let in_flight = eventually(Duration::from_secs(5), || async { sim.state().calls("2factor") == 1 }).await;
    assert!(in_flight, "the send reached the slow provider");
    let term = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(term.success());

    let (status, body) = send.await.unwrap();
    assert_eq!(status, 200, "the send in flight finished: {body}");
    let exited = eventually(Duration::from_secs(10), || {
        let done = child.0.try_wait().unwrap().is_some();
        async move { done }
    })
    .await;
    assert!(exited, "the process exits after draining");
    // `Child` keeps the status it reaped.
    let exit = child.0.try_wait().unwrap().expect("exited");
    assert!(exit.success(), "and exits cleanly: {exit}");
    let session: uuid::Uuid = body["session_id"].as_str().unwrap().parse().unwrap();
    let rows = db
        .client()
        .await
        .query("SELECT outcome FROM sms_messages_log WHERE message_id = $1", &[&session])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the attempt row was committed before exit");
    assert_eq!(rows[0].get::<_, String>(0), "accepted");
    let _ = std::fs::remove_dir_all(&dir);
}
