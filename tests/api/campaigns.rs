//! Campaigns end to end: created over the API, sent by the app's workers through the simulator,
//! with dedupe, opt-outs (and Twilio's inbound STOP), quiet hours, pause/resume/cancel, leases
//! that expire, two instances on one PostgreSQL, and the provider's throughput cap.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use smsgate::config::Settings;
use smsgate::sim::SimHandle;

use crate::helpers::{eventually, phone, sim_provider, spawn_with, with_providers, Backend, Reply, TestApp, ADMIN_TOKEN, SEND_TOKEN};
use crate::on_both_stores;

/// Twilio only (it carries any text to any country), quick workers, no quiet hours unless a
/// test sets them: the test clock follows the wall clock, which may be in India's night.
fn campaign_settings(sim: &SimHandle, adjust: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = with_providers(sim, &["twilio"]);
    s.campaigns.poll_ms = 20;
    s.campaigns.quiet_hours.clear();
    adjust(&mut s);
    s
}

async fn app(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with(backend, |sim| campaign_settings(sim, adjust)).await
}

fn numbers(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(phone).collect()
}

async fn create(app: &TestApp, body: Value) -> Reply {
    app.post("/v1/campaigns", body).await
}

async fn created_id(app: &TestApp, body: Value) -> String {
    let r = create(app, body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["id"].as_str().expect("an id").to_string()
}

async fn campaign(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/v1/campaigns/{id}"), Some(SEND_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn control(app: &TestApp, id: &str, action: &str) -> Reply {
    app.post(&format!("/v1/campaigns/{id}/{action}"), json!({})).await
}

/// Waits until the campaign has nothing left to send, and returns it.
async fn wait_done(app: &TestApp, id: &str) -> Value {
    let done = eventually(Duration::from_secs(120), || async { campaign(app, id).await["status"] == "done" }).await;
    let c = campaign(app, id).await;
    assert!(done, "campaign not done: {c}");
    c
}

/// Messages the simulator delivered per number.
fn deliveries(app: &TestApp) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in app.sim.state().messages(None) {
        *out.entry(m.to).or_default() += 1;
    }
    out
}

