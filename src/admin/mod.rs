//! Admin: the live provider registry (changes validated like the configuration file, committed
//! with their audit rows, followed by every instance), provider secrets sealed at rest, and the
//! audit trail; and the settings page's operations: test sender, logs, live status and
//! multi-factor access to logs. The HTTP edge is `api::admin`; rows live in `store::registry`.

pub mod audit;
pub mod change;
pub mod commands;
pub mod logs;
pub mod mfa;
pub mod registry;
pub mod secrets;
pub mod status;
pub mod test_send;
mod validate;

pub use change::{AdminError, Change, OrderChange, ProviderView, RegistrySource, Snapshot};
pub use registry::RegistryAdmin;
pub use secrets::MasterKeys;
