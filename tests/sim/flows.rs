//! Provider-held codes (2Factor AUTOGEN, Twilio Verify, MSG91 autogen) verify once, and the
//! control API shows what was delivered.

use serde_json::json;
use smsgate::sim::SimCredentials;

use super::{is_sid, Sim, DIGITS, E164, KEY};

#[tokio::test]
async fn a_two_factor_autogen_code_verifies_once() {
    let sim = Sim::start().await;
    let session = sim.two_factor_autogen().await;
    let code = sim.handle.state().last_code(DIGITS).expect("a code was delivered");
    assert_eq!(code.len(), 6);
    let verify = |session: &str, otp: &str| sim.url("2factor", &format!("/API/V1/{KEY}/SMS/VERIFY/{session}/{otp}"));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let reply = sim.get(&verify(&session, wrong)).await;
    assert_eq!(reply.json, json!({"Status": "Error", "Details": "OTP Mismatch"}));
    let reply = sim.get(&verify(&session, &code)).await;
    assert_eq!(reply.json, json!({"Status": "Success", "Details": "OTP Matched"}));
    let reply = sim.get(&verify(&session, &code)).await;
    assert_eq!(reply.str("/Status"), "Error", "a matched code cannot match again");
    assert_eq!(sim.get(&verify("no-such-session", &code)).await.str("/Details"), "Invalid Session");
}

#[tokio::test]
async fn a_twilio_verification_is_approved_once() {
    let sim = Sim::start().await;
    let c = SimCredentials::default();
    let service = "VA00000000000000000000000000000000";
    let post = |path: &str, form: &[(&str, &str)]| {
        sim.http
            .post(sim.url("twilio", &format!("/v2/Services/{service}/{path}")))
            .basic_auth(&c.account_sid, Some(&c.auth_token))
            .form(form)
    };
    let reply = sim.send(post("Verifications", &[("To", E164), ("Channel", "sms")])).await;
    assert_eq!((reply.status, reply.str("/status")), (201, "pending"));
    let sid = reply.str("/sid").to_string();
    assert!(is_sid(&sid, "VE"), "{sid}");
    let code = sim.handle.state().last_code(E164).unwrap();

    let check = |code: &str| post("VerificationCheck", &[("VerificationSid", &sid), ("Code", code)]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let reply = sim.send(check(wrong)).await;
    assert_eq!(
        (reply.status, reply.str("/status"), &reply.json["valid"]),
        (200, "pending", &json!(false))
    );
    let reply = sim.send(check(&code)).await;
    assert_eq!(
        (reply.status, reply.str("/status"), &reply.json["valid"]),
        (200, "approved", &json!(true))
    );
    let reply = sim.send(check(&code)).await;
    assert_eq!((reply.status, &reply.json["code"]), (404, &json!(20404)));

    // A check by `To` finds the newest pending verification for that number.
    sim.send(post("Verifications", &[("To", E164), ("Channel", "sms")])).await;
    let code = sim.handle.state().last_code(E164).unwrap();
    let by_to = post("VerificationCheck", &[("To", E164), ("Code", &code)]);
    assert_eq!(sim.send(by_to).await.str("/status"), "approved");

    let reply = sim.send(post("Verifications", &[("To", "12ab"), ("Channel", "sms")])).await;
    assert_eq!((reply.status, &reply.json["code"]), (400, &json!(60200)));
}

#[tokio::test]
async fn an_msg91_autogen_code_verifies_once_by_mobile() {
    let sim = Sim::start().await;
    let url = sim.url("msg91", &format!("/api/v5/otp?template_id=T1&mobile={DIGITS}"));
    let reply = sim.send(sim.http.post(url).header("authkey", KEY).json(&json!({}))).await;
    assert_eq!(reply.str("/type"), "success");
    let code = sim.handle.state().last_code(DIGITS).unwrap();
    assert_eq!(code.len(), 6);
    let verify = |otp: &str| {
        let url = sim.url("msg91", &format!("/api/v5/otp/verify?mobile={DIGITS}&otp={otp}"));
        sim.http.get(url).header("authkey", KEY)
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let reply = sim.send(verify(wrong)).await;
    assert_eq!((reply.str("/type"), reply.str("/message")), ("error", "OTP not match"));
    let reply = sim.send(verify(&code)).await;
    assert_eq!((reply.str("/type"), reply.str("/message")), ("success", "OTP verified success"));
    let reply = sim.send(verify(&code)).await;
    assert_eq!(reply.str("/type"), "error", "a verified code cannot verify again");
}

#[tokio::test]
async fn the_control_api_lists_counts_and_clears_deliveries_on_every_port() {
    let sim = Sim::start().await;
    sim.two_factor_autogen().await;
    sim.send(sim.twilio_send("Your code is 123987")).await;
    for base in [sim.handle.control_url(), sim.handle.url("vonage")] {
        let reply = sim.get(&format!("{base}/_sim/messages?to={DIGITS}")).await;
        let list = reply.json.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["provider"], "2factor", "oldest first");
        assert_eq!(list[1]["code"], "123987");
        assert_eq!(list[1]["to"], E164);
        let stats = sim.get(&format!("{base}/_sim/stats")).await;
        assert_eq!((stats.json["2factor"].clone(), stats.json["twilio"].clone()), (json!(1), json!(1)));
        assert_eq!(stats.json["vonage"], 0, "control calls are not provider calls");
    }
    let other = sim
        .get(&format!("{}/_sim/messages?to=%2B15550001111", sim.handle.control_url()))
        .await;
    assert_eq!(other.json, json!([]));
    let cleared = sim
        .http
        .delete(format!("{}/_sim/messages", sim.handle.control_url()))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    assert!(sim.handle.state().messages(None).is_empty());
    sim.handle.stop().await;
}

#[tokio::test]
async fn a_base_port_lays_the_fakes_out_in_provider_order() {
    use rand::Rng;
    use smsgate::sim::{start, SimOptions, PROVIDERS};
    // A free block of eight ports is likely but not certain: try a few random bases.
    for _ in 0..10 {
        let base = rand::thread_rng().gen_range(20_000u16..60_000);
        let options = SimOptions {
            base_port: base,
            ..SimOptions::default()
        };
        let Ok(handle) = start(options).await else {
            continue;
        };
        for (offset, name) in (0u16..).zip(PROVIDERS) {
            assert_eq!(handle.url(name), format!("http://127.0.0.1:{}", base + offset));
        }
        assert_eq!(handle.control_url(), format!("http://127.0.0.1:{}", base + 7));
        handle.stop().await;
        return;
    }
    panic!("no free block of eight ports found");
}
