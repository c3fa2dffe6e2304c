//! smsgate: one HTTP endpoint for OTP, transactional and template SMS, routed over an ordered
//! list of providers with failover, circuit breakers and a durable log of every attempt.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod campaigns;
pub mod clock;
pub mod config;
pub mod health;
pub mod hooks;
pub mod keys;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod otp;
pub mod phone;
pub mod providers;
pub mod routing;
pub mod service;
pub mod sim;
pub mod store;
