//! Each fake answers a request made exactly as the provider documents it with the provider's success shape,
//! wrong credentials with its auth error, and a bad number with its invalid-number error.

use serde_json::json;
use smsgate::sim::SimCredentials;

use super::{is_sid, is_uuid, Sim, DIGITS, E164, KEY};

fn creds() -> SimCredentials {
    SimCredentials::default()
}

#[tokio::test]
async fn two_factor_sends_autogen_custom_and_template_messages() {
    let sim = Sim::start().await;
    let session = sim.two_factor_autogen().await;
    assert!(is_uuid(&session));
    let custom = sim.url("2factor", &format!("/API/V1/{KEY}/SMS/{DIGITS}/482913/OTP1"));
    assert_eq!(sim.get(&custom).await.str("/Status"), "Success");
    let tsms = sim.url("2factor", &format!("/API/V1/{KEY}/ADDON_SERVICES/SEND/TSMS"));
    let form = [
        ("From", "SMSGTE"),
        ("To", DIGITS),
        ("TemplateName", "Welcome"),
        ("VAR1", "Asha"),
        ("VAR2", "7731"),
    ];
    let reply = sim.send(sim.http.post(tsms).form(&form)).await;
    assert_eq!((reply.status, reply.str("/Status")), (200, "Success"));

    let sent = sim.delivered();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].id, session);
    assert_eq!(sent[0].to, E164);
    assert_eq!(sent[0].template.as_deref(), Some("OTP1"));
    assert_eq!(sent[0].code.as_ref().map(String::len), Some(6));
    assert_eq!(sent[1].code.as_deref(), Some("482913"));
    assert_eq!(sent[2].template.as_deref(), Some("Welcome"));
    assert_eq!(sent[2].vars, ["Asha", "7731"]);
    assert_eq!(sent[2].code.as_deref(), Some("7731"));
}

#[tokio::test]
async fn two_factor_refuses_a_wrong_key_and_a_bad_number() {
    let sim = Sim::start().await;
    let wrong_key = sim.url("2factor", &format!("/API/V1/nope/SMS/{DIGITS}/AUTOGEN/OTP1"));
    let reply = sim.get(&wrong_key).await;
    assert_eq!(reply.json, json!({"Status": "Error", "Details": "Invalid API Key"}));
    let bad_number = sim.url("2factor", &format!("/API/V1/{KEY}/SMS/12ab/AUTOGEN/OTP1"));
    assert_eq!(sim.get(&bad_number).await.str("/Details"), "Invalid Phone Number");
    assert!(sim.delivered().is_empty());
    assert_eq!(sim.handle.state().calls("2factor"), 2);
}

#[tokio::test]
async fn twilio_queues_a_message_and_answers_errors_with_its_codes() {
    let sim = Sim::start().await;
    let reply = sim.send(sim.twilio_send("Your code is 551234")).await;
    assert_eq!(reply.status, 201);
    assert!(is_sid(reply.str("/sid"), "SM"), "{}", reply.json);
    assert_eq!(reply.str("/status"), "queued");
    assert_eq!(reply.str("/to"), E164);
    assert_eq!(reply.str("/body"), "Your code is 551234");
    assert_eq!(reply.str("/account_sid"), creds().account_sid);
    assert!(reply.json["date_created"].is_string());
    assert_eq!(sim.handle.state().last_code(DIGITS).as_deref(), Some("551234"));

    let reply = sim.send(sim.twilio_send_with("wrong", "x")).await;
    assert_eq!((reply.status, &reply.json["code"]), (401, &json!(20003)));
    assert_eq!(reply.json["status"], 401);
    assert!(reply.json["more_info"].as_str().unwrap().ends_with("20003"));

    let url = sim.url("twilio", &format!("/2010-04-01/Accounts/{}/Messages.json", creds().account_sid));
    let bad = sim.http.post(url).basic_auth(creds().account_sid, Some(creds().auth_token)).form(&[
        ("To", "+12"),
        ("From", "+15005550006"),
        ("Body", "hi"),
    ]);
    let reply = sim.send(bad).await;
    assert_eq!((reply.status, &reply.json["code"]), (400, &json!(21211)));
    assert_eq!(sim.delivered().len(), 1);
}

