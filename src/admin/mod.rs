//! Admin operations: the settings page's test sender, logs, live status and multi-factor
//! access to logs (provider CRUD, order, secrets and audit live beside them).

pub mod logs;
pub mod mfa;
pub mod status;
pub mod test_send;
