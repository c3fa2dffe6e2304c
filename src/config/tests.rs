// `figment::Jail` closures must return `figment::Error`, which is large; it is the test API.
#![allow(clippy::result_large_err)]

use super::*;

#[test]
fn unknown_key_is_an_error_naming_the_key() {
    let err = Settings::from_toml("[otp]\nlenght = 6\n").unwrap_err().to_string();
    assert!(err.contains("lenght"), "{err}");
}

#[test]
fn out_of_range_code_length_names_the_key() {
    let err = Settings::from_toml("[otp]\nlength = 3\n").unwrap_err().to_string();
    assert!(err.contains("otp.length"), "{err}");
}

#[test]
fn seed_variables_configure_the_two_factor_entry() {
    let mut s = Settings::from_toml("[[providers]]\nname = \"2factor\"\nkind = \"two_factor\"\n").unwrap();
    s.apply_seed_env(&|k| match k {
        "SMS_SENDER_ID" => Some("ABCDEF".into()),
        "SMS_MODE" => Some("template".into()),
        _ => None,
    });
    let ProviderConfig::TwoFactor(p) = &s.providers[0] else {
        panic!("a two_factor entry")
    };
    assert_eq!(p.sender_id.as_deref(), Some("ABCDEF"));
    assert_eq!(p.otp_mode.as_deref(), Some("local"));
}

fn provider_error(entry: &str) -> String {
    Settings::from_toml(&format!("[[providers]]\n{entry}\n")).unwrap_err().to_string()
}

#[test]
fn a_key_of_another_kind_is_refused_naming_it() {
    let err = provider_error("name = \"v\"\nkind = \"vonage\"\nfrom = \"x\"\nverify_service_sid = \"VA0\"");
    assert!(err.contains("unknown field: found `verify_service_sid`"), "{err}");
    assert!(err.contains("providers.0"), "names the entry: {err}");
}

#[test]
fn an_unknown_kind_is_refused_naming_it_and_the_known_ones() {
    let err = provider_error("name = \"x\"\nkind = \"foo\"");
    assert!(err.contains("unknown variant: found `foo`"), "{err}");
    assert!(err.contains("providers.0.kind"), "names the key: {err}");
    assert!(err.contains("two_factor") && err.contains("console"), "lists the kinds: {err}");
}

#[test]
fn an_entry_without_a_kind_is_refused_naming_the_key() {
    let err = provider_error("name = \"x\"");
    assert!(err.contains("kind"), "{err}");
}

#[test]
fn every_entry_of_the_shipped_providers_toml_parses() {
    let settings = Settings::from_toml(include_str!("../../providers.toml")).unwrap();
    let kinds: Vec<&str> = settings.providers.iter().map(ProviderConfig::kind).collect();
    assert_eq!(kinds, ["two_factor", "twilio"]);
}

#[test]
fn every_kind_parses_from_its_tag_and_reports_it() {
    for kind in [
        "two_factor",
        "twilio",
        "vonage",
        "msg91",
        "textlocal",
        "plivo",
        "fast2sms",
        "http",
        "console",
    ] {
        let s = Settings::from_toml(&format!("[[providers]]\nname = \"p\"\nkind = \"{kind}\"\n")).unwrap();
        assert_eq!(s.providers[0].kind(), kind);
        let json = serde_json::to_value(&s.providers[0]).unwrap();
        assert_eq!(json["kind"], kind, "kind() agrees with the serde tag");
    }
}

#[test]
fn two_factor_is_capped_at_its_documented_200_per_second_unless_configured() {
    let s = Settings::from_toml(
        "[[providers]]\nname = \"a\"\nkind = \"two_factor\"\n\
         [[providers]]\nname = \"b\"\nkind = \"two_factor\"\nmax_per_second = 50\n\
         [[providers]]\nname = \"c\"\nkind = \"twilio\"\n",
    )
    .unwrap();
    let caps: Vec<Option<u32>> = s.providers.iter().map(ProviderConfig::max_per_second).collect();
    assert_eq!(caps, [Some(200), Some(50), None]);
}

#[test]
fn each_kind_names_its_secret_variables_configured_or_default() {
    let s = Settings::from_toml(
        "[[providers]]\nname = \"t\"\nkind = \"twilio\"\nauth_token_env = \"MY_TOKEN\"\n\
         [[providers]]\nname = \"c\"\nkind = \"console\"\n",
    )
    .unwrap();
    let vars: Vec<(&str, &str)> = s.providers[0].secrets().iter().map(|s| (s.key, s.var)).collect();
    assert_eq!(vars, [("account_sid_env", "TWILIO_ACCOUNT_SID"), ("auth_token_env", "MY_TOKEN")]);
    assert!(s.providers[1].secrets().is_empty());
}

