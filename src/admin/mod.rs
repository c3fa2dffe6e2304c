//! Admin: the live provider registry (changes validated like the configuration file, committed
//! with their audit rows, followed by every instance), provider secrets sealed at rest, and the
//! audit trail. The HTTP edge is `api::admin`; rows live in `store::registry`.

pub mod audit;
pub mod change;
pub mod commands;
pub mod registry;
pub mod secrets;
mod validate;

pub use change::{AdminError, Change, OrderChange, ProviderView, RegistrySource, Snapshot};
pub use registry::RegistryAdmin;
pub use secrets::MasterKeys;
