//! `smsgate sim`: run the fakes until Ctrl-C and print how to point smsgate at them.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::faults::Fault;
use super::names::{canonical, PROVIDERS};
use super::{start, SimCredentials, SimHandle, SimOptions};
use crate::config::{ProviderConfig, Settings};

/// Flags of `smsgate sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// First port: fakes on PORT..PORT+6 in the order of `PROVIDERS`, control API on PORT+7;
    /// 0 gives every fake a random port.
    #[arg(long, default_value_t = 9100)]
    pub port: u16,
    /// A fault in force from the start, e.g. `twilio=500@30%`, `vonage=error:9`,
    /// `2factor=timeout`, `msg91=latency:800`, `plivo=throttle:5`, `fast2sms=blackhole`.
    #[arg(long = "fault", value_name = "NAME=SPEC", value_parser = parse_fault_arg)]
    pub faults: Vec<(String, Fault)>,
    /// Print `export VAR=value` for every secret variable `examples/sim.toml` names, with the
    /// credentials the fakes accept, and exit: `eval "$(smsgate sim --print-env)"`.
    #[arg(long)]
    pub print_env: bool,
}

/// The failover drill's configuration: every provider at the simulator's default ports.
pub const EXAMPLE_CONFIG: &str = include_str!("../../examples/sim.toml");

fn parse_fault_arg(arg: &str) -> Result<(String, Fault), String> {
    match parse_named(arg)? {
        (name, Some(fault)) => Ok((name, fault)),
        (_, None) => Err("`ok` is already the default; leave the flag out".into()),
    }
}

