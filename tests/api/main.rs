//! Behaviour tests: the real application on port 0, fake providers from `smsgate::sim` on port
//! 0, and a fresh PostgreSQL schema per test.

mod access;
mod campaigns;
mod db;
mod failover;
mod flood;
mod garbage;
mod helpers;
mod hooks;
mod idempotency;
mod isolation;
mod limit_store;
mod limits;
mod masking;
mod otp;
mod protocol;
mod pumping;
mod receipts;
mod retention;
mod rls;
mod routing;
mod segments;
mod shutdown;
mod stalls;
mod stepup;
mod store;
mod tenancy;
mod tls;
mod verify;
