//! The Stratum V1 server, jobs, share checks, vardiff; it talks to the node through `node-rpc`.

pub mod ban;
pub mod codec;
pub mod flood;
pub mod job;
pub mod message;
pub mod metrics;
pub mod server;
pub mod session;
pub mod sink;
pub mod vardiff;
