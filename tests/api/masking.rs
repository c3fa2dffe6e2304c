//! Full phone numbers never leave through the admin API, even inside a provider's error text.

use crate::helpers::{spawn_app, Backend, ADMIN_TOKEN, PHONE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_attempts_mask_numbers_inside_provider_errors() {
    let app = spawn_app(Backend::Postgres).await;
    let db = app.db.as_ref().expect("a PostgreSQL schema").client().await;
    // What Twilio answers for a number it refuses, as the attempt log stores it.
    db.execute(
        r#"INSERT INTO sms_messages_log (id, message_id, "to", type, provider_name, outcome, status_code, error, response_time_ms)
           VALUES (gen_random_uuid(), gen_random_uuid(), $1, 'otp', 'twilio', 'rejected', 400, $2, 12)"#,
        &[
            &PHONE,
            &format!("21211: The 'To' number {PHONE} is not a valid phone number (also 919876543210)"),
        ],
    )
    .await
    .unwrap();
    let r = app.get("/v1/admin/attempts", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body.to_string();
    assert_eq!(
        r.body["attempts"][0]["error"]
            .as_str()
            .map(|e| e.starts_with("21211: The 'To' number +9198")),
        Some(true),
        "{text}"
    );
    assert!(!text.contains("9876543210"), "a full number leaked: {text}");
}
