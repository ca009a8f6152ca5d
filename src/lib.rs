//! The `obtc-pool` binary's library half: command-line commands, configuration, the live
//! projection the pool process keeps over its ledger ([`live`]), the JSON-RPC server the payout
//! process talks to ([`rpc`]), and the wiring that connects them to the Stratum server and the
//! ledger. Domain logic lives in the workspace crates; this crate only assembles them.

pub mod audit;
pub mod cli;
pub mod config;
pub mod live;
pub mod metrics;
pub mod rpc;