#[tokio::test]
async fn vonage_answers_200_with_one_entry_per_part() {
    let sim = Sim::start().await;
    let url = sim.url("vonage", "/sms/json");
    let send = |text: &str, secret: &str, to: &str| {
        let form = [
            ("api_key", KEY),
            ("api_secret", secret),
            ("from", "smsgate"),
            ("to", to),
            ("text", text),
        ];
        sim.http.post(&url).form(&form)
    };
    let reply = sim.send(send("Your code is 908172", "sim-secret", DIGITS)).await;
    assert_eq!((reply.status, reply.str("/message-count")), (200, "1"));
    assert_eq!(reply.str("/messages/0/status"), "0");
    assert_eq!(reply.str("/messages/0/to"), DIGITS);
    assert!(is_uuid(reply.str("/messages/0/message-id")));

    let long = "a".repeat(400);
    let reply = sim.send(send(&long, "sim-secret", DIGITS)).await;
    assert_eq!(reply.str("/message-count"), "3");
    assert_eq!(reply.json["messages"].as_array().unwrap().len(), 3);
    assert_eq!(sim.delivered().len(), 2, "a long text is one delivered message");

    let reply = sim.send(send("hi", "wrong", DIGITS)).await;
    assert_eq!((reply.status, reply.str("/messages/0/status")), (200, "4"));
    assert_eq!(reply.str("/messages/0/error-text"), "Bad Credentials");
    let reply = sim.send(send("hi", "sim-secret", "12ab")).await;
    assert_eq!(reply.str("/messages/0/status"), "3");
}

#[tokio::test]
async fn msg91_sends_otps_and_flows_and_refuses_a_wrong_authkey() {
    let sim = Sim::start().await;
    let otp = |query: &str, key: &str| {
        let url = sim.url("msg91", &format!("/api/v5/otp?{query}"));
        sim.http.post(url).header("authkey", key).json(&json!({}))
    };
    let reply = sim.send(otp(&format!("template_id=T1&mobile={DIGITS}&otp=4821"), KEY)).await;
    assert_eq!(reply.str("/type"), "success");
    assert!(!reply.str("/request_id").is_empty());
    assert_eq!(sim.handle.state().last_code(E164).as_deref(), Some("4821"));

    let flow = json!({"template_id": "welcome", "short_url": "0",
        "recipients": [{"mobiles": DIGITS, "var1": "Asha", "var2": "771234"}]});
    let url = sim.url("msg91", "/api/v5/flow/");
    let reply = sim.send(sim.http.post(url).header("authkey", KEY).json(&flow)).await;
    assert_eq!(reply.str("/type"), "success");
    let sent = sim.delivered();
    assert_eq!(sent[1].template.as_deref(), Some("welcome"));
    assert_eq!(sent[1].vars, ["Asha", "771234"]);
    assert_eq!(sent[1].id, reply.str("/message"));

    let reply = sim.send(otp(&format!("template_id=T1&mobile={DIGITS}"), "wrong")).await;
    assert_eq!((reply.str("/type"), reply.str("/message")), ("error", "AuthenticationFailure"));
    let reply = sim.send(otp("template_id=T1&mobile=98ab", KEY)).await;
    assert_eq!((reply.str("/type"), reply.str("/message")), ("error", "Mobile no. invalid"));
}

#[tokio::test]
async fn textlocal_sends_and_reports_failures_with_its_codes() {
    let sim = Sim::start().await;
    let url = sim.url("textlocal", "/send/");
    let send = |key: &str, numbers: &str| {
        let form = [
            ("apikey", key),
            ("numbers", numbers),
            ("message", "Code 3141 for smsgate"),
            ("sender", "TXTLCL"),
        ];
        sim.http.post(&url).form(&form)
    };
    let reply = sim.send(send(KEY, DIGITS)).await;
    assert_eq!(reply.str("/status"), "success");
    assert_eq!(reply.json["messages"][0]["recipient"], json!(919876543210u64));
    assert!(reply.json["batch_id"].is_u64());
    assert_eq!(sim.delivered()[0].id, reply.str("/messages/0/id"));
    assert_eq!(sim.delivered()[0].code.as_deref(), Some("3141"));

    let reply = sim.send(send("wrong", DIGITS)).await;
    assert_eq!((reply.status, reply.str("/status")), (200, "failure"));
    assert_eq!(reply.json["errors"][0]["code"], 3);
    let reply = sim.send(send(KEY, "98ab")).await;
    assert_eq!(reply.json["errors"][0]["code"], 32);
}