#[test]
fn caller_networks_must_be_addresses_or_cidrs() {
    for good in ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::1"] {
        let toml = format!("[server]\ntrusted_proxies = [\"{good}\"]\n");
        assert!(Settings::from_toml(&toml).is_ok(), "{good}");
    }
    for bad in ["10.0.0.0/33", "::/129", "10.0.0", "example.com", "10.0.0.0/x"] {
        let toml = format!("[server]\nallowed_callers = [\"{bad}\"]\n");
        let err = Settings::from_toml(&toml).unwrap_err().to_string();
        assert!(err.contains("server.allowed_callers") && err.contains(bad), "{err}");
    }
}

#[test]
fn roles_are_typed_and_an_unknown_role_is_refused_naming_it() {
    let client = |roles: &str| {
        format!(
            "[[clients]]\nname = \"app\"\ntoken_sha256 = \"{}\"\nroles = {roles}\n",
            "a".repeat(64)
        )
    };
    let s = Settings::from_toml(&client("[\"send\", \"super_admin\"]")).unwrap();
    assert_eq!(s.clients[0].roles, [Role::Send, Role::SuperAdmin]);
    let err = Settings::from_toml(&client("[\"root\"]")).unwrap_err().to_string();
    assert!(err.contains("found `root`") && err.contains("clients.0.roles"), "{err}");
    let err = Settings::from_toml(&client("[]")).unwrap_err().to_string();
    assert!(err.contains("clients[0].roles"), "{err}");
}

#[test]
fn a_console_entry_is_refused_when_a_database_is_configured() {
    let toml = "database_url = \"postgres://localhost/smsgate\"\n\
                [[providers]]\nname = \"2factor\"\nkind = \"two_factor\"\n\
                [[providers]]\nname = \"console\"\nkind = \"console\"\n";
    let err = Settings::from_toml(toml).unwrap_err().to_string();
    assert!(err.contains("providers[1].kind"), "names the key: {err}");
    assert!(err.contains("log") && err.contains("database_url"), "says why: {err}");
    let without_db = toml.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert!(Settings::from_toml(&without_db).is_ok(), "a development gateway may use it");
}

#[test]
fn load_layers_the_file_then_smsgate_variables_with_double_underscore_nesting() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            DEFAULT_FILE,
            "[server]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = 1000\n[otp]\nlength = 6\n",
        )?;
        jail.set_env("SMSGATE_SERVER__LISTEN", "127.0.0.1:2");
        jail.set_env("SMSGATE_OTP__LENGTH", "8");
        jail.set_env("DATABASE_URL", "postgres://localhost/smsgate");
        let (settings, source) = Settings::load(None).map_err(|e| e.to_string())?;
        assert_eq!(source, Source::File(DEFAULT_FILE.into()));
        assert_eq!(settings.server.listen, "127.0.0.1:2", "the environment beats the file");
        assert_eq!(settings.server.max_body_bytes, 1000, "the file beats the defaults");
        assert_eq!(settings.otp.length, 8);
        assert!(settings.database_url.is_some());
        Ok(())
    });
}

#[test]
fn load_without_a_default_file_runs_on_the_defaults_and_says_which_file_it_looked_for() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("SMSGATE_SERVER__LISTEN", "127.0.0.1:0");
        let (settings, source) = Settings::load(None).map_err(|e| e.to_string())?;
        assert_eq!(
            source,
            Source::Defaults {
                looked_for: DEFAULT_FILE.into()
            }
        );
        assert_eq!(settings.server.listen, "127.0.0.1:0");
        assert!(settings.providers.is_empty() && settings.clients.is_empty());
        Ok(())
    });
}

#[test]
fn load_of_a_named_file_that_does_not_exist_is_an_error_naming_it() {
    figment::Jail::expect_with(|_| {
        let err = Settings::load(Some(Path::new("elsewhere.toml"))).unwrap_err().to_string();
        assert!(err.contains("elsewhere.toml") && err.contains("no such file"), "{err}");
        Ok(())
    });
}

#[test]
fn load_names_the_key_of_a_bad_environment_value() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("SMSGATE_OTP__LENGTH", "many");
        let err = Settings::load(None).unwrap_err().to_string();
        assert!(err.to_lowercase().contains("otp.length") && err.contains("SMSGATE_"), "{err}");
        Ok(())
    });
}