/// Parses `NAME=SPEC` (the `--fault` flag); NAME is a provider of [`PROVIDERS`].
pub fn parse_named(arg: &str) -> Result<(String, Option<Fault>), String> {
    let (name, spec) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` must look like NAME=SPEC, e.g. twilio=500@30%"))?;
    let name = canonical(name.trim()).ok_or_else(|| format!("`{name}` is not one of {:?}", PROVIDERS))?;
    Ok((name.to_string(), Fault::parse_setting(spec)?))
}

/// Runs the fakes until Ctrl-C.
pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let credentials = SimCredentials::default();
    if args.print_env {
        let example = Settings::from_toml(EXAMPLE_CONFIG)?;
        print!("{}", env_exports(&example, &credentials));
        return Ok(());
    }
    let handle = start(SimOptions {
        host: args.host,
        base_port: args.port,
        faults: args.faults,
        credentials: credentials.clone(),
    })
    .await?;
    println!("{}", banner(&handle, &credentials));
    tokio::signal::ctrl_c().await?;
    println!("stopping the simulator");
    handle.stop().await;
    Ok(())
}

/// The URL of every fake, the control API, and a `providers.toml` that uses them.
pub fn banner(handle: &SimHandle, credentials: &SimCredentials) -> String {
    let mut out = String::from("smsgate sim: fake providers are up\n");
    for name in PROVIDERS {
        let fault = handle.state().fault(name).map(|f| format!("  (fault: {f})"));
        let _ = writeln!(out, "  {name:<10} {}{}", handle.url(name), fault.unwrap_or_default());
    }
    let _ = writeln!(
        out,
        "  control    {}/_sim/messages · /_sim/stats · /_sim/faults\n",
        handle.control_url()
    );
    let _ = writeln!(
        out,
        "# Switch a fault at runtime (\"ok\" or null clears it):\n\
         curl -X POST {}/_sim/faults -H 'content-type: application/json' \\\n  \
         -d '{{\"provider\":\"2factor\",\"fault\":\"500\"}}'\n",
        handle.control_url()
    );
    let _ = writeln!(
        out,
        "# Secrets the fakes accept (`smsgate sim --print-env` prints them for examples/sim.toml):"
    );
    let _ = writeln!(
        out,
        "export SIM_API_KEY={} SIM_API_SECRET={} SIM_TWILIO_SID={} SIM_AUTH_TOKEN={} SIM_PLIVO_AUTH_ID={}\n",
        credentials.api_key, credentials.api_secret, credentials.account_sid, credentials.auth_token, credentials.plivo_auth_id
    );
    out.push_str("# providers.toml\n");
    out.push_str(&providers_toml(handle));
    out
}

/// What the fakes accept for the secret a provider reads through config key `key`
/// (`api_key_env`), and the `SIM_*` variable `providers_toml` names for it.
fn sim_secret<'c>(key: &str, c: &'c SimCredentials) -> Option<(&'static str, &'c str)> {
    match key {
        "api_key_env" => Some(("SIM_API_KEY", &c.api_key)),
        "api_secret_env" => Some(("SIM_API_SECRET", &c.api_secret)),
        "account_sid_env" => Some(("SIM_TWILIO_SID", &c.account_sid)),
        "auth_token_env" => Some(("SIM_AUTH_TOKEN", &c.auth_token)),
        "auth_id_env" => Some(("SIM_PLIVO_AUTH_ID", &c.plivo_auth_id)),
        _ => None,
    }
}

/// One `export VAR=value` line for each secret variable the providers of `config` read (the
/// `*_env` keys, or each kind's default variable), valued with what the fakes accept.
pub fn env_exports(config: &Settings, credentials: &SimCredentials) -> String {
    let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &config.providers {
        if let ProviderConfig::Http(_) = p {
            // A generic `http` provider speaks no fake's API unless its spec is written to.
            continue;
        }
        for secret in p.secrets() {
            if let Some((_, value)) = sim_secret(secret.key, credentials) {
                vars.insert(secret.var, value);
            }
        }
    }
    vars.iter().map(|(var, value)| format!("export {var}={value}\n")).collect()
}

/// `[[providers]]` entries for every fake, in failover order; secrets are read from the `SIM_*`
/// variables the banner prints.
pub fn providers_toml(handle: &SimHandle) -> String {
    let entries: [(&str, &str, &str); 7] = [
        ("2factor", "two_factor", "sender_id = \"SMSGTE\"\ntemplate = \"OTP1\"\notp_mode = \"autogen\"\n"),
        ("twilio", "twilio", "from = \"+15005550006\"\n# otp_mode = \"verify\" uses Twilio Verify on the same port:\nverify_base_url = \"{url}\"\nverify_service_sid = \"VA00000000000000000000000000000000\"\n"),
        ("vonage", "vonage", "from = \"smsgate\"\n"),
        ("msg91", "msg91", "template_id = \"sim-otp-template\"\n"),
        ("textlocal", "textlocal", "sender_id = \"TXTLCL\"\n"),
        ("plivo", "plivo", "from = \"+14155550100\"\n"),
        ("fast2sms", "fast2sms", "route = \"otp\"\n"),
    ];
    let credentials = SimCredentials::default();
    let mut out = String::new();
    for (priority, (name, kind, keys)) in (1..).zip(entries) {
        let url = handle.url(name);
        let entry = format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\npriority = {priority}\nbase_url = \"{url}\"\n{}",
            keys.replace("{url}", &url)
        );
        out.push_str(&entry);
        // The kind knows which secrets it reads; name the simulator's variable for each.
        let parsed = Settings::from_toml(&entry).expect("the simulator's own entries are valid");
        for secret in parsed.providers.iter().flat_map(ProviderConfig::secrets) {
            if let Some((var, _)) = sim_secret(secret.key, &credentials) {
                let _ = writeln!(out, "{} = \"{var}\"", secret.key);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::FaultKind;

    #[tokio::test]
    async fn the_printed_providers_toml_is_a_valid_config() {
        let handle = start(SimOptions::default()).await.unwrap();
        let toml = providers_toml(&handle);
        let settings = crate::config::Settings::from_toml(&toml).unwrap();
        assert_eq!(settings.providers.len(), PROVIDERS.len());
        assert_eq!(settings.providers[1].common().base_url, Some(handle.url("twilio").as_str()));
        let text = banner(&handle, &SimCredentials::default());
        assert!(text.contains(&toml) && text.contains("/_sim/faults"));
        handle.stop().await;
    }

    #[test]
    fn print_env_exports_every_secret_the_example_names_and_they_build_every_provider() {
        let example = Settings::from_toml(EXAMPLE_CONFIG).unwrap();
        let c = SimCredentials::default();
        let text = env_exports(&example, &c);
        let vars: BTreeMap<&str, &str> = text
            .lines()
            .map(|l| {
                l.strip_prefix("export ")
                    .and_then(|kv| kv.split_once('='))
                    .expect("export VAR=value")
            })
            .collect();
        let expected = BTreeMap::from([
            ("SIM_API_KEY", c.api_key.as_str()),
            ("SIM_API_SECRET", c.api_secret.as_str()),
            ("SIM_AUTH_TOKEN", c.auth_token.as_str()),
            ("SIM_PLIVO_AUTH_ID", c.plivo_auth_id.as_str()),
            ("SIM_TWILIO_SID", c.account_sid.as_str()),
        ]);
        assert_eq!(vars, expected);
        let lookup = |k: &str| vars.get(k).map(|v| v.to_string());
        let (registry, skipped) = crate::routing::Registry::build(&example, &lookup).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(registry.slots().len(), PROVIDERS.len());
    }

    #[test]
    fn defaulted_secret_variables_are_exported_too() {
        let config = Settings::from_toml("[[providers]]\nname = \"v\"\nkind = \"vonage\"\nfrom = \"x\"\n").unwrap();
        let text = env_exports(&config, &SimCredentials::default());
        assert_eq!(text, "export VONAGE_API_KEY=sim-key\nexport VONAGE_API_SECRET=sim-secret\n");
    }

    #[test]
    fn named_faults_name_a_known_provider() {
        let (name, fault) = parse_named("two_factor=error:Invalid API Key").unwrap();
        assert_eq!(name, "2factor");
        assert_eq!(fault.unwrap().kind, FaultKind::Error("Invalid API Key".into()));
        assert_eq!(parse_named("twilio=ok").unwrap().1, None);
        assert!(parse_named("acme=500").is_err());
        assert!(parse_named("twilio").is_err());
    }

    #[test]
    fn fault_flags_parse() {
        assert!(parse_fault_arg("twilio=500@30%").is_ok());
        assert!(parse_fault_arg("twilio=ok").is_err());
        assert!(parse_fault_arg("nobody=500").is_err());
    }
}
