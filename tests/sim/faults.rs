//! Every fault kind, set in process, at start-up, or through `POST /_sim/faults`.

use std::time::{Duration, Instant};

use serde_json::json;
use smsgate::sim::{Fault, FaultKind, SimOptions};

use super::{Sim, DIGITS, KEY};

fn fault(spec: &str) -> Option<Fault> {
    Some(Fault::parse(spec).unwrap())
}

#[tokio::test]
async fn a_status_fault_answers_with_the_providers_error_body() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("twilio", fault("503"));
    let reply = sim.send(sim.twilio_send("hi")).await;
    assert_eq!(
        (reply.status, &reply.json["code"], &reply.json["status"]),
        (503, &json!(20503), &json!(503))
    );
    sim.handle.state().set_fault("2factor", fault("500"));
    let url = sim.url("2factor", &format!("/API/V1/{KEY}/SMS/{DIGITS}/AUTOGEN/OTP1"));
    let reply = sim.get(&url).await;
    assert_eq!((reply.status, reply.str("/Status")), (500, "Error"));
    assert!(sim.delivered().is_empty());
    assert_eq!(sim.handle.state().calls("twilio"), 1, "faulted calls count");
}

#[tokio::test]
async fn an_error_fault_answers_the_way_each_provider_reports_that_code() {
    let sim = Sim::start().await;
    let state = sim.handle.state();
    state.set_fault("vonage", fault("error:9"));
    let form = [
        ("api_key", KEY),
        ("api_secret", "sim-secret"),
        ("from", "x"),
        ("to", DIGITS),
        ("text", "hi"),
    ];
    let reply = sim.send(sim.http.post(sim.url("vonage", "/sms/json")).form(&form)).await;
    assert_eq!((reply.status, reply.str("/messages/0/status")), (200, "9"));

    state.set_fault("2factor", fault("error:Invalid Phone Number"));
    let reply = sim
        .get(&sim.url("2factor", &format!("/API/V1/{KEY}/SMS/{DIGITS}/AUTOGEN/OTP1")))
        .await;
    assert_eq!(reply.json, json!({"Status": "Error", "Details": "Invalid Phone Number"}));

    state.set_fault("twilio", fault("error:21211"));
    let reply = sim.send(sim.twilio_send("hi")).await;
    assert_eq!((reply.status, &reply.json["code"]), (400, &json!(21211)));
    assert!(sim.delivered().is_empty());
}

#[tokio::test]
async fn a_throttle_fault_answers_429_with_retry_after() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("twilio", fault("throttle:7"));
    let reply = sim.send(sim.twilio_send("hi")).await;
    assert_eq!((reply.status, &reply.json["code"]), (429, &json!(20429)));
    assert_eq!(reply.headers["retry-after"], "7");
    sim.handle.state().set_fault("twilio", fault("throttle"));
    let reply = sim.send(sim.twilio_send("hi")).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.headers["retry-after"], "1");
}

#[tokio::test]
async fn a_latency_fault_delays_a_normal_answer() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("twilio", fault("latency:300"));
    let started = Instant::now();
    let reply = sim.send(sim.twilio_send("hi")).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!(reply.status, 201);
    assert_eq!(sim.delivered().len(), 1);
}

#[tokio::test]
async fn a_timeout_fault_never_answers() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("twilio", fault("timeout"));
    let err = sim.twilio_send("hi").timeout(Duration::from_millis(300)).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(sim.handle.state().calls("twilio"), 1, "the connection was accepted");
}

#[tokio::test]
async fn a_blackhole_fault_answers_success_but_delivers_nothing() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("fast2sms", fault("blackhole"));
    let body = json!({"route": "otp", "variables_values": "6021", "numbers": &DIGITS[2..]});
    let url = sim.url("fast2sms", "/dev/bulkV2");
    let reply = sim.send(sim.http.post(url).header("authorization", KEY).json(&body)).await;
    assert_eq!(reply.json["return"], true);
    assert!(sim.delivered().is_empty());
    assert_eq!(sim.handle.state().last_code(DIGITS), None);
}

