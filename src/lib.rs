//! The `obtc-pool` binary's library half: command-line commands, configuration and the wiring
//! that connects the Stratum server, the ledger and (later) the payout process and operator RPC.
//! Domain logic lives in the workspace crates; this crate only assembles them.

pub mod cli;
pub mod config;
pub mod live;
pub mod rpc;
