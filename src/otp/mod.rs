//! The OTP session lifecycle: open a session (its code made here and kept only as an HMAC),
//! send it through the router, verify a code against every code the session was sent, and
//! vouch for a verification with a token, and resend a session's code through another
//! provider. Step-up sends find the user's stored phone here.
//! Codes made by an auth server (hooks) are delivered here too, without a session.
//! It never picks a provider: the router does.

mod code;
mod contacts;
mod external;
mod resend;
pub(crate) mod send;
mod token;
mod verify;

pub use code::{generate_code, is_well_formed, render, Policy, CODE_LENGTHS};
pub use external::{ExternalSender, ExternalSent};
pub use resend::Resent;
pub use send::{OtpRequest, OtpSent, Recipient};
pub use token::{check_token, issue_token, TokenClaims};
pub use verify::Verified;