#[tokio::test]
async fn a_fault_with_a_probability_hits_about_that_share_of_calls() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("twilio", fault("500@50%"));
    let mut failed = 0;
    for _ in 0..200 {
        let status = sim.twilio_send("hi").send().await.unwrap().status();
        if status == 500 {
            failed += 1;
        } else {
            assert_eq!(status, 201);
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    assert_eq!(sim.handle.state().calls("twilio"), 200);
    assert_eq!(sim.delivered().len(), 200 - failed);
}

#[tokio::test]
async fn faults_given_at_start_are_in_force() {
    let options = SimOptions {
        faults: vec![("plivo".into(), Fault::parse("throttle:3").unwrap())],
        ..SimOptions::default()
    };
    let sim = Sim::with(options).await;
    let c = smsgate::sim::SimCredentials::default();
    let url = sim.url("plivo", &format!("/v1/Account/{}/Message/", c.plivo_auth_id));
    let body = json!({"src": "+14155550100", "dst": DIGITS, "text": "hi"});
    let reply = sim
        .send(sim.http.post(url).basic_auth(&c.plivo_auth_id, Some(&c.auth_token)).json(&body))
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.headers["retry-after"], "3");
    assert!(reply.json["error"].is_string());
}

#[tokio::test]
async fn faults_switch_at_runtime_through_the_control_api() {
    let sim = Sim::start().await;
    let faults = format!("{}/_sim/faults", sim.handle.control_url());
    let set = |body: serde_json::Value| sim.http.post(&faults).json(&body);
    let reply = sim.send(set(json!({"provider": "twilio", "fault": "500"}))).await;
    assert_eq!((reply.status, &reply.json["twilio"]), (200, &json!("500")));
    assert_eq!(sim.send(sim.twilio_send("hi")).await.status, 500);
    assert_eq!(sim.get(&faults).await.json["twilio"], "500");

    sim.send(set(json!({"provider": "twilio", "fault": null}))).await;
    assert_eq!(sim.send(sim.twilio_send("hi")).await.status, 201);
    assert_eq!(sim.get(&faults).await.json["twilio"], json!(null));

    sim.send(set(json!({"provider": "two_factor", "fault": "error:DND Number@100%"})))
        .await;
    assert!(matches!(sim.handle.state().fault("2factor").unwrap().kind, FaultKind::Error(ref c) if c == "DND Number"));
    sim.send(set(json!({"provider": "2factor", "fault": "ok"}))).await;
    assert!(sim.handle.state().fault("2factor").is_none());

    let reply = sim.send(set(json!({"provider": "twilio", "fault": "explode"}))).await;
    assert_eq!(reply.status, 400);
    let reply = sim.send(set(json!({"provider": "acme", "fault": "500"}))).await;
    assert_eq!(reply.status, 400);
}

#[test]
fn fault_specs_parse_and_bad_ones_are_refused() {
    let parsed = Fault::parse("500@30%").unwrap();
    assert_eq!((parsed.kind, parsed.probability), (FaultKind::Status(500), 0.3));
    assert_eq!(
        Fault::parse("latency:250").unwrap().kind,
        FaultKind::Latency(Duration::from_millis(250))
    );
    assert_eq!(Fault::parse("throttle").unwrap().kind, FaultKind::Throttle(1));
    assert_eq!(
        Fault::parse("error:Invalid Phone Number").unwrap().kind,
        FaultKind::Error("Invalid Phone Number".into())
    );
    assert_eq!(Fault::parse("timeout").unwrap().kind, FaultKind::Timeout);
    assert_eq!(Fault::parse("blackhole").unwrap().kind, FaultKind::Blackhole { country: None });
    assert_eq!(Fault::parse_setting("ok").unwrap(), None);
    for bad in [
        "",
        "200",
        "700",
        "error:",
        "latency:soon",
        "500@",
        "500@150%",
        "throttle:x",
        "nonsense",
    ] {
        assert!(Fault::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[tokio::test]
async fn a_blackhole_for_one_country_loses_exactly_its_rate_there_and_reports_it() {
    let sim = Sim::start().await;
    sim.handle.state().set_fault("twilio", fault("blackhole:91@50%"));
    let creds = smsgate::sim::SimCredentials::default();
    let url = sim.url("twilio", &format!("/2010-04-01/Accounts/{}/Messages.json", creds.account_sid));
    for to in [
        "+919876543210",
        "+919876543210",
        "+919876543210",
        "+919876543210",
        "+14155550100",
        "+14155550100",
    ] {
        let request = sim.http.post(&url).basic_auth(&creds.account_sid, Some(&creds.auth_token)).form(&[
            ("To", to),
            ("From", "+15005550006"),
            ("Body", "code 1234"),
        ]);
        assert_eq!(sim.send(request).await.status, 201, "a blackhole answers success");
    }
    assert_eq!(sim.delivered().len(), 2, "half of India's messages arrived");
    assert_eq!(
        sim.handle.state().messages(Some("+14155550100")).len(),
        2,
        "other countries are untouched"
    );
    let lost = sim.get(&format!("{}/_sim/lost", sim.handle.control_url())).await;
    assert_eq!(lost.json["twilio"], 2);
    assert_eq!(lost.json["2factor"], 0);
}
