use super::*;
use crate::providers::testing::{self, body, CaptureServer, MALFORMED};

const ACME: &str = r#"
name = "acme"
kind = "http"
priority = 5
api_key_env = "ACME_KEY"
[providers.http]
method = "POST"
url = "BASE/v1/send?to={to}"
headers = { Authorization = "Bearer {secret}", X-Template = "{template}" }
form = { to = "{to}", text = "{text}" }
success_status = [200, 201, 202]
success_field = "status"
success_value = "ok"
reference_field = "id"
retry_after_statuses = [429]
rejected_statuses = [400, 422]
templates = true
"#;

fn spec_from(toml: &str) -> HttpSpec {
    testing::provider_config::<HttpConfig>(toml).http.expect("an http table")
}

#[test]
fn spec_round_trips_from_toml() {
    let spec = spec_from(ACME);
    assert_eq!(spec.method, "POST");
    assert_eq!(spec.headers["Authorization"], "Bearer {secret}");
    assert_eq!(spec.form.as_ref().unwrap()["text"], "{text}");
    assert_eq!(spec.json, None);
    assert_eq!(spec.success_status, vec![200, 201, 202]);
    assert_eq!(spec.success_value.as_deref(), Some("ok"));
    assert_eq!(spec.rejected_statuses, vec![400, 422]);
    assert!(spec.templates);
    let again: HttpSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn spec_defaults_and_unknown_keys() {
    let spec = spec_from("name = \"a\"\nkind = \"http\"\n[providers.http]\nurl = \"https://x.example\"");
    assert_eq!(spec.method, "POST");
    assert_eq!(spec.success_status, vec![200, 201, 202]);
    assert_eq!(spec.retry_after_statuses, vec![429]);
    assert!(spec.rejected_statuses.is_empty() && !spec.templates);
    let err = crate::config::Settings::from_toml(
        "[[providers]]\nname = \"a\"\nkind = \"http\"\n[providers.http]\nurl = \"https://x\"\nsucces_field = \"s\"",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("succes_field"), "{err}");
}

fn classify_spec() -> HttpSpec {
    spec_from(&ACME.replace("BASE", "https://sms.acme.example"))
}

fn class(spec: &HttpSpec, status: u16, text: &str) -> &'static str {
    match classify(spec, &body(status, text)) {
        Ok(_) => "accepted",
        Err(e) => e.class(),
    }
}