async fn a_campaign_reaches_every_unique_valid_number_once_and_ends_done(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let mut recipients = numbers(0..20);
    recipients.extend(numbers(0..3)); // three duplicates
    recipients.push("9876500007".into()); // the same as phone(7) in national form: a duplicate
    recipients.extend(["12345".to_string(), "+91abc".to_string()]);
    let r = create(
        &app,
        json!({"name": "spring sale", "type": "transactional", "text": "Hello from smsgate", "recipients": recipients}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        (r.body["queued"].as_u64(), r.body["duplicates"].as_u64()),
        (Some(20), Some(4)),
        "{}",
        r.body
    );
    assert_eq!(r.body["invalid_count"], 2);
    let rows: Vec<u64> = r.body["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [24, 25], "{}", r.body);

    let c = wait_done(&app, r.body["id"].as_str().unwrap()).await;
    let counts = &c["counts"];
    assert_eq!((counts["sent"].as_u64(), counts["failed"].as_u64()), (Some(20), Some(0)), "{c}");
    assert_eq!(
        (counts["duplicate"].as_u64(), counts["invalid"].as_u64()),
        (Some(4), Some(2)),
        "{c}"
    );
    let got = deliveries(&app);
    assert_eq!(got.len(), 20);
    assert!(numbers(0..20).iter().all(|p| got.get(p) == Some(&1)), "{got:?}");
    assert_eq!(
        app.sim.state().messages(Some(&phone(0)))[0].text.as_deref(),
        Some("Hello from smsgate")
    );
}

async fn a_csv_upload_makes_a_campaign_with_per_recipient_template_values(backend: Backend) {
    // 2Factor carries templates.
    let app = spawn_with(backend, |sim| {
        campaign_settings(sim, |s| s.providers = vec![sim_provider(sim, "2factor", 1)])
    })
    .await;
    let csv = format!("phone,name\n{},Asha\n{},\"Ravi, K\"\nnot-a-phone,X\n", phone(1), phone(2));
    let r = app
        .http
        .post(format!("{}/v1/campaigns?name=csv&type=transactional&template=greeting", app.base))
        .bearer_auth(SEND_TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["queued"].as_u64(), body["invalid"][0]["row"].as_u64()),
        (Some(2), Some(4)),
        "{body}"
    );
    wait_done(&app, body["id"].as_str().unwrap()).await;
    let to_2 = app.sim.state().messages(Some(&phone(2)));
    assert_eq!(
        (to_2[0].template.as_deref(), to_2[0].vars.clone()),
        (Some("greeting"), vec!["Ravi, K".to_string()])
    );
}

async fn oversized_and_malformed_campaigns_are_refused_whole(backend: Backend) {
    let app = app(backend, |s| {
        s.campaigns.max_recipients = 5;
        s.campaigns.max_body_bytes = 2_000;
    })
    .await;
    let too_many = create(&app, json!({"name": "n", "text": "t", "recipients": numbers(0..6)})).await;
    assert_eq!(
        (too_many.status, &too_many.body["error"]),
        (422, &json!("too_many_recipients")),
        "{}",
        too_many.body
    );
    let big = create(&app, json!({"name": "n", "text": "x".repeat(3_000), "recipients": numbers(0..1)})).await;
    assert_eq!((big.status, &big.body["error"]), (413, &json!("payload_too_large")), "{}", big.body);
    let none_valid = create(&app, json!({"name": "n", "text": "t", "recipients": ["1", "2"]})).await;
    assert_eq!((none_valid.status, &none_valid.body["error"]), (422, &json!("no_valid_recipients")));
    let both = create(
        &app,
        json!({"name": "n", "text": "t", "template": "x", "recipients": numbers(0..1)}),
    )
    .await;
    assert_eq!(both.status, 400, "{}", both.body);
    let unknown = create(&app, json!({"name": "n", "text": "t", "recipients": numbers(0..1), "bogus": 1})).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let list = app.get("/v1/campaigns", Some(SEND_TOKEN)).await;
    assert_eq!(list.body["campaigns"], json!([]), "nothing half-stored: {}", list.body);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.sent(), 0);
}

