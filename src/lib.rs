//! smsgate: one HTTP endpoint for OTP, transactional and template SMS, routed over an ordered
//! list of providers with failover, circuit breakers and a durable log of every attempt.
#![forbid(unsafe_code)]

pub mod config;
pub mod net;
pub mod phone;
pub mod providers;
pub mod sim;
