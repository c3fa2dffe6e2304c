//! Verification under concurrency and failure: one winner among right codes, a right code never
//! lost to concurrent wrong ones, provider-held codes checked one at a time, a provider outage
//! that spends no attempt, and the daily cap on wrong codes per phone across instances.

use futures::future::join_all;
use serde_json::json;

use smsgate::config::Settings;
use smsgate::sim::SimHandle;

use crate::helpers::{config, config_with, spawn_pair, spawn_with, with_providers, Backend, SettingsExt, PHONE};
use crate::on_both_stores;

/// Twilio alone: smsgate's own code goes out.
fn local_codes(sim: &SimHandle) -> Settings {
    config_with(sim, |c| *c.provider_mut("2factor").enabled_mut() = false)
}

async fn of_fifty_concurrent_right_codes_exactly_one_wins(backend: Backend) {
    let app = spawn_with(backend, local_codes).await;
    let sent = app.send_otp().await;
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let code = app.last_code();
    let replies = join_all((0..50).map(|_| app.verify(&sid, &code))).await;
    let won = replies.iter().filter(|r| r.status == 200 && r.body["verified"] == true).count();
    let lost = replies
        .iter()
        .filter(|r| r.status == 409 && r.body["error"] == "already_verified")
        .count();
    assert_eq!((won, lost), (1, 49), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    let status = app.get(&format!("/v1/otp/sessions/{sid}"), Some(crate::helpers::SEND_TOKEN)).await;
    assert_eq!(status.body["status"], "verified");
}

async fn a_right_code_inside_the_cap_is_never_lost_to_concurrent_wrong_ones(backend: Backend) {
    let app = spawn_with(backend, local_codes).await;
    for round in 0..8 {
        let sent = app.send_otp().await;
        let sid = sent.body["session_id"].as_str().unwrap().to_string();
        let code = app.last_code();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        // Four wrong codes and the right one: five checks, five attempts. Whatever the order,
        // the right code is inside the cap.
        let checks = (0..5).map(|i| {
            let guess = if i == 2 { code.clone() } else { wrong.to_string() };
            let (app, sid) = (&app, &sid);
            async move { (guess.clone(), app.verify(sid, &guess).await) }
        });
        for (guess, r) in join_all(checks).await {
            if guess == code {
                assert_eq!((r.status, &r.body["verified"]), (200, &json!(true)), "round {round}: {}", r.body);
            } else {
                assert!(r.status == 200 || r.status == 409, "round {round}: {}", r.body);
            }
        }
    }
}

async fn concurrent_right_codes_for_a_provider_held_code_verify_once(backend: Backend) {
    let app = spawn_with(backend, config).await;
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let code = app.last_code();
    let replies = join_all((0..20).map(|_| app.verify(&sid, &code))).await;
    let won = replies.iter().filter(|r| r.body["verified"] == true).count();
    assert_eq!(won, 1, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    assert!(
        replies.iter().all(|r| r.body["verified"] == true || r.status == 409),
        "no right code is counted as wrong: {:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let status = app.get(&format!("/v1/otp/sessions/{sid}"), Some(crate::helpers::SEND_TOKEN)).await;
    assert_eq!(status.body["status"], "verified", "{}", status.body);
}

async fn a_provider_outage_during_verify_spends_no_attempt(backend: Backend) {
    let app = spawn_with(backend, config).await;
    let sent = app.send_otp().await;
    let sid = sent.body["session_id"].as_str().unwrap().to_string();
    let code = app.last_code();
    app.fault("2factor", "500");
    for _ in 0..7 {
        let r = app.verify(&sid, &code).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (503, Some("verification_unavailable")),
            "{}",
            r.body
        );
    }
    app.clear_fault("2factor");
    let r = app.verify(&sid, &code).await;
    assert_eq!(r.body["verified"], true, "every attempt is still there: {}", r.body);
}

on_both_stores!(
    a_provider_that_checks_by_number_verifies_only_the_newest_session,
    of_fifty_concurrent_right_codes_exactly_one_wins,
    a_right_code_inside_the_cap_is_never_lost_to_concurrent_wrong_ones,
    concurrent_right_codes_for_a_provider_held_code_verify_once,
    a_provider_outage_during_verify_spends_no_attempt,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_per_phone_are_capped_across_two_instances() {
    let (a, b) = spawn_pair(|sim| {
        let mut settings = local_codes(sim);
        settings.limits.verify_failures_per_phone_per_day = 3;
        settings
    })
    .await;
    let first = a.send_otp().await;
    let second = b.send_otp().await;
    let (s1, s2) = (
        first.body["session_id"].as_str().unwrap(),
        second.body["session_id"].as_str().unwrap(),
    );
    for (app, sid) in [(&a, s1), (&b, s2), (&a, s2)] {
        let r = app.verify(sid, "000001").await;
        assert_eq!((r.status, &r.body["verified"]), (200, &json!(false)), "{}", r.body);
    }
    let code = b.last_code();
    for (app, sid, guess) in [(&b, s1, "000001"), (&a, s2, code.as_str())] {
        let r = app.verify(sid, guess).await;
        assert_eq!(
            (r.status, r.body["reason"].as_str()),
            (429, Some("verify_failures_per_phone")),
            "{}",
            r.body
        );
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
    }
    // A new day: the phone may try again.
    a.advance(86_400);
    let fresh = a.send_otp().await;
    let r = b.verify(fresh.body["session_id"].as_str().unwrap(), &a.last_code()).await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
    let _ = PHONE;
}

async fn a_provider_that_checks_by_number_verifies_only_the_newest_session(backend: Backend) {
    // MSG91 autogen checks a code by mobile number and keeps only the newest code of a number:
    // the older session must not accept the newer session's code.
    let app = spawn_with(backend, |sim| {
        let mut settings = with_providers(sim, &["msg91"]);
        let smsgate::config::ProviderConfig::Msg91(msg91) = settings.provider_mut("msg91") else {
            unreachable!("msg91 is a msg91 entry")
        };
        msg91.otp_mode = Some("autogen".into());
        settings
    })
    .await;
    let older = app.send_otp().await;
    assert_eq!(older.status, 200, "{}", older.body);
    app.advance(1);
    let newer = app.send_otp().await;
    assert_eq!(newer.status, 200, "{}", newer.body);
    let code = app.last_code();
    let r = app.verify(older.body["session_id"].as_str().unwrap(), &code).await;
    assert_eq!(
        (r.status, &r.body["verified"]),
        (200, &json!(false)),
        "the newer code does not open the older session: {}",
        r.body
    );
    let r = app.verify(newer.body["session_id"].as_str().unwrap(), &code).await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
}
