//! Retention on PostgreSQL with the app's held clock: partitions are created ahead, a month past
//! retention is archived (gzip JSON Lines, complete, with a matching SHA-256 file) and dropped,
//! old OTP events are archived and deleted, expired sessions purged; archives never hold an OTP
//! code or a secret; one instance at a time.

use std::io::Read;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use smsgate::config::RetentionSettings;
use smsgate::metrics::Metrics;
use smsgate::store::retention::{self, Month};
use smsgate::store::PostgresStore;

use crate::helpers::{spawn_app, Backend, TestApp, PHONE};

fn settings(dir: &std::path::Path) -> RetentionSettings {
    RetentionSettings {
        messages_months: 1,
        otp_logs_months: 1,
        sessions_days: 1,
        archive_dir: Some(dir.to_path_buf()),
    }
}

fn store_of(app: &TestApp) -> PostgresStore {
    PostgresStore::connect(app.db_url.as_deref().unwrap(), 2, Metrics::new()).unwrap()
}

/// The JSON lines of a gzip archive, after checking its `.sha256` file.
fn read_archive(path: &std::path::Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    let sums = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(sums, format!("{}  {name}\n", hex::encode(Sha256::digest(&bytes))));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_past_retention_is_archived_complete_without_codes_then_dropped() {
    let app = spawn_app(Backend::Postgres).await;
    let otp = app.send_otp().await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    let code = app.last_code();
    let text = app.post("/v1/sms/send", json!({ "to": PHONE, "text": "Order A1 shipped" })).await;
    assert_eq!(text.status, 202, "{}", text.body);
    let store = store_of(&app);
    let this_month = Month::of(app.clock.now());
    let dir = std::env::temp_dir().join(format!("smsgate-retention-{}", uuid::Uuid::new_v4()));

    // Three months on, the month of these sends is past a one-month retention.
    app.advance(92 * 24 * 3600);
    let now = app.clock.now();
    let plan = retention::dry_run(store.pool(), &settings(&dir), now).await.unwrap();
    // The month of the sends, and the next one (created ahead, empty), are past retention.
    let past = vec![this_month.partition(), this_month.plus(1).partition()];
    assert_eq!(plan.drop, past, "{plan}");
    assert!(plan.create.contains(&Month::of(now).plus(3).partition()), "{plan}");
    assert!(!dir.exists(), "a dry run writes nothing");

    let tallies = || async {
        let client = store.pool().get().await.unwrap();
        let n: i64 = client.query_one("SELECT count(*) FROM provider_tallies", &[]).await.unwrap().get(0);
        n
    };
    assert_eq!(tallies().await, 1, "health counted the OTP's session");

    let done = retention::run(store.pool(), &settings(&dir), now)
        .await
        .unwrap()
        .expect("the lock was free");
    assert_eq!(done.dropped, past);
    assert_eq!(tallies().await, 0, "health's counts go with the sessions");
    for ahead in 0..=retention::MONTHS_AHEAD as i32 {
        let name = Month::of(now).plus(ahead).partition();
        let exists: Option<String> = store_of(&app)
            .pool()
            .get()
            .await
            .unwrap()
            .query_one("SELECT to_regclass($1)::text", &[&name])
            .await
            .unwrap()
            .get(0);
        assert_eq!(exists.as_deref(), Some(name.as_str()), "created ahead");
    }
    let client = store.pool().get().await.unwrap();
    let gone: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[&this_month.partition()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, None, "the archived partition is dropped");
    assert!(done.sessions_deleted >= 1, "{done:?}");
    assert!(done.otp_logs_deleted >= 1, "{done:?}");

    let attempts = read_archive(&dir.join(format!("{}.jsonl.gz", this_month.partition())));
    assert_eq!(attempts.len(), 2, "every attempt of the month: {attempts:?}");
    assert!(attempts.iter().any(|a| a["message_id"] == text.body["message_id"]));
    assert!(attempts.iter().any(|a| a["type"] == "otp"));
    let events_file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("otp_logs_before_") && p.extension().is_some_and(|e| e == "gz"))
        .expect("an otp_logs archive");
    let events = read_archive(&events_file);
    assert!(events.iter().any(|e| e["session_id"] == otp.body["session_id"]), "{events:?}");
    for file in [dir.join(format!("{}.jsonl.gz", this_month.partition())), events_file] {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&std::fs::read(&file).unwrap()[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(!text.contains(&code), "no OTP code in {}", file.display());
        assert!(
            !text.contains("code_hmac") && !text.contains("test-secret"),
            "no secret in {}",
            file.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_runs_retention_at_a_time() {
    let app = spawn_app(Backend::Postgres).await;
    let store = store_of(&app);
    let dir = std::env::temp_dir().join(format!("smsgate-retention-{}", uuid::Uuid::new_v4()));
    let holder = store.pool().get().await.unwrap();
    holder
        .execute("SELECT pg_advisory_lock($1, hashtext(current_schema()))", &[&0x736d_7372i32])
        .await
        .unwrap();
    let other = store_of(&app);
    assert_eq!(retention::run(other.pool(), &settings(&dir), app.clock.now()).await.unwrap(), None);
    holder
        .execute("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", &[&0x736d_7372i32])
        .await
        .unwrap();
    // Free again (the app's own hourly run may hold it for a moment).
    let ran = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        retention::run(other.pool(), &settings(&dir), app.clock.now())
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert!(ran, "the lock is free once its holder lets go");
}