#[tokio::test]
async fn plivo_queues_with_202_and_refuses_bad_auth_and_destinations() {
    let sim = Sim::start().await;
    let c = creds();
    let url = sim.url("plivo", &format!("/v1/Account/{}/Message/", c.plivo_auth_id));
    let send = |token: &str, dst: &str| {
        let body = json!({"src": "+14155550100", "dst": dst, "text": "Your code is 271828"});
        sim.http.post(&url).basic_auth(&c.plivo_auth_id, Some(token)).json(&body)
    };
    let reply = sim.send(send(&c.auth_token, DIGITS)).await;
    assert_eq!((reply.status, reply.str("/message")), (202, "message(s) queued"));
    assert!(is_uuid(reply.str("/message_uuid/0")));
    assert!(!reply.str("/api_id").is_empty());
    assert_eq!(sim.delivered()[0].code.as_deref(), Some("271828"));

    let reply = sim.send(send("wrong", DIGITS)).await;
    assert_eq!(reply.status, 401);
    assert!(reply.json["error"].is_string());
    let reply = sim.send(send(&c.auth_token, "12")).await;
    assert_eq!(reply.status, 400);
    assert!(reply.str("/error").contains("destination"));
}

#[tokio::test]
async fn fast2sms_serves_its_three_routes_with_national_numbers() {
    let sim = Sim::start().await;
    let url = sim.url("fast2sms", "/dev/bulkV2");
    let send = |key: &str, body: serde_json::Value| sim.http.post(&url).header("authorization", key).json(&body);
    let national = &DIGITS[2..];
    let bodies = [
        json!({"route": "otp", "variables_values": "6021", "numbers": national}),
        json!({"route": "dlt", "sender_id": "SMSGTE", "message": "1207", "variables_values": "Asha|8812", "numbers": national}),
        json!({"route": "q", "message": "Hello there", "numbers": national}),
    ];
    for body in bodies {
        let reply = sim.send(send(KEY, body)).await;
        assert_eq!(reply.json["return"], true, "{}", reply.json);
        assert_eq!(reply.json["message"][0], "SMS sent successfully.");
    }
    let sent = sim.delivered();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].code.as_deref(), Some("6021"));
    assert_eq!(
        (sent[1].template.as_deref(), sent[1].vars.as_slice()),
        (Some("1207"), &["Asha".to_string(), "8812".to_string()][..])
    );
    assert_eq!(sent[2].text.as_deref(), Some("Hello there"));

    let reply = sim
        .send(send("wrong", json!({"route": "q", "message": "x", "numbers": national})))
        .await;
    assert_eq!(
        (reply.json["return"].clone(), reply.json["status_code"].clone()),
        (json!(false), json!(412))
    );
    let reply = sim.send(send(KEY, json!({"route": "q", "message": "x", "numbers": "12345"}))).await;
    assert_eq!(
        (reply.json["return"].clone(), reply.json["status_code"].clone()),
        (json!(false), json!(406))
    );
}

#[tokio::test]
async fn a_wrong_path_gets_the_providers_404_and_still_counts() {
    let sim = Sim::start().await;
    let reply = sim.get(&sim.url("twilio", "/2010-04-01/Nowhere.json")).await;
    assert_eq!((reply.status, &reply.json["code"]), (404, &json!(20404)));
    let reply = sim.get(&sim.url("vonage", "/sms/json")).await;
    assert_eq!(reply.status, 404, "GET is not the send method");
    assert_eq!(reply.str("/messages/0/status"), "5");
    assert_eq!(sim.handle.state().calls("twilio"), 1);
    assert_eq!(sim.handle.state().calls("vonage"), 1);
}
