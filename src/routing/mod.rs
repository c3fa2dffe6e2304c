//! Routing: picks the providers that may carry a message (capability, country, breaker, 429
//! cool-down, throughput cap) and tries them in order, each under a per-attempt timeout inside
//! the request deadline, acting on each failure's class. It returns every attempt it made; the
//! caller records them.

mod attempt;
mod breaker;
mod budget;
pub mod probes;
mod registry;
mod router;
mod slot;
mod stats;
#[cfg(test)]
mod tests;

pub use attempt::{Attempt, Delivered, Dispatch, DispatchError, Failure, Outcome};
pub use breaker::{Breaker, BreakerState, CallResult};
pub use budget::RetryBudget;
pub use registry::{Entry, Explained, Registry, Skipped};
pub use router::Router;
pub use slot::{CoolDown, Slot};
pub use stats::{CallStats, WindowSummary};