#[test]
fn the_shipped_hook_snippets_parse() {
    for (file, text) in [
        ("contrib/kratos/smsgate.toml", include_str!("../../contrib/kratos/smsgate.toml")),
        ("contrib/keycloak/smsgate.toml", include_str!("../../contrib/keycloak/smsgate.toml")),
    ] {
        Settings::from_toml(text).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let s = Settings::from_toml("[hooks.supabase]\nsecrets = [\"v1,whsec_abcd\"]\nsecrets_env = \"X\"\n").unwrap();
    assert_eq!(s.hooks.supabase.secrets.len(), 1);
    assert_eq!(s.hooks.supabase.tolerance_seconds, 300);
    assert_eq!(s.hooks.supabase.deadline_ms, 3_000);
}

#[test]
fn hook_settings_that_cannot_work_name_their_key() {
    let err = |toml: &str| Settings::from_toml(toml).unwrap_err().to_string();
    assert!(err("[hooks.supabase]\ndeadline_ms = 6000\n").contains("hooks.supabase.deadline_ms"));
    assert!(err("[hooks.kratos]\nusername = \"kratos\"\n").contains("hooks.kratos"));
    assert!(err("[hooks.keycloak]\ntoken_header = \"X-Api-Key\"\n").contains("hooks.keycloak.token_header"));
    assert!(err("[hooks.kratos]\npasword = \"x\"\n").contains("pasword"));
}

/// What Kubernetes puts into every pod for a Service named `smsgate` with a port named `http`.
const SERVICE_LINKS: [(&str, &str); 8] = [
    ("SMSGATE_SERVICE_HOST", "10.0.0.1"),
    ("SMSGATE_SERVICE_PORT", "8080"),
    ("SMSGATE_SERVICE_PORT_HTTP", "8080"),
    ("SMSGATE_PORT", "tcp://10.0.0.1:8080"),
    ("SMSGATE_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
    ("SMSGATE_PORT_8080_TCP_ADDR", "10.0.0.1"),
    ("SMSGATE_PORT_8080_TCP_PORT", "8080"),
    ("SMSGATE_PORT_8080_TCP_PROTO", "tcp"),
];

#[test]
fn load_skips_the_variables_kubernetes_makes_for_a_service_named_smsgate() {
    figment::Jail::expect_with(|jail| {
        for (name, value) in SERVICE_LINKS {
            jail.set_env(name, value);
        }
        jail.set_env("SMSGATE_OTP__LENGTH", "8");
        let (settings, _) = Settings::load(None).map_err(|e| e.to_string())?;
        assert_eq!(settings.otp.length, 8, "our own variables still apply");
        Ok(())
    });
}

#[test]
fn load_still_names_a_mistyped_smsgate_variable_among_the_service_links() {
    for (name, value, key) in [
        ("SMSGATE_OTP__TTL_SECOND", "5", "ttl_second"),
        ("SMSGATE_FOO", "1", "foo"),
        ("SMSGATE_PORT", "8080", "port"),
        ("SMSGATE_SERVER_PORT", "8080", "server_port"),
    ] {
        figment::Jail::expect_with(|jail| {
            for (name, value) in SERVICE_LINKS.iter().filter(|(n, _)| *n != name) {
                jail.set_env(name, value);
            }
            jail.set_env(name, value);
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{name}: {err}");
            Ok(())
        });
    }
}

#[test]
fn a_clients_phone_must_be_e164_and_is_kept() {
    let client = |phone: &str| {
        format!(
            "[[clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nroles = [\"admin\"]\nphone = \"{phone}\"\n",
            "a".repeat(64)
        )
    };
    let s = Settings::from_toml(&client("+919876543210")).unwrap();
    assert_eq!(s.clients[0].phone.as_deref(), Some("+919876543210"));
    for bad in ["9876543210", "+91 98765 43210", "+12", "+91987654321098765"] {
        let err = Settings::from_toml(&client(bad)).unwrap_err().to_string();
        assert!(err.contains("clients[0].phone"), "{bad}: {err}");
    }
}

#[test]
fn quiet_hours_take_a_zone_or_an_offset_and_name_what_is_wrong() {
    let rule = |key: &str, body: &str| format!("[campaigns.quiet_hours.{key}]\nstart = \"21:00\"\nend = \"08:00\"\n{body}\n");
    let ok = Settings::from_toml(&rule("1808", "time_zone = \"Pacific/Honolulu\"")).unwrap();
    assert_eq!(ok.campaigns.quiet_hours["1808"].time_zone.as_deref(), Some("Pacific/Honolulu"));
    assert!(Settings::from_toml(&rule("91", "utc_offset_minutes = 330")).is_ok());
    let cases = [
        (
            rule("1", "time_zone = \"America/Gotham\""),
            "campaigns.quiet_hours.1.time_zone",
            "America/Gotham",
        ),
        (
            rule("1", "time_zone = \"UTC\"\nutc_offset_minutes = 0"),
            "campaigns.quiet_hours.1.time_zone",
            "not both",
        ),
        (rule("1", ""), "campaigns.quiet_hours.1.time_zone", "utc_offset_minutes"),
        (
            rule("1", "utc_offset_minutes = 900"),
            "campaigns.quiet_hours.1.utc_offset_minutes",
            "±840",
        ),
        (rule("US", "time_zone = \"UTC\""), "campaigns.quiet_hours.US", "number prefix"),
    ];
    for (toml, key, reason) in cases {
        let err = Settings::from_toml(&toml).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(reason), "{toml}: {err}");
    }
}
