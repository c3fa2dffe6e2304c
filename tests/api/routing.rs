//! Routing through the real app and the simulator: per-country order, capability filtering,
//! `GET /v1/routing/explain`, failover drills, every provider on its own, and `examples/sim.toml`.

mod capabilities;
mod countries;
mod drills;
mod example;
mod explain;
mod providers;

use serde_json::json;
use smsgate::sim::SimHandle;

use crate::helpers::{Reply, TestApp};

pub const US_PHONE: &str = "+14155552671";

pub use crate::helpers::base_config;

/// A `[[providers]]` entry named after its simulator fake, with the keys its kind requires
/// (credentials come from the adapters' default secret variables, see `sim_secrets`) and `extra`.
pub fn provider(sim: &SimHandle, name: &str, priority: i32, extra: &str) -> String {
    let (kind, keys) = match name {
        "2factor" => ("two_factor", "sender_id = \"TFCTOR\"\ntemplate = \"SMSTemplate1\""),
        "twilio" => ("twilio", "from = \"+15005550006\""),
        "vonage" => ("vonage", "from = \"SMSGATE\""),
        "msg91" => ("msg91", "template_id = \"sim-otp-template\""),
        "textlocal" => ("textlocal", "sender_id = \"TXTLCL\""),
        "plivo" => ("plivo", "from = \"+14155550100\""),
        "fast2sms" => ("fast2sms", "sender_id = \"FSTSMS\""),
        other => panic!("no simulator fake named {other}"),
    };
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\npriority = {priority}\nbase_url = \"{url}\"\n{keys}\n{extra}\n",
        url = sim.url(name)
    )
}

impl TestApp {
    /// Sends an OTP to `phone` with the send token.
    pub async fn send_otp_to(&self, phone: &str) -> Reply {
        self.post("/v1/otp/send", json!({ "phone": phone })).await
    }

    /// The provider of the newest message the simulator delivered to `phone`.
    pub fn delivered_by(&self, phone: &str) -> Option<String> {
        self.sim.state().messages(Some(phone)).last().map(|m| m.provider.clone())
    }

    /// Sends an OTP to `phone`, checks `provider` delivered it, and verifies the delivered code.
    pub async fn otp_round_trip(&self, phone: &str, provider: &str) {
        let sent = self.send_otp_to(phone).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        assert_eq!(self.delivered_by(phone).as_deref(), Some(provider), "{}", sent.body);
        let code = self.sim.state().last_code(phone).expect("a code was delivered");
        let sid = sent.body["session_id"].as_str().expect("a session id");
        let verified = self.verify(sid, &code).await;
        assert_eq!(
            (verified.status, &verified.body["verified"]),
            (200, &json!(true)),
            "{}",
            verified.body
        );
    }

    pub async fn explain(&self, query: &str, token: &str) -> Reply {
        self.get(&format!("/v1/routing/explain?{query}"), Some(token)).await
    }
}
