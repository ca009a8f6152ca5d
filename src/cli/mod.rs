//! One module per `obtc-pool` subcommand.

pub mod audit;
pub mod core;
pub mod edge;
pub mod export;
pub mod init;
pub mod ledger;
pub mod notify;
pub mod payout;
pub mod run;
