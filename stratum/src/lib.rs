//! The Stratum V1 server, jobs, share checks, vardiff and the node template client.

pub mod ban;
pub mod codec;
pub mod flood;
pub mod job;
pub mod message;
pub mod node;
pub mod server;
pub mod session;
pub mod vardiff;
