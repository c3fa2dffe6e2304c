//! The fakes' names, in port order, and the aliases the CLI and control API accept.

/// The fakes, in port order (`base_port + index`); the control API follows on `base_port + 7`.
pub const PROVIDERS: [&str; 7] = ["2factor", "twilio", "vonage", "msg91", "textlocal", "plivo", "fast2sms"];

/// The name in [`PROVIDERS`] for `name`, which may also be the adapter kind (`two_factor`).
pub fn canonical(name: &str) -> Option<&'static str> {
    let name = if name == "two_factor" { "2factor" } else { name };
    PROVIDERS.iter().copied().find(|p| *p == name)
}