async fn promotional_campaigns_skip_opted_out_numbers_and_transactional_ones_do_not(backend: Backend) {
    let app = app(backend, |_| {}).await;
    for p in [phone(1), phone(2)] {
        let r = app.post("/v1/opt-outs", json!({"phone": p})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let again = app.post("/v1/opt-outs", json!({"phone": phone(1)})).await;
    assert_eq!((again.status, &again.body["created"]), (200, &json!(false)));

    let promo = created_id(
        &app,
        json!({"name": "promo", "type": "promotional", "text": "Sale!", "recipients": numbers(0..5)}),
    )
    .await;
    let c = wait_done(&app, &promo).await;
    assert_eq!(
        (c["counts"]["sent"].as_u64(), c["counts"]["skipped_opt_out"].as_u64()),
        (Some(3), Some(2)),
        "{c}"
    );
    assert!(app.sim.state().messages(Some(&phone(1))).is_empty());

    let tx = created_id(
        &app,
        json!({"name": "notice", "type": "transactional", "text": "Your bill", "recipients": numbers(0..5)}),
    )
    .await;
    let c = wait_done(&app, &tx).await;
    assert_eq!(
        (c["counts"]["sent"].as_u64(), c["counts"]["skipped_opt_out"].as_u64()),
        (Some(5), Some(0)),
        "{c}"
    );
    assert_eq!(app.sim.state().messages(Some(&phone(1))).len(), 1);
    // An OTP is never blocked by an opt-out.
    assert_eq!(app.send_otp_to(&phone(2)).await.status, 200);

    let listed = app.get("/v1/opt-outs", Some(ADMIN_TOKEN)).await;
    assert_eq!(listed.body["opt_outs"].as_array().map(Vec::len), Some(2), "{}", listed.body);
    let path = format!("/v1/opt-outs?phone=%2B{}", &phone(1)[1..]);
    let removed = app.request(Method::DELETE, &path, Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let gone = app.request(Method::DELETE, &path, Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!(gone.status, 404);
    let by_app = app.request(Method::DELETE, &path, Some(SEND_TOKEN), None, &[]).await;
    assert_eq!(by_app.status, 403);
}

/// Posts Twilio's inbound-message form, signed with `token` when given.
async fn twilio_inbound(app: &TestApp, from: &str, text: &str, token: Option<&str>) -> u16 {
    let params = vec![
        ("AccountSid".to_string(), "AC123".to_string()),
        ("Body".to_string(), text.to_string()),
        ("From".to_string(), from.to_string()),
        ("To".to_string(), "+15005550006".to_string()),
    ];
    let url = format!("{}/v1/webhooks/twilio/inbound", app.base);
    let form = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    let mut req = app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some(t) = token {
        req = req.header("x-twilio-signature", smsgate::hooks::receipts::twilio_signature(t, &url, &params));
    }
    req.send().await.unwrap().status().as_u16()
}

async fn twilio_inbound_stop_opts_out_only_when_signed_by_the_auth_token(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let token = smsgate::sim::SimCredentials::default().auth_token;
    assert_eq!(twilio_inbound(&app, &phone(1), "STOP", None).await, 403);
    assert_eq!(twilio_inbound(&app, &phone(1), "STOP", Some("not-the-token")).await, 403);
    assert_eq!(opted(&app).await, 0, "an unsigned or forged STOP changes nothing");
    assert_eq!(twilio_inbound(&app, &phone(1), "hello there", Some(&token)).await, 200);
    assert_eq!(opted(&app).await, 0);
    assert_eq!(twilio_inbound(&app, &phone(1), " Stop ", Some(&token)).await, 200);
    let listed = app.get("/v1/opt-outs", Some(ADMIN_TOKEN)).await;
    assert_eq!(listed.body["opt_outs"][0]["source"], "twilio_inbound", "{}", listed.body);
    assert_eq!(listed.body["opt_outs"][0]["phone"], phone(1));

    let promo = created_id(&app, json!({"name": "p", "text": "Sale!", "recipients": numbers(0..3)})).await;
    let c = wait_done(&app, &promo).await;
    assert_eq!(c["counts"]["skipped_opt_out"], 1, "{c}");
    assert!(app.sim.state().messages(Some(&phone(1))).is_empty());
    assert_eq!(twilio_inbound(&app, &phone(1), "START", Some(&token)).await, 200);
    assert_eq!(opted(&app).await, 0);
}

/// How many opt-outs the admin list shows.
async fn opted(app: &TestApp) -> usize {
    let listed = app.get("/v1/opt-outs", Some(ADMIN_TOKEN)).await;
    listed.body["opt_outs"].as_array().map_or(0, Vec::len)
}

/// Seconds from `now` to the next 22:00 IST (16:30 UTC), inside India's quiet hours.
fn secs_to_ist_night(now: DateTime<Utc>) -> i64 {
    let target = 16 * 3600 + 30 * 60;
    let at = i64::from(now.num_seconds_from_midnight());
    (target - at).rem_euclid(86_400)
}

async fn quiet_hours_hold_promotional_messages_until_morning_then_release_them(backend: Backend) {
    let app = app(backend, |s| {
        s.campaigns.quiet_hours = smsgate::config::CampaignSettings::default().quiet_hours;
    })
    .await;
    app.advance(secs_to_ist_night(app.clock.now())); // 22:00 IST
    let promo = created_id(&app, json!({"name": "night", "text": "Sale!", "recipients": numbers(0..4)})).await;
    let held = eventually(Duration::from_secs(10), || async {
        campaign(&app, &promo).await["counts"]["held_quiet_hours"] == 4
    })
    .await;
    assert!(held, "{}", campaign(&app, &promo).await);
    // Transactional messages are not held.
    let tx = created_id(
        &app,
        json!({"name": "tx", "type": "transactional", "text": "Bill", "recipients": numbers(10..12)}),
    )
    .await;
    wait_done(&app, &tx).await;
    assert_eq!(app.sent(), 2, "promotional messages wait");
    app.advance(10 * 3600); // 08:00 IST: still quiet
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(campaign(&app, &promo).await["counts"]["held_quiet_hours"], 4);
    app.advance(3600); // 09:00 IST
    let c = wait_done(&app, &promo).await;
    assert_eq!(
        (c["counts"]["sent"].as_u64(), c["counts"]["held_quiet_hours"].as_u64()),
        (Some(4), Some(0)),
        "{c}"
    );
    assert_eq!(app.sent(), 6);
}

async fn pause_resume_and_cancel_control_what_is_sent(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let start = (app.clock.now() + chrono::Duration::seconds(60)).to_rfc3339();
    let body = |name: &str, range| json!({"name": name, "text": "t", "recipients": numbers(range), "schedule_at": start});
    let first = created_id(&app, body("first", 0..5)).await;
    app.advance(1); // the list is newest first
    let second = created_id(&app, body("second", 10..15)).await;
    assert_eq!(campaign(&app, &first).await["status"], "scheduled");
    assert_eq!(control(&app, &first, "pause").await.body["status"], "paused");
    let cancelled = control(&app, &second, "cancel").await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    assert_eq!(cancelled.body["counts"]["cancelled"], 5);
    app.advance(60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sent(), 0, "a paused or cancelled campaign sends nothing");
    let again = control(&app, &second, "resume").await;
    assert_eq!(
        (again.status, &again.body["error"]),
        (409, &json!("campaign_state")),
        "{}",
        again.body
    );
    assert_eq!(control(&app, &first, "resume").await.status, 200);
    let c = wait_done(&app, &first).await;
    assert_eq!(c["counts"]["sent"], 5);
    assert_eq!(app.sent(), 5);
    assert_eq!(
        control(&app, &first, "pause").await.status,
        409,
        "a finished campaign cannot be paused"
    );
    // Another app sees neither campaign.
    let other = app.get(&format!("/v1/campaigns/{first}"), Some(crate::helpers::OTHER_TOKEN)).await;
    assert_eq!(other.status, 404);
    let page = app.get("/v1/campaigns?limit=1", Some(SEND_TOKEN)).await;
    assert_eq!(page.body["campaigns"][0]["id"], json!(second), "{}", page.body);
    let cursor = page.body["next_cursor"].as_str().expect("a next page").to_string();
    let next = app.get(&format!("/v1/campaigns?limit=1&cursor={cursor}"), Some(SEND_TOKEN)).await;
    assert_eq!(next.body["campaigns"][0]["id"], json!(first), "{}", next.body);
    assert_eq!(next.body["next_cursor"], Value::Null);
}

async fn a_single_promotional_send_keeps_opt_outs_and_quiet_hours(backend: Backend) {
    let app = app(backend, |s| {
        s.campaigns.quiet_hours = smsgate::config::CampaignSettings::default().quiet_hours;
    })
    .await;
    let promo = |to: String| json!({"to": to, "text": "Sale!", "type": "promotional"});
    // 12:00 IST: outside quiet hours.
    app.advance((secs_to_ist_night(app.clock.now()) + 14 * 3600) % 86_400);
    let r = app.post("/v1/opt-outs", json!({"phone": phone(1)})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let refused = app.post("/v1/sms/send", promo(phone(1))).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (422, Some("opted_out")),
        "{}",
        refused.body
    );
    assert!(
        app.sim.state().messages(Some(&phone(1))).is_empty(),
        "nothing went to an opted-out number"
    );
    let tx = app.post("/v1/sms/send", json!({"to": phone(1), "text": "Your bill"})).await;
    assert_eq!(
        tx.status, 202,
        "a promotional opt-out does not block a transactional message: {}",
        tx.body
    );
    assert_eq!(app.post("/v1/sms/send", promo(phone(2))).await.status, 202);

    app.advance(10 * 3600); // 22:00 IST
    let night = app.post("/v1/sms/send", promo(phone(3))).await;
    assert_eq!(
        (night.status, night.body["reason"].as_str()),
        (429, Some("quiet_hours")),
        "{}",
        night.body
    );
    assert_eq!(night.body["retry_after_seconds"], json!(11 * 3600), "until 09:00 IST");
    assert!(app.sim.state().messages(Some(&phone(3))).is_empty());
    let tx = app.post("/v1/sms/send", json!({"to": phone(3), "text": "Your bill"})).await;
    assert_eq!(tx.status, 202, "transactional messages are not held: {}", tx.body);
}

/// Quiet hours by number prefix, each on its own zone's wall clock: the longest prefix wins.
async fn quiet_hours_follow_the_recipients_zone_by_number_prefix(backend: Backend) {
    let night = |zone: &str| smsgate::config::QuietHours {
        start: "21:00".into(),
        end: "08:00".into(),
        time_zone: Some(zone.into()),
        utc_offset_minutes: None,
    };
    let app = app(backend, |s| {
        // Neither zone keeps daylight saving time, so the test holds on any date.
        s.campaigns.quiet_hours = [("1", night("America/Phoenix")), ("1808", night("Pacific/Honolulu"))]
            .into_iter()
            .map(|(prefix, rule)| (prefix.to_string(), rule))
            .collect();
    })
    .await;
    // 05:00 UTC: 22:00 in Phoenix (UTC-7), 19:00 in Honolulu (UTC-10).
    let now = i64::from(app.clock.now().num_seconds_from_midnight());
    app.advance((5 * 3600 - now).rem_euclid(86_400));
    let promo = |to: &str| json!({"to": to, "text": "Sale!", "type": "promotional"});
    let phoenix = app.post("/v1/sms/send", promo("+16025550123")).await;
    assert_eq!(
        (phoenix.status, phoenix.body["reason"].as_str()),
        (429, Some("quiet_hours")),
        "{}",
        phoenix.body
    );
    assert_eq!(phoenix.body["retry_after_seconds"], json!(10 * 3600), "until 08:00 in Phoenix");
    let honolulu = app.post("/v1/sms/send", promo("+18085550123")).await;
    assert_eq!(honolulu.status, 202, "19:00 in Honolulu is not quiet: {}", honolulu.body);
    assert!(app.sim.state().messages(Some("+16025550123")).is_empty());
}

async fn delivery_receipts_count_a_campaigns_messages_delivered(backend: Backend) {
    let app = app(backend, |s| s.receipts.url_token = Some("t".to_string().into())).await;
    let callback = format!("{}/v1/webhooks/twilio/status", app.base);
    app.sim.state().receipts.set_callback("twilio", Some(&callback));
    let id = created_id(
        &app,
        json!({"name": "notice", "type": "transactional", "text": "Your bill", "recipients": numbers(0..4)}),
    )
    .await;
    wait_done(&app, &id).await;
    let delivered = eventually(Duration::from_secs(10), || async {
        campaign(&app, &id).await["counts"]["delivered"] == 4
    })
    .await;
    let c = campaign(&app, &id).await;
    assert!(delivered, "{c}");
    assert_eq!(c["counts"]["sent"], 4, "delivered messages were sent too: {c}");
}

on_both_stores!(
    delivery_receipts_count_a_campaigns_messages_delivered,
    a_single_promotional_send_keeps_opt_outs_and_quiet_hours,
    quiet_hours_follow_the_recipients_zone_by_number_prefix,
    a_campaign_reaches_every_unique_valid_number_once_and_ends_done,
    a_csv_upload_makes_a_campaign_with_per_recipient_template_values,
    oversized_and_malformed_campaigns_are_refused_whole,
    promotional_campaigns_skip_opted_out_numbers_and_transactional_ones_do_not,
    twilio_inbound_stop_opts_out_only_when_signed_by_the_auth_token,
    quiet_hours_hold_promotional_messages_until_morning_then_release_them,
    pause_resume_and_cancel_control_what_is_sent,
);

#[path = "campaigns_queue.rs"]
mod queue;
