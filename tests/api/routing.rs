//! Routing through the real app and the simulator: per-country order, capability filtering,
//! `GET /v1/routing/explain`, failover drills, every provider on its own, and `examples/sim.toml`.
//! Routing keeps no state in the store, so these run on the memory store only; the example's
//! drill, which a deployment runs as written, runs on both.

mod capabilities;
mod countries;
mod drills;
mod example;
mod explain;
mod providers;

use std::collections::BTreeMap;

pub const US_PHONE: &str = "+14155552671";

/// `[routing.countries]`: each country's provider order.
pub fn countries(orders: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    orders.iter().map(|(country, names)| (country.to_string(), list(names))).collect()
}
