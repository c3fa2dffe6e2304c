//! Property tests: phone parsing on arbitrary text, and arbitrary JSON bodies on every send and
//! verify route of a running application (memory store, console provider).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use smsgate::phone::Phone;

const TOKEN: &str = "props-send-token";

fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

fn raw_phone() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[+0-9 ().-]{0,24}",
        "\\+?(00)?[0-9]{6,17}",
        "[ \t]*\\+[1-9][0-9]{7,14}[ \t]*",
        "[0-9٠-٩０-９+]{8,14}",
    ]
}

proptest! {
    #![proptest_config(Config { cases: 2048, failure_persistence: None, ..Config::default() })]

    #[test]
    fn phone_parse_accepts_only_e164_and_round_trips(raw in raw_phone(), cc in prop::sample::select(vec!["91", "1", "44", "971"])) {
        if let Ok(p) = Phone::parse(&raw, cc) {
            prop_assert!(is_e164(p.e164()), "{raw:?} -> {}", p.e164());
            prop_assert_eq!(format!("+{}{}", p.country_code(), p.national()), p.e164());
            prop_assert!(!p.national().is_empty());
            prop_assert_eq!(p.masked().len(), p.e164().len());
            // Its own output parses back to itself, whatever the default country.
            prop_assert_eq!(Phone::parse(p.e164(), cc), Ok(p.clone()));
            prop_assert_eq!(Phone::parse(p.e164(), "44"), Ok(p.clone()));
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,12}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn s(pattern: &'static str) -> BoxedStrategy<Value> {
    pattern.prop_map(Value::String).boxed()
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(values).prop_map(Value::from).boxed()
}

/// A value that a route would accept for `key`.
fn good_value(key: &str) -> BoxedStrategy<Value> {
    match key {
        "phone" | "phone_number" | "mobile" | "to" => {
            prop_oneof![s("\\+91[6-9][0-9]{9}"), s("[6-9][0-9]{9}"), s("\\+1415555[0-9]{4}")].boxed()
        }
        "user_id" => s("[a-z0-9]{1,12}"),
        "name" | "text" => s(".{1,60}"),
        "purpose" => one_of(&["login", "step_up", "phone_change", "other"]),
        "provider" | "provider_hint" => one_of(&["console", "2factor", "twilio"]),
        "client_ip" => one_of(&["127.0.0.1", "203.0.113.9", "::1", "not-an-ip"]),
        "session_id" => any::<u128>()
            .prop_map(|n| Value::from(uuid::Uuid::from_u128(n).to_string()))
            .boxed(),
        "otp" | "code" => s("[0-9]{4,10}"),
        "template" | "template_name" => s("[A-Za-z0-9_]{1,16}"),
        "vars" => prop::collection::vec(".{0,20}", 0..4).prop_map(Value::from).boxed(),
        _ => json_value().boxed(),
    }
}

/// Bodies for a route family: each known key present or not, mostly with a value the route
/// accepts, sometimes with any JSON; now and then an unknown key; sometimes any JSON at all.
fn body(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = keys
        .iter()
        .map(|k| {
            let value = prop_oneof![12 => good_value(k), 1 => json_value()];
            prop::option::weighted(0.85, value.prop_map(move |v| (k.to_string(), v))).boxed()
        })
        .collect();
    let extra = prop::option::weighted(0.05, (".{0,12}", json_value()));
    let object =
        (fields, extra).prop_map(|(fields, extra)| Value::Object(fields.into_iter().flatten().chain(extra).collect::<Map<_, _>>()));
    prop_oneof![12 => object, 1 => json_value()].boxed()
}

const OTP_SEND: &[&str] = &["phone", "user_id", "name", "purpose", "provider", "client_ip"];
const TEXT: &[&str] = &["to", "text", "user_id", "client_ip"];
const TEMPLATE: &[&str] = &["to", "template", "vars", "user_id", "client_ip"];
const VERIFY: &[&str] = &["session_id", "otp"];

fn app_config() -> String {
    format!(
        r#"
[limits]
per_phone_per_minute = 100000
per_phone_per_day = 100000
per_ip_per_minute = 100000
per_user_per_day = 100000
per_prefix_per_minute = 100000
per_client_per_minute = 100000
resend_cooldown_seconds = 0

[[clients]]
name = "props"
token_sha256 = "{}"
roles = ["send"]

[[providers]]
name = "console"
kind = "console"
"#,
        smsgate::api::sha256_hex(TOKEN)
    )
}

type Family = (&'static [&'static str], &'static [&'static str]);

/// Starts the application once, then posts each generated body to every route of its family
/// (body keys, routes).
fn fuzz_routes(families: &[Family]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = rt.block_on(async {
        let mut settings = smsgate::config::Settings::from_toml(&app_config()).expect("valid config");
        settings.server.listen = "127.0.0.1:0".into();
        let app = smsgate::app::Application::build_with(settings, std::sync::Arc::new(|_: &str| None))
            .await
            .expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        base
    });
    let http = reqwest::Client::new();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::strategy::Union::new(families.iter().map(|&(keys, routes)| body(keys).prop_map(move |b| (routes, b))));
    let result = runner.run(&strategy, |(routes, body)| {
        for route in routes {
            let (status, answer) = rt.block_on(async {
                let res = http
                    .post(format!("{base}{route}"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("the app answers");
                let status = res.status().as_u16();
                let text = res.text().await.unwrap_or_default();
                (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
            });
            check(route, &body, status, &answer)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// 2xx, or a client error with `{error, message}`. Besides 400/413/422, a well-formed verify of
/// a session that does not exist is 404 `session_not_found`; nothing else is allowed.
fn check(route: &str, body: &Value, status: u16, answer: &Value) -> Result<(), TestCaseError> {
    let ctx = format!("{route} {body} -> {status} {answer}");
    if status == 200 || status == 202 {
        return Ok(());
    }
    prop_assert!(answer["error"].is_string() && answer["message"].is_string(), "error shape: {ctx}");
    let allowed = matches!(status, 400 | 413 | 422) || (status == 404 && answer["error"] == "session_not_found");
    prop_assert!(allowed, "status: {ctx}");
    Ok(())
}

#[test]
fn arbitrary_json_on_send_routes_never_gets_a_server_error() {
    fuzz_routes(&[
        (OTP_SEND, &["/v1/otp/send", "/api/sms/sendOtp", "/otp/send"]),
        (TEXT, &["/v1/sms/send", "/sms/send-transactional"]),
        (TEMPLATE, &["/v1/sms/template", "/api/sms/sendTemplate"]),
    ]);
}

#[test]
fn arbitrary_json_on_verify_routes_never_gets_a_server_error() {
    fuzz_routes(&[(VERIFY, &["/v1/otp/verify", "/api/sms/verifyOtp", "/otp/verify"])]);
}
