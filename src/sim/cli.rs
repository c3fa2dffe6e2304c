//! `smsgate sim`: run the fakes until Ctrl-C and print how to point smsgate at them.

use std::fmt::Write;

use super::faults::{self, Fault};
use super::{start, SimCredentials, SimHandle, SimOptions, PROVIDERS};

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
}

fn parse_fault_arg(arg: &str) -> Result<(String, Fault), String> {
    match faults::parse_named(arg)? {
        (name, Some(fault)) => Ok((name, fault)),
        (_, None) => Err("`ok` is already the default; leave the flag out".into()),
    }
}

/// Runs the fakes until Ctrl-C.
pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let credentials = SimCredentials::default();
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
    let _ = writeln!(out, "# Secrets the fakes accept:");
    let _ = writeln!(
        out,
        "export SIM_API_KEY={} SIM_API_SECRET={} SIM_TWILIO_SID={} SIM_AUTH_TOKEN={} SIM_PLIVO_AUTH_ID={}\n",
        credentials.api_key, credentials.api_secret, credentials.account_sid, credentials.auth_token, credentials.plivo_auth_id
    );
    out.push_str("# providers.toml\n");
    out.push_str(&providers_toml(handle));
    out
}

/// `[[providers]]` entries for every fake, in failover order.
pub fn providers_toml(handle: &SimHandle) -> String {
    let entries: [(&str, &str, &str); 7] = [
        ("2factor", "two_factor", "api_key_env = \"SIM_API_KEY\"\nsender_id = \"SMSGTE\"\ntemplate = \"OTP1\"\notp_mode = \"autogen\"\n"),
        ("twilio", "twilio", "account_sid_env = \"SIM_TWILIO_SID\"\nauth_token_env = \"SIM_AUTH_TOKEN\"\nfrom = \"+15005550006\"\n# otp_mode = \"verify\" uses Twilio Verify on the same port:\nverify_base_url = \"{url}\"\nverify_service_sid = \"VA00000000000000000000000000000000\"\n"),
        ("vonage", "vonage", "api_key_env = \"SIM_API_KEY\"\napi_secret_env = \"SIM_API_SECRET\"\nfrom = \"smsgate\"\n"),
        ("msg91", "msg91", "api_key_env = \"SIM_API_KEY\"\ntemplate_id = \"sim-otp-template\"\n"),
        ("textlocal", "textlocal", "api_key_env = \"SIM_API_KEY\"\nsender_id = \"TXTLCL\"\n"),
        ("plivo", "plivo", "auth_id_env = \"SIM_PLIVO_AUTH_ID\"\nauth_token_env = \"SIM_AUTH_TOKEN\"\nfrom = \"+14155550100\"\n"),
        ("fast2sms", "fast2sms", "api_key_env = \"SIM_API_KEY\"\nroute = \"otp\"\n"),
    ];
    let mut out = String::new();
    for (priority, (name, kind, keys)) in (1..).zip(entries) {
        let url = handle.url(name);
        let _ = writeln!(
            out,
            "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\npriority = {priority}\nbase_url = \"{url}\"\n{}",
            keys.replace("{url}", &url)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_printed_providers_toml_is_a_valid_config() {
        let handle = start(SimOptions::default()).await.unwrap();
        let toml = providers_toml(&handle);
        let settings = crate::config::Settings::from_toml(&toml).unwrap();
        assert_eq!(settings.providers.len(), PROVIDERS.len());
        assert_eq!(settings.providers[1].base_url.as_deref(), Some(handle.url("twilio").as_str()));
        let text = banner(&handle, &SimCredentials::default());
        assert!(text.contains(&toml) && text.contains("/_sim/faults"));
        handle.stop().await;
    }

    #[test]
    fn fault_flags_parse() {
        assert!(parse_fault_arg("twilio=500@30%").is_ok());
        assert!(parse_fault_arg("twilio=ok").is_err());
        assert!(parse_fault_arg("nobody=500").is_err());
    }
}