#[test]
fn classification_by_status_and_field() {
    let spec = classify_spec();
    let ok = r#"{"status":"ok","id":"m-1"}"#;
    assert_eq!(classify(&spec, &body(201, ok)), Ok(Some("m-1".into())));
    assert_eq!(class(&spec, 200, r#"{"status":"failed","id":"m"}"#), "unavailable");
    assert_eq!(class(&spec, 200, r#"{"id":"m"}"#), "unavailable");
    assert_eq!(class(&spec, 400, ok), "rejected");
    assert_eq!(class(&spec, 422, ""), "rejected");
    assert_eq!(class(&spec, 401, ""), "misconfigured");
    assert_eq!(class(&spec, 403, "<html>"), "misconfigured");
    assert_eq!(class(&spec, 429, ""), "throttled");
    for status in [404, 409, 500, 503] {
        assert_eq!(class(&spec, status, ok), "unavailable", "{status}");
    }
    for text in MALFORMED {
        assert_eq!(class(&spec, 200, text), "unavailable", "{text:?}");
    }
    let mut answer = body(429, "");
    answer.retry_after = Some(std::time::Duration::from_secs(4));
    assert_eq!(
        classify(&spec, &answer),
        Err(ProviderError::throttled(
            Some(429),
            Some(std::time::Duration::from_secs(4)),
            "HTTP 429"
        ))
    );
}

#[test]
fn fields_follow_dotted_paths_and_compare_as_text() {
    let mut spec = classify_spec();
    spec.success_field = Some("result.code".into());
    spec.success_value = Some("0".into());
    spec.reference_field = Some("result.ids.0".into());
    let ok = r#"{"result":{"code":0,"ids":[77,78]}}"#;
    assert_eq!(classify(&spec, &body(200, ok)), Ok(Some("77".into())));
    assert_eq!(class(&spec, 200, r#"{"result":{"code":1}}"#), "unavailable");
    spec.success_value = None;
    spec.success_field = Some("sent".into());
    assert_eq!(class(&spec, 200, r#"{"sent":true}"#), "accepted");
    assert_eq!(class(&spec, 200, r#"{"sent":false}"#), "unavailable");
    spec.success_field = None;
    assert_eq!(classify(&spec, &body(200, "queued")), Ok(None));
}

async fn sent(toml: &str, sms: OutboundSms) -> testing::Captured {
    let mut server = CaptureServer::start(200, r#"{"status":"ok","id":"m-7"}"#).await;
    let config = testing::provider_config(&toml.replace("BASE", &server.base_url));
    let acme = testing::build_with(&config, &[("ACME_KEY", "k&y")], HttpProvider::build).unwrap();
    let accepted = acme.send(&sms).await.unwrap();
    assert_eq!(accepted.reference.as_deref(), Some("m-7"));
    server.request().await
}

#[tokio::test]
async fn form_request_fills_url_headers_and_fields() {
    let req = sent(ACME, testing::otp("4321", "Code 4321 & more")).await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/send"));
    assert_eq!(req.raw_query.as_deref(), Some("to=%2B919876543210"));
    assert_eq!(req.query()["to"], "+919876543210");
    assert_eq!(req.header("authorization"), Some("Bearer k&y"));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = req.form();
    assert_eq!(form.len(), 2);
    assert_eq!(form["to"], "+919876543210");
    assert_eq!(form["text"], "Code 4321 & more");
}

#[tokio::test]
async fn json_request_escapes_values() {
    let toml = ACME.replace(
        r#"form = { to = "{to}", text = "{text}" }"#,
        r#"json = '{"to":"{to_digits}","msg":"{text}","t":"{template}","v":["{var1}","{var2}"]}'"#,
    );
    let req = sent(&toml, testing::template("welcome", &["Ann \"A\"", "x\ny"])).await;
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-template"), Some("welcome"),);
    assert_eq!(
        req.json(),
        serde_json::json!({"to": "919876543210", "msg": "", "t": "welcome", "v": ["Ann \"A\"", "x\ny"]})
    );
}

#[tokio::test]
async fn get_request_carries_everything_in_the_url() {
    let toml = "name = \"g\"\nkind = \"http\"\napi_key_env = \"ACME_KEY\"\n[providers.http]\nmethod = \"get\"\n\
                url = \"BASE/send/{to_digits}?key={secret}&msg={text}\"\nreference_field = \"id\"";
    let req = sent(toml, testing::text("a b/c")).await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/send/919876543210"));
    assert_eq!(req.raw_query.as_deref(), Some("key=k%26y&msg=a%20b%2Fc"));
    assert!(req.body.is_empty());
}

#[tokio::test]
async fn values_that_cannot_go_in_a_header_or_url_path_are_the_messages_fault_and_send_nothing() {
    let toml = ACME.replace(
        "url = \"BASE/v1/send?to={to}\"",
        "url = \"BASE/v1/{template}/send?to={to}&t={text}\"",
    );
    let mut server = CaptureServer::start(200, r#"{"status":"ok","id":"m-7"}"#).await;
    let config = testing::provider_config(&toml.replace("BASE", &server.base_url));
    let acme = testing::build_with(&config, &[("ACME_KEY", "k&y")], HttpProvider::build).unwrap();
    for name in ["tpl\r\nX-Injected: 1", "tpl\n", "tpl\0", "tpl\u{1}"] {
        let err = acme.send(&testing::template(name, &[])).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Rejected { code, details, .. } if code == "invalid_value" && details.contains("{template}")),
            "{name:?}: {err:?}"
        );
    }
    assert!(server.received().is_empty(), "nothing was sent");
    // A line break in the text goes percent-encoded into the query: that is the text's right.
    let mut server = CaptureServer::start(200, r#"{"status":"ok","id":"m-7"}"#).await;
    let config = testing::provider_config(&toml.replace("BASE", &server.base_url));
    let acme = testing::build_with(&config, &[("ACME_KEY", "k&y")], HttpProvider::build).unwrap();
    acme.send(&testing::text("line 1\nline 2")).await.unwrap();
    assert_eq!(server.request().await.query()["t"], "line 1\nline 2");
}

fn build_err(http: &str) -> BuildError {
    let config = testing::provider_config(&format!(
        "name = \"a\"\nkind = \"http\"\napi_key_env = \"K\"\n[providers.http]\n{http}"
    ));
    match testing::build_with(&config, &[("K", "v")], HttpProvider::build) {
        Err(e) => e,
        Ok(_) => panic!("expected a build error for {http}"),
    }
}

fn err_key(http: &str) -> String {
    match build_err(http) {
        BuildError::Invalid { key, .. } => key,
        other => panic!("{other}"),
    }
}

#[test]
fn build_refuses_bad_specs_naming_the_key() {
    let url = "url = \"https://x.example/s\"\n";
    assert_eq!(err_key(&format!("{url}method = \"PUT\"")), "http.method");
    assert_eq!(err_key("url = \"not a url {to}\""), "http.url");
    assert_eq!(err_key("url = \"ftp://x.example/{to}\""), "http.url");
    assert_eq!(err_key("url = \"https://x.example/{phone}\""), "http.url");
    assert_eq!(err_key(&format!("{url}headers = {{ X-K = \"{{key}}\" }}")), "http.headers.X-K");
    assert_eq!(
        err_key(&format!("{url}headers = {{ \"bad name\" = \"v\" }}")),
        "http.headers.bad name"
    );
    assert_eq!(err_key(&format!("{url}form = {{ to = \"{{mobile}}\" }}")), "http.form.to");
    assert_eq!(err_key(&format!("{url}json = '{{\"to\":{{to}}}}'")), "http.json");
    assert_eq!(err_key(&format!("{url}json = '{{}}'\nform = {{ a = \"b\" }}")), "http.json");
    assert_eq!(err_key(&format!("{url}method = \"GET\"\nform = {{ a = \"b\" }}")), "http.method");
    assert_eq!(err_key(&format!("{url}success_value = \"ok\"")), "http.success_value");
    assert_eq!(err_key(&format!("{url}success_status = []")), "http.success_status");
    assert_eq!(err_key(&format!("{url}rejected_statuses = [200]")), "http.rejected_statuses");
}

#[test]
fn build_needs_the_table_and_a_secret_only_when_used() {
    let config = testing::provider_config("name = \"a\"\nkind = \"http\"");
    let err = testing::build_with(&config, &[], HttpProvider::build).err().unwrap();
    assert!(matches!(err, BuildError::Invalid { key, .. } if key == "http"));
    let uses = "name = \"a\"\nkind = \"http\"\n[providers.http]\nurl = \"https://x.example/?k={secret}\"";
    let err = testing::build_with(&testing::provider_config(uses), &[], HttpProvider::build)
        .err()
        .unwrap();
    assert!(matches!(err, BuildError::Invalid { key, .. } if key == "api_key_env"));
    let unset = uses.replace("[providers", "api_key_env = \"K\"\n[providers");
    let err = testing::build_with(&testing::provider_config(&unset), &[], HttpProvider::build)
        .err()
        .unwrap();
    assert!(matches!(err, BuildError::MissingSecret { var, .. } if var == "K"));
    let plain = "name = \"a\"\nkind = \"http\"\n[providers.http]\nurl = \"https://x.example/{to}\"";
    let p = testing::build_with(&testing::provider_config(plain), &[], HttpProvider::build).unwrap();
    assert_eq!(p.capabilities().otp, OtpSupport::Local);
    assert!(p.capabilities().text && !p.capabilities().template);
}
